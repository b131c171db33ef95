"""Automatic canal, foramen and disc measurements from a lumbar label map, per disc level.

All geometry is in LPS mm from the label map's own :class:`VolumeGeometry`. The recipe follows
``docs/measurements.md`` §8 (the lumbar adaptation of SCT's ``compute_shape``):

* **level plane**: through the disc's centroid, normal to the disc (smallest principal axis of
  the disc voxels, pointing superior);
* **canal** (thecal sac, role ``canal`` + ``cord``): the sac mask resliced on that plane with
  linear interpolation on a grid of 1/5 of the finest voxel size; area = Σ weights × pixel area;
  AP and transverse diameters are those of the ellipse with the same second moments (SCT); the
  minimum area over the disc's thickness and where it is;
* **foramen**, per side: parasagittal planes (normal to the left-right axis of the level plane)
  are sampled laterally; the foramen is the closed region of unlabelled space behind the disc,
  between the bone labels above and below and the posterior elements behind; height (extent
  along the disc normal), width (narrowest antero-posterior gap over its middle half) and area
  on the middle one of the planes where it is closed; posterior disc height on that plane;
* **disc heights** along the disc normal at 10 % of the disc depth from its anterior and
  posterior margins and at the middle; DHI = mean height / mean height of the adjacent bodies;
  **slip** = offset between the posterior walls of the bodies above and below.

Flags are literature cut-offs with their source, never a diagnosis. Each value carries a
confidence from the mask's sampling along the directions it measures.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from lumbarview.core.errors import MeasurementError
from lumbarview.core.geometry import FloatArray, VolumeGeometry
from lumbarview.core.labels import LabelScheme, Role
from lumbarview.measure.sampling import SoftMask, bundle_starts, nearest_labels

NAN = float("nan")
QUANTITIES = ("canal_ap", "canal_transverse", "canal_area", "canal_area_min", "foramen_height",
              "foramen_width", "foramen_area", "posterior_disc_height", "disc_height_anterior",
              "disc_height_middle", "disc_height_posterior", "dhi", "slip")
UNITS = {"canal_ap": "mm", "canal_transverse": "mm", "canal_area": "mm2", "canal_area_min": "mm2",
         "foramen_height": "mm", "foramen_width": "mm", "foramen_area": "mm2",
         "posterior_disc_height": "mm", "disc_height_anterior": "mm", "disc_height_middle": "mm",
         "disc_height_posterior": "mm", "dhi": "ratio", "slip": "mm"}
_BONE = {Role.VERTEBRA, Role.PARTIAL_VERTEBRA, Role.POSTERIOR_ELEMENT, Role.SACRUM}
_EXIT_STRETCH = 128  # samples of the first stretch of an exit search (then 256, 512, ...)


@dataclass
class Value:
    """One measured value (a row of ``lumbarview measure``)."""

    level: str
    quantity: str
    value: float
    unit: str
    method: str
    confidence: str  # "high" | "medium" | "low" | "none"
    confidence_reason: str
    side: str | None = None
    label: int | None = None
    flag: str | None = None
    reason: str | None = None  # why value is NaN
    position_lps: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _confidence(resolution_mm: float, what: str) -> tuple[str, str]:
    if not math.isfinite(resolution_mm):
        return "none", "not measured"
    if resolution_mm <= 1.0:
        return "high", f"{what} sampled every {resolution_mm:.2f} mm"
    if resolution_mm <= 2.0:
        return "medium", f"{what} sampled every {resolution_mm:.2f} mm"
    return "low", (f"{what} sampled only every {resolution_mm:.1f} mm (e.g. thick sagittal slices "
                   "across an axial measurement); partial-volume weighting cannot recover that detail")


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
                  sweep: FloatArray, sweep_half: float, out_of_plane: FloatArray) -> float:
        """The widest partial-volume chord along ``direction``, swept across ``sweep``: chord²
        is fitted with a parabola over ±``sweep_half`` (exact for an ellipse) and its vertex
        taken, so that neither the centroid's error nor one line's voxel phase decides it.
        Each chord is the mean over a bundle of 5 x 5 lines; all 9 bundles are sampled at once."""
        offsets = np.linspace(-sweep_half, sweep_half, 9)
        # Each bundle is 5 x 5 lines, but its second spread is 0: the 5 lines of each row are
        # one line, sampled once and counted 5 times.
        starts = np.concatenate([bundle_starts(centre + o * sweep, (out_of_plane, sweep), (1.0, 0.0), 5)[::5]
                                 for o in offsets])
        lengths = np.repeat(self.run_lengths(mask, starts, direction, (-25.0, 25.0)), 5)
        chords = lengths.reshape(len(offsets), -1).mean(axis=1)
        if not np.all(np.isfinite(chords)) or chords.max() <= 0:
            return NAN
        c2, c1, c0 = np.polyfit(offsets, chords**2, 2)
        if c2 >= 0:
            return float(chords.max())
        vertex = c0 - c1 * c1 / (4 * c2)
        return float(math.sqrt(vertex)) if vertex > 0 else float(chords.max())


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


def _along(points: FloatArray, direction: FloatArray) -> FloatArray:
    """``points @ direction`` for ``(N, 3)`` points, column by column (not through BLAS)."""
    out: FloatArray = points[:, 0] * direction[0] + points[:, 1] * direction[1] + points[:, 2] * direction[2]
    return out


def measure_label_map(labels: npt.NDArray[Any], geometry: VolumeGeometry, scheme: LabelScheme,
                      levels: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")) -> list[Value]:
    """Every quantity of every level present in ``labels`` (NaN rows with a reason for what
    cannot be measured)."""
    m = LabelMapMeasurer(labels, geometry, scheme)
    out: list[Value] = []
    for level in levels:
        value = scheme.disc_value(level)
        if value is None:
            continue
        out.extend(_measure_level(m, level, value))
    return out


def _missing(level: str, label: int | None, reason: str, quantities: tuple[str, ...] = QUANTITIES,
             sides: tuple[str | None, ...] = (None,)) -> list[Value]:
    rows = []
    for q in quantities:
        for side in (("left", "right") if q.startswith("foramen") or q == "posterior_disc_height" else sides):
            rows.append(Value(level, q, NAN, UNITS[q], "", "none", reason, side, label, None, reason))
    return rows


def _measure_level(m: LabelMapMeasurer, level: str, disc_value: int) -> list[Value]:
    frame = m.disc_frame(disc_value)
    if isinstance(frame, str):
        return _missing(level, disc_value, frame)
    centre, normal, e_lr, e_ap = frame
    rows: list[Value] = []
    disc = m.soft({disc_value})
    heights = _disc_heights(m, level, disc_value, disc, centre, normal, e_ap)
    rows.extend(heights)
    middle = next((r.value for r in heights if r.quantity == "disc_height_middle"), NAN)
    rows.extend(_canal(m, level, disc_value, centre, normal, e_lr, e_ap, middle))
    for side in ("left", "right"):
        rows.extend(_foramen(m, level, disc_value, centre, normal, e_lr, e_ap, side))
    return rows


def _disc_heights(m: LabelMapMeasurer, level: str, label: int, disc: SoftMask,
                  centre: FloatArray, normal: FloatArray, e_ap: FloatArray) -> list[Value]:
    e_lr0 = np.cross(e_ap, normal)
    post = m.bundle_exit(disc, centre, e_ap, 60.0, (e_lr0, normal), (1.0, 1.0))
    ant = m.bundle_exit(disc, centre, -e_ap, 60.0, (e_lr0, normal), (1.0, 1.0))
    res = m.resolution_along(normal)
    conf, why = _confidence(res, "the disc normal")
    method = ("disc mask sampled along the disc normal (linear interpolation; mean of 25 parallel lines "
              "within ±1 mm left-right and ±2 mm antero-posterior), at 10 % of the disc depth from its "
              "anterior and posterior margins and at the middle, on the mid-sagittal plane")
    if not (math.isfinite(post) and math.isfinite(ant)):
        return _missing(level, label, "the disc's antero-posterior margins were not found",
                        ("disc_height_anterior", "disc_height_middle", "disc_height_posterior", "dhi", "slip"))
    depth = post + ant
    positions = {"disc_height_anterior": -ant + 0.1 * depth, "disc_height_middle": (post - ant) / 2,
                 "disc_height_posterior": post - 0.1 * depth}
    rows = []
    heights = {}
    e_lr = np.cross(e_ap, normal)
    for q, a in positions.items():
        start = centre + a * e_ap
        # The bundle spreads ±2 mm along A-P (the height varies linearly there, so the mean is
        # the centre's) to sample the grid at different phases.
        h = m.bundle_run_length(disc, start, normal, (-25.0, 25.0), (e_lr, e_ap), (1.0, 2.0))
        heights[q] = h
        rows.append(Value(level, q, h, "mm", method, conf, why, None, label,
                          position_lps=start.tolist()))
    # Adjacent body heights along the normal from the disc's middle.
    bone_values = set().union(*(m.values_by_role.get(r, set()) for r in (Role.VERTEBRA, Role.SACRUM)))
    bodies = m.soft(bone_values) if bone_values else None
    body_heights = []
    mid = centre + positions["disc_height_middle"] * e_ap
    if bodies is not None:
        for sign in (1.0, -1.0):
            h_half = heights["disc_height_middle"] / 2
            enter = mid + sign * (h_half + 1.5) * normal
            e_lr = np.cross(e_ap, normal)
            length = m.bundle_exit(bodies, enter, sign * normal, 60.0, (e_lr, e_ap), (1.0, 2.0))
            back = m.bundle_exit(bodies, enter, -sign * normal, 10.0, (e_lr, e_ap), (1.0, 2.0))
            if math.isfinite(length) and math.isfinite(back):
                body_heights.append(length + back)
    mean_h = float(np.mean([heights[q] for q in positions]))
    if body_heights:
        dhi = mean_h / float(np.mean(body_heights))
        flag = dhi_flag(dhi)
        rows.append(Value(level, "dhi", dhi, "ratio",
                          "mean(anterior, middle, posterior disc height) / mean height of the adjacent "
                          f"vertebral bodies along the disc normal ({len(body_heights)} body/bodies in the mask)",
                          conf, why, None, label, flag))
    else:
        rows.append(Value(level, "dhi", NAN, "ratio", "", "none", "no adjacent vertebral body in the mask",
                          None, label, None, "no adjacent vertebral body in the mask"))
    rows.append(_slip(m, level, label, bodies, mid, normal, e_ap, heights["disc_height_middle"]))
    return rows


def _slip(m: LabelMapMeasurer, level: str, label: int, bodies: SoftMask | None,
          mid: FloatArray, normal: FloatArray, e_ap: FloatArray, disc_h: float) -> Value:
    reason = "the vertebral bodies above and below are not both in the mask"
    if bodies is None or not math.isfinite(disc_h):
        return Value(level, "slip", NAN, "mm", "", "none", reason, None, label, None, reason)
    walls = []
    depth_below = NAN
    e_lr = np.cross(e_ap, normal)
    for sign in (1.0, -1.0):
        inside = mid + sign * (disc_h / 2 + 6.0) * normal
        post = m.bundle_exit(bodies, inside, e_ap, 60.0, (e_lr, normal), (1.0, 1.0))
        walls.append(post)
        if sign < 0:
            ant = m.bundle_exit(bodies, inside, -e_ap, 60.0, (e_lr, normal), (1.0, 1.0))
            depth_below = post + ant
    if not all(math.isfinite(w) for w in walls):
        return Value(level, "slip", NAN, "mm", "", "none", reason, None, label, None, reason)
    slip = walls[1] - walls[0]  # positive: the upper body sits anterior to the lower one
    percent = 100.0 * slip / depth_below if math.isfinite(depth_below) and depth_below > 0 else NAN
    flag = slip_flag(slip, percent)
    conf, why = _confidence(m.resolution_along(e_ap), "the antero-posterior direction")
    return Value(level, "slip", slip, "mm",
                 "offset between the posterior walls of the bodies above and below, along the disc's "
                 "antero-posterior axis, 6 mm from the disc", conf, why, None, label, flag,
                 extra={"slip_percent": percent})


def slip_flag(slip_mm: float, percent: float) -> str | None:
    """Meyerding's grade of a slip of at least 3 mm (the open pipeline's threshold), or None."""
    if abs(slip_mm) < 3.0 or not math.isfinite(percent):
        return None
    grade = ("I" if abs(percent) <= 25 else "II" if abs(percent) <= 50 else "III" if abs(percent) <= 75
             else "IV" if abs(percent) <= 100 else "V")
    return (f"slip {slip_mm:.1f} mm ({percent:.0f} % of the lower body's depth): Meyerding grade {grade}; "
            "≥ 3 mm is called positive by one open pipeline (secondary source)")


def dhi_flag(dhi: float) -> str | None:
    """The disc height index's literature grading (a compendium's, marked secondary), or None."""
    if dhi < 0.20:
        return "DHI < 0.20: severe height loss (compendium grading, secondary source)"
    if dhi < 0.30:
        return "DHI 0.20-0.29: moderate height loss (compendium grading, secondary source)"
    if dhi < 0.40:
        return "DHI 0.30-0.39: mild height loss (compendium grading, secondary source)"
    return None


def _canal_flag(quantity: str, value: float) -> str | None:
    if not math.isfinite(value):
        return None
    if quantity in ("canal_area", "canal_area_min"):
        if value < 75:
            return "dural sac area < 75 mm²: absolute stenosis cut-off (Bolender/Schönström 1985)"
        if value < 100:
            return "dural sac area < 100 mm²: relative stenosis cut-off (Bolender/Schönström 1985; Hamanishi 1994)"
    if quantity == "canal_ap":
        if value < 10:
            return ("AP < 10 mm: absolute cut-off (Verbiest; Framingham CT), defined for the osseous canal; "
                    "this is the thecal sac")
        if value < 12:
            return ("AP < 12 mm: relative cut-off (Verbiest; Framingham CT), defined for the osseous canal; "
                    "this is the thecal sac")
    return None


def _canal_weights(m: LabelMapMeasurer, canal: SoftMask, points: list[FloatArray], e_lr: FloatArray,
                   e_ap: FloatArray, half: float, step: float) -> tuple[list[npt.NDArray[np.float32]], FloatArray,
                                                                        FloatArray]:
    """The sac's partial-volume weights on ±``half`` mm squares through ``points`` (first axis
    along ``e_lr``, second along ``e_ap``, a grid of ``step`` mm), all sampled in one call; and
    the grid's coordinates along each axis."""
    planes = [m.plane_lines(p, e_lr, e_ap, (-half, half), (-half, half), step) for p in points]
    s1, s2 = planes[0][2], planes[0][3]
    w = canal.sample_lines(np.concatenate([p[0] for p in planes], axis=1),
                           np.concatenate([p[1] for p in planes], axis=1), s2)
    return list(w.reshape(len(points), len(s1), len(s2))), s1, s2


