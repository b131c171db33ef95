"""The pixels of any volume on any plane (numpy only).

``reformat(volume_kji, geometry, plane)`` samples a ``[k, j, i]`` array whose voxel grid is
``geometry`` at the pixel centres of ``plane``:

* **native path**: when every output pixel centre falls on a stored voxel centre of one slice
  (the plane's normal parallel to the stack's, its origin on a slice centre, its right/down
  along +/- the stack's row/column directions, the same spacings; within ``tolerance_voxels``
  over the whole output), the stored pixels are returned exactly, only flipped and/or
  transposed (bit for bit, stored dtype). ``Reformatted.native_k`` names the slice.
* otherwise **linear** (trilinear) interpolation for images, computed in float32 and returned
  as float32, and **nearest** for label maps (stored dtype: labels stay integral).

The volume covers its voxels' edges: a pixel is inside when its index coordinates lie within
``[-0.5, n - 0.5]`` on each axis (the half-voxel rim takes the edge voxel's value, as a native
slice shows it). Pixels outside get ``fill`` (0 by default; NaN is allowed for images, whose
output is float, not for integer labels; the native path of an integer image pads with 0
instead) and are False in ``Reformatted.inside``.

Speed: the plane is mapped once to index space (an origin and a step per output row and per
column), rows and columns that miss the volume are skipped, and the rest is computed in bands
of rows (float32 coordinates, eight gathers with separable lerps), spread over a small thread
pool (numpy releases the GIL in these loops). ``benchmarks/bench_reformat.py`` has the numbers.
A volume that is not C-contiguous is copied once per call: pass contiguous arrays.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, SlicePlane, VolumeGeometry
from lumbarview.core.limits import limits

Kind = Literal["image", "labels"]
_BAND_ROWS = 32  # 32 x 512 int64 indices = 128 kB: stays in cache and off mmap
_MIN_PARALLEL_PIXELS = 64 * 1024
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _default_executor() -> ThreadPoolExecutor:
    """A small pool shared by every reformat (created on first use; idle threads cost nothing
    and are joined at interpreter exit)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                       thread_name_prefix="lumbarview-reformat")
        return _pool


@dataclass(frozen=True)
class Reformatted:
    """The pixels of a volume on a plane.

    ``pixels`` is ``(rows, cols)``; ``inside`` is True where the pixel centre lies in the
    volume (elsewhere ``pixels`` holds the fill value); ``native_k`` is the stored slice when
    the stored pixels were returned (flipped/transposed only), else None.
    """

    pixels: npt.NDArray[Any]
    inside: npt.NDArray[np.bool_]
    native_k: int | None
    plane: SlicePlane


@dataclass(frozen=True)
class IndexGrid:
    """A plane's pixel centres in the volume's index space: ``(i, j, k)`` of pixel (column c,
    row r) is ``origin + c * col_step + r * row_step``."""

    origin: FloatArray
    col_step: FloatArray
    row_step: FloatArray
    shape_rc: tuple[int, int]

    @classmethod
    def of(cls, geometry: VolumeGeometry, plane: SlicePlane) -> IndexGrid:
        m = geometry.lps_to_ijk[:3, :3]
        return cls(geometry.lps_to_index(plane.origin_lps),
                   m @ plane.row_direction_lps * plane.spacing_mm[0],
                   m @ plane.column_direction_lps * plane.spacing_mm[1],
                   plane.shape_rc)


