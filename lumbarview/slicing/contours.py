"""Where a triangle mesh meets a view's plane, in LPS mm: the contour and the slab projection.

The contour is the set of segments where the plane crosses the mesh's triangles: each crossed
triangle contributes the segment between the two points where the plane cuts its edges (linear
interpolation along the edge, so the points lie exactly on the plane). Segments are returned
unchained (``(n, 2, 3)``): a view draws them as line pairs, which is all it needs.

The slab projection is for thin structures (a nerve root crosses an axial slice as a dot): the
mesh's edges clipped to within ``half_mm`` of the plane, projected onto the plane.

Only numpy here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, SlicePlane

IntArray = npt.NDArray[np.int64]


def _distances(vertices_lps: FloatArray, plane: SlicePlane) -> FloatArray:
    return np.asarray((vertices_lps - plane.origin_lps) @ plane.normal_lps, dtype=np.float64)


def plane_contour(vertices_lps: FloatArray, faces: IntArray, plane: SlicePlane) -> FloatArray:
    """Segments ``(n, 2, 3)`` in LPS where ``plane`` (infinite) cuts the mesh.

    A vertex exactly on the plane counts as above it (so a triangle touching the plane at one
    vertex gives no segment, and one lying in the plane gives none either)."""
    if len(faces) == 0:
        return np.zeros((0, 2, 3))
    d = _distances(vertices_lps, plane)
    above = d[faces] >= 0.0  # (m, 3)
    n_above = above.sum(axis=1)
    crossed = (n_above == 1) | (n_above == 2)
    if not crossed.any():
        return np.zeros((0, 2, 3))
    tri = faces[crossed]
    ab = above[crossed]
    # The lone vertex: the one on its own side of the plane.
    lone_is_above = ab.sum(axis=1) == 1
    lone = np.where(lone_is_above, np.argmax(ab, axis=1), np.argmin(ab, axis=1))
    rows = np.arange(len(tri))
    a = tri[rows, lone]
    b = tri[rows, (lone + 1) % 3]
    c = tri[rows, (lone + 2) % 3]
    pa, pb, pc = vertices_lps[a], vertices_lps[b], vertices_lps[c]
    da, db, dc = d[a], d[b], d[c]
    tb = (da / (da - db))[:, None]
    tc = (da / (da - dc))[:, None]
    p1 = pa + tb * (pb - pa)
    p2 = pa + tc * (pc - pa)
    out: FloatArray = np.stack([p1, p2], axis=1)
    return out


def slab_projection(vertices_lps: FloatArray, faces: IntArray, plane: SlicePlane, half_mm: float) -> FloatArray:
    """The mesh's edges clipped to the slab within ``half_mm`` of the plane and projected onto
    it, as segments ``(n, 2, 3)`` in LPS (each edge once). A long triangle of a thin tube is cut
    to the part inside the slab, so a root crossing the slice shows as its stretch in the slab."""
    if len(faces) == 0:
        return np.zeros((0, 2, 3))
    d = _distances(vertices_lps, plane)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    da, db = d[edges[:, 0]], d[edges[:, 1]]
    # Parameters t in [0, 1] along a -> b where -half <= d(t) <= half, d(t) = da + t (db - da).
    step = db - da
    flat = np.abs(step) < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        t_lo = np.where(flat, 0.0, np.minimum((-half_mm - da) / step, (half_mm - da) / step))
        t_hi = np.where(flat, 1.0, np.maximum((-half_mm - da) / step, (half_mm - da) / step))
    t0, t1 = np.maximum(t_lo, 0.0), np.minimum(t_hi, 1.0)
    keep = (t0 <= t1) & ~(flat & (np.abs(da) > half_mm))
    if not keep.any():
        return np.zeros((0, 2, 3))
    pa, pb = vertices_lps[edges[keep, 0]], vertices_lps[edges[keep, 1]]
    p0 = pa + t0[keep, None] * (pb - pa)
    p1 = pa + t1[keep, None] * (pb - pa)
    normal = plane.normal_lps
    p0 = p0 - ((p0 - plane.origin_lps) @ normal)[:, None] * normal
    p1 = p1 - ((p1 - plane.origin_lps) @ normal)[:, None] * normal
    out: FloatArray = np.stack([p0, p1], axis=1)
    return out


def segments_to_pixels(segments_lps: FloatArray, plane: SlicePlane) -> FloatArray:
    """Segments ``(n, 2, 3)`` in LPS as ``(n, 2, 2)`` (column, row) pixels of ``plane``."""
    if len(segments_lps) == 0:
        return np.zeros((0, 2, 2))
    flat = plane.lps_to_pixel(segments_lps.reshape(-1, 3))
    out: FloatArray = np.asarray(flat, dtype=np.float64).reshape(-1, 2, 2)
    return out