def _section_weights(w: npt.NDArray[np.float32], half: float) -> tuple[npt.NDArray[np.float32], float] | str:
    """A section's weights, only the sac's component around the centre where something reaches
    the window's edge, and their sum; or why there is no section."""
    total = float(w.sum())
    if total <= 0:
        return "the canal mask does not cross the disc plane"
    if w[0, :].max() > 0.05 or w[-1, :].max() > 0.05 or w[:, 0].max() > 0.05 or w[:, -1].max() > 0.05:
        # Keep only the component around the centre (roots or a neighbour may reach the edge).
        lab, _ = ndimage.label(w > 0.02)
        ci, cj = w.shape[0] // 2, w.shape[1] // 2
        keep = lab == lab[ci, cj] if lab[ci, cj] else None
        if keep is None or keep[0, :].any() or keep[-1, :].any() or keep[:, 0].any() or keep[:, -1].any():
            return f"the canal section is wider than the {2 * half:.0f} mm window (or not closed)"
        w = np.where(keep, w, 0.0)
        total = float(w.sum())
    return w, total


def _canal_section(m: LabelMapMeasurer, canal: SoftMask, point: FloatArray, e_lr: FloatArray,
                   e_ap: FloatArray, half: float = 18.0,
                   step: float | None = None) -> tuple[float, float, float, FloatArray] | str:
    step = m.fine if step is None else step
    (section,), s1, s2 = _canal_weights(m, canal, [point], e_lr, e_ap, half, step)
    found = _section_weights(section, half)
    if isinstance(found, str):
        return found
    w, total = found
    area = total * step * step
    a, b = np.meshgrid(s1, s2, indexing="ij")
    ma, mb = float((w * a).sum() / total), float((w * b).sum() / total)
    cov = np.array([[(w * (a - ma) ** 2).sum(), (w * (a - ma) * (b - mb)).sum()],
                    [(w * (a - ma) * (b - mb)).sum(), (w * (b - mb) ** 2).sum()]]) / total
    evals, evecs = np.linalg.eigh(cov)
    # Axis more along A-P (second in-plane coordinate) gives the AP diameter.
    ap_axis = int(np.argmax(np.abs(evecs[1, :])))
    ap = 4.0 * math.sqrt(max(evals[ap_axis], 0.0))
    tr = 4.0 * math.sqrt(max(evals[1 - ap_axis], 0.0))
    centroid = point + ma * e_lr + mb * e_ap
    return area, ap, tr, centroid


