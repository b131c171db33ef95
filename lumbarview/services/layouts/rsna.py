"""RSNA 2024 Lumbar Spine Degenerative Classification (Kaggle): one case per study.

Layout (``docs/datasets.md`` section 6)::

    train_images/<study_id>/<series_id>/<instance_number>.dcm   (and test_images/...)
    train_series_descriptions.csv     study_id, series_id, series_description
    train.csv                         study_id + 25 grade columns {condition}_{level}
    train_label_coordinates.csv       study_id, series_id, instance_number, condition, level, x, y

Slices are ordered by their position along the normal by the DICOM assembly, never by instance
number; a coordinate row finds its slice through the *file name* (the instance number) inside its
series folder, then its pixel is taken to patient space through that slice's plane.

Pixel convention: ``x`` is the column and ``y`` the row of the instance's pixel array (the card
says "pixel column and row on that instance"), with integer values at pixel *centres* and (0, 0)
the centre of the top-left pixel, the same frame as (0020,0032) Image Position (Patient) and as
the array indices the competition's code plots on. So ``LPS = plane.pixel_to_lps((x, y))`` with no
half-pixel shift (had the annotators meant pixel corners, the error would be half a pixel).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lumbarview.core.dataset import Case, PointSet, Table
from lumbarview.core.types import ImageStack, Series, Severity
from lumbarview.io.annotations import read_table
from lumbarview.services.layouts.context import OpenContext, natural_key

IMAGE_FOLDERS = ("train_images", "test_images")
COORDINATES_FILE = "train_label_coordinates.csv"
GRADES_FILE = "train.csv"
DESCRIPTIONS_GLOB = "*_series_descriptions.csv"
COORDINATE_COLUMNS = ("study_id", "series_id", "instance_number", "condition", "level", "x", "y")
DESCRIPTION_COLUMNS = ("study_id", "series_id", "series_description")

#: RSNA condition text -> (column prefix in train.csv, side).
CONDITIONS: dict[str, tuple[str, str | None]] = {
    "Spinal Canal Stenosis": ("spinal_canal_stenosis", None),
    "Left Neural Foraminal Narrowing": ("left_neural_foraminal_narrowing", "left"),
    "Right Neural Foraminal Narrowing": ("right_neural_foraminal_narrowing", "right"),
    "Left Subarticular Stenosis": ("left_subarticular_stenosis", "left"),
    "Right Subarticular Stenosis": ("right_subarticular_stenosis", "right"),
}
#: RSNA level text -> lumbarview's level name.
LEVELS: dict[str, str] = {"L1/L2": "L1-L2", "L2/L3": "L2-L3", "L3/L4": "L3-L4", "L4/L5": "L4-L5",
                          "L5/S1": "L5-S1"}
_CONDITION_BY_TEXT = {" ".join(name.lower().split()): name for name in CONDITIONS}
GRADES = ("Normal/Mild", "Moderate", "Severe")
GRADES_TABLE_KIND = "rsna-grades"
GRADES_COLUMNS = ["level", "condition", "side", "grade", "column", "n_points", "series_id",
                  "instance_number", "slice_index", "x", "y"]
_EXAMPLES = 3  # examples named in one aggregated issue
_DETECT_PEEK = 20  # folders looked at to recognise the tree without a CSV


# -- recognising the layout -----------------------------------------------------------------
def _digit_dirs(folder: Path) -> list[Path]:
    try:
        entries = list(itertools.islice(folder.iterdir(), _DETECT_PEEK))
    except OSError:
        return []
    return [p for p in entries if p.name.isdigit() and p.is_dir()]


def detect(root: Path) -> bool:
    """A ``train_images`` / ``test_images`` folder beside one of the layout's CSV files, or holding
    ``<digits>/<digits>/`` study and series folders. No other layout has such a folder."""
    folders = [root / name for name in IMAGE_FOLDERS if (root / name).is_dir()]
    if not folders:
        return False
    if (root / COORDINATES_FILE).is_file() or (root / GRADES_FILE).is_file() or any(
            p.is_file() for p in itertools.islice(root.glob(DESCRIPTIONS_GLOB), 4)):
        return True
    return any(_digit_dirs(study) for folder in folders for study in _digit_dirs(folder))


# -- small parsers --------------------------------------------------------------------------
def _id(value: Any) -> str | None:
    """A study, series or instance id as text without leading zeros (CSV cells arrive parsed:
    ``4003253`` is an int, ``12.0`` a float); None for blanks and non-ids."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, float):
        return str(int(value)) if math.isfinite(value) and value >= 0 and value == int(value) else None
    text = str(value).strip()
    if text.isdigit():
        return text.lstrip("0") or "0"
    return text or None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Findings:
    """Issues of one kind collected per case (or the dataset), reported once each with a count
    and a few examples: a damaged 48,000-row CSV must not become 48,000 issues."""

    def __init__(self) -> None:
        self._found: dict[tuple[int, str], tuple[Case | None, Severity, str, Path, list[str]]] = {}

    def add(self, case: Case | None, severity: Severity, code: str, what: str, path: Path,
            example: str) -> None:
        key = (id(case), code)
        entry = self._found.setdefault(key, (case, severity, what, path, []))
        entry[4].append(example)

    def report(self, ctx: OpenContext) -> None:
        for (_, code), (case, severity, what, path, examples) in self._found.items():
            shown = "; ".join(examples[:_EXAMPLES]) + ("; ..." if len(examples) > _EXAMPLES else "")
            ctx.issue(severity, code, f"{len(examples)} {what}: {shown}", path, case)


