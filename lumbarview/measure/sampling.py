"""Sampling label maps along bundles of lines and on plane grids, only where the structure is.

The measurement engine samples each structure (disc, thecal sac, bodies, the free space between
bones) with linear interpolation at tens of thousands of points per level, and most of those
points are far from the structure. :class:`SoftMask` keeps a structure cropped to its voxels
(plus a margin) with a table of the voxels next to it, so that only the points whose eight
neighbouring voxels are partly in the structure are interpolated; every other point's value is
known without interpolating (0 away from it, 1 deep inside it; the other way round for a
complement, whose value is still 0 outside the grid). The result is exactly what
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

from collections.abc import Callable
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
    offset_kji, shape_kji
        ``inside_kji`` is the box of a grid of shape ``shape_kji`` that starts at voxel
        ``offset_kji``, and the structure has no voxel outside it; the box holds the margin of
        two voxels around the structure wherever the grid does (the mask is then the same as
        the one built from the whole grid).
    """

    def __init__(self, inside_kji: npt.NDArray[np.bool_], complement: bool = False,
                 offset_kji: tuple[int, int, int] = (0, 0, 0), shape_kji: tuple[int, ...] | None = None) -> None:
        shape = tuple(int(n) for n in (inside_kji.shape if shape_kji is None else shape_kji))
        lo, hi = _used_box(inside_kji)
        offset = (offset_kji[0] + lo[0], offset_kji[1] + lo[1], offset_kji[2] + lo[2])
        self._setup(inside_kji[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], offset, shape, complement)
        self._parent: SoftMask | Callable[[], SoftMask] | None = None
        self._valid_kji = (np.zeros(3), np.asarray(shape, dtype=np.float64) - 1.0)

    def _setup(self, crop: npt.NDArray[np.bool_], offset: tuple[int, int, int], shape: tuple[int, ...],
               complement: bool) -> None:
        self.shape_kji = shape
        self.complement = complement
        self.offset_kji = np.array(offset, dtype=np.float64)
        self._offset_int = offset
        self.inside = crop
        self.data: npt.NDArray[np.float32] = (~crop if complement else crop).astype(np.float32)
        # A point whose floor is voxel f is interpolated from the voxels f + {0, 1}^3. near[f]:
        # one of them is in the structure; full[f]: all of them are (beyond the crop, none is).
        m0, m1, m2 = crop.shape
        padded = np.zeros((m0 + 1, m1 + 1, m2 + 1), dtype=bool)
        padded[:-1, :-1, :-1] = crop
        near = crop.copy()
        full = crop.copy()
        for dk in (0, 1):
            for dj in (0, 1):
                for di in (0, 1):
                    if dk or dj or di:
                        shifted = padded[dk:dk + m0, dj:dj + m1, di:di + m2]
                        near |= shifted
                        full &= shifted
        self.near = near
        # The state of every floor voxel, with one more layer of voxels on each side (floors
        # outside the crop are clipped onto it): 0 no structure among the eight voxels (the
        # value is 0, or 1 in the grid for a complement), 1 some (interpolate), 2 all (the
        # value is exactly 1, or 0 for a complement: the eight weights sum to 1 within a few
        # ulps, which float32 rounds to 1).
        state = np.zeros((m0 + 2, m1 + 2, m2 + 2), dtype=np.uint8)
        state[1:-1, 1:-1, 1:-1] = near.view(np.uint8) + full.view(np.uint8)
        self._state = state.reshape(-1)
        self._state_strides = np.array([(m1 + 2) * (m2 + 2), m2 + 2, 1], dtype=np.intp)
        self._crop_hi = np.array([m0, m1, m2], dtype=np.float64)
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
        return SoftMask.in_box(self._voxels, lo_kji, hi_kji, self.shape_kji, self.complement, self)

    def _voxels(self, lo: npt.NDArray[np.intp], hi: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        """The structure in the box ``[lo, hi)`` of the full grid (absent outside the crop)."""
        out = np.zeros(tuple(hi - lo), dtype=bool)
        src_lo = np.maximum(lo, self._offset_int)
        src_hi = np.minimum(hi, np.asarray(self._offset_int) + self.inside.shape)
        if np.all(src_hi > src_lo):
            a, b = src_lo - self._offset_int, src_hi - self._offset_int
            c, d = src_lo - lo, src_hi - lo
            out[c[0]:d[0], c[1]:d[1], c[2]:d[2]] = self.inside[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
        return out

    @staticmethod
    def in_box(voxels: Callable[[npt.NDArray[np.intp], npt.NDArray[np.intp]], npt.NDArray[np.bool_]],
               lo_kji: npt.ArrayLike, hi_kji: npt.ArrayLike, shape_kji: tuple[int, ...], complement: bool,
               whole: SoftMask | Callable[[], SoftMask]) -> SoftMask:
        """A structure's mask (as :meth:`restricted` makes it) from only its voxels in the box
        ``[lo, hi]``, which ``voxels(a, b)`` gives for the box ``[a, b)`` of the full grid:
        lines that leave the box are sampled on ``whole``, the whole structure's mask (or a
        function that builds it, called then)."""
        shape = np.asarray(shape_kji)
        lo = np.clip(np.floor(np.asarray(lo_kji, dtype=np.float64)), 0, shape - 1).astype(np.intp)
        hi = np.clip(np.ceil(np.asarray(hi_kji, dtype=np.float64)), 0, shape - 1).astype(np.intp)
        out_lo = np.maximum(lo - _MARGIN, 0)
        out_hi = np.minimum(hi + 1 + _MARGIN, shape)
        box = np.zeros(tuple(out_hi - out_lo), dtype=bool)
        c, d = lo - out_lo, hi + 1 - out_lo
        box[c[0]:d[0], c[1]:d[1], c[2]:d[2]] = voxels(lo, hi + 1)
        # Crop to the structure's voxels in the box (plus the margin), as __init__ does.
        c_lo, c_hi = _used_box(box)
        offset = out_lo + np.asarray(c_lo)
        sub = SoftMask.__new__(SoftMask)
        sub._setup(box[c_lo[0]:c_hi[0], c_lo[1]:c_hi[1], c_lo[2]:c_hi[2]],
                   (int(offset[0]), int(offset[1]), int(offset[2])), tuple(shape_kji), complement)
        sub._parent = whole
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

        Only the samples of each line that can fall inside the grid (complement) or next to
        the structure are computed: the window of ``t`` is found per line from where the line
        crosses the boxes of the crop's slices that hold voxels next to it, widened by one
        sample on each side; each sample in it is then looked up in the table of floor voxels
        (none, some or all of its eight voxels in the structure), and only the "some" are
        interpolated."""
        n_lines, n_t = starts_kji.shape[1], t.size
        if self._parent is not None and n_t and n_lines:
            ends = starts_kji + t[-1] * steps_kji
            begins = starts_kji + t[0] * steps_kji
            low, high = np.minimum(begins, ends).min(axis=1), np.maximum(begins, ends).max(axis=1)
            if np.any(low < self._valid_kji[0]) or np.any(high > self._valid_kji[1]):
                if not isinstance(self._parent, SoftMask):
                    self._parent = self._parent()
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
        t_in, t_out = _crossing(starts_kji[:, :, None], steps_kji[:, :, None], self._slab_lo[:, None, :],
                                self._slab_hi[:, None, :])
        crosses = t_out >= t_in
        t_in = np.where(crosses, t_in, np.inf).min(axis=1)
        t_out = np.where(crosses, t_out, -np.inf).max(axis=1)
        flat, local = _samples(starts_kji, steps_kji, t, t_in, t_out)
        if not flat.size:
            return out
        local -= self.offset_kji[:, None]  # exact where it matters (coordinates >= offset)
        # Each sample's floor voxel, clipped to the crop's extra layer (state 0), as an index
        # into the state table.
        floor = np.floor(local)
        np.clip(floor, -1.0, self._crop_hi[:, None], out=floor)
        floor += 1.0
        cell = floor.astype(np.intp)
        cell *= self._state_strides[:, None]
        state = self._state.take(cell.sum(axis=0))
        flat_out = out.reshape(-1)
        solid = state == 2
        flat_out[flat[solid]] = 0.0 if self.complement else 1.0
        edge = state == 1
        if edge.any():
            # Interpolated points have their floor in the crop: on the crop's far face or beyond
            # it only where the crop ends at the grid's edge (a margin of empty voxels lies
            # everywhere else), so map_coordinates' "outside is cval" gives the full grid's 0.
            flat_out[flat[edge]] = ndimage.map_coordinates(self.data, local[:, edge], order=1,
                                                           mode="constant", cval=0)
        return out


def _used_box(inside: npt.NDArray[np.bool_]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The box ``[lo, hi)`` of ``inside``'s True voxels and ``_MARGIN`` more on each side, within
    ``inside``; empty at 0 when there are none."""
    lo, hi = [0, 0, 0], [0, 0, 0]
    if inside.any():
        for axis in range(3):
            used = np.nonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))[0]
            lo[axis] = max(0, int(used[0]) - _MARGIN)
            hi[axis] = min(inside.shape[axis], int(used[-1]) + 1 + _MARGIN)
    return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])


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
    ti = np.arange(line.size, dtype=np.intp) + np.repeat(first - begin, counts)
    coords: FloatArray = np.repeat(starts, counts, axis=1) + t[ti] * np.repeat(steps, counts, axis=1)
    return line, ti, coords


