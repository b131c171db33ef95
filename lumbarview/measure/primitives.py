"""Measurement primitives in true patient geometry: mm, mm² and degrees on any plane.

Points given in pixels are mapped through the slice's :class:`SlicePlane` first, so oblique
planes and pixels that are not square are handled by construction. A quantity that cannot be
measured is NaN with a reason, never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, SlicePlane

NAN = float("nan")


@dataclass(frozen=True)
class Quantity:
    """A measured value with its unit; NaN with ``reason`` when it could not be measured."""

    value: float
    unit: str
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None and math.isfinite(self.value)

    @classmethod
    def missing(cls, unit: str, reason: str) -> Quantity:
        return cls(NAN, unit, reason)


def _points(points: npt.ArrayLike, plane: SlicePlane | None) -> FloatArray:
    """LPS points from (column, row) pixels on ``plane``, or LPS points as given."""
    p = np.asarray(points, dtype=np.float64)
    if plane is not None:
        if p.shape[-1] != 2:
            raise ValueError("pixel points on a plane must be (column, row) pairs")
        return plane.pixel_to_lps(p)
    if p.shape[-1] != 3:
        raise ValueError("points without a plane must be LPS (x, y, z) triples")
    return p


def distance(a: npt.ArrayLike, b: npt.ArrayLike, plane: SlicePlane | None = None) -> Quantity:
    """Distance between two points (pixels on ``plane``, or LPS mm)."""
    pa, pb = _points(a, plane), _points(b, plane)
    if not (np.all(np.isfinite(pa)) and np.all(np.isfinite(pb))):
        return Quantity.missing("mm", "a point is not a finite position")
    return Quantity(float(np.linalg.norm(pb - pa)), "mm")


def polyline_length(points: npt.ArrayLike, plane: SlicePlane | None = None) -> Quantity:
    p = _points(points, plane)
    if len(p) < 2:
        return Quantity.missing("mm", "a polyline needs at least two points")
    return Quantity(float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()), "mm")


def angle(a: npt.ArrayLike, vertex: npt.ArrayLike, b: npt.ArrayLike, plane: SlicePlane | None = None) -> Quantity:
    """Angle a-vertex-b in degrees (0..180)."""
    pa, pv, pb = _points(a, plane), _points(vertex, plane), _points(b, plane)
    u, v = pa - pv, pb - pv
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu < 1e-9 or nv < 1e-9:
        return Quantity.missing("deg", "an arm of the angle has no length")
    cos = float(np.clip(u @ v / (nu * nv), -1.0, 1.0))
    return Quantity(math.degrees(math.acos(cos)), "deg")


def line_angle(line1: Sequence[npt.ArrayLike], line2: Sequence[npt.ArrayLike],
               plane: SlicePlane | None = None) -> Quantity:
    """Angle between two lines (Cobb angle), 0..90 degrees, whatever their drawing direction."""
    p1, q1 = _points(line1[0], plane), _points(line1[1], plane)
    p2, q2 = _points(line2[0], plane), _points(line2[1], plane)
    d1, d2 = q1 - p1, q2 - p2
    n1, n2 = np.linalg.norm(d1), np.linalg.norm(d2)
    if n1 < 1e-9 or n2 < 1e-9:
        return Quantity.missing("deg", "a line has no length")
    cos = abs(float(d1 @ d2 / (n1 * n2)))
    return Quantity(math.degrees(math.acos(min(1.0, cos))), "deg")


def polygon_area(points: npt.ArrayLike, plane: SlicePlane | None = None) -> Quantity:
    """Area of a simple polygon. Pixel points are placed on the plane (so anisotropic pixels
    count right); LPS points are taken on their own best-fit plane."""
    p = _points(points, plane)
    if len(p) < 3:
        return Quantity.missing("mm2", "a polygon needs at least three points")
    centred = p - p.mean(axis=0)
    # Project onto the polygon's plane: the two main axes of its points.
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    if s[1] < 1e-9:
        return Quantity.missing("mm2", "the points are on one line")
    xy = centred @ vt[:2].T
    x, y = xy[:, 0], xy[:, 1]
    return Quantity(0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))), "mm2")


def ellipse_area(centre: npt.ArrayLike, axis_end_1: npt.ArrayLike, axis_end_2: npt.ArrayLike,
                 plane: SlicePlane | None = None) -> Quantity:
    """Area of an ellipse given its centre and one end of each semi-axis."""
    c, e1, e2 = _points(centre, plane), _points(axis_end_1, plane), _points(axis_end_2, plane)
    a, b = float(np.linalg.norm(e1 - c)), float(np.linalg.norm(e2 - c))
    if a < 1e-9 or b < 1e-9:
        return Quantity.missing("mm2", "a semi-axis has no length")
    if abs(float((e1 - c) @ (e2 - c))) > 0.05 * a * b:
        return Quantity.missing("mm2", "the two axes are not perpendicular")
    return Quantity(math.pi * a * b, "mm2")


def mask_area(mask: npt.NDArray[Any], plane: SlicePlane) -> Quantity:
    """Area of a 2D mask on ``plane``: Σ weights × pixel area (a soft mask in 0..1 counts
    partial pixels)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D, got shape {mask.shape}")
    total = float(np.asarray(mask, dtype=np.float64).sum())
    if total <= 0:
        return Quantity.missing("mm2", "the mask is empty on this slice")
    return Quantity(total * plane.spacing_mm[0] * plane.spacing_mm[1], "mm2")


@dataclass(frozen=True)
class RoiStats:
    n_pixels: int
    area_mm2: float
    mean: float
    std: float
    minimum: float
    maximum: float
    reason: str | None = None


def roi_stats(pixels: npt.NDArray[Any], mask: npt.NDArray[np.bool_], plane: SlicePlane) -> RoiStats:
    """Statistics of the pixel values inside a region of one slice."""
    if pixels.shape != mask.shape:
        raise ValueError(f"pixels {pixels.shape} and mask {mask.shape} differ")
    values = np.asarray(pixels, dtype=np.float64)[mask]
    if values.size == 0:
        return RoiStats(0, NAN, NAN, NAN, NAN, NAN, "the region is empty")
    return RoiStats(int(values.size), values.size * plane.spacing_mm[0] * plane.spacing_mm[1],
                    float(values.mean()), float(values.std()), float(values.min()), float(values.max()))