@dataclass
class _Study:
    """One study on disk: its case and where each instance landed."""

    case: Case
    split: str  # "train" | "test"
    series: dict[str, list[Series]]  # series folder name -> series assembled from it
    instances: dict[tuple[str, str], tuple[ImageStack, int]]  # (series_id, instance) -> slice


def _index_study(case: Case, split: str) -> _Study:
    series_by_folder: dict[str, list[Series]] = defaultdict(list)
    instances: dict[tuple[str, str], tuple[ImageStack, int]] = {}
    for series in case.series:
        folders = set()
        for stack in series.stacks:
            for k, file in enumerate(stack.meta.get("files") or []):
                if not file:
                    continue
                path = Path(file)
                folders.add(path.parent.name)
                instance = _id(path.stem)
                if instance is not None:
                    instances.setdefault((_id(path.parent.name) or path.parent.name, instance), (stack, k))
        for folder in folders:
            series_by_folder[_id(folder) or folder].append(series)
    return _Study(case, split, dict(series_by_folder), instances)


# -- opening --------------------------------------------------------------------------------
def open_layout(ctx: OpenContext) -> None:
    studies: dict[str, _Study] = {}
    for name in IMAGE_FOLDERS:
        folder = ctx.root / name
        if not folder.is_dir():
            continue
        study_dirs = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                            key=lambda p: natural_key(p.name))
        if not study_dirs:
            ctx.issue(Severity.WARNING, "rsna.no-studies", f"{name} holds no study folder", folder)
            continue
        for case in ctx.dicom_cases(folder, study_dirs):
            key = _id(case.id) or case.id
            if key in studies:
                ctx.issue(Severity.WARNING, "rsna.duplicate-study",
                          f"study {case.id} is in both image folders; the second copy is left out",
                          folder / case.id)
                continue
            studies[key] = _index_study(case, name.split("_")[0])
            ctx.dataset.cases.append(case)
    descriptions = [p for p in sorted(ctx.root.glob(DESCRIPTIONS_GLOB)) if p.is_file()]
    for path in descriptions:
        _join_descriptions(ctx, path, studies)
    points: dict[tuple[str, str, str], dict[str, Any]] = {}
    coordinates = ctx.root / COORDINATES_FILE
    if coordinates.is_file():
        points = _place_coordinates(ctx, coordinates, studies)
    grades = ctx.root / GRADES_FILE
    if grades.is_file():
        _join_grades(ctx, grades, studies, points)
    ctx.attachments(ctx.root, exclude={ctx.root / n for n in IMAGE_FOLDERS},
                    known={COORDINATES_FILE, GRADES_FILE, *(p.name for p in descriptions)})


def _read(ctx: OpenContext, path: Path, kind: str, expected: tuple[str, ...]) -> Table | None:
    result = ctx.guarded(None, partial(read_table, path, kind, expected))
    if result is None:
        return None
    table: Table = result[0]
    ctx.dataset.issues.extend(result[1])
    missing = [c for c in expected if c not in table.columns]
    if missing:
        ctx.issue(Severity.ERROR, "rsna.missing-columns",
                  f"the table lacks {len(missing)} column(s) the RSNA layout needs ("
                  f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); it is "
                  "listed but not joined to the studies. Check that it is the file from the "
                  "competition data", path)
        ctx.dataset.tables.append(table)
        return None
    ctx.dataset.tables.append(table)
    return table


def _absent_studies(ctx: OpenContext, path: Path, ids: list[str], what: str) -> None:
    if ids:
        shown = ", ".join(ids[:_EXAMPLES]) + (", ..." if len(ids) > _EXAMPLES else "")
        ctx.issue(Severity.INFO, "rsna.study-not-on-disk",
                  f"{len(ids)} stud{'y' if len(ids) == 1 else 'ies'} with {what} in this file have no "
                  f"images here ({shown}); normal for a partial download", path)