def _canal(m: LabelMapMeasurer, level: str, label: int, centre: FloatArray, normal: FloatArray,
           e_lr: FloatArray, e_ap: FloatArray, disc_height: float) -> list[Value]:
    values = m.values_by_role.get(Role.CANAL, set()) | m.values_by_role.get(Role.CORD, set())
    quantities = ("canal_ap", "canal_transverse", "canal_area", "canal_area_min")
    if not values:
        return _missing(level, label, "the mask has no canal / thecal sac label", quantities)
    canal = m.soft(values)
    # Where the sac crosses the disc plane: centroid of sac voxels near the plane.
    pts = m.voxels_lps(values)
    rel = pts - centre
    d = _along(rel, normal)
    band = max(1.0, m.resolution_along(normal) / 2)
    near = pts[(np.abs(d) <= band) & (_along(rel, e_ap) > 0)]
    if len(near) == 0:
        return _missing(level, label, "the canal mask does not reach this disc's plane", quantities)
    point = near.mean(axis=0)
    point = point - ((point - centre) @ normal) * normal
    # Every section is a ±18 mm square parallel to the disc plane within ± half the disc height
    # of it: sample the sac within their bounding box only.
    half = disc_height / 2 if math.isfinite(disc_height) else 4.0
    corners = np.array([point + a * 18.0 * e_lr + b * 18.0 * e_ap + c * (half + 0.5) * normal
                        for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)])
    canal_full, canal = canal, m.within(canal, corners)
    section = _canal_section(m, canal, point, e_lr, e_ap)
    if isinstance(section, str):
        return _missing(level, label, section, quantities)
    area, _ap_moment, _tr_moment, centroid = section
    # Diameters as the widest chords (partial-volume run lengths): for coarse masks they beat the
    # second-moment ellipse, whose axes carry the staircase of the voxel boundary.
    ap = m.max_chord(canal_full, centroid, e_ap, e_lr, 0.4 * _tr_moment / 2, normal)
    tr = m.max_chord(canal_full, centroid, e_lr, e_ap, 0.4 * _ap_moment / 2, normal)
    method = ("thecal sac resliced on the plane through the disc centroid normal to the disc "
              f"(linear interpolation, {m.fine:.2f} mm grid); ")
    r_ap, r_lr = m.resolution_along(e_ap), m.resolution_along(e_lr)
    rows = []
    conf, why = _confidence(r_ap, "the antero-posterior direction")
    chord = ("widest partial-volume chord (chord² fitted by a parabola across the middle 40 % of the section, "
             "vertex taken)")
    rows.append(Value(level, "canal_ap", ap, "mm", method + "antero-posterior " + chord,
                      conf, why, None, label, _canal_flag("canal_ap", ap), position_lps=centroid.tolist()))
    conf, why = _confidence(r_lr, "the left-right direction")
    rows.append(Value(level, "canal_transverse", tr, "mm", method + "left-right " + chord,
                      conf, why, None, label, position_lps=centroid.tolist()))
    conf, why = _confidence(max(r_ap, r_lr), "the plane of the section")
    rows.append(Value(level, "canal_area", area, "mm2", method + "area = sum of partial-volume weights",
                      conf, why, None, label, _canal_flag("canal_area", area), position_lps=centroid.tolist()))
    # Minimum over the disc slab (± half the middle disc height).
    # Search on a grid twice as coarse (areas are sums: the coarser grid costs accuracy only at
    # the edge), then measure the best plane on the fine grid.
    best_t, best_area = 0.0, math.inf
    offsets = np.arange(-half, half + 1e-9, 0.5)
    coarse = 2 * m.fine
    sections, _s1, _s2 = _canal_weights(m, canal, [point + t * normal for t in offsets], e_lr, e_ap, 18.0, coarse)
    for t, weights in zip(offsets, sections, strict=True):
        found = _section_weights(weights, 18.0)
        if not isinstance(found, str) and found[1] * coarse * coarse < best_area:
            best_t, best_area = float(t), found[1] * coarse * coarse
    best = (area, 0.0, centroid)
    if best_t != 0.0:
        sec = _canal_section(m, canal, point + best_t * normal, e_lr, e_ap)
        if not isinstance(sec, str) and sec[0] < area:
            best = (sec[0], best_t, sec[3])
    rows.append(Value(level, "canal_area_min", best[0], "mm2",
                      method + f"minimum over planes parallel to it within ±{half:.1f} mm (half the disc height)",
                      conf, why, None, label, _canal_flag("canal_area_min", best[0]),
                      position_lps=best[2].tolist(), extra={"offset_mm": best[1]}))
    return rows