def native_mapping(grid: IndexGrid, shape_kji: tuple[int, int, int], tolerance_voxels: float = 0.01,
                   ) -> tuple[int, tuple[int, int, int], tuple[int, int, int]] | None:
    """When the grid's pixel centres fall on the voxel centres of one slice: ``(k, (axis,
    sign, start) for columns, (axis, sign, start) for rows)`` with axis 0 = i, 1 = j;
    else None. The test bounds the position error over the whole output by
    ``tolerance_voxels``."""
    rows, cols = grid.shape_rc
    extent = max(rows, cols)
    k = round(float(grid.origin[2]))
    if abs(grid.origin[2] - k) > tolerance_voxels or not 0 <= k < shape_kji[0]:
        return None
    mapping = []
    for step in (grid.col_step, grid.row_step):
        axis = int(np.argmax(np.abs(step[:2])))
        sign = 1 if step[axis] > 0 else -1
        expected = np.zeros(3)
        expected[axis] = sign
        if float(np.max(np.abs(step - expected))) * extent > tolerance_voxels:
            return None
        start = round(float(grid.origin[axis]))
        if abs(grid.origin[axis] - start) > tolerance_voxels:
            return None
        mapping.append((axis, sign, start))
    if mapping[0][0] == mapping[1][0]:
        return None
    return k, (mapping[0][0], mapping[0][1], mapping[0][2]), (mapping[1][0], mapping[1][1], mapping[1][2])


def _axis_range(start: int, sign: int, n_out: int, n_axis: int) -> tuple[int, int]:
    """Output positions ``t`` in ``[lo, hi)`` whose index ``start + sign * t`` lies in the axis."""
    if sign > 0:
        lo, hi = -start, n_axis - start
    else:
        lo, hi = start - n_axis + 1, start + 1
    return max(lo, 0), min(hi, n_out)


def _native(volume: npt.NDArray[Any], k: int, col_map: tuple[int, int, int], row_map: tuple[int, int, int],
            shape_rc: tuple[int, int], fill: float) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    rows, cols = shape_rc
    stored = volume[k]  # (j, i)
    view = stored if row_map[0] == 1 else stored.T  # now [row axis, column axis]
    sizes = view.shape
    r_lo, r_hi = _axis_range(row_map[2], row_map[1], rows, sizes[0])
    c_lo, c_hi = _axis_range(col_map[2], col_map[1], cols, sizes[1])
    inside = np.zeros((rows, cols), dtype=bool)
    if r_lo >= r_hi or c_lo >= c_hi:
        return np.full((rows, cols), fill, dtype=volume.dtype), inside

    def src(lo: int, hi: int, start: int, sign: int) -> slice:
        a, b = start + sign * lo, start + sign * (hi - 1)
        return slice(a, b + 1) if sign > 0 else slice(a, b - 1 if b > 0 else None, -1)

    block = view[src(r_lo, r_hi, row_map[2], row_map[1]), src(c_lo, c_hi, col_map[2], col_map[1])]
    inside[r_lo:r_hi, c_lo:c_hi] = True
    if (r_lo, r_hi, c_lo, c_hi) == (0, rows, 0, cols):
        return np.ascontiguousarray(block), inside
    out = np.full((rows, cols), fill, dtype=volume.dtype)
    out[r_lo:r_hi, c_lo:c_hi] = block
    return out, inside