def _join_descriptions(ctx: OpenContext, path: Path, studies: dict[str, _Study]) -> None:
    table = _read(ctx, path, "rsna-series", DESCRIPTION_COLUMNS)
    if table is None:
        return
    described: dict[str, dict[str, str]] = defaultdict(dict)
    for row in table.rows:
        study_id, series_id = _id(row.get("study_id")), _id(row.get("series_id"))
        if study_id is None or series_id is None:
            continue
        described[study_id][series_id] = str(row.get("series_description") or "").strip()
    absent: list[str] = []
    for study_id, by_series in described.items():
        study = studies.get(study_id)
        if study is None:
            absent.append(study_id)
            continue
        for series_id, description in by_series.items():
            found = study.series.get(series_id)
            if not found:
                ctx.issue(Severity.WARNING, "rsna.series-not-on-disk",
                          f"series {series_id} ({description or 'no description'}) is listed in "
                          f"{path.name} but has no images in study {study.case.id}", path, study.case)
                continue
            for series in found:
                if description:
                    series.description = description
        for series_id in sorted(set(study.series) - set(by_series), key=natural_key):
            ctx.issue(Severity.WARNING, "rsna.series-not-described",
                      f"series {series_id} of study {study.case.id} is on disk but not in {path.name}; "
                      "it is shown with its DICOM description", path, study.case)
    # Only the studies of this file's split: test studies are not in the train file.
    split = path.name.split("_")[0]
    for study in studies.values():
        if study.split == split and _id(study.case.id) not in described and study.series:
            ctx.issue(Severity.WARNING, "rsna.study-not-described",
                      f"study {study.case.id} is not in {path.name}; its series keep their DICOM "
                      "descriptions", path, study.case)
    _absent_studies(ctx, path, absent, "series descriptions")