def _foramen(m: LabelMapMeasurer, level: str, label: int, centre: FloatArray, normal: FloatArray,
             e_lr: FloatArray, e_ap: FloatArray, side: str) -> list[Value]:
    quantities = ("foramen_height", "foramen_width", "foramen_area", "posterior_disc_height")
    bone = set().union(*(m.values_by_role.get(r, set()) for r in _BONE))
    walls = bone | {label}
    if not bone:
        return [Value(level, q, NAN, UNITS[q], "", "none", "the mask has no bone labels", side, label, None,
                      "the mask has no bone labels") for q in quantities]
    sign = 1.0 if side == "left" else -1.0
    step = max(m.fine * 1.5, 0.25)
    detect = max(step, 0.5)  # the search for closed planes runs on a coarser grid
    lateral_step = min(0.5, m.resolution_along(e_lr) / 2)
    found: list[Any] = []
    offsets = np.arange(8.0, 35.0, lateral_step)
    for first in range(0, len(offsets), _PLANES_AT_ONCE):
        batch = offsets[first:first + _PLANES_AT_ONCE]
        origins = [centre + sign * offset * e_lr for offset in batch]
        closed = _foramen_planes(m, origins, e_ap, normal, walls, label, detect).closed
        past = False
        for offset, origin, is_closed in zip(batch, origins, closed, strict=True):
            if found and found[-1][0] < offset - 1.5 * lateral_step:
                past = True  # the foramen's planes are contiguous: past them, stop looking
                break
            if is_closed:
                found.append((offset, origin))
        if past:
            break
    r_in = max(m.resolution_along(e_ap), m.resolution_along(normal))
    if not found:
        reason = ("no closed foramen on the parasagittal planes: the mask must label the posterior "
                  "elements (pedicles, facets) as well as the bodies and discs")
        return [Value(level, q, NAN, UNITS[q], "", "none", reason, side, label, None, reason) for q in quantities]
    offset, origin = found[len(found) // 2]
    fine_region = _closed_foramen(m, origin, e_ap, normal, walls, label, step)
    if fine_region is None:
        reason = "the foramen closes on the coarse search grid but not on the fine one (a gap under 0.5 mm)"
        return [Value(level, q, NAN, UNITS[q], "", "none", reason, side, label, None, reason) for q in quantities]
    region, s_ap, s_u, is_disc, a_post = fine_region
    area = float(region.sum() * step * step)
    coords = np.argwhere(region)
    a_lo, a_hi = s_ap[coords[:, 0]].min(), s_ap[coords[:, 0]].max()
    u_lo, u_hi = s_u[coords[:, 1]].min(), s_u[coords[:, 1]].max()
    centroid = origin + s_ap[coords[:, 0]].mean() * e_ap + s_u[coords[:, 1]].mean() * normal
    # Height and width with sub-voxel edges: partial-volume run lengths of free space (1 - walls)
    # along lines across the middle half of the region, averaged.
    # Each line starts in the middle of the region's own pixels on that column / row.
    height_starts: list[FloatArray] = []
    width_starts: list[FloatArray] = []
    across = (np.cross(e_ap, normal), normal)
    for frac in np.linspace(0.25, 0.75, 7):
        col = int(np.argmin(np.abs(s_ap - (a_lo + frac * (a_hi - a_lo)))))
        in_col = np.nonzero(region[col, :])[0]
        if in_col.size:
            height_starts.append(origin + s_ap[col] * e_ap + s_u[in_col].mean() * normal)
        row = int(np.argmin(np.abs(s_u - (u_lo + frac * (u_hi - u_lo)))))
        in_row = np.nonzero(region[:, row])[0]
        if in_row.size:
            p = origin + s_ap[in_row].mean() * e_ap + s_u[row] * normal
            width_starts.append(bundle_starts(p, across, (0.6, 0.3), 3))
    # All lines in one call: a height is the exits up and down the normal from its start, a width
    # the mean exit of a 3 x 3 bundle forwards plus that of the same bundle backwards along A-P.
    n_h, n_w = len(height_starts), len(width_starts)
    h_starts = np.reshape(height_starts, (n_h, 3))
    w_starts = np.reshape(width_starts, (n_w * 9, 3))
    starts = np.concatenate([h_starts, h_starts, w_starts, w_starts])
    directions = np.concatenate([np.broadcast_to(v, (n, 3)) for v, n in
                                 ((normal, n_h), (-normal, n_h), (e_ap, 9 * n_w), (-e_ap, 9 * n_w))])
    # Free space is sampled on the walls within the box these lines reach only.
    reach = 40.0 + m.fine
    free = m.soft_within(walls, np.concatenate([starts, starts + reach * directions]), complement=True)
    exits = m.exits(free, starts, directions, 40.0)
    heights = exits[:n_h] + exits[n_h:2 * n_h]
    bundles = exits[2 * n_h:].reshape(2, n_w, 9).mean(axis=2)
    widths = bundles[0] + bundles[1]
    height = float(np.nanmean(heights)) if np.isfinite(heights).any() else NAN
    # Width is the narrowest gap (a slipped body or a bulge narrows one part only): the mean of
    # the lines within 0.5 mm of the narrowest, so that one line's voxel phase does not decide.
    # A gap that varies by less than 0.75 mm is uniform: then all lines count.
    finite_w = np.asarray(widths)[np.isfinite(widths)]
    if finite_w.size == 0:
        width = NAN
    elif np.ptp(finite_w) <= 0.75:
        width = float(finite_w.mean())
    else:
        width = float(finite_w[finite_w <= finite_w.min() + 0.5].mean())
    # Posterior disc height on this plane, 10 % of the disc's depth in from its posterior margin.
    row0 = int(np.argmin(np.abs(s_u)))
    cols = np.nonzero(is_disc[:, row0])[0]
    depth = (cols.max() - cols.min() + 1) * step
    a_pdh = s_ap[a_post] + step / 2 - 0.1 * depth
    disc = m.soft({label})
    pdh = m.bundle_run_length(disc, origin + a_pdh * e_ap, normal, (-25.0, 25.0),
                              (np.cross(e_ap, normal), e_ap), (0.5, 0.5), 3)
    conf, why = _confidence(r_in, "the parasagittal plane")
    method = (f"closed unlabelled region behind the disc on parasagittal planes (nearest-label reslice, "
              f"{step:.2f} mm grid); the middle of {len(found)} plane(s) where it is closed, "
              f"{offset:.1f} mm {side} of the disc centre")
    plane_note = (f"; planes {lateral_step:.2f} mm apart, the mask samples left-right every "
                  f"{m.resolution_along(e_lr):.1f} mm")
    rows = [
        Value(level, "foramen_height", height, "mm",
              method + "; extent along the disc normal (partial-volume edges, mean over its middle half)",
              conf, why + plane_note,
              side, label, "foraminal height ≤ 15 mm (Hasegawa 1995)" if height <= 15 else None,
              position_lps=centroid.tolist()),
        Value(level, "foramen_width", width, "mm",
              method + "; narrowest antero-posterior gap over its middle half (partial-volume edges)",
              conf, why + plane_note, side, label, _width_flag(width), position_lps=centroid.tolist()),
        Value(level, "foramen_area", area, "mm2", method + "; region area", conf, why + plane_note, side, label,
              position_lps=centroid.tolist()),
        Value(level, "posterior_disc_height", pdh, "mm",
              method + "; disc extent along the normal at 10 % of its depth from the posterior margin",
              conf, why + plane_note, side, label,
              "posterior disc height ≤ 4 mm (Hasegawa 1995)" if pdh <= 4 else None, position_lps=centroid.tolist()),
    ]
    if height <= 15 and pdh <= 4:
        for r in rows:
            if r.quantity in ("foramen_height", "posterior_disc_height"):
                r.flag = (r.flag or "") + "; both Hasegawa criteria met (root compression in 80 % of such foramina)"
    return rows


_PLANES_AT_ONCE = 4  # parasagittal planes sampled and labelled together in the foramen search
# Connected within each plane of a stack of planes, never across: one labelling for the stack.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


@dataclass
class _Planes:
    """Parasagittal planes of :func:`_foramen_planes`, each ``(n_ap, n_u)`` on the grid ``s_ap``
    x ``s_u``: where the disc is (nearest label), connected components of the unlabelled space (numbered across
    the stack), the component behind the disc (0 where there is none) and whether it is closed."""

    s_ap: FloatArray
    s_u: FloatArray
    is_disc: npt.NDArray[np.bool_]
    comps: npt.NDArray[np.int32]
    seeds: npt.NDArray[np.intp]
    a_post: npt.NDArray[np.intp]
    closed: npt.NDArray[np.bool_]


def _foramen_planes(m: LabelMapMeasurer, origins: list[FloatArray], e_ap: FloatArray, normal: FloatArray,
                    walls: set[int], label: int, step: float) -> _Planes:
    """The unlabelled region behind the disc on parasagittal planes through ``origins`` (on a
    grid of ``step`` mm), sampled and labelled together: it is closed on a plane when the disc
    crosses the plane's middle row, some space is free behind it on that row, and the
    component of that space touches none of the plane's edges."""
    planes = [m.plane_lines(origin, e_ap, normal, (-20.0, 45.0), (-25.0, 25.0), step) for origin in origins]
    _starts, steps, s_ap, s_u = planes[0]  # the steps and grid are the same on every plane
    starts = np.stack([p[0] for p in planes], axis=1)  # (3, planes, n_ap)
    coords = starts[:, :, :, None] + s_u[None, None, None, :] * steps[:, None, :, None]
    if m.label_index is None:
        lab = nearest_labels(m.labels, coords)
        is_wall = np.isin(lab, list(walls))
        disc = label
    else:
        # Label indices (0 -> label_min), so that the wall table takes them as they are.
        lab = nearest_labels(m.label_index, coords, outside=-m.label_min)
        is_wall = m.label_table(walls)[lab]
        disc = label - m.label_min
    n_ap = len(s_ap)
    row0 = int(np.argmin(np.abs(s_u)))
    disc_row = lab[:, :, row0] == disc
    has_disc = disc_row.any(axis=1)
    a_post = n_ap - 1 - np.argmax(disc_row[:, ::-1], axis=1)  # the disc's last column on the row
    free_after = ~is_wall[:, :, row0] & (np.arange(n_ap) >= a_post[:, None])
    has_free = free_after.any(axis=1)
    comps, n_comps = ndimage.label(~is_wall, structure=_IN_PLANE)
    rows = np.arange(len(origins))
    seeds = np.where(has_disc & has_free, comps[rows, np.argmax(free_after, axis=1), row0], 0)
    on_edge = np.zeros(n_comps + 1, dtype=bool)
    for edge in (comps[:, 0, :], comps[:, -1, :], comps[:, :, 0], comps[:, :, -1]):
        on_edge[edge] = True
    closed = (seeds > 0) & ~on_edge[seeds]
    return _Planes(s_ap, s_u, lab == disc, comps, seeds, a_post, closed)


def _closed_foramen(m: LabelMapMeasurer, origin: FloatArray, e_ap: FloatArray, normal: FloatArray,
                    walls: set[int], label: int, step: float) -> tuple[Any, FloatArray, FloatArray, Any, int] | None:
    """The closed unlabelled region behind the disc on one parasagittal plane (on a grid of
    ``step`` mm), or None when the region behind the disc is open on this plane."""
    planes = _foramen_planes(m, [origin], e_ap, normal, walls, label, step)
    if not planes.closed[0]:
        return None  # open: not a foramen on this plane
    return (planes.comps[0] == planes.seeds[0], planes.s_ap, planes.s_u, planes.is_disc[0],
            int(planes.a_post[0]))


def _width_flag(width: float) -> str | None:
    if width < 2:
        return "foraminal width < 2 mm: severe (compendium grading, secondary source)"
    if width < 3:
        return "foraminal width 2-3 mm: moderate (compendium grading, secondary source)"
    if width < 4:
        return "foraminal width 3-4 mm: mild (compendium grading, secondary source)"
    return None