def _row_intervals(grid: IndexGrid, shape_kji: tuple[int, int, int], margin: float,
                   ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per output row, the columns ``[lo, hi]`` whose index coordinates lie within
    ``[-margin, n - 1 + margin]`` on every axis (empty rows have lo > hi)."""
    rows, cols = grid.shape_rc
    r = np.arange(rows, dtype=np.float64)
    lo = np.zeros(rows)
    hi = np.full(rows, cols - 1.0)
    eps = 1e-7
    n_ijk = (shape_kji[2], shape_kji[1], shape_kji[0])
    for axis in range(3):
        a_min, a_max = -margin - eps, n_ijk[axis] - 1 + margin + eps
        base = grid.origin[axis] + r * grid.row_step[axis]
        step = grid.col_step[axis]
        if abs(step) < 1e-12:
            bad = (base < a_min) | (base > a_max)
            lo[bad] = cols
            continue
        t1 = (a_min - base) / step
        t2 = (a_max - base) / step
        lo = np.maximum(lo, np.minimum(t1, t2))
        hi = np.minimum(hi, np.maximum(t1, t2))
    return np.ceil(lo).astype(np.int64), np.floor(hi).astype(np.int64)


def reformat(volume_kji: npt.NDArray[Any], geometry: VolumeGeometry, plane: SlicePlane, *,
             kind: Kind = "image", fill: float = 0.0, tolerance_voxels: float = 0.01,
             executor: Executor | None = None) -> Reformatted:
    """The pixels of ``volume_kji`` (grid ``geometry``) on ``plane``; see the module docstring.

    ``executor`` runs the row bands (default: a small shared thread pool); pass one that runs
    tasks inline to stay on the calling thread.
    """
    volume = np.asarray(volume_kji)
    if volume.ndim != 3 or volume.shape != geometry.shape_kji:
        raise ValueError(f"volume of shape {volume.shape} does not match its geometry {geometry.shape_kji}")
    if kind not in ("image", "labels"):
        raise ValueError(f"kind must be 'image' or 'labels', not {kind!r}")
    rows, cols = plane.shape_rc
    limits().check_image(None, rows * cols, "reformatted view")
    integral = np.issubdtype(volume.dtype, np.integer) or volume.dtype == np.bool_
    if math.isnan(fill) and kind == "labels" and integral:
        raise ValueError("a NaN fill needs float output: label maps keep their integer dtype")
    grid = IndexGrid.of(geometry, plane)
    native = native_mapping(grid, geometry.shape_kji, tolerance_voxels)
    if native is not None:
        k, col_map, row_map = native
        native_fill = 0 if (math.isnan(fill) and integral) else fill
        pixels, inside = _native(volume, k, col_map, row_map, plane.shape_rc, native_fill)
        return Reformatted(pixels, inside, k, plane)
    if not volume.flags.c_contiguous:
        volume = np.ascontiguousarray(volume)
    out: npt.NDArray[Any] = np.full((rows, cols), fill, dtype=volume.dtype if kind == "labels" else np.float32)
    inside = np.zeros((rows, cols), dtype=bool)
    result = Reformatted(out, inside, None, plane)
    # Walk the output so that consecutive pixels are close in memory: when a step down a
    # column moves less far in the volume's memory than a step along a row (an axial cut
    # across sagittal slices, say), sample the transposed grid into the transposed arrays.
    _n_k, n_j, n_i = geometry.shape_kji
    strides = np.array([1.0, n_i, n_i * n_j])
    if float(np.abs(grid.row_step) @ strides) < float(np.abs(grid.col_step) @ strides):
        grid = IndexGrid(grid.origin, grid.row_step, grid.col_step, (cols, rows))
        out, inside = out.T, inside.T
        rows, cols = cols, rows
    lo, hi = _row_intervals(grid, geometry.shape_kji, 0.5)
    hit = np.nonzero(lo <= hi)[0]
    if hit.size == 0:
        return result
    r0, r1 = int(hit[0]), int(hit[-1]) + 1
    c0, c1 = int(lo[hit].min()), int(hi[hit].max()) + 1
    sampler = _Sampler(volume, grid, kind, out, inside, lo, hi, c0, c1)
    bands = [(r, min(r + _BAND_ROWS, r1)) for r in range(r0, r1, _BAND_ROWS)]
    if len(bands) == 1 or (r1 - r0) * (c1 - c0) < _MIN_PARALLEL_PIXELS:
        for band in bands:
            sampler.band(band)
    else:
        pool = executor if executor is not None else _default_executor()
        for future in [pool.submit(sampler.band, band) for band in bands]:
            future.result()
    return result


class _Sampler:
    """Fills ``out[r0:r1, c0:c1]`` band by band (bands never overlap: safe across threads)."""

    def __init__(self, volume: npt.NDArray[Any], grid: IndexGrid, kind: Kind, out: npt.NDArray[Any],
                 inside: npt.NDArray[np.bool_], lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64],
                 c0: int, c1: int) -> None:
        self.flat = volume.reshape(-1)
        self.n_kji = volume.shape
        self.kind = kind
        self.out = out
        self.inside = inside
        self.lo, self.hi = lo, hi
        self.c0, self.c1 = c0, c1
        cols = np.arange(c0, c1, dtype=np.float64)
        # Per axis (i, j, k): the column term (1D, float32) and the row term's origin and step.
        self.col_terms = [(cols * grid.col_step[a]).astype(np.float32) for a in range(3)]
        self.origin = grid.origin
        self.row_step = grid.row_step
        self.col_index = np.arange(c0, c1)
        self.handlers: dict[Kind, Callable[[tuple[int, int]], None]] = {
            "image": self._linear, "labels": self._nearest}

    def band(self, band: tuple[int, int]) -> None:
        self.handlers[self.kind](band)

    def _coords(self, band: tuple[int, int]) -> tuple[list[npt.NDArray[np.float32]], npt.NDArray[np.bool_], bool]:
        r = np.arange(band[0], band[1], dtype=np.float64)
        coords = [(self.origin[a] + r * self.row_step[a]).astype(np.float32)[:, None] + self.col_terms[a][None, :]
                  for a in range(3)]
        lo, hi = self.lo[band[0]:band[1]], self.hi[band[0]:band[1]]
        whole = bool(np.all(lo <= self.c0) and np.all(hi >= self.c1 - 1))
        mask = (self.col_index[None, :] >= lo[:, None]) & (self.col_index[None, :] <= hi[:, None])
        return coords, mask, whole

    def _finish(self, band: tuple[int, int], values: npt.NDArray[Any], mask: npt.NDArray[np.bool_],
                whole: bool) -> None:
        target = self.out[band[0]:band[1], self.c0:self.c1]
        if whole:
            target[...] = values
        else:
            np.copyto(target, values, where=mask, casting="unsafe")
        self.inside[band[0]:band[1], self.c0:self.c1] = mask

    def _linear(self, band: tuple[int, int]) -> None:
        coords, mask, whole = self._coords(band)
        n_k, n_j, n_i = self.n_kji
        sizes = (n_i, n_j, n_k)
        strides = (1, n_i, n_i * n_j)
        base: npt.NDArray[np.intp] | None = None
        fracs: list[npt.NDArray[np.float32]] = []
        steps: list[int] = []
        for a in range(3):
            x = coords[a]
            np.clip(x, 0.0, sizes[a] - 1.0, out=x)  # the half-voxel rim takes the edge value
            if sizes[a] > 1:
                x0 = np.minimum(np.floor(x), np.float32(sizes[a] - 2))
                fracs.append(x - x0)
                steps.append(strides[a])
            else:
                x0 = np.zeros_like(x)
                fracs.append(x0)
                steps.append(0)
            term = x0.astype(np.intp)
            if strides[a] != 1:
                term *= strides[a]
            base = term if base is None else base + term
        assert base is not None
        # One index array for all eight corners: each corner reads a view of the flat volume
        # that starts at the corner's offset (no index additions).
        views = self._views(steps)
        fi, fj, fk = fracs

        def lerp(a: npt.NDArray[Any], b: npt.NDArray[Any], w: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            d: npt.NDArray[np.float32] = np.subtract(b, a, dtype=np.float32)
            d *= w
            d += a
            return d

        c = [lerp(views[2 * q].take(base), views[2 * q + 1].take(base), fi) for q in range(4)]
        values = lerp(lerp(c[0], c[1], fj), lerp(c[2], c[3], fj), fk)
        self._finish(band, values, mask, whole)

    def _views(self, steps: list[int]) -> list[npt.NDArray[Any]]:
        si, sj, sk = steps
        offsets = [dk + dj + di for dk in (0, sk) for dj in (0, sj) for di in (0, si)]
        return [self.flat[o:] for o in offsets]

    def _nearest(self, band: tuple[int, int]) -> None:
        coords, mask, whole = self._coords(band)
        n_k, n_j, n_i = self.n_kji
        sizes = (n_i, n_j, n_k)
        strides = (1, n_i, n_i * n_j)
        index: npt.NDArray[np.intp] | None = None
        for a in range(3):
            x = np.rint(coords[a])
            np.clip(x, 0.0, sizes[a] - 1.0, out=x)
            term = x.astype(np.intp)
            if strides[a] != 1:
                term *= strides[a]
            index = term if index is None else index + term
        assert index is not None
        self._finish(band, self.flat.take(index), mask, whole)
