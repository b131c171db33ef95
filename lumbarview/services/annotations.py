"""Use case: the annotations of a case as one table (boxes, labelled disc levels, gradings),
with where to jump to, and a per-case summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from lumbarview.core.dataset import Case
from lumbarview.core.geometry import FloatArray
from lumbarview.core.labels import DISC_LEVELS, Role


@dataclass(frozen=True)
class Annotation:
    """One row of the annotation table."""

    id: str
    case: str
    kind: str  # "box" | "disc label" | "grading"
    level: str | None
    side: str | None
    severity: int | None
    text: str
    position_lps: FloatArray | None  # where "jump to" goes


def _label_centroids(case: Case) -> dict[tuple[str, str], tuple[int, FloatArray]]:
    """(label map name, level) -> (disc label value, centroid LPS) for every disc in 3D maps."""
    out: dict[tuple[str, str], tuple[int, FloatArray]] = {}
    for m in case.label_maps:
        if m.stack.geometry.shape_kji[0] < 2:
            continue
        pixels = m.stack.pixels()
        for value in m.scheme.values_with_role(Role.DISC):
            entry = m.scheme.entry(value)
            if not entry.level:
                continue
            kji = np.argwhere(pixels == value)
            if len(kji) == 0:
                continue
            centroid = m.stack.geometry.index_to_lps(kji[:, ::-1].astype(np.float64)).mean(axis=0)
            out[(m.name, entry.level)] = (value, centroid)
    return out


def case_annotations(case: Case) -> list[Annotation]:
    rows: list[Annotation] = []
    for box_set in case.box_sets:
        for n, box in enumerate(box_set.boxes):
            centre = None if box.corners_lps is None else box.corners_lps.mean(axis=0)
            grade = "?" if box.severity is None else str(box.severity)
            rows.append(Annotation(
                f"{case.id}|box|{box.source}|{n}", case.id, "box", box.level, box.side, box.severity,
                f"{box_set.name}: {box.name} ({box.side or '?'} {box.level or '?'}, severity {grade})", centre))
    centroids = _label_centroids(case)
    for (map_name, level), (value, centroid) in sorted(centroids.items(), key=lambda kv: kv[0]):
        rows.append(Annotation(f"{case.id}|disc|{map_name}|{level}", case.id, "disc label", level, None, None,
                               f"{map_name}: disc {level} (label {value})", centroid))
    by_level = {level: c for (_, level), (_, c) in centroids.items()}
    for table in case.tables:
        if table.kind != "spider-gradings":
            continue
        for row in table.rows:
            row_level = row.get("level")
            text = ", ".join(f"{k} {row[k]}" for k in ("Pfirrman grade", "Modic", "Disc narrowing",
                                                         "Disc herniation", "Disc bulging", "Spondylolisthesis")
                             if k in row)
            rows.append(Annotation(f"{case.id}|grading|{row.get('IVD label')}", case.id, "grading", row_level, None,
                                   None, f"gradings {row_level or 'IVD ' + str(row.get('IVD label'))}: {text}",
                                   by_level.get(row_level) if row_level else None))
    return rows


def filter_annotations(rows: list[Annotation], level: str | None = None, side: str | None = None,
                       severity: int | None = None) -> list[Annotation]:
    return [r for r in rows if (level is None or r.level == level) and (side is None or r.side == side)
            and (severity is None or r.severity == severity)]


def case_summary(case: Case) -> dict[str, Any]:
    """Boxes by grade and side; which discs have gradings; labels present or missing per level."""
    boxes: Counter[tuple[str, str]] = Counter()
    for box_set in case.box_sets:
        for box in box_set.boxes:
            boxes[(box.side or "?", "?" if box.severity is None else str(box.severity))] += 1
    graded = sorted({str(r.get("level")) for t in case.tables if t.kind == "spider-gradings"
                     for r in t.rows if r.get("level")})
    labelled = sorted({level for (_, level) in _label_centroids(case)})
    return {
        "boxes_by_side_and_grade": {f"{side} grade {grade}": n for (side, grade), n in sorted(boxes.items())},
        "levels_with_gradings": graded,
        "levels_labelled": labelled,
        # Only maps that name disc levels can miss one (a 2D class mask names none).
        "levels_missing_labels": [lv for lv in DISC_LEVELS if lv not in labelled] if any(
            m.stack.geometry.shape_kji[0] > 1 and any(e.level for e in m.scheme.entries.values()
                                                     if e.role is Role.DISC)
            for m in case.label_maps) else [],
    }