def _place_coordinates(ctx: OpenContext, path: Path,
                       studies: dict[str, _Study]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Each coordinate row becomes a labelled point on its slice, in LPS. Returns, per (study,
    condition, level), the first placement (for the grades table)."""
    table = _read(ctx, path, "rsna-coordinates", COORDINATE_COLUMNS)
    if table is None:
        return {}
    findings = _Findings()
    absent: dict[str, None] = {}
    sets: dict[tuple[str, str, str], list[tuple[int, Any, dict[str, Any]]]] = defaultdict(list)
    placed: dict[tuple[str, str, str], dict[str, Any]] = {}
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for n, row in enumerate(table.rows, start=2):  # line numbers as a spreadsheet shows them
        study_id = _id(row.get("study_id"))
        study = studies.get(study_id or "")
        if study is None:
            if study_id is not None:
                absent.setdefault(study_id)
            else:
                findings.add(None, Severity.WARNING, "rsna.bad-coordinate", "coordinate row(s) name no study",
                             path, f"line {n}")
            continue
        case = study.case
        series_id, instance = _id(row.get("series_id")), _id(row.get("instance_number"))
        condition_text, level_text = str(row.get("condition") or "").strip(), str(row.get("level") or "").strip()
        condition = _CONDITION_BY_TEXT.get(" ".join(condition_text.lower().split()), condition_text)
        x, y = _number(row.get("x")), _number(row.get("y"))
        level = LEVELS.get(level_text.upper().replace("-", "/"))
        if condition not in CONDITIONS or level is None or x is None or y is None or series_id is None \
                or instance is None:
            findings.add(case, Severity.WARNING, "rsna.bad-coordinate",
                         "coordinate row(s) could not be read (unknown condition or level, or a "
                         "missing or non-numeric id, x or y) and are not shown", path,
                         f"line {n}: {_short(condition)} {_short(level_text)} x={_short(row.get('x'))} "
                         f"y={_short(row.get('y'))}")
            continue
        if series_id not in study.series:
            findings.add(case, Severity.ERROR, "rsna.coordinate-missing-series",
                         "coordinate(s) name a series that has no images in this study and are not "
                         "shown", path, f"line {n}: series {series_id} ({condition} {level_text})")
            continue
        target = study.instances.get((series_id, instance))
        if target is None:
            findings.add(case, Severity.ERROR, "rsna.coordinate-missing-instance",
                         "coordinate(s) name an instance that is not in its series and are not shown",
                         path, f"line {n}: series {series_id} instance {instance} ({condition} {level_text})")
            continue
        stack, k = target
        plane = stack.geometry.slice_plane(k)
        rows, cols = plane.shape_rc
        if not (-0.5 <= x <= cols - 0.5 and -0.5 <= y <= rows - 0.5):
            findings.add(case, Severity.WARNING, "rsna.coordinate-outside-image",
                         "coordinate(s) lie outside their image; shown where they say", path,
                         f"line {n}: x={x:g} y={y:g} on a {cols}x{rows} image")
        lps = plane.pixel_to_lps(np.array([x, y], dtype=np.float64))
        key = (study_id or "", series_id, condition)
        info = {"level": level, "condition": condition, "side": CONDITIONS[condition][1], "grade": None,
                "series_id": series_id, "instance_number": int(instance) if instance.isdigit() else instance,
                "slice_index": k, "x": x, "y": y}
        sets[key].append((list(LEVELS.values()).index(level), lps, info))
        counts[(study_id or "", condition, level)] += 1
        placed.setdefault((study_id or "", condition, level),
                          {c: info[c] for c in ("series_id", "instance_number", "slice_index", "x", "y")})
    order = list(CONDITIONS)
    for (study_id, series_id, condition), items in sorted(
            sets.items(), key=lambda kv: (natural_key(kv[0][0]), order.index(kv[0][2]), natural_key(kv[0][1]))):
        study = studies[study_id]
        items.sort(key=lambda t: t[0])
        series = study.series[series_id][0]
        description = series.description or f"series {series_id}"
        study.case.point_sets.append(PointSet(
            name=f"{condition} ({description}, {series_id})", kind="points",
            points_lps=np.array([p for _, p, _ in items], dtype=np.float64).reshape(-1, 3),
            labels=[f"{info['level']} {info['condition']}" for _, _, info in items], source=str(path),
            coordinate_system="pixel",
            info=[info for _, _, info in items]))
    for key, info in placed.items():
        info["n_points"] = counts[key]
    findings.report(ctx)
    _absent_studies(ctx, path, list(absent), "coordinates")
    return placed


def _grade_points(case: Case, rows: list[dict[str, Any]]) -> None:
    """Each coordinate point of ``case`` takes the grade train.csv gives its level and condition
    (in its ``info``: the views write it beside the point, the Annotations dock lists it)."""
    grades = {(r["condition"], r["level"]): r["grade"] for r in rows}
    for point_set in case.point_sets:
        for info in point_set.info:
            if "condition" in info and "level" in info:
                info["grade"] = grades.get((info["condition"], info["level"]))


def _join_grades(ctx: OpenContext, path: Path, studies: dict[str, _Study],
                 placed: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    """The 25 grades of each study, one row per level x condition, with the coordinate that
    goes with each grade."""
    columns = tuple(f"{prefix}_{level.lower().replace('-', '_')}"
                    for prefix, _ in CONDITIONS.values() for level in LEVELS.values())
    table = _read(ctx, path, "rsna-train", ("study_id", *columns))
    if table is None:
        return
    findings = _Findings()
    absent: list[str] = []
    seen: set[str] = set()
    for n, row in enumerate(table.rows, start=2):
        study_id = _id(row.get("study_id"))
        if study_id is None:
            findings.add(None, Severity.WARNING, "rsna.bad-grade-row", "grade row(s) name no study", path,
                         f"line {n}")
            continue
        study = studies.get(study_id)
        if study is None:
            absent.append(study_id)
            continue
        if study_id in seen:
            findings.add(study.case, Severity.WARNING, "rsna.duplicate-grades",
                         "repeated grade row(s) for this study; the first is used", path, f"line {n}")
            continue
        seen.add(study_id)
        rows: list[dict[str, Any]] = []
        for condition, (prefix, side) in CONDITIONS.items():
            for level in LEVELS.values():
                column = f"{prefix}_{level.lower().replace('-', '_')}"
                value = row.get(column)
                grade = None if value is None else str(value).strip()
                if grade is None:
                    findings.add(study.case, Severity.WARNING, "rsna.missing-grade",
                                 "grade(s) are blank in train.csv", path, column)
                elif grade not in GRADES:
                    findings.add(study.case, Severity.WARNING, "rsna.bad-grade",
                                 f"grade(s) are none of {', '.join(GRADES)}; kept as written", path,
                                 f"{column}={_short(value)}")
                where = placed.get((study_id, condition, level), {})
                rows.append({"level": level, "condition": condition, "side": side, "grade": grade,
                             "column": column, "n_points": where.get("n_points", 0),
                             **{c: where.get(c) for c in ("series_id", "instance_number", "slice_index",
                                                          "x", "y")}})
        study.case.tables.append(Table(GRADES_FILE, GRADES_TABLE_KIND, list(GRADES_COLUMNS), rows, str(path)))
        _grade_points(study.case, rows)
    for study in studies.values():
        if study.split == "train" and _id(study.case.id) not in seen:
            ctx.issue(Severity.WARNING, "rsna.no-grades",
                      f"study {study.case.id} has no row in {path.name}", path, study.case)
    findings.report(ctx)
    _absent_studies(ctx, path, absent, "grades")
