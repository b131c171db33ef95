"""Use case: measurements from 2D masks (one slice), and why a dataset's 2D annotations cannot
be measured where the anatomy does not allow it.

* LSS-MRI-AISSLab's mid-sagittal PNG masks: disc heights, DHI and slip per level, levels counted
  up from the sacrum, and canal AP where the scheme has a canal class
  (:mod:`lumbarview.measure.sagittal2d`).
* BIDS (Liu et al.) closed dura curves (Slicer markups): canal (dura) area, transverse and AP
  diameters per slice, each with its level from the nerve-root exits (the markers' point nearest
  the midline): a slice between the L4 and L5 exits is the L4-L5 segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from lumbarview.core.dataset import Case, LabelMap
from lumbarview.core.labels import Role
from lumbarview.measure.primitives import polygon_area
from lumbarview.measure.results import NAN, Confidence, Value
from lumbarview.measure.sagittal2d import measure_sagittal_mask
from lumbarview.model.markers import parse_marker_name


def is_2d_mask(label_map: LabelMap) -> bool:
    """A one-slice mask with a disc class but no named disc levels (the 2D engine's input)."""
    scheme = label_map.scheme
    return (label_map.stack.geometry.shape_kji[0] == 1 and bool(scheme.values_with_role(Role.DISC))
            and not any(e.level for e in scheme.entries.values() if e.role is Role.DISC))


def measure_2d_rows(case: Case, label_map: LabelMap, series: str, grades: Sequence[Any]) -> list[dict[str, Any]]:
    """The ``measure`` rows of one 2D mask (see :func:`lumbarview.services.measure_case.value_row`)."""
    from lumbarview.services.measure_case import value_row

    labels = label_map.stack.pixels()[0]
    rows: list[dict[str, Any]] = []
    for v in measure_sagittal_mask(labels, label_map.stack.geometry, label_map.scheme):
        rows.append(value_row(case.id, series, grades, v))
        if v.quantity == "slip":
            percent = float(v.extra.get("slip_percent", math.nan))
            rows.append(value_row(case.id, series, grades, v, unit="%", value=percent))
    return rows


def _root_exits(case: Case) -> list[tuple[str, float]]:
    """(root level, height of its exit from the dura along LPS superior), top first: the mean
    over sides of each nerve-root marker's point nearest the midline."""
    by_level: dict[str, list[float]] = {}
    for point_set in case.point_sets:
        marker = parse_marker_name(point_set.name)
        if marker.kind != "nerve roots" or not marker.level or len(point_set.points_lps) == 0:
            continue
        exit_point = point_set.points_lps[int(np.argmin(np.abs(point_set.points_lps[:, 0])))]
        by_level.setdefault(marker.level, []).append(float(exit_point[2]))
    exits = [(level, float(np.mean(z))) for level, z in by_level.items()]
    return sorted(exits, key=lambda e: -e[1])


def _dura_level(z_mm: float, exits: list[tuple[str, float]]) -> tuple[str, str]:
    """The segment a dura slice at height ``z_mm`` lies in, between two root exits, and why."""
    if not exits:
        return "", "no nerve-root markers in the case: the level is not known"
    for (upper, z_upper), (lower, z_lower) in pairwise(exits):
        if z_lower <= z_mm <= z_upper:
            return f"{upper}-{lower}", f"between the {upper} and {lower} nerve-root exits (markers)"
    top, bottom = exits[0], exits[-1]
    if z_mm > top[1]:
        return f"above {top[0]}", f"above the {top[0]} nerve-root exit, the highest marked"
    return f"below {bottom[0]}", f"below the {bottom[0]} nerve-root exit, the lowest marked"


def dura_rows(case: Case, grades: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Canal (dura) area and diameters per slice from the closed dura curves of a BIDS case
    (Slicer markups), each with its level from the nerve-root exits."""
    from lumbarview.services.measure_case import value_row

    exits = _root_exits(case)
    rows: list[dict[str, Any]] = []
    for point_set in case.point_sets:
        marker = parse_marker_name(point_set.name)
        if marker.kind != "dura" or point_set.kind != "closed-curve":
            continue
        series = Path(point_set.source).name
        points = np.asarray(point_set.points_lps, dtype=np.float64)
        centre = points.mean(axis=0) if len(points) else np.zeros(3)
        level, where = _dura_level(float(centre[2]), exits)
        why = (f"a closed curve drawn on one slice ({len(points)} points, straight segments between them); "
               f"level {where}")
        area = polygon_area(points)
        if not area.ok or len(points) < 3:
            reason = area.reason or "the curve has fewer than three points"
            rows.append(value_row(case.id, series, grades, Value(level, "canal_area", NAN, "mm2", "", Confidence.NONE,
                                                                 reason, reason=reason)))
            continue
        # Diameters on the curve's own plane: its extent along the left-right and the
        # antero-posterior directions projected onto that plane.
        _u, _s, vt = np.linalg.svd(points - centre, full_matrices=False)
        normal = vt[2]
        method = "closed dura curve (Slicer markups): polygon area on the curve's best-fit plane"
        values = [Value(level, "canal_area", area.value, "mm2", method, Confidence.MEDIUM, why,
                        position_lps=centre.tolist())]
        for quantity, axis in (("canal_transverse", np.array([1.0, 0.0, 0.0])),
                               ("canal_ap", np.array([0.0, 1.0, 0.0]))):
            direction = axis - (axis @ normal) * normal
            direction /= np.linalg.norm(direction)
            extent = points @ direction
            values.append(Value(level, quantity, float(extent.max() - extent.min()), "mm",
                                "closed dura curve: its extent along the "
                                f"{'left-right' if quantity == 'canal_transverse' else 'antero-posterior'} "
                                "direction on the curve's plane", Confidence.MEDIUM, why, position_lps=centre.tolist()))
        rows.extend(value_row(case.id, series, grades, v) for v in values)
    return rows