def _samples(starts: FloatArray, steps: FloatArray, t: FloatArray, t_in: FloatArray,
             t_out: FloatArray) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """The samples of each line with ``t`` in ``[t_in, t_out]`` and one more on each side: their
    flat index in the ``(L, T)`` output and their coordinates ``(3, N)``."""
    if t.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros((3, 0))
    first, last = _index_range(t, t_in, t_out)
    counts = last - first
    n = int(counts.sum())
    begin = np.cumsum(counts) - counts
    # Sample s of the run of line l is t index first[l] + s - begin[l], flat index l * T + that.
    ti = np.arange(n, dtype=np.intp) + np.repeat(first - begin, counts)
    flat = ti + np.repeat(np.arange(starts.shape[1], dtype=np.intp) * t.size, counts)
    coords: FloatArray = np.repeat(starts, counts, axis=1) + t[ti] * np.repeat(steps, counts, axis=1)
    return flat, coords


def nearest_labels(labels_kji: npt.NDArray[Any], coords_kji: npt.ArrayLike, outside: int = 0) -> npt.NDArray[Any]:
    """``labels_kji`` at the voxel nearest to each of ``coords_kji`` (shape ``(3, ...)``),
    ``outside`` outside the grid: ``map_coordinates(labels, coords, order=0, mode="constant",
    cval=outside)`` without its per-point spline machinery."""
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
    out = np.where(in_grid, labels_kji.reshape(-1).take(np.where(in_grid, index, 0)), outside)
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
