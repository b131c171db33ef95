"""Cut overlays onto a displayed slice, always through patient space (never by assuming that two
grids match): label maps resampled onto the slice's pixels, boxes and points kept when they lie
on (or within half a slice of) the slice's plane."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Box
from lumbarview.core.geometry import FloatArray, SlicePlane, VolumeGeometry


def _same_plane_slice(geometry: VolumeGeometry, plane: SlicePlane, tol: float = 1e-3) -> int | None:
    """Slice index of ``geometry`` that is exactly ``plane`` (same pixels), or None."""
    if (geometry.shape_kji[1], geometry.shape_kji[2]) != plane.shape_rc:
        return None
    if not (np.allclose(geometry.row_direction_lps, plane.row_direction_lps, atol=1e-6)
            and np.allclose(geometry.column_direction_lps, plane.column_direction_lps, atol=1e-6)
            and np.allclose(geometry.spacing_mm[:2], plane.spacing_mm, atol=1e-6)):
        return None
    ijk = geometry.lps_to_index(plane.origin_lps)
    k = round(float(ijk[2]))
    if abs(ijk[0]) > tol or abs(ijk[1]) > tol or abs(ijk[2] - k) > tol or not 0 <= k < geometry.shape_kji[0]:
        return None
    return k


def cut_labels(labels: npt.NDArray[Any], geometry: VolumeGeometry, plane: SlicePlane,
               half_thickness_mm: float | None = None) -> npt.NDArray[Any]:
    """The labels under each pixel centre of ``plane`` (nearest neighbour in the label grid),
    0 where the plane leaves the label volume. ``half_thickness_mm`` limits how far from a label
    slice a pixel may be (for label maps of a few slices, e.g. one PNG mask)."""
    k = _same_plane_slice(geometry, plane)
    if k is not None:
        return np.asarray(labels[k])
    rows, cols = plane.shape_rc
    cc, rr = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    lps = plane.pixel_to_lps(np.stack([cc, rr], axis=-1))
    ijk = geometry.lps_to_index(lps)
    idx = np.rint(ijk).astype(np.int64)
    sk, sj, si = geometry.shape_kji
    inside = ((idx[..., 0] >= 0) & (idx[..., 0] < si) & (idx[..., 1] >= 0) & (idx[..., 1] < sj)
              & (idx[..., 2] >= 0) & (idx[..., 2] < sk))
    if half_thickness_mm is not None:
        off = np.abs(ijk[..., 2] - idx[..., 2]) * geometry.slice_spacing_mm
        inside &= off <= half_thickness_mm
    out = np.zeros((rows, cols), dtype=labels.dtype)
    out[inside] = labels[idx[..., 2][inside], idx[..., 1][inside], idx[..., 0][inside]]
    return out


def boxes_on_plane(boxes: Sequence[Box], plane: SlicePlane, tolerance_mm: float) -> list[tuple[Box, FloatArray]]:
    """Boxes whose four corners lie within ``tolerance_mm`` of ``plane``, with their corners in
    the plane's pixel coordinates (column, row)."""
    out = []
    for box in boxes:
        if box.corners_lps is None:
            continue
        if np.all(np.abs(plane.signed_distance_mm(box.corners_lps)) <= tolerance_mm):
            out.append((box, plane.lps_to_pixel(box.corners_lps)))
    return out


def points_near_plane(points_lps: FloatArray, plane: SlicePlane,
                      half_thickness_mm: float) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """Which points lie within ``half_thickness_mm`` of ``plane``, and all points in pixels."""
    pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    near = np.abs(plane.signed_distance_mm(pts)) <= half_thickness_mm
    return near, plane.lps_to_pixel(pts)


def curve_crossings(points_lps: FloatArray, plane: SlicePlane, closed: bool = False) -> FloatArray:
    """Where a polyline crosses ``plane`` (pixel coordinates), one point per crossing segment."""
    pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    if closed and len(pts) > 2:
        pts = np.vstack([pts, pts[:1]])
    d = plane.signed_distance_mm(pts)
    out = []
    for i in range(len(pts) - 1):
        a, b = d[i], d[i + 1]
        if a == 0:
            out.append(pts[i])
        elif a * b < 0:
            t = a / (a - b)
            out.append(pts[i] + t * (pts[i + 1] - pts[i]))
    if len(out) == 0:
        return np.zeros((0, 2))
    return plane.lps_to_pixel(np.array(out))
