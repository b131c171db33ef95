"""Use case: measure one case already in memory (the viewer, and each batch worker).

``measure_case(case)`` measures every measurable label map of the case on the grid of the image
it annotates (through :func:`lumbarview.services.binding.labels_on_image`, the one binding rule)
and returns the rows of the ``lumbarview measure`` contract (:data:`ROW_KEYS` + :data:`EXTRA_KEYS`),
with the dataset's own grades beside them (never used to compute them). It never raises for the
case's data: a label map that cannot be measured becomes one row with ``quantity`` null and the
``reason``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lumbarview.core.dataset import Case, LabelMap
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.labels import SEMI_AUTO_SCHEME_NAME, Role
from lumbarview.measure.engine import measure_label_map
from lumbarview.measure.results import Value
from lumbarview.services.binding import labels_on_image
from lumbarview.services.measure_2d import dura_rows, is_2d_mask, measure_2d_rows

#: The keys of a measurement row: a contract other tools read.
ROW_KEYS = ("case", "series", "level", "label", "side", "quantity", "value", "unit", "method",
            "confidence", "flag")
EXTRA_KEYS = ("confidence_reason", "reason", "dataset_grade", "position_lps")
#: With ``geometry=True`` each measured row also holds, under this key, the
#: :class:`~lumbarview.measure.results.MeasuredGeometry` its value was measured on (None when
#: it has none); ``lumbarview measure --json --geometry`` writes it as ``{"polylines_lps": ...}``.
GEOMETRY_KEY = "geometry"

#: A dataset grade: (level, side or None for both sides, text).
Grade = tuple[str, str | None, str]

_VOLUME_SUFFIXES = (".mha", ".mhd", ".nii", ".gz", ".nrrd", ".nhdr")


def case_grades(case: Case) -> list[Grade]:
    """Dataset grades to report beside the measurements (never used to compute them)."""
    out: list[Grade] = []
    for table in case.tables:
        if table.kind == "spider-gradings":
            for row in table.rows:
                if row.get("level"):
                    fields = ", ".join(f"{k} {row[k]}" for k in ("Pfirrman grade", "Modic", "Disc narrowing",
                                                                  "Disc herniation", "Disc bulging",
                                                                  "Spondylolisthesis") if k in row)
                    out.append((str(row["level"]), None, f"SPIDER gradings: {fields}"))
    for box_set in case.box_sets:
        for box in box_set.boxes:
            if box.level and box.side and box.severity is not None:
                out.append((box.level, box.side, f"LSS-MRI-AISSLab foraminal severity {box.severity} (0-3)"))
    return out


def measurable_label_maps(case: Case) -> tuple[list[LabelMap], list[str]]:
    """The label maps the engine can measure (3D, with named disc levels), and why the others are not."""
    found: list[LabelMap] = []
    skipped: list[str] = []
    for label_map in case.label_maps:
        if is_2d_mask(label_map):  # one mid-sagittal slice: the 2D engine (services.measure_2d)
            found.append(label_map)
            continue
        if not label_map.scheme.values_with_role(Role.DISC) or not any(
                e.level for e in label_map.scheme.entries.values() if e.role is Role.DISC):
            skipped.append(f"case {case.id}: {label_map.name}: its labels do not name disc levels")
            continue
        if label_map.stack.geometry.shape_kji[0] < 2 or Path(label_map.source).suffix.lower() not in _VOLUME_SUFFIXES:
            skipped.append(f"case {case.id}: {label_map.name}: a 2D mask; the engine measures 3D label maps")
            continue
        found.append(label_map)
    return found, skipped


def series_name(case: Case, label_map: LabelMap) -> str:
    """How a label map's rows name their series: the image it annotates, else the label map."""
    image = case.stack(label_map.bound_to or "")
    return str(image.meta.get("description") if image is not None else label_map.name)


