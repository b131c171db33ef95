"""Sampling label maps along bundles of lines and on plane grids, only where the structure is.

The measurement engine samples each structure (disc, thecal sac, bodies, the free space between
bones) with linear interpolation at tens of thousands of points per level, and most of those
points are far from the structure. :class:`SoftMask` keeps a structure cropped to its voxels
(plus a margin) with a table of the voxels next to it, so that only the points whose eight
neighbouring voxels touch the structure are interpolated; every other point's value is known
without interpolating (0 outside, 1 inside a complement). The result is exactly what
``scipy.ndimage.map_coordinates(mask, coords, order=1, mode="constant", cval=0)`` gives on the
full grid, as float32: with ``mode="constant"`` a point outside ``[0, n - 1]`` on any axis is 0,
and a point inside is the trilinear blend of its eight neighbours, which only depends on the
voxel values next to it (shifting coordinates by an integer is exact in floating point).

:func:`nearest_labels` is the vectorised nearest-neighbour gather with ndimage's rounding
(``floor(x + 0.5)``) and the same "outside is 0" rule.

Coordinates are fractional voxel indices in ``(k, j, i)`` order, the first axis of the array
(shape ``(3, ...)``), as ``map_coordinates`` takes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

FloatArray = npt.NDArray[np.float64]
_MARGIN = 2  # voxels kept around the structure (1 is enough for linear interpolation)


class SoftMask:
    """A binary structure (or its complement) as a float32 mask for partial-volume sampling.

    Parameters
    ----------
    inside_kji
        Boolean array, True in the structure.
    complement
        Sample ``1 - structure`` instead (e.g. the free space between bones): 1 away from the
        structure inside the grid, still 0 outside the grid.
    """

    def __init__(self, inside_kji: npt.NDArray[np.bool_], complement: bool = False) -> None:
        shape = tuple(int(n) for n in inside_kji.shape)
        lo, hi = [0, 0, 0], [0, 0, 0]
        if inside_kji.any():
            for axis in range(3):
                used = np.nonzero(inside_kji.any(axis=tuple(a for a in range(3) if a != axis)))[0]
                lo[axis] = max(0, int(used[0]) - _MARGIN)
                hi[axis] = min(shape[axis], int(used[-1]) + 1 + _MARGIN)
        self._setup(inside_kji[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], (lo[0], lo[1], lo[2]), shape, complement)
        self._parent: SoftMask | None = None
        self._valid_kji = (np.zeros(3), np.asarray(shape, dtype=np.float64) - 1.0)

    def _setup(self, crop: npt.NDArray[np.bool_], offset: tuple[int, int, int], shape: tuple[int, ...],
               complement: bool) -> None:
        self.shape_kji = shape
        self.complement = complement
        self.offset_kji = np.array(offset, dtype=np.float64)
        self._offset_int = offset
        self.inside = crop
        self.data: npt.NDArray[np.float32] = (~crop if complement else crop).astype(np.float32)
        # near[f] is True when one of the voxels f + {0, 1}^3 is in the structure: only then
        # does a point whose floor is f need interpolating.
        padded = np.zeros(tuple(n + 1 for n in crop.shape), dtype=bool)
        padded[:-1, :-1, :-1] = crop
        near = np.zeros(crop.shape, dtype=bool)
        m0, m1, m2 = crop.shape
        for dk in (0, 1):
            for dj in (0, 1):
                for di in (0, 1):
                    near |= padded[dk:dk + m0, dj:dj + m1, di:di + m2]
        self.near = near
        # Per slice k of the crop, the box of its near voxels (full-grid indices, closed; a point
        # whose floor is in slice k needs interpolating only inside it). Slices without any are
        # left out.
        if not near.any():
            self._slab_lo = self._slab_hi = np.zeros((3, 0))
            return
        rows: npt.NDArray[np.bool_] = np.any(near, axis=2)
        cols: npt.NDArray[np.bool_] = np.any(near, axis=1)
        slices = np.nonzero(np.any(rows, axis=1))[0]
        j_lo, j_hi = np.argmax(rows, axis=1), rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1)
        i_lo, i_hi = np.argmax(cols, axis=1), cols.shape[1] - 1 - np.argmax(cols[:, ::-1], axis=1)
        lo_box = np.stack([slices, j_lo[slices], i_lo[slices]]).astype(np.float64)
        hi_box = np.stack([slices + 1, j_hi[slices] + 1, i_hi[slices] + 1]).astype(np.float64)
        self._slab_lo = lo_box + self.offset_kji[:, None]
        self._slab_hi = hi_box + self.offset_kji[:, None]

    def restricted(self, lo_kji: npt.ArrayLike, hi_kji: npt.ArrayLike) -> SoftMask:
        """This mask with only its voxels in the box ``[lo, hi]`` (voxel indices, inclusive),
        for sampling near one level: a line whose samples all lie in the box, one voxel in from
        its faces, samples the same values; any other line is sampled on this whole mask."""
        shape = np.asarray(self.shape_kji)
        lo = np.clip(np.floor(np.asarray(lo_kji, dtype=np.float64)), 0, shape - 1).astype(int)
        hi = np.clip(np.ceil(np.asarray(hi_kji, dtype=np.float64)), 0, shape - 1).astype(int)
        out_lo = np.maximum(lo - _MARGIN, 0)
        out_hi = np.minimum(hi + 1 + _MARGIN, shape)
        box = np.zeros(tuple(out_hi - out_lo), dtype=bool)
        # Copy the voxels of the box that this mask's crop holds (elsewhere the structure is absent).
        src_lo = np.maximum(lo, self._offset_int)
        src_hi = np.minimum(hi + 1, np.asarray(self._offset_int) + self.inside.shape)
        if np.all(src_hi > src_lo):
            a, b = src_lo - self._offset_int, src_hi - self._offset_int
            c, d = src_lo - out_lo, src_hi - out_lo
            box[c[0]:d[0], c[1]:d[1], c[2]:d[2]] = self.inside[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
        # Crop to the structure's voxels in the box (plus the margin), as __init__ does.
        c_lo, c_hi = np.zeros(3, dtype=int), np.zeros(3, dtype=int)
        if box.any():
            for axis in range(3):
                used = np.nonzero(box.any(axis=tuple(a for a in range(3) if a != axis)))[0]
                c_lo[axis] = max(0, int(used[0]) - _MARGIN)
                c_hi[axis] = min(box.shape[axis], int(used[-1]) + 1 + _MARGIN)
        offset = out_lo + c_lo
        sub = SoftMask.__new__(SoftMask)
        sub._setup(box[c_lo[0]:c_hi[0], c_lo[1]:c_hi[1], c_lo[2]:c_hi[2]],
                   (int(offset[0]), int(offset[1]), int(offset[2])), self.shape_kji, self.complement)
        sub._parent = self
        # One voxel in from the box's faces; a face on the grid's edge bounds nothing (samples
        # outside the grid are 0 whatever the mask holds).
        sub._valid_kji = (np.where(lo > 0, lo + 1.0, -np.inf), np.where(hi < shape - 1, hi - 2.0, np.inf))
        return sub

    def voxels_kji(self) -> npt.NDArray[np.intp]:
        """Indices ``(N, 3)`` of the structure's voxels in the full grid, in C order (as
        ``np.argwhere`` on the full mask gives them)."""
        return np.argwhere(self.inside) + np.asarray(self._offset_int, dtype=np.intp)

    def sample_lines(self, starts_kji: FloatArray, steps_kji: FloatArray, t: FloatArray) -> npt.NDArray[np.float32]:
        """The mask at ``starts[:, l] + t[s] * steps[:, l]`` for every line ``l`` and every
        ``t`` (voxel indices, ``(3, L)`` each; ``t`` increasing and evenly spaced), as ``(L, T)``.

        Only the samples of each line that can fall inside the grid (complement) or inside the
        crop are computed: the window of ``t`` is found per line from where the line crosses
        the box, widened by one sample on each side, and each sample in it is then tested as
        :meth:`sample` tests it."""
        n_lines, n_t = starts_kji.shape[1], t.size
        if self._parent is not None and n_t and n_lines:
            ends = starts_kji + t[-1] * steps_kji
            begins = starts_kji + t[0] * steps_kji
            low, high = np.minimum(begins, ends).min(axis=1), np.maximum(begins, ends).max(axis=1)
            if np.any(low < self._valid_kji[0]) or np.any(high > self._valid_kji[1]):
                return self._parent.sample_lines(starts_kji, steps_kji, t)
        out = np.zeros((n_lines, n_t), dtype=np.float32)
        if self.complement:
            full = np.asarray(self.shape_kji, dtype=np.float64)
            lo, hi = np.zeros((3, 1)), full[:, None] - 1.0
            t_in, t_out = _crossing(starts_kji, steps_kji, lo, hi)
            first, last = _index_range(t, t_in, t_out)
            # Samples a whole step or more inside the crossing are in the grid; the three at
            # each end of the range are tested one by one.
            index = np.arange(n_t)
            out[(index >= first[:, None] + 3) & (index < last[:, None] - 3)] = 1.0
            edge_first = np.minimum(first + 3, last)
            edge_last = np.maximum(last - 3, edge_first)
            for a, b in ((first, edge_first), (edge_last, last)):
                line, ti, coords = _ragged(starts_kji, steps_kji, t, a, b)
                inside = np.all((coords >= 0.0) & (coords <= full[:, None] - 1.0), axis=0)
                out[line[inside], ti[inside]] = 1.0
        if not self._slab_lo.shape[1]:
            return out
        crop = np.asarray(self.near.shape, dtype=np.float64)
        t_in, t_out = _crossing(starts_kji[:, :, None], steps_kji[:, :, None], self._slab_lo[:, None, :],
                                self._slab_hi[:, None, :])
        crosses = t_out >= t_in
        t_in = np.where(crosses, t_in, np.inf).min(axis=1)
        t_out = np.where(crosses, t_out, -np.inf).max(axis=1)
        line, ti, coords = _samples(starts_kji, steps_kji, t, t_in, t_out)
        local = coords - self.offset_kji[:, None]  # exact where it matters (coords >= offset)
        full = np.asarray(self.shape_kji, dtype=np.float64)[:, None]
        keep = (np.all((coords >= 0.0) & (coords <= full - 1.0), axis=0)
                & np.all((local >= 0.0) & (local <= crop[:, None] - 1.0), axis=0))
        line, ti, local = line[keep], ti[keep], local[:, keep]
        floor = np.floor(local).astype(np.intp)
        near = self.near[floor[0], floor[1], floor[2]]
        if near.any():
            out[line[near], ti[near]] = ndimage.map_coordinates(self.data, local[:, near], order=1,
                                                                mode="constant", cval=0)
        return out


def _crossing(starts: FloatArray, steps: FloatArray, lo: FloatArray,
              hi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Where lines ``starts + t * steps`` enter and leave boxes ``[lo, hi]`` (all broadcast
    together after their first axis, the ``k, j, i`` axis): ``(t_in, t_out)``, empty where
    ``t_out < t_in``."""
    t_in: FloatArray = np.full(np.broadcast_shapes(starts.shape[1:], lo.shape[1:]), -np.inf)
    t_out: FloatArray = np.full(t_in.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(3):
            s, d = starts[axis], steps[axis]
            a = (lo[axis] - s) / d
            b = (hi[axis] - s) / d
            parallel = d == 0
            outside = parallel & ((s < lo[axis]) | (s > hi[axis]))
            t_in = np.where(parallel, t_in, np.maximum(t_in, np.minimum(a, b)))
            t_out = np.where(parallel, t_out, np.minimum(t_out, np.maximum(a, b)))
            t_out = np.where(outside, -np.inf, t_out)
    return t_in, t_out


def _index_range(t: FloatArray, t_in: FloatArray, t_out: FloatArray) -> tuple[npt.NDArray[np.intp],
                                                                              npt.NDArray[np.intp]]:
    """Per line, the indices ``[first, last)`` of the samples ``t`` in ``[t_in, t_out]`` and one
    more on each side (rounding); empty where ``t_out < t_in``."""
    n_t = t.size
    dt = float(t[1] - t[0]) if n_t > 1 else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        first = np.clip(np.floor((t_in - t[0]) / dt) - 1, 0, n_t)
        last = np.clip(np.ceil((t_out - t[0]) / dt) + 2, 0, n_t)
    empty_line = ~(t_out >= t_in)
    first_i = np.where(empty_line, 0, first).astype(np.intp)
    last_i = np.where(empty_line, 0, np.maximum(last, first)).astype(np.intp)
    return first_i, last_i


def _ragged(starts: FloatArray, steps: FloatArray, t: FloatArray, first: npt.NDArray[np.intp],
            last: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
    """The samples ``[first[l], last[l])`` of each line ``starts[:, l] + t * steps[:, l]``:
    their line, their index in ``t`` and their coordinates ``(3, N)``."""
    counts = last - first
    line = np.repeat(np.arange(starts.shape[1], dtype=np.intp), counts)
    begin = np.cumsum(counts) - counts
    ti = first[line] + (np.arange(line.size, dtype=np.intp) - begin[line])
    coords: FloatArray = starts[:, line] + t[ti] * steps[:, line]
    return line, ti, coords


def _samples(starts: FloatArray, steps: FloatArray, t: FloatArray, t_in: FloatArray,
             t_out: FloatArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
    """The samples of each line with ``t`` in ``[t_in, t_out]`` and one more on each side."""
    if t.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros((3, 0))
    return _ragged(starts, steps, t, *_index_range(t, t_in, t_out))


def nearest_labels(labels_kji: npt.NDArray[Any], coords_kji: npt.ArrayLike) -> npt.NDArray[Any]:
    """``labels_kji`` at the voxel nearest to each of ``coords_kji`` (shape ``(3, ...)``), 0
    outside the grid: ``map_coordinates(labels, coords, order=0, mode="constant", cval=0)``
    without its per-point spline machinery."""
    coords = np.asarray(coords_kji, dtype=np.float64)
    shape = coords.shape[1:]
    flat = coords.reshape(3, -1)
    _n_k, n_j, n_i = labels_kji.shape
    full = np.asarray(labels_kji.shape, dtype=np.float64)[:, None]
    in_grid = np.all((flat >= 0.0) & (flat <= full - 1.0), axis=0)
    # floor(x + 0.5) (ndimage's rounding) as one flat index; floor(n - 1 + 0.5) is n - 1, so every
    # sample in the grid has an index in range.
    rounded = np.floor(flat + 0.5)
    index = ((rounded[0] * n_j + rounded[1]) * n_i + rounded[2]).astype(np.intp)
    out = np.where(in_grid, labels_kji.reshape(-1).take(np.where(in_grid, index, 0)), 0)
    return out.astype(labels_kji.dtype, copy=False).reshape(shape)


def bundle_starts(start_lps: FloatArray, across: tuple[FloatArray, FloatArray], half: tuple[float, float],
                  n: int) -> FloatArray:
    """Starts ``(n * n, 3)`` of a bundle of parallel lines around ``start_lps``: ``start + u *
    across[0] + v * across[1]`` for ``u`` in ``linspace(-half[0], half[0], n)`` (outer) and ``v``
    likewise (inner)."""
    u = np.repeat(np.linspace(-half[0], half[0], n), n)
    v = np.tile(np.linspace(-half[1], half[1], n), n)
    out: FloatArray = start_lps + u[:, None] * across[0] + v[:, None] * across[1]
    return out
