"""The sampling machinery of the measurement engine: :class:`LabelMapMeasurer` (a label map,
its soft masks and the lines, planes and bundles the recipes sample) and the level plane of a
disc (:func:`disc_plane`). All geometry is in LPS mm from the label map's own
:class:`VolumeGeometry`."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from lumbarview.core.errors import MeasurementError
from lumbarview.core.geometry import FloatArray, VolumeGeometry
from lumbarview.core.labels import LabelScheme, Role
from lumbarview.measure.results import NAN
from lumbarview.measure.sampling import SoftMask, bundle_starts

_EXIT_STRETCH = 128  # samples of the first stretch of an exit search (then 256, 512, ...)
#: The labels that bound the foramen and the disc's neighbours.
BONE = frozenset({Role.VERTEBRA, Role.PARTIAL_VERTEBRA, Role.POSTERIOR_ELEMENT, Role.SACRUM})


class LabelMapMeasurer:
    """Measures every lumbar level of one label map."""

    def __init__(self, labels: npt.NDArray[Any], geometry: VolumeGeometry, scheme: LabelScheme) -> None:
        if labels.shape != geometry.shape_kji:
            raise ValueError(f"labels {labels.shape} do not match geometry {geometry.shape_kji}")
        self.labels = np.asarray(labels)
        self.g = geometry
        self.scheme = scheme
        self._soft: dict[tuple[bool, tuple[int, ...]], SoftMask] = {}
        self._tables: dict[tuple[int, ...], npt.NDArray[np.bool_]] = {}
        self._points: dict[tuple[int, ...], FloatArray] = {}
        # Label range including 0 (a sample outside the grid reads 0).
        self.label_min = min(0, int(self.labels.min())) if self.labels.size else 0
        self.label_max = max(0, int(self.labels.max())) if self.labels.size else 0
        # Each voxel's label as an index into label tables (a lookup is several times faster than
        # np.isin on the whole volume); only for integer labels in a range of at most 65,536.
        self.label_index: npt.NDArray[np.uint16] | None = None
        # The box of each label's voxels (label_index - 1 -> slices, None when absent): masks
        # are built on their labels' boxes only.
        self._boxes: list[tuple[slice, ...] | None] = []
        if np.issubdtype(self.labels.dtype, np.integer) and self.label_max - self.label_min < 2**16:
            self.label_index = (self.labels.astype(np.int64) - self.label_min).astype(np.uint16) if self.label_min \
                else self.labels.astype(np.uint16)
            self._boxes = ndimage.find_objects(self.label_index)
            # Index 0 is label_min: 0 itself, or the smallest (negative) label, which is present.
            present = {i + 1 + self.label_min for i, box in enumerate(self._boxes) if box is not None}
            present |= {self.label_min}
        else:
            present = {int(v) for v in np.unique(self.labels)}
        present.discard(0)
        self.values_by_role: dict[Role, set[int]] = {}
        for v in present:
            self.values_by_role.setdefault(scheme.entry(v).role, set()).add(v)
        spacing = np.asarray(geometry.spacing_mm)
        self.axes = geometry.ijk_to_lps[:3, :3] / spacing  # unit voxel axes (columns)
        self.spacing = spacing
        self.fine = max(0.05, float(spacing.min()) / 5.0)

    # -- sampling helpers -----------------------------------------------------------------
    def resolution_along(self, direction: FloatArray) -> float:
        """How finely the voxel grid samples ``direction`` (mm): the norm of the voxel size
        projected on it."""
        d = np.asarray(direction, dtype=np.float64)
        return float(np.sqrt(np.sum((self.axes.T @ d * self.spacing) ** 2)))

    def soft(self, values: set[int], complement: bool = False) -> SoftMask:
        """The structure as a float mask (1 inside; with ``complement``, 1 outside it), cropped
        to where it is; sampled with linear interpolation it gives partial-volume weights.
        (Gaussian pre-smoothing was tried and made the phantom errors worse at 1 mm: it is not
        used.)"""
        key = (complement, tuple(sorted(values)))
        found = self._soft.get(key)
        if found is None:
            if self.label_index is None:
                found = SoftMask(np.isin(self.labels, list(values)), complement)
            else:
                lo, hi = self._box(values)
                crop = self.label_index[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
                found = SoftMask(self.label_table(values)[crop], complement, lo, self.labels.shape)
            self._soft[key] = found
        return found

    def _box(self, values: set[int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """The box ``[lo, hi)`` of the voxels of ``values`` and two more on each side (SoftMask's
        margin), within the grid; the whole grid for the label at index 0."""
        shape = self.labels.shape
        lo, hi = list(shape), [0, 0, 0]
        for v in values:
            index = v - self.label_min
            if index == 0:
                return (0, 0, 0), (shape[0], shape[1], shape[2])
            box = self._boxes[index - 1] if 0 < index <= len(self._boxes) else None
            if box is not None:
                lo = [min(a, b.start) for a, b in zip(lo, box, strict=True)]
                hi = [max(a, b.stop) for a, b in zip(hi, box, strict=True)]
        if hi[0] == 0:
            return (0, 0, 0), (0, 0, 0)
        lo = [max(0, a - 2) for a in lo]
        hi = [min(n, b + 2) for n, b in zip(shape, hi, strict=True)]
        return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])

    def voxels_lps(self, values: set[int]) -> FloatArray:
        """The centres of the voxels of ``values`` in LPS ``(N, 3)``, in C order (kept: every
        level looks at the same sac)."""
        key = tuple(sorted(values))
        found = self._points.get(key)
        if found is None:
            kji = self.soft(values).voxels_kji().astype(np.float64)
            m, b = self.g.ijk_to_lps[:3, :3], self.g.ijk_to_lps[:3, 3]
            # Column by column (an (N, 3) x (3, 3) product wakes BLAS's threads for little work).
            found = np.empty_like(kji)
            for r in range(3):
                found[:, r] = kji[:, 2] * m[r, 0] + kji[:, 1] * m[r, 1] + kji[:, 0] * m[r, 2] + b[r]
            self._points[key] = found
        return found

    def within(self, mask: SoftMask, points_lps: FloatArray) -> SoftMask:
        """``mask`` restricted to the box of voxels around ``points_lps`` (``(N, 3)``) and two
        more voxels on each side (see :meth:`SoftMask.restricted`: lines that leave it are
        sampled on the whole mask)."""
        kji = self.g.lps_to_index(points_lps)[:, ::-1]
        return mask.restricted(kji.min(axis=0) - 2.0, kji.max(axis=0) + 2.0)

    def soft_within(self, values: set[int], points_lps: FloatArray, complement: bool = False) -> SoftMask:
        """``within(soft(values, complement), points_lps)`` from the labels in that box alone:
        the whole structure's mask is built only if a line leaves the box."""
        if self.label_index is None:
            return self.within(self.soft(values, complement), points_lps)
        table, index = self.label_table(values), self.label_index

        def voxels(lo: npt.NDArray[np.intp], hi: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
            found: npt.NDArray[np.bool_] = table[index[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]]
            return found

        kji = self.g.lps_to_index(points_lps)[:, ::-1]
        return SoftMask.in_box(voxels, kji.min(axis=0) - 2.0, kji.max(axis=0) + 2.0, self.labels.shape, complement,
                               functools.partial(self.soft, values, complement))

    def label_table(self, values: set[int]) -> npt.NDArray[np.bool_]:
        """A table of the label values from ``label_min`` up: True for ``values`` (a lookup
        replaces ``np.isin`` on every plane)."""
        key = tuple(sorted(values))
        found = self._tables.get(key)
        if found is None:
            found = self._tables[key] = np.isin(np.arange(self.label_min, self.label_max + 1), list(values))
        return found

    def line_index(self, starts_lps: FloatArray, directions_lps: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Lines ``starts[l] + t * directions[l]`` (LPS, ``(L, 3)`` each) in voxel-index space:
        their starts and their steps per mm of ``t``, ``(3, L)`` each in ``(k, j, i)`` order."""
        starts_kji: FloatArray = self.g.lps_to_index(starts_lps)[:, ::-1].T
        steps_kji: FloatArray = (self.g.lps_to_ijk[:3, :3] @ np.asarray(directions_lps).T)[::-1]
        return starts_kji, steps_kji

    def plane_lines(self, centre: FloatArray, e1: FloatArray, e2: FloatArray, r1: tuple[float, float],
                    r2: tuple[float, float], step: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """A grid on a plane (first axis along ``e1``) as lines along ``e2`` in voxel-index
        space: their starts and steps ``(3, n1)`` in ``(k, j, i)`` order, and the grid's
        coordinates along ``e1`` (one per line) and ``e2`` (the ``t`` of every line). Built
        directly in index space (the affine is linear), which skips an (N, 3) LPS array and a
        matrix product per point."""
        s1 = np.arange(r1[0], r1[1] + step / 2, step)
        s2 = np.arange(r2[0], r2[1] + step / 2, step)
        m = self.g.lps_to_ijk[:3, :3]
        c = self.g.lps_to_index(centre)
        d1, d2 = m @ e1, m @ e2
        starts = np.stack([c[a] + s1 * d1[a] for a in (2, 1, 0)])
        steps = np.repeat(d2[[2, 1, 0], None], s1.size, axis=1)
        return starts, steps, s1, s2

    # -- level frame ----------------------------------------------------------------------
    def disc_frame(self, value: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray] | str:
        try:
            centre, normal = _plane_of_voxels(self.soft({value}).voxels_kji(), self.g)
        except MeasurementError as exc:
            return str(exc)
        e_lr = np.array([1.0, 0.0, 0.0]) - normal[0] * normal
        if np.linalg.norm(e_lr) < 0.3:
            return "the disc's orientation is not that of a lumbar disc (its normal points left-right)"
        e_lr /= np.linalg.norm(e_lr)
        e_ap = np.cross(normal, e_lr)
        return centre, normal, e_lr, e_ap

    # -- profiles: every function below samples all its lines in one call ------------------
    def run_lengths(self, mask: SoftMask, starts: FloatArray, direction: FloatArray,
                    t_range: tuple[float, float]) -> FloatArray:
        """Partial-volume-weighted length of ``mask`` (Σ weights × step) along each line from
        ``starts`` (``(L, 3)``) along ``direction`` (one for all, or ``(L, 3)``)."""
        step = self.fine / 2
        t = np.arange(t_range[0], t_range[1] + step / 2, step)
        w = mask.sample_lines(*self.line_index(starts, np.broadcast_to(direction, starts.shape)), t)
        lengths: FloatArray = (w.sum(axis=1) * step).astype(np.float64)
        return lengths

    def exits(self, mask: SoftMask, starts: FloatArray, directions: FloatArray, limit: float) -> FloatArray:
        """For each line, the distance from its start (inside) along its direction to where the
        mask falls below 0.5, interpolated; NaN when it never does within ``limit`` or the start
        is outside."""
        step = self.fine / 2
        t = np.arange(0.0, limit + step / 2, step)
        line_starts, line_steps = self.line_index(starts, np.broadcast_to(directions, starts.shape))
        out: FloatArray = np.full(len(starts), NAN)
        # The lines are sampled a stretch at a time (each twice as long as the last), and only
        # those that have not left yet: most leave long before the limit.
        live = np.arange(len(starts))
        last = np.zeros(0, dtype=np.float32)  # each live line's sample before the stretch
        begin, size = 0, _EXIT_STRETCH
        while live.size and begin < t.size:
            end = min(t.size, begin + size)
            w = mask.sample_lines(line_starts[:, live], line_steps[:, live], t[begin:end])
            if begin == 0:
                inside = w[:, 0] >= 0.5  # a line that starts outside has no exit
                live, w = live[inside], w[inside]
            below = w < 0.5
            left = below.any(axis=1)
            i = np.argmax(below[left], axis=1)  # the first sample below 0.5 (>= 1 in the first stretch)
            rows = np.nonzero(left)[0]
            w0 = np.where(i > 0, w[rows, i - 1], last[rows] if begin else w[rows, 0])
            w1 = w[rows, i]
            out[live[left]] = t[begin + i - 1] + (w0 - 0.5) / (w0 - w1) * step
            last, live = w[~left, -1], live[~left]
            begin, size = end, 2 * size
        return out

    def bundle_run_length(self, mask: SoftMask, start: FloatArray, direction: FloatArray,
                          t_range: tuple[float, float], across: tuple[FloatArray, FloatArray],
                          half: tuple[float, float] = (1.0, 0.5), n: int = 5) -> float:
        """Mean partial-volume run length over a small bundle of parallel lines around
        ``start``: the voxel grid cuts each line at a different phase, so their mean is
        closer to the true length than any one line (a single line is off by up to half a
        voxel at each end)."""
        return float(np.mean(self.run_lengths(mask, bundle_starts(start, across, half, n), direction, t_range)))

    def bundle_exit(self, mask: SoftMask, start: FloatArray, direction: FloatArray, limit: float,
                    across: tuple[FloatArray, FloatArray], half: tuple[float, float] = (1.0, 1.0),
                    n: int = 5) -> float:
        """Mean exit distance (:meth:`exits`) over a bundle of parallel lines (NaN if any is NaN)."""
        return float(np.mean(self.exits(mask, bundle_starts(start, across, half, n), direction, limit)))

    def max_chord(self, mask: SoftMask, centre: FloatArray, direction: FloatArray,
                  sweep: FloatArray, sweep_half: float, out_of_plane: FloatArray) -> tuple[float, FloatArray]:
        """The widest partial-volume chord along ``direction``, swept across ``sweep``: chord²
        is fitted with a parabola over ±``sweep_half`` (exact for an ellipse) and its vertex
        taken, so that neither the centroid's error nor one line's voxel phase decides it.
        Each chord is the mean over a bundle of 5 x 5 lines; all 9 bundles are sampled at once.
        Returns the length and a point of the line it was taken on (the vertex's offset, or the
        widest bundle's when the parabola has no maximum)."""
        offsets = np.linspace(-sweep_half, sweep_half, 9)
        # Each bundle is 5 x 5 lines, but its second spread is 0: the 5 lines of each row are
        # one line, sampled once and counted 5 times.
        starts = np.concatenate([bundle_starts(centre + o * sweep, (out_of_plane, sweep), (1.0, 0.0), 5)[::5]
                                 for o in offsets])
        lengths = np.repeat(self.run_lengths(mask, starts, direction, (-25.0, 25.0)), 5)
        chords = lengths.reshape(len(offsets), -1).mean(axis=1)
        if not np.all(np.isfinite(chords)) or chords.max() <= 0:
            return NAN, centre
        widest = centre + float(offsets[int(np.argmax(chords))]) * sweep
        c2, c1, c0 = np.polyfit(offsets, chords**2, 2)
        if c2 >= 0:
            return float(chords.max()), widest
        vertex = c0 - c1 * c1 / (4 * c2)
        if vertex <= 0:
            return float(chords.max()), widest
        at = float(np.clip(-c1 / (2 * c2), -sweep_half, sweep_half))
        return float(math.sqrt(vertex)), centre + at * sweep

    def chord_ends(self, mask: SoftMask, point: FloatArray, direction: FloatArray,
                   limit: float = 40.0) -> FloatArray | None:
        """The end points ``(2, 3)`` of the chord of ``mask`` through ``point`` along
        ``direction``: where the mask falls below 0.5 on either side (:meth:`exits`); None
        when the point is outside or an end is beyond ``limit``."""
        starts = np.stack([point, point])
        directions = np.stack([-np.asarray(direction), np.asarray(direction)])
        back, forth = self.exits(mask, starts, directions, limit)
        if not (math.isfinite(back) and math.isfinite(forth)):
            return None
        return np.array([point - back * direction, point + forth * direction])

    def at_edge(self, points_lps: FloatArray, margin: float = 1.0) -> bool:
        """Whether any of ``points_lps`` (``(N, 3)`` or one point) lies within ``margin`` voxels of
        the grid's boundary: an exit found there may be where the image ends, not the structure."""
        ijk = self.g.lps_to_index(np.asarray(points_lps, dtype=np.float64).reshape(-1, 3))
        upper = np.asarray(self.g.shape_kji[::-1], dtype=np.float64) - 1.0 - margin
        return bool(np.any(ijk < margin) or np.any(ijk > upper))

    def values_of(self, roles: frozenset[Role] | set[Role]) -> set[int]:
        """The label values present with any of ``roles``."""
        return set().union(*(self.values_by_role.get(r, set()) for r in roles))


def disc_plane(labels_kji: npt.NDArray[Any], geometry: VolumeGeometry, disc_value: int,
               ) -> tuple[FloatArray, FloatArray]:
    """A disc's level plane from a label map: ``(centre_lps, normal_lps)``.

    The centre is the centroid of the disc's voxel centres; the normal is the smallest principal
    axis of those points (the disc is a flat slab), a unit vector oriented superior (+z). This
    is the plane the engine measures each level on and the viewer's "align to disc" plane.
    Raises :class:`~lumbarview.core.errors.MeasurementError` when the disc has fewer than 20
    voxels.
    """
    if labels_kji.shape != geometry.shape_kji:
        raise ValueError(f"labels {labels_kji.shape} do not match geometry {geometry.shape_kji}")
    return _plane_of_voxels(np.argwhere(labels_kji == disc_value), geometry)


def _plane_of_voxels(kji: npt.NDArray[np.intp], geometry: VolumeGeometry) -> tuple[FloatArray, FloatArray]:
    """:func:`disc_plane` of the disc voxels ``kji`` (``(N, 3)``, C order)."""
    if len(kji) < 20:
        raise MeasurementError("the disc is not in the mask (or has fewer than 20 voxels)")
    # Centroid and covariance of the voxel indices (exact integer sums), then taken to LPS: the
    # same plane as from the voxel centres in LPS, without an (N, 3) product through BLAS.
    ijk = kji[:, ::-1].astype(np.int64)
    n = len(ijk)
    sums = ijk.sum(axis=0)
    scatter = n * (ijk.T @ ijk) - np.outer(sums, sums)  # n² x the covariance x (n - 1) / n, exact
    axes = geometry.ijk_to_lps[:3, :3]
    centre = axes @ (sums / n) + geometry.ijk_to_lps[:3, 3]
    cov = axes @ (scatter / (n * (n - 1.0))) @ axes.T
    _evals, evecs = np.linalg.eigh(cov)
    normal = evecs[:, 0]
    if normal[2] < 0:
        normal = -normal
    return centre, normal


def along(points: FloatArray, direction: FloatArray) -> FloatArray:
    """``points @ direction`` for ``(N, 3)`` points, column by column (not through BLAS)."""
    out: FloatArray = points[:, 0] * direction[0] + points[:, 1] * direction[1] + points[:, 2] * direction[2]
    return out

