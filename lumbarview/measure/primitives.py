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
from lumbarview.core.limits import limits

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


def cobb_angle(line1: Sequence[npt.ArrayLike], line2: Sequence[npt.ArrayLike],
               plane: SlicePlane | None = None) -> Quantity:
    """Cobb angle between two independently drawn lines (endplates), 0..90 degrees: the angle
    between the lines themselves, whatever their drawing direction and whether they cross."""
    return line_angle(line1, line2, plane)


def perpendicular_foot(point: npt.ArrayLike, line_start: npt.ArrayLike, line_end: npt.ArrayLike,
                       plane: SlicePlane | None = None) -> FloatArray:
    """The foot of the perpendicular from ``point`` to the (infinite) line through
    ``line_start`` and ``line_end``, in LPS mm (the perpendicular helper for disc heights)."""
    p, a, b = _points(point, plane), _points(line_start, plane), _points(line_end, plane)
    d = b - a
    n2 = float(d @ d)
    if n2 < 1e-18:
        raise ValueError("the reference line has no length")
    return a + float((p - a) @ d) / n2 * d


def point_line_distance(point: npt.ArrayLike, line_start: npt.ArrayLike, line_end: npt.ArrayLike,
                        plane: SlicePlane | None = None) -> Quantity:
    """Perpendicular distance from ``point`` to the line through ``line_start``, ``line_end``."""
    try:
        foot = perpendicular_foot(point, line_start, line_end, plane)
    except ValueError as exc:
        return Quantity.missing("mm", str(exc))
    return Quantity(float(np.linalg.norm(_points(point, plane) - foot)), "mm")


def _in_plane_mm(plane: SlicePlane, lps: npt.ArrayLike) -> FloatArray:
    """In-plane millimetres (along the rows, along the columns) of LPS points, from the
    plane's origin (pixel centre (0, 0)); spacing is applied, so anisotropic pixels count right."""
    p = np.asarray(lps, dtype=np.float64) - plane.origin_lps
    return np.stack([p @ plane.row_direction_lps, p @ plane.column_direction_lps], axis=-1)


def _pixel_centres_mm(plane: SlicePlane, box_rc: tuple[int, int, int, int]) -> FloatArray:
    r0, r1, c0, c1 = box_rc
    sx, sy = plane.spacing_mm
    rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    return np.stack([cc * sx, rr * sy], axis=-1).astype(np.float64)


def _box(plane: SlicePlane, xy_mm: FloatArray) -> tuple[int, int, int, int]:
    rows, cols = plane.shape_rc
    sx, sy = plane.spacing_mm
    c0 = max(0, math.floor(float(xy_mm[:, 0].min()) / sx))
    c1 = min(cols, math.ceil(float(xy_mm[:, 0].max()) / sx) + 1)
    r0 = max(0, math.floor(float(xy_mm[:, 1].min()) / sy))
    r1 = min(rows, math.ceil(float(xy_mm[:, 1].max()) / sy) + 1)
    return r0, max(r0, r1), c0, max(c0, c1)


def polygon_mask(plane: SlicePlane, vertices_lps: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """The pixels of ``plane`` whose centres lie inside the polygon (even-odd rule), the
    vertices given in LPS and projected on the plane. Shape ``plane.shape_rc``."""
    rows, cols = plane.shape_rc
    mask = np.zeros((rows, cols), dtype=bool)
    xy = _in_plane_mm(plane, vertices_lps)
    if len(xy) < 3 or not np.all(np.isfinite(xy)):
        return mask
    r0, r1, c0, c1 = _box(plane, xy)
    if r1 <= r0 or c1 <= c0:
        return mask
    limits().check_image(None, (r1 - r0) * (c1 - c0), "region of interest")
    centres = _pixel_centres_mm(plane, (r0, r1, c0, c1))
    px, py = centres[..., 0], centres[..., 1]
    inside = np.zeros(px.shape, dtype=bool)
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        if ay == by:
            continue
        crosses = (ay > py) != (by > py)
        x_at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < x_at)
    mask[r0:r1, c0:c1] = inside
    return mask


def ellipse_mask(plane: SlicePlane, centre_lps: npt.ArrayLike, axis_end_1_lps: npt.ArrayLike,
                 axis_end_2_lps: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """The pixels of ``plane`` whose centres lie inside the ellipse (centre and one end of
    each semi-axis, LPS, projected on the plane). Shape ``plane.shape_rc``."""
    rows, cols = plane.shape_rc
    mask = np.zeros((rows, cols), dtype=bool)
    c, e1, e2 = (_in_plane_mm(plane, p) for p in (centre_lps, axis_end_1_lps, axis_end_2_lps))
    u, v = e1 - c, e2 - c
    a, b = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if a < 1e-9 or b < 1e-9 or not math.isfinite(a + b):
        return mask
    reach = max(a, b)
    corners = np.array([c - reach, c + reach])
    r0, r1, c0, c1 = _box(plane, corners)
    if r1 <= r0 or c1 <= c0:
        return mask
    limits().check_image(None, (r1 - r0) * (c1 - c0), "region of interest")
    d = _pixel_centres_mm(plane, (r0, r1, c0, c1)) - c
    s = (d @ (u / a)) / a
    t = (d @ (v / b)) / b
    mask[r0:r1, c0:c1] = s * s + t * t <= 1.0
    return mask
