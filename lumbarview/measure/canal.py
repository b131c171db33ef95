"""The central canal at one level: the thecal sac's section on the level plane.

The sac mask (roles ``canal`` + ``cord``) is resliced on the plane through the disc centroid
normal to the disc, with linear interpolation on a grid of 1/5 of the finest voxel size (SCT's
``compute_shape``, ``docs/measurements.md`` §8): area = Σ weights × pixel area; AP and transverse
diameters are the widest partial-volume chords; the minimum area over ± half the disc height.
Each value carries the lines it was measured on: the section's 0.5 iso-line (traced on the very
weights that were summed) and the two chords between the points where the sac ends.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from lumbarview.core.geometry import FloatArray
from lumbarview.core.labels import Role
from lumbarview.measure import cutoffs
from lumbarview.measure.measurer import LabelMapMeasurer, along
from lumbarview.measure.results import MeasuredGeometry, Polyline, Value, confidence, missing
from lumbarview.measure.sampling import SoftMask

_N_RAYS = 180  # rays of the traced section outline (2° apart)
_QUANTITIES = ("canal_ap", "canal_transverse", "canal_area", "canal_area_min")


class _Section:
    """One section of the sac: its weights on the plane grid and what they give."""

    def __init__(self, weights: npt.NDArray[np.float32], total: float, s1: FloatArray, s2: FloatArray,
                 point: FloatArray, e_lr: FloatArray, e_ap: FloatArray, step: float) -> None:
        self.weights, self.s1, self.s2, self.point, self.e_lr, self.e_ap, self.step = (
            weights, s1, s2, point, e_lr, e_ap, step)
        self.area = total * step * step
        a, b = np.meshgrid(s1, s2, indexing="ij")
        w = weights
        ma, mb = float((w * a).sum() / total), float((w * b).sum() / total)
        cov = np.array([[(w * (a - ma) ** 2).sum(), (w * (a - ma) * (b - mb)).sum()],
                        [(w * (a - ma) * (b - mb)).sum(), (w * (b - mb) ** 2).sum()]]) / total
        evals, evecs = np.linalg.eigh(cov)
        # Axis more along A-P (second in-plane coordinate) gives the AP diameter.
        ap_axis = int(np.argmax(np.abs(evecs[1, :])))
        self.ap_moment = 4.0 * math.sqrt(max(evals[ap_axis], 0.0))
        self.tr_moment = 4.0 * math.sqrt(max(evals[1 - ap_axis], 0.0))
        self.in_plane = (ma, mb)
        self.centroid: FloatArray = point + ma * e_lr + mb * e_ap

    def outline(self) -> FloatArray:
        """The iso-line of the section's weights (bilinear on the same grid that was summed)
        that encloses the measured area, traced along rays 2° apart from the centroid (a thecal
        sac's section is star-shaped around it); ``(N, 3)`` LPS. Its level is found by bisection
        and stays near 0.5: the 0.5 line itself cuts the voxel staircase's corners (about 0.7 %
        of the area of a 1 mm mask), which the sum of weights does not."""
        ma, mb = self.in_plane
        angles = np.linspace(0.0, 2 * math.pi, _N_RAYS, endpoint=False)
        fine = self.step / 2
        r = np.arange(0.0, self.s1[-1] - self.s1[0], fine)
        ca, sb = np.cos(angles)[:, None], np.sin(angles)[:, None]
        ia = (ma + r[None, :] * ca - self.s1[0]) / self.step
        ib = (mb + r[None, :] * sb - self.s2[0]) / self.step
        w = ndimage.map_coordinates(self.weights, np.stack([ia, ib]), order=1, mode="constant", cval=0.0)
        rays = np.arange(len(angles))

        def radii(level: float) -> FloatArray | None:
            below = w < level
            if below[:, 0].any():  # the centroid is not inside: no star-shaped outline around it
                return None
            i = np.argmax(below, axis=1)
            if not below[rays, i].all():
                return None
            w0, w1 = w[rays, i - 1], w[rays, i]
            found: FloatArray = r[i - 1] + (w0 - level) / np.where(w0 > w1, w0 - w1, 1.0) * fine
            return found

        def enclosed(radius: FloatArray) -> float:
            return float(0.5 * np.sum(radius * np.roll(radius, -1)) * math.sin(2 * math.pi / len(angles)))

        lo, hi = 0.3, 0.7  # a lower level reaches further out and encloses more
        radius = radii(0.5)
        if radius is None:
            return np.zeros((0, 3))
        for _ in range(30):
            level = (lo + hi) / 2
            found = radii(level)
            if found is None:
                break
            radius = found
            if enclosed(found) > self.area:
                lo = level
            else:
                hi = level
        return np.asarray(self.centroid + radius[:, None] * (ca * self.e_lr + sb * self.e_ap), dtype=np.float64)


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
                   e_ap: FloatArray, half: float = 18.0, step: float | None = None) -> _Section | str:
    step = m.fine if step is None else step
    (section,), s1, s2 = _canal_weights(m, canal, [point], e_lr, e_ap, half, step)
    found = _section_weights(section, half)
    if isinstance(found, str):
        return found
    w, total = found
    return _Section(w, total, s1, s2, point, e_lr, e_ap, step)


def measure_canal(m: LabelMapMeasurer, level: str, label: int, centre: FloatArray, normal: FloatArray,
                  e_lr: FloatArray, e_ap: FloatArray, disc_height: float) -> list[Value]:
    """The canal's values at one level (see the module), each with its geometry on the level
    plane (screen right = patient left, down = posterior, as a radiological axial)."""
    values = m.values_by_role.get(Role.CANAL, set()) | m.values_by_role.get(Role.CORD, set())
    if not values:
        return missing(level, label, "the mask has no canal / thecal sac label", _QUANTITIES)
    canal = m.soft(values)
    # Where the sac crosses the disc plane: centroid of sac voxels near the plane.
    pts = m.voxels_lps(values)
    rel = pts - centre
    d = along(rel, normal)
    band = max(1.0, m.resolution_along(normal) / 2)
    near = pts[(np.abs(d) <= band) & (along(rel, e_ap) > 0)]
    if len(near) == 0:
        return missing(level, label, "the canal mask does not reach this disc's plane", _QUANTITIES)
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
        return missing(level, label, section, _QUANTITIES)
    area, centroid = section.area, section.centroid
    # Diameters as the widest chords (partial-volume run lengths): for coarse masks they beat the
    # second-moment ellipse, whose axes carry the staircase of the voxel boundary.
    ap, ap_at = m.max_chord(canal_full, centroid, e_ap, e_lr, 0.4 * section.tr_moment / 2, normal)
    tr, tr_at = m.max_chord(canal_full, centroid, e_lr, e_ap, 0.4 * section.ap_moment / 2, normal)
    plane = MeasuredGeometry(centroid, e_lr, e_ap)
    outline = _line("canal contour", section.outline(), closed=True)
    ap_line = _line("canal ap", m.chord_ends(canal_full, ap_at, e_ap))
    tr_line = _line("canal transverse", m.chord_ends(canal_full, tr_at, e_lr))
    chords = tuple(p for p in (ap_line, tr_line) if p is not None)
    method = ("thecal sac resliced on the plane through the disc centroid normal to the disc "
              f"(linear interpolation, {m.fine:.2f} mm grid); ")
    r_ap, r_lr = m.resolution_along(e_ap), m.resolution_along(e_lr)
    rows = []
    conf, why = confidence(r_ap, "the antero-posterior direction")
    chord = ("widest partial-volume chord (chord² fitted by a parabola across the middle 40 % of the section, "
             "vertex taken)")
    rows.append(Value(level, "canal_ap", ap, "mm", method + "antero-posterior " + chord,
                      conf, why, None, label, cutoffs.flag("canal_ap", ap), position_lps=centroid.tolist(),
                      geometry=plane.with_lines(ap_line, outline, rest=chords)))
    conf, why = confidence(r_lr, "the left-right direction")
    rows.append(Value(level, "canal_transverse", tr, "mm", method + "left-right " + chord,
                      conf, why, None, label, position_lps=centroid.tolist(),
                      geometry=plane.with_lines(tr_line, outline, rest=chords)))
    conf, why = confidence(max(r_ap, r_lr), "the plane of the section")
    rows.append(Value(level, "canal_area", area, "mm2", method + "area = sum of partial-volume weights",
                      conf, why, None, label, cutoffs.flag("canal_area", area), position_lps=centroid.tolist(),
                      geometry=plane.with_lines(outline, rest=chords)))
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
    best, best_offset = section, 0.0
    if best_t != 0.0:
        sec = _canal_section(m, canal, point + best_t * normal, e_lr, e_ap)
        if not isinstance(sec, str) and sec.area < area:
            best, best_offset = sec, best_t
    min_geometry = (rows[-1].geometry if best is section else
                    MeasuredGeometry(best.centroid, e_lr, e_ap).with_lines(
                        _line("canal contour (minimum)", best.outline(), closed=True)))
    rows.append(Value(level, "canal_area_min", best.area, "mm2",
                      method + f"minimum over planes parallel to it within ±{half:.1f} mm (half the disc height)",
                      conf, why, None, label, cutoffs.flag("canal_area_min", best.area),
                      position_lps=best.centroid.tolist(), extra={"offset_mm": best_offset},
                      geometry=min_geometry))
    return rows


def _line(name: str, points: FloatArray | None, closed: bool = False) -> Polyline | None:
    """A polyline of ``points`` (None when there are too few to draw)."""
    if points is None or len(points) < (3 if closed else 2):
        return None
    return Polyline(name, np.asarray(points, dtype=np.float64), closed)