def value_row(case_id: str, series: str, grades: Sequence[Grade], v: Value, unit: str | None = None,
              value: float | None = None, geometry: bool = False) -> dict[str, Any]:
    """One ``measure`` row of value ``v`` (``unit``/``value`` override v's: slip in %); with
    ``geometry``, v's geometry under :data:`GEOMETRY_KEY`."""
    val = v.value if value is None else value
    grade = "; ".join(text for level, side, text in grades
                      if level == v.level and (side is None or side == v.side))
    row: dict[str, Any] = {
        "case": case_id, "series": series, "level": v.level, "label": v.label, "side": v.side,
        "quantity": v.quantity, "value": None if not math.isfinite(val) else round(val, 4),
        "unit": unit or v.unit, "method": v.method, "confidence": v.confidence, "flag": v.flag,
        "confidence_reason": v.confidence_reason, "reason": v.reason, "dataset_grade": grade or None,
        "position_lps": None if v.position_lps is None else [round(c, 3) for c in v.position_lps],
    }
    if geometry:
        row[GEOMETRY_KEY] = v.geometry
    return row


def failed_rows(case_id: str, series: str, why: str) -> list[dict[str, Any]]:
    """The one row of a label map that could not be measured, saying why."""
    reason = f"the case could not be measured: {why}"
    return [{"case": case_id, "series": series, "level": None, "label": None, "side": None,
             "quantity": None, "value": None, "unit": None, "method": "", "confidence": "none", "flag": None,
             "confidence_reason": reason, "reason": reason, "dataset_grade": None, "position_lps": None}]


def is_failure(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether ``rows`` are the single row of a label map that could not be measured."""
    return len(rows) == 1 and rows[0]["quantity"] is None and rows[0]["level"] is None


def _measure_one(case: Case, label_map: LabelMap, series: str, grades: Sequence[Grade],
                 with_geometry: bool) -> list[dict[str, Any]]:
    if is_2d_mask(label_map):
        return measure_2d_rows(case, label_map, series, grades)
    image = case.stack(label_map.bound_to or "")
    if image is not None:
        labels, geometry = labels_on_image(label_map.stack, image.geometry)
    else:
        labels, geometry = label_map.stack.pixels(), label_map.stack.geometry
    rows = []
    for v in measure_label_map(labels, geometry, label_map.scheme):
        rows.append(value_row(case.id, series, grades, v, geometry=with_geometry))
        if v.quantity == "slip":
            rows.append(value_row(case.id, series, grades, v, unit="%",
                                  value=v.extra.get("slip_percent", float("nan")), geometry=with_geometry))
    if label_map.scheme.name == SEMI_AUTO_SCHEME_NAME:  # a map from `lumbarview segment`
        for row in rows:
            row["source"] = "semi-auto"
    return rows


def measure_one_guarded(case: Case, label_map: LabelMap, grades: Sequence[Grade],
                        geometry: bool = False) -> list[dict[str, Any]]:
    """Measure one label map of ``case``; any failure of its data becomes one row saying why."""
    series = series_name(case, label_map)
    try:
        return _measure_one(case, label_map, series, grades, geometry)
    except LumbarviewError as exc:
        return failed_rows(case.id, series, str(exc))
    except MemoryError:
        return failed_rows(case.id, series, "not enough memory to measure this label map; close other programs "
                                            "or measure with fewer --jobs")
    except RecursionError:
        return failed_rows(case.id, series, "the label map is too complex to measure (recursion limit)")
    except Exception as exc:  # one label map's failure must not stop the others; its row says why
        return failed_rows(case.id, series, f"the measurement failed ({type(exc).__name__}: {exc}); please "
                                            f"report this with the files of this case")


def measure_case(case: Case, grades: Sequence[Grade] | None = None, *, geometry: bool = False,
                 after_each: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """The rows of every measurable label map of ``case`` (see the module). ``grades``: the
    dataset grades to put beside the values (default: those of the case's own tables and boxes;
    a batch worker, which builds a minimal case from files, passes those of the full case).
    ``geometry``: each row holds its geometry under :data:`GEOMETRY_KEY`. ``after_each(done,
    total)`` is called before the first label map and after each (it may raise to stop)."""
    grades = case_grades(case) if grades is None else grades
    label_maps, _skipped = measurable_label_maps(case)
    rows: list[dict[str, Any]] = []
    for n, label_map in enumerate(label_maps):
        if after_each is not None:
            after_each(n, len(label_maps) + 1)
        rows.extend(measure_one_guarded(case, label_map, grades, geometry))
    if after_each is not None:
        after_each(len(label_maps), len(label_maps) + 1)
    rows.extend(dura_rows(case, grades))  # BIDS closed dura curves (services.measure_2d)
    if after_each is not None:
        after_each(len(label_maps) + 1, len(label_maps) + 1)
    return rows
