"""Cross-reference lines: where other views' planes cut a view's plane, and snapping a click
onto the nearest of them. Pure LPS geometry (no Qt), so the views only draw what this returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, Segment, SlicePlane


@dataclass(frozen=True)
class ReferenceLine:
    """One line to draw on a view: a segment in LPS, whose view/slice it stands for, and whether
    it is that view's current plane (bright) or one of its other slices (faint)."""

    segment: Segment
    source: str  # the other view's name
    current: bool
    slice_key: tuple[str, int] | None = None  # (stack uid, k) for a native slice


def cut(plane: SlicePlane, other: SlicePlane, source: str, current: bool,
        slice_key: tuple[str, int] | None = None) -> ReferenceLine | None:
    """Where ``other`` cuts ``plane``, clipped to both extents (None when parallel or apart)."""
    segment = plane.intersection(other, clip_to_other=True)
    if segment is None:
        return None
    return ReferenceLine(segment, source, current, slice_key)


def snap(plane: SlicePlane, lines: Sequence[ReferenceLine], point_lps: npt.ArrayLike,
         tolerance_mm: float) -> tuple[FloatArray, ReferenceLine] | None:
    """The point of the nearest line within ``tolerance_mm`` (measured in the plane) of
    ``point_lps``, with that line; None when no line is that close. Current lines win ties."""
    p = np.asarray(point_lps, dtype=np.float64).reshape(3)
    p = p - float(plane.signed_distance_mm(p)) * plane.normal_lps
    best: tuple[float, int, FloatArray, ReferenceLine] | None = None
    for line in lines:
        a, b = line.segment.start_lps, line.segment.end_lps
        d = b - a
        t = float(np.clip((p - a) @ d / max(float(d @ d), 1e-12), 0.0, 1.0))
        q = a + t * d
        dist = float(np.linalg.norm(q - p))
        rank = 0 if line.current else 1
        if dist <= tolerance_mm and (best is None or (dist, rank) < (best[0], best[1])):
            best = (dist, rank, q, line)
    return None if best is None else (best[2], best[3])
