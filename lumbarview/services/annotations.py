"""Use case: the annotations of a case as one table (boxes, labelled disc levels, gradings, RSNA's
graded points), with where to jump to, where a row of a case's table points, and a per-case summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lumbarview.core.dataset import Case, Table
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
    condition: str | None = None  # RSNA: "Spinal Canal Stenosis" ...
    grade: str | None = None  # as the dataset writes it: "2" (a box), "Moderate" (RSNA)
    marked: str | None = None  # why the row needs a look (copies of a box that disagree)


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
            also = f"; also in {', '.join(_short_path(c) for c in box.copies)}" if box.copies else ""
            rows.append(Annotation(
                f"{case.id}|box|{box.source}|{n}", case.id, "box", box.level, box.side, box.severity,
                f"{box_set.name}: {box.name} ({box.side or '?'} {box.level or '?'}, severity {grade}; "
                f"{_short_path(box.source)}{also})" + (f" — ⚠ {box.disagreement}" if box.disagreement else ""),
                centre, grade=None if box.severity is None else str(box.severity), marked=box.disagreement))
    rows.extend(_graded_points(case))
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


def _short_path(path: str) -> str:
    """The last two parts of a path (``Annotations/1_IM0004.xml``): enough to tell copies apart."""
    parts = Path(path).parts
    return "/".join(parts[-2:])


def _graded_points(case: Case) -> list[Annotation]:
    """RSNA: each coordinate point with its level, condition, side and grade (jump goes to the
    point), then each grade that has no point (listed, nothing to jump to)."""
    rows: list[Annotation] = []
    pointed: set[tuple[str, str]] = set()
    for point_set in case.point_sets:
        for n, info in enumerate(point_set.info):
            condition, level = info.get("condition"), info.get("level")
            if not condition or not level or n >= len(point_set.points_lps):
                continue
            pointed.add((condition, level))
            grade = info.get("grade")
            where = f"series {info.get('series_id')}, instance {info.get('instance_number')}"
            rows.append(Annotation(
                f"{case.id}|point|{point_set.source}|{info.get('series_id')}|{condition}|{level}|{n}", case.id,
                "graded point", level, info.get("side"), None,
                f"{condition} {level}: {grade or 'no grade'} ({where})", point_set.points_lps[n],
                condition=condition, grade=grade))
    for table in case.tables:
        if table.kind != "rsna-grades":
            continue
        for row in table.rows:
            condition, level = row.get("condition"), row.get("level")
            if not condition or not level or (condition, level) in pointed:
                continue
            grade = row.get("grade")
            rows.append(Annotation(f"{case.id}|grade|{table.source}|{condition}|{level}", case.id, "grade",
                                   level, row.get("side"), None,
                                   f"{condition} {level}: {grade or 'no grade'} (no coordinate)", None,
                                   condition=condition, grade=grade))
    levels = list(DISC_LEVELS)
    rows.sort(key=lambda a: (levels.index(a.level) if a.level in levels else len(levels), a.condition or "",
                             a.side or ""))
    return rows


def table_row_position(case: Case, table: Table, row: dict[str, Any]) -> FloatArray | None:
    """Where a row of one of the case's tables points in LPS, or None: an RSNA grade goes to its
    coordinate point (of the series the row names), a SPIDER grading to its disc's centre."""
    level = row.get("level")
    if table.kind == "rsna-grades":
        for point_set in case.point_sets:
            for n, info in enumerate(point_set.info):
                if (info.get("condition"), info.get("level")) == (row.get("condition"), level) and \
                        (row.get("series_id") is None or info.get("series_id") == row.get("series_id")) and \
                        n < len(point_set.points_lps):
                    return np.asarray(point_set.points_lps[n], dtype=np.float64)
        return None
    if table.kind == "spider-gradings" and level:
        found = {lv: c for (_, lv), (_, c) in _label_centroids(case).items()}
        return found.get(str(level))
    return None


def annotation_grades(rows: list[Annotation]) -> list[str]:
    """The grades the rows carry, each once, in the order a filter offers them (numbers first)."""
    grades = {r.grade for r in rows if r.grade}
    order = {"Normal/Mild": 0, "Moderate": 1, "Severe": 2}
    return sorted(grades, key=lambda g: (not g.isdigit(), int(g) if g.isdigit() else order.get(g, 9), g))


def filter_annotations(rows: list[Annotation], level: str | None = None, side: str | None = None,
                       severity: int | None = None, condition: str | None = None,
                       grade: str | None = None) -> list[Annotation]:
    return [r for r in rows if (level is None or r.level == level) and (side is None or r.side == side)
            and (severity is None or r.severity == severity) and (condition is None or r.condition == condition)
            and (grade is None or r.grade == grade)]


def case_summary(case: Case) -> dict[str, Any]:
    """Boxes by grade and side; which discs have gradings; labels present or missing per level."""
    boxes: Counter[tuple[str, str]] = Counter()
    for box_set in case.box_sets:
        for box in box_set.boxes:
            boxes[(box.side or "?", "?" if box.severity is None else str(box.severity))] += 1
    graded = sorted({str(r.get("level")) for t in case.tables if t.kind == "spider-gradings"
                     for r in t.rows if r.get("level")})
    labelled = sorted({level for (_, level) in _label_centroids(case)})
    grades: Counter[str] = Counter(str(info.get("grade") or "no grade") for p in case.point_sets for info in p.info
                                   if info.get("condition"))
    return {
        "graded_points_by_grade": dict(sorted(grades.items())),
        "boxes_by_side_and_grade": {f"{side} grade {grade}": n for (side, grade), n in sorted(boxes.items())},
        "levels_with_gradings": graded,
        "levels_labelled": labelled,
        # Only maps that name disc levels can miss one (a 2D class mask names none).
        "levels_missing_labels": [lv for lv in DISC_LEVELS if lv not in labelled] if any(
            m.stack.geometry.shape_kji[0] > 1 and any(e.level for e in m.scheme.entries.values()
                                                     if e.role is Role.DISC)
            for m in case.label_maps) else [],
    }
