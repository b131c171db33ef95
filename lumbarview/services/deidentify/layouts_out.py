"""Exports in public dataset layouts, so corrected labels and new gradings are shared in the form
others read (and lumbarview's own readers read back to the same points and labels):

* **SPIDER**: ``images/<case>_<sequence>.mha`` and ``masks/<case>_<sequence>.mha`` (the label map
  bound to the image, in SPIDER's label scheme), ``radiological_gradings.csv`` with the case's
  gradings (``Patient`` the case's new name);
* **RSNA 2024**: ``train_images/<study_id>/<series_id>/<instance>.dcm`` (the DICOM instances,
  de-identified, file names the instance numbers as before), ``train.csv`` (25 grades per study),
  ``train_label_coordinates.csv`` (series, instance number, condition, level and the pixel
  ``x``, ``y`` as read) and ``train_series_descriptions.csv``. Study and series ids become
  ten-digit numbers derived from the key.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.fs import atomic_write_text
from lumbarview.io.annotations import SPIDER_GRADING_COLUMNS
from lumbarview.services.layouts.rsna import (
    COORDINATES_FILE,
    DESCRIPTION_COLUMNS,
    GRADES_FILE,
    GRADES_TABLE_KIND,
    LEVELS,
)

if TYPE_CHECKING:
    from lumbarview.services.deidentify.export import _Writer

Progress = Callable[[int, int, str], None]
SPIDER_SCHEME = "SPIDER"
# Sequence names a SPIDER file name may carry (anything else becomes s<n>: a description can name a person).
_SAFE_SEQUENCES = frozenset({"t1", "t2", "t2_space", "stir", "pd", "flair", "t1c", "t2star", "dixon"})
_RSNA_DESCRIPTIONS = frozenset({"sagittal t1", "sagittal t2/stir", "axial t2"})


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return buffer.getvalue()


def _tick(progress: Progress | None, n: int, total: int) -> None:
    if progress is not None:
        progress(n, total, f"case {n + 1} of {total}" if n < total else "done")


def write_spider(writer: _Writer, dataset: Dataset, cases: list[Case], progress: Progress | None) -> None:
    gradings: list[dict[str, Any]] = []
    for n, case in enumerate(cases):
        writer.check_cancel()
        _tick(progress, n, len(cases))
        case.ensure_open()
        name = writer.case_name(case)
        used: set[str] = set()
        descriptions = {stack.uid: series.description for series in case.series for stack in series.stacks}
        for k, stack in enumerate(case.stacks(), 1):
            description = descriptions.get(stack.uid, "")
            sequence = description if description.lower() in _SAFE_SEQUENCES else f"s{k}"
            if sequence in used:
                sequence = f"{sequence}{k}"
            used.add(sequence)
            stem = f"{name}_{sequence}"
            writer.volume(stack, writer.root / "images" / f"{stem}.mha", "image", new_uid=f"spider:{stem}")
            for label_map in (lm for lm in case.label_maps if lm.bound_to == stack.uid):
                if label_map.scheme.name != SPIDER_SCHEME:
                    writer.hold(f"label map {label_map.name}", label_map.source,
                                f"its labels are in the {label_map.scheme.name} scheme, not SPIDER's")
                    continue
                writer.volume(label_map.stack, writer.root / "masks" / f"{stem}.mha", "mask")
                break
        for table in case.tables:
            if table.kind == "spider-gradings":
                gradings.extend({**row, "Patient": name} for row in table.rows)
            elif table.kind != "spider-overview":
                writer.hold(f"table {table.name}", table.source, "not a SPIDER table")
        for kind, things in (("point set", case.point_sets), ("mesh", case.meshes)):
            for thing in things:
                writer.hold(f"{kind} {thing.name}", thing.source, "SPIDER has no place for it")
    if gradings:
        path = writer.root / "radiological_gradings.csv"
        atomic_write_text(path, _csv(list(SPIDER_GRADING_COLUMNS), gradings))
        writer.report.exported.append({"kind": "gradings", "file": writer.rel(path), "rows": len(gradings)})
    _tick(progress, len(cases), len(cases))


def _number_id(writer: _Writer, kind: str, original: str) -> str:
    if not writer.request.deidentify:
        return original
    return str(1_000_000_000 + int(writer.identities.name(kind, original, 15), 16) % 9_000_000_000)


def write_rsna(writer: _Writer, dataset: Dataset, cases: list[Case], progress: Progress | None) -> None:
    grades: list[dict[str, Any]] = []
    coordinates: list[dict[str, Any]] = []
    descriptions: list[dict[str, Any]] = []
    grade_columns: list[str] = ["study_id"]
    for n, case in enumerate(cases):
        writer.check_cancel()
        _tick(progress, n, len(cases))
        case.ensure_open()
        study_id = _number_id(writer, "rsna-study", case.id)
        series_ids: dict[str, str] = {}
        for series in case.series:
            files = [Path(f) for stack in series.stacks for f in (stack.meta.get("files") or []) if f]
            if not files:
                writer.hold(f"series {series.description}", str(series.uid), "RSNA holds DICOM series only")
                continue
            folder = files[0].parent.name
            series_id = series_ids.setdefault(folder, _number_id(writer, "rsna-series", f"{case.id}/{folder}"))
            description = series.description if series.description.lower() in _RSNA_DESCRIPTIONS else ""
            descriptions.append({"study_id": study_id, "series_id": series_id, "series_description": description})
            for path in files:
                result = writer.dicom(case, path, writer.root / "train_images" / study_id / series_id / path.name)
                if result is None:
                    continue
        for table in case.tables:
            if table.kind != GRADES_TABLE_KIND:
                writer.hold(f"table {table.name}", table.source, "not an RSNA table")
                continue
            row: dict[str, Any] = {"study_id": study_id}
            for grade in table.rows:
                row[grade["column"]] = grade["grade"]
                if grade["column"] not in grade_columns:
                    grade_columns.append(grade["column"])
                if grade.get("series_id") is None or grade.get("x") is None:
                    continue
                if int(grade.get("n_points") or 0) > 1:
                    writer.report.notes.append(f"{grade['condition']} {grade['level']}: {grade['n_points']} points "
                                               "were read; the first is exported")
                rsna_level = next(k for k, v in LEVELS.items() if v == grade["level"])
                coordinates.append({
                    "study_id": study_id, "series_id": series_ids.get(str(grade["series_id"]),
                                                                      _number_id(writer, "rsna-series",
                                                                                 f"{case.id}/{grade['series_id']}")),
                    "instance_number": grade["instance_number"], "condition": grade["condition"],
                    "level": rsna_level, "x": grade["x"], "y": grade["y"]})
            grades.append(row)
        for kind, things in (("point set", case.point_sets), ("mesh", case.meshes)):
            for thing in things:
                if thing.source.endswith(COORDINATES_FILE):
                    continue  # written back from the grades table's placements
                writer.hold(f"{kind} {thing.name}", thing.source, "RSNA has no place for it")
    for name, columns, rows in ((GRADES_FILE, grade_columns, grades),
                                (COORDINATES_FILE, ["study_id", "series_id", "instance_number", "condition",
                                                    "level", "x", "y"], coordinates),
                                ("train_series_descriptions.csv", list(DESCRIPTION_COLUMNS), descriptions)):
        if rows:
            path = writer.root / name
            atomic_write_text(path, _csv(columns, rows))
            writer.report.exported.append({"kind": "table", "file": writer.rel(path), "rows": len(rows)})
    _tick(progress, len(cases), len(cases))
