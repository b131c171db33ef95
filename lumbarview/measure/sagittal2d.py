"""Disc heights, DHI, slip and canal AP from one mid-sagittal 2D label mask (LSS-MRI-AISSLab).

The mask is one slice: a class per pixel (vertebral body, disc, sacrum, posterior elements, and
where the scheme has one, the canal). Every disc is one connected region of the disc class; the
levels are counted up from the sacrum (the lowest disc above it is L5-S1), which assumes five
lumbar vertebrae. All geometry is in LPS mm through the slice's own geometry, with the same
definitions as the 3D engine (:mod:`lumbarview.measure.engine`), restricted to the slice:

* **disc frame**: the disc region's principal axes: its long axis is antero-posterior
  (``e_ap``, pointing posterior), the in-plane perpendicular is the disc normal (superior);
* **disc heights** along the normal at 10 % of the disc depth from its anterior and posterior
  margins and at its middle (mean of lines ±1 mm apart along ``e_ap``);
* **DHI** = mean of the three heights / mean height of the adjacent vertebral bodies;
* **slip** = offset between the posterior walls of the bodies above and below, 6 mm from the disc;
* **canal AP**: the canal run along ``e_ap`` behind the disc, where the scheme has a canal class.

Confidence says it is one slice: a value off the midline, and lateral slips, are not seen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from lumbarview.core.geometry import FloatArray, PlaneOrientation, VolumeGeometry
from lumbarview.core.labels import LabelScheme, Role
from lumbarview.measure.cutoffs import dhi_flag, slip_flag
from lumbarview.measure.results import NAN, Confidence, Value
from lumbarview.measure.results import confidence as _confidence

#: Levels from the sacrum up.
LEVELS_FROM_SACRUM = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1", "T11-T12", "T10-T11")
#: Disc regions smaller than this are noise (mm²).
MIN_DISC_AREA_MM2 = 15.0
_STEP_MM = 0.05
_ONE_SLICE = ("one mid-sagittal slice: values off the midline and lateral slips are not seen, and the level is "
              "counted up from the sacrum (assumes five lumbar vertebrae)")
_SUPERIOR = np.array([0.0, 0.0, 1.0])
_POSTERIOR = np.array([0.0, 1.0, 0.0])


class SliceMask:
    """A 2D label mask on its slice, sampled in LPS mm (linear interpolation of 0/1 masks)."""

    def __init__(self, labels_2d: npt.NDArray[Any], geometry: VolumeGeometry) -> None:
        self.labels = np.asarray(labels_2d)
        self.geometry = geometry
        self.spacing_mm = geometry.spacing_mm[:2]

    def to_rc(self, points_lps: FloatArray) -> FloatArray:
        ijk = np.asarray(points_lps, dtype=np.float64) @ self.geometry.lps_to_ijk[:3, :3].T + \
            self.geometry.lps_to_ijk[:3, 3]
        return np.stack([ijk[..., 1], ijk[..., 0]], axis=-1)  # (row, col)

    def pixel_lps(self, rows: npt.NDArray[Any], cols: npt.NDArray[Any]) -> FloatArray:
        ijk = np.stack([cols, rows, np.zeros_like(cols)], axis=-1).astype(np.float64)
        return self.geometry.index_to_lps(ijk)

    def run(self, mask: npt.NDArray[np.float32], start: FloatArray, direction: FloatArray,
            span: tuple[float, float]) -> tuple[float, float]:
        """The run of ``mask`` (≥ 0.5) along ``direction`` that contains ``start``: the distances
        (mm, signed) of its two ends from ``start``; NaN when ``start`` is outside the mask."""
        t = np.arange(span[0], span[1] + _STEP_MM / 2, _STEP_MM)
        points = start[None, :] + t[:, None] * direction[None, :]
        rc = self.to_rc(points)
        values = ndimage.map_coordinates(mask, [rc[:, 0], rc[:, 1]], order=1, mode="constant", cval=0.0)
        inside = values >= 0.5
        zero = int(np.argmin(np.abs(t)))
        if not inside[zero]:
            return NAN, NAN
        lo = zero
        while lo > 0 and inside[lo - 1]:
            lo -= 1
        hi = zero
        while hi < len(t) - 1 and inside[hi + 1]:
            hi += 1
        return float(t[lo]), float(t[hi])

    def length(self, mask: npt.NDArray[np.float32], start: FloatArray, direction: FloatArray,
               span: tuple[float, float], spread: FloatArray | None = None, spread_mm: float = 1.0) -> float:
        """Mean run length through ``start`` over lines shifted by -spread..+spread along ``spread``."""
        offsets = np.linspace(-spread_mm, spread_mm, 5) if spread is not None else np.zeros(1)
        lengths = []
        for o in offsets:
            origin = start + (o * spread if spread is not None else 0.0)
            a, b = self.run(mask, origin, direction, span)
            if math.isfinite(a):
                lengths.append(b - a + _STEP_MM)
        return float(np.mean(lengths)) if len(lengths) >= max(1, len(offsets) // 2 + 1) else NAN

    def exit(self, mask: npt.NDArray[np.float32], start: FloatArray, direction: FloatArray, limit: float) -> float:
        """How far from ``start`` (inside the mask) the mask ends along ``direction``."""
        _a, b = self.run(mask, start, direction, (0.0, limit))
        return b


def _soft(labels: npt.NDArray[Any], values: set[int]) -> npt.NDArray[np.float32]:
    return np.isin(labels, list(values)).astype(np.float32)


def _disc_regions(m: SliceMask, disc_values: set[int]) -> list[tuple[FloatArray, npt.NDArray[np.bool_]]]:
    """Disc regions (centroid LPS, region mask) bigger than the noise floor."""
    regions, n = ndimage.label(np.isin(m.labels, list(disc_values)))
    pixel_area = m.spacing_mm[0] * m.spacing_mm[1]
    out = []
    for index in range(1, n + 1):
        region = regions == index
        if region.sum() * pixel_area < MIN_DISC_AREA_MM2:
            continue
        rows, cols = np.nonzero(region)
        centre = m.pixel_lps(rows, cols).mean(axis=0)
        out.append((centre, region))
    return out


def measure_sagittal_mask(labels_2d: npt.NDArray[Any], geometry: VolumeGeometry, scheme: LabelScheme) -> list[Value]:
    """The values of one mid-sagittal mask (see the module). Never raises for the mask's
    content: what cannot be measured is a row with a NaN value and its ``reason``."""
    m = SliceMask(labels_2d, geometry)
    values_by_role: dict[Role, set[int]] = {}
    present = {int(v) for v in np.unique(m.labels)}
    for value in present:
        values_by_role.setdefault(scheme.entry(value).role, set()).add(value)
    if geometry.orientation is not PlaneOrientation.SAGITTAL:
        return [_nothing("the mask is not on a sagittal slice; 2D disc measurements need the mid-sagittal slice")]
    discs = values_by_role.get(Role.DISC, set())
    if not discs:
        return [_nothing("the mask has no disc class")]
    regions = _disc_regions(m, discs)
    if not regions:
        return [_nothing("no disc region in the mask is larger than the noise floor "
                         f"({MIN_DISC_AREA_MM2:.0f} mm²)")]
    regions.sort(key=lambda r: float(r[0] @ _SUPERIOR))
    sacrum_values = values_by_role.get(Role.SACRUM, set())
    level_note = ""
    if sacrum_values:
        rows, cols = np.nonzero(np.isin(m.labels, list(sacrum_values)))
        sacrum_centre = float((m.pixel_lps(rows, cols) @ _SUPERIOR).mean())
        # Disc remnants below the middle of the sacrum (between fused sacral segments) are not lumbar.
        regions = [r for r in regions if float(r[0] @ _SUPERIOR) > sacrum_centre]
    else:
        level_note = "no sacrum in the mask: levels are numbered from the lowest disc, not named"
    in_plane_normal = geometry.slice_normal
    bodies = _soft(m.labels, values_by_role.get(Role.VERTEBRA, set()))
    bone = _soft(m.labels, values_by_role.get(Role.VERTEBRA, set()) | sacrum_values)
    canal_values = values_by_role.get(Role.CANAL, set())
    canal = _soft(m.labels, canal_values) if canal_values else None
    out: list[Value] = []
    for n, (centre, region) in enumerate(regions):
        if level_note:
            level = f"disc {n + 1} from the bottom"
        elif n < len(LEVELS_FROM_SACRUM):
            level = LEVELS_FROM_SACRUM[n]
        else:
            level = f"disc {n + 1} above the sacrum"
        out.extend(_measure_disc(m, level, centre, region, in_plane_normal, bodies, bone, canal, level_note))
    return out


def _nothing(reason: str) -> Value:
    return Value("", "disc_height_middle", NAN, "mm", "", Confidence.NONE, reason, reason=reason)


def _frame(m: SliceMask, region: npt.NDArray[np.bool_], slice_normal: FloatArray) -> tuple[FloatArray, FloatArray]:
    rows, cols = np.nonzero(region)
    points = m.pixel_lps(rows, cols)
    centred = points - points.mean(axis=0)
    _w, vectors = np.linalg.eigh(centred.T @ centred)
    e_ap = vectors[:, 2]  # the longest axis
    e_ap = e_ap - (e_ap @ slice_normal) * slice_normal
    e_ap = e_ap / np.linalg.norm(e_ap)
    if e_ap @ _POSTERIOR < 0:
        e_ap = -e_ap
    normal = np.cross(slice_normal, e_ap)
    normal = normal / np.linalg.norm(normal)
    if normal @ _SUPERIOR < 0:
        normal = -normal
    return e_ap, normal


def _measure_disc(m: SliceMask, level: str, centre: FloatArray, region: npt.NDArray[np.bool_],
                  slice_normal: FloatArray, bodies: npt.NDArray[np.float32], bone: npt.NDArray[np.float32],
                  canal: npt.NDArray[np.float32] | None, level_note: str) -> list[Value]:
    disc = region.astype(np.float32)
    e_ap, normal = _frame(m, region, slice_normal)
    pixel = float(min(m.spacing_mm))
    conf, why = _confidence(pixel, "the slice")
    conf = Confidence.MEDIUM if conf is Confidence.HIGH else conf
    why = f"{_ONE_SLICE}; {why}" + (f"; {level_note}" if level_note else "")
    post = m.exit(disc, centre, e_ap, 80.0)
    ant = m.exit(disc, centre, -e_ap, 80.0)
    heights_q = ("disc_height_anterior", "disc_height_middle", "disc_height_posterior")
    if not (math.isfinite(post) and math.isfinite(ant)):
        reason = "the disc's antero-posterior margins were not found on the slice"
        return [Value(level, q, NAN, "mm", "", Confidence.NONE, reason, reason=reason)
                for q in (*heights_q, "dhi", "slip")]
    depth = post + ant
    positions = {"disc_height_anterior": -ant + 0.1 * depth, "disc_height_middle": (post - ant) / 2,
                 "disc_height_posterior": post - 0.1 * depth}
    method = ("2D mask: disc region sampled along the disc normal (its in-plane short axis; mean of 5 lines "
              "within ±1 mm antero-posterior), at 10 % of the disc depth from its anterior and posterior "
              "margins and at the middle")
    rows: list[Value] = []
    heights: dict[str, float] = {}
    for q, a in positions.items():
        start = centre + a * e_ap
        h = m.length(disc, start, normal, (-30.0, 30.0), e_ap, 1.0)
        heights[q] = h
        missing = None if math.isfinite(h) else "the disc region is not crossed there"
        rows.append(Value(level, q, h, "mm", method, conf if missing is None else Confidence.NONE, why, None, None,
                          reason=missing, position_lps=start.tolist()))
    mid = centre + positions["disc_height_middle"] * e_ap
    h_mid = heights["disc_height_middle"]
    body_heights = []
    if math.isfinite(h_mid):
        for sign in (1.0, -1.0):
            enter = mid + sign * (h_mid / 2 + 1.5) * normal
            h_body = m.length(bodies, enter, normal, (-10.0, 60.0) if sign > 0 else (-60.0, 10.0), e_ap, 2.0)
            if math.isfinite(h_body):
                body_heights.append(h_body)
    mean_h = float(np.mean([heights[q] for q in heights_q]))
    if body_heights and math.isfinite(mean_h):
        dhi = mean_h / float(np.mean(body_heights))
        flag = dhi_flag(dhi)
        rows.append(Value(level, "dhi", dhi, "ratio",
                          "2D mask: mean(anterior, middle, posterior disc height) / mean height of the adjacent "
                          f"vertebral bodies along the disc normal ({len(body_heights)} body/bodies on the slice)",
                          conf, why, None, None, flag))
    else:
        reason = "no adjacent vertebral body crossed on the slice"
        rows.append(Value(level, "dhi", NAN, "ratio", "", Confidence.NONE, reason, reason=reason))
    rows.append(_slip(m, level, bone, mid, normal, e_ap, h_mid, conf, why))
    rows.append(_canal_ap(m, level, canal, centre, e_ap, post, conf, why))
    return rows


def _slip(m: SliceMask, level: str, bone: npt.NDArray[np.float32], mid: FloatArray, normal: FloatArray,
          e_ap: FloatArray, disc_h: float, conf: Confidence, why: str) -> Value:
    reason = "the vertebral bodies above and below are not both on the slice"
    if not math.isfinite(disc_h):
        return Value(level, "slip", NAN, "mm", "", Confidence.NONE, reason, reason=reason)
    walls = []
    depth_below = NAN
    for sign in (1.0, -1.0):
        inside = mid + sign * (disc_h / 2 + 6.0) * normal
        walls.append(m.exit(bone, inside, e_ap, 80.0))
        if sign < 0:
            depth_below = walls[-1] + m.exit(bone, inside, -e_ap, 80.0)
    if not all(math.isfinite(w) for w in walls):
        return Value(level, "slip", NAN, "mm", "", Confidence.NONE, reason, reason=reason)
    slip = walls[1] - walls[0]  # positive: the upper body sits anterior to the lower one
    percent = 100.0 * slip / depth_below if math.isfinite(depth_below) and depth_below > 0 else NAN
    flag = slip_flag(slip, percent)
    return Value(level, "slip", slip, "mm",
                 "2D mask: offset between the posterior walls of the bodies above and below, along the disc's "
                 "antero-posterior axis, 6 mm from the disc", conf, why, None, None, flag,
                 extra={"slip_percent": percent})


def _canal_ap(m: SliceMask, level: str, canal: npt.NDArray[np.float32] | None, centre: FloatArray,
              e_ap: FloatArray, post: float, conf: Confidence, why: str) -> Value:
    if canal is None:
        reason = "the mask has no canal class (LSS-MRI-AISSLab labels bone, disc and posterior elements only)"
        return Value(level, "canal_ap", NAN, "mm", "", Confidence.NONE, reason, reason=reason)
    t = np.arange(post, post + 40.0, _STEP_MM)
    rc = m.to_rc(centre[None, :] + t[:, None] * e_ap[None, :])
    inside = ndimage.map_coordinates(canal, [rc[:, 0], rc[:, 1]], order=1, mode="constant") >= 0.5
    if not inside.any():
        reason = "no canal behind the disc on the slice"
        return Value(level, "canal_ap", NAN, "mm", "", Confidence.NONE, reason, reason=reason)
    first = int(np.argmax(inside))
    start = centre + t[first] * e_ap
    length = m.length(canal, start + 0.5 * e_ap, e_ap, (-5.0, 40.0))
    return Value(level, "canal_ap", length, "mm",
                 "2D mask: canal run along the disc's antero-posterior axis through the disc centre",
                 conf, why, None, None, None, position_lps=start.tolist())
