"""The dural sac on one axial (or disc-aligned oblique) plane from one click.

The recipe (``docs``: anchors-wave3 §A5; the trials there showed thresholds from the seed's own
statistics leaking into epidural fat when the click lands on a rootlet):

1. Smooth lightly (Gaussian, 0.2 mm) and look only inside a disk of ``radius_mm`` around the
   click (the radius limit: no region can grow past it).
2. **Snap** the click to the brightest smoothed pixel within ``snap_mm`` (a click on a dark rootlet
   or on the dura moves into the CSF beside it).
3. **Threshold from the region**, not from the seed: Otsu's threshold of the smoothed pixels in
   the disk. The snapped seed must be clearly bright (above the middle between the threshold and
   the disk's bright level); otherwise the click was not in the sac, and nothing is returned.
4. The bright component holding the seed, after an opening by reconstruction (a bridge thinner
   than the opening's radius, e.g. a gap in a partial-volumed dura, cannot carry the region into
   the fat), closed with a 2.5 mm disk (rootlets crowded against the dura become holes) and with its
   holes filled (rootlets are inside the sac).
5. **Sub-pixel outline**: the iso-contour of the smoothed image at the middle between the sac's
   CSF level (median inside) and the dura's level (low percentile of a thin band just outside),
   taken around the region; the outline of a blurred step edge lies at its half height. The area is
   the polygon's (shoelace); AP and transverse diameters are those of the ellipse with the same
   second moments (as the engine measures a canal mask: SCT's recipe).
6. A region that reaches the radius limit is refused (a leak, or a click outside the sac); an area
   above ``warn_area_mm2`` is returned with a warning.

Everything here is in the plane's pixel frame (row, column) with its pixel size in mm; the service
(``services.segment``) maps the outline to LPS.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage import filters, measure

from lumbarview.core.errors import MeasurementError

FloatArray = npt.NDArray[np.float64]


class ClickOutsideSacError(MeasurementError):
    """The click (after snapping) is not in a bright, bounded region that could be the dural sac."""


@dataclass(frozen=True)
class CanalParameters:
    """The knobs of :func:`canal_from_click` (kept with every result as its provenance)."""

    radius_mm: float = 15.0
    snap_mm: float = 2.0
    smooth_mm: float = 0.2
    opening_mm: float = 0.7
    closing_mm: float = 2.5
    warn_area_mm2: float = 400.0
    min_area_mm2: float = 10.0
    min_contrast: float = 1.6

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CanalContour:
    """A sac outline on the plane: ``contour_rc`` (N, 2) sub-pixel (row, column), closed (the
    first point is not repeated); area in mm2; AP and transverse diameters in mm."""

    contour_rc: FloatArray
    seed_rc: tuple[float, float]
    snapped_rc: tuple[float, float]
    area_mm2: float
    ap_mm: float
    transverse_mm: float
    threshold: float
    level: float
    warnings: tuple[str, ...] = ()
    parameters: CanalParameters = field(default_factory=CanalParameters)
    method: str = "otsu-disk region + half-height contour"


def _disk(radius_px: float) -> npt.NDArray[np.bool_]:
    r = max(1, math.ceil(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return np.asarray((yy * yy + xx * xx) <= radius_px * radius_px + 1e-9)


def polygon_area_moments(points_mm: FloatArray) -> tuple[float, FloatArray, FloatArray]:
    """Area, centroid and the 2x2 second central moment matrix (per unit area) of a simple
    closed polygon (N, 2), from Green's theorem; orientation-free."""
    x, y = points_mm[:, 0], points_mm[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-12:
        raise MeasurementError("the outline encloses no area")
    cx = ((x + xn) * cross).sum() / (6.0 * a)
    cy = ((y + yn) * cross).sum() / (6.0 * a)
    sxx = ((x * x + x * xn + xn * xn) * cross).sum() / (12.0 * a) - cx * cx
    syy = ((y * y + y * yn + yn * yn) * cross).sum() / (12.0 * a) - cy * cy
    sxy = ((x * yn + 2 * x * y + 2 * xn * yn + xn * y) * cross).sum() / (24.0 * a) - cx * cy
    return abs(float(a)), np.array([cx, cy]), np.array([[sxx, sxy], [sxy, syy]])


def ellipse_diameters(moments: FloatArray, ap_direction: FloatArray) -> tuple[float, float]:
    """Diameters (AP, transverse) of the ellipse with the given second moments, read along the
    principal axis nearest ``ap_direction`` and the other one: 4 sqrt(eigenvalue)."""
    w, v = np.linalg.eigh(moments)
    w = np.clip(w, 0.0, None)
    ap_axis = int(np.argmax(np.abs(v.T @ ap_direction)))
    return 4.0 * math.sqrt(w[ap_axis]), 4.0 * math.sqrt(w[1 - ap_axis])


def canal_from_click(image: npt.ArrayLike, click_rc: tuple[float, float], pixel_mm: tuple[float, float],
                     ap_direction_rc: tuple[float, float] = (1.0, 0.0),
                     parameters: CanalParameters | None = None,
                     valid: npt.NDArray[np.bool_] | None = None) -> CanalContour:
    """The dural sac around ``click_rc`` on ``image`` (rows, cols); see the module.

    ``pixel_mm`` is (row spacing, column spacing); ``ap_direction_rc`` the anterior-posterior
    direction on the plane in (row, column) millimetre components; ``valid`` marks pixels inside
    the source volume (a reformatted plane's ``inside``). Raises :class:`ClickOutsideSacError`
    (nothing is drawn) when the click is not in the sac.
    """
    p = parameters or CanalParameters()
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 8:
        raise MeasurementError(f"the canal needs a 2D plane of at least 8 x 8 pixels, got shape {img.shape}")
    dr, dc = float(pixel_mm[0]), float(pixel_mm[1])
    if not (dr > 0 and dc > 0 and math.isfinite(dr) and math.isfinite(dc)):
        raise MeasurementError(f"the plane's pixel size must be positive, got {pixel_mm}")
    r0, c0 = float(click_rc[0]), float(click_rc[1])
    if not (0 <= r0 <= img.shape[0] - 1 and 0 <= c0 <= img.shape[1] - 1):
        raise ClickOutsideSacError("the click is outside the image; click inside the dural sac")
    # Work on a crop around the click: the radius limit plus a margin for the smoothing.
    half_r = math.ceil((p.radius_mm + 2.0) / dr)
    half_c = math.ceil((p.radius_mm + 2.0) / dc)
    ra, rb = max(0, int(r0) - half_r), min(img.shape[0], int(r0) + half_r + 2)
    ca, cb = max(0, int(c0) - half_c), min(img.shape[1], int(c0) + half_c + 2)
    crop = img[ra:rb, ca:cb]
    ok = np.ones(crop.shape, bool) if valid is None else np.asarray(valid, bool)[ra:rb, ca:cb]
    if not np.all(np.isfinite(crop[ok])):
        raise MeasurementError("the plane holds non-finite pixel values near the click")
    smooth = ndimage.gaussian_filter(np.where(ok, crop, 0.0), (p.smooth_mm / dr, p.smooth_mm / dc))
    rr, cc = np.mgrid[0:crop.shape[0], 0:crop.shape[1]]
    lr, lc = r0 - ra, c0 - ca
    dist = np.hypot((rr - lr) * dr, (cc - lc) * dc)
    disk = (dist <= p.radius_mm) & ok
    if disk.sum() < 16:
        raise ClickOutsideSacError("there is no image around the click; click inside the dural sac")
    # 2. Snap: the brightest smoothed pixel within snap_mm.
    near = (dist <= max(p.snap_mm, 0.5 * max(dr, dc))) & ok
    idx = int(np.argmax(np.where(near, smooth, -np.inf)))
    sr, sc = divmod(idx, crop.shape[1])
    # 3. The threshold from the region around the click.
    values = smooth[disk]
    t = float(filters.threshold_otsu(values))
    bright_level = float(np.percentile(values[values > t], 90)) if np.any(values > t) else t
    seed_value = float(smooth[sr, sc])
    dark_level = float(np.median(values[values <= t]))
    if bright_level < p.min_contrast * max(dark_level, 1e-12):
        raise ClickOutsideSacError(
            f"nothing bright stands out around the click (brightest {bright_level:.4g} against {dark_level:.4g} "
            f"around it, less than {p.min_contrast:g}x): the click is not in the CSF of the dural sac")
    if seed_value < 0.5 * (t + bright_level):
        raise ClickOutsideSacError(
            f"no bright CSF within {p.snap_mm:g} mm of the click (the brightest pixel there is "
            f"{seed_value:.4g}, the sac's level around it about {bright_level:.4g}); click inside the dural sac")
    # 4. The seed's bright component, opened by reconstruction, holes filled.
    bright = (smooth > t) & disk
    radius_open = max(1.0, p.opening_mm / min(dr, dc))
    opened = ndimage.binary_erosion(bright, _disk(radius_open))
    lab, n_lab = ndimage.label(opened)
    # The snap takes the largest opened bright core within reach of the click (a click on a
    # rootlet lands between CSF islands; the sac is the big one).
    reach = (dist <= p.snap_mm + p.opening_mm) & (lab > 0)
    if n_lab == 0 or not reach.any():
        raise ClickOutsideSacError("the bright region at the click is too thin to be the dural sac; click "
                                   "inside the sac")
    sizes = np.bincount(lab.ravel(), minlength=n_lab + 1)
    candidates = np.unique(lab[reach])
    chosen = int(candidates[np.argmax(sizes[candidates])])
    core = lab == chosen
    if not core[sr, sc]:
        pick = np.where(core & reach, dist, np.inf)
        sr, sc = divmod(int(np.argmin(pick)), crop.shape[1])
    region = ndimage.binary_dilation(core, _disk(radius_open)) & bright
    # Rootlets crowded against the back of the sac leave only a thin CSF film behind them: a
    # closing bridges them so that they become holes, then the holes are filled.
    closing_px = max(1.0, p.closing_mm / min(dr, dc))
    region = ndimage.binary_closing(region, _disk(closing_px), border_value=0) & disk
    region = ndimage.binary_fill_holes(region)
    edge = (dist > p.radius_mm - 1.5 * max(dr, dc)) | ~ok
    if np.any(region & edge):
        raise ClickOutsideSacError(
            f"the region from this click reaches the {p.radius_mm:g} mm radius limit (it leaks: the click is "
            f"probably not in the dural sac, or the dura is not visible here); click inside the sac or outline "
            f"it by hand")
    # 5. The half-height outline around the region.
    csf_level = float(np.median(smooth[region]))
    band = ndimage.binary_dilation(region, _disk(max(1.0, 1.2 / min(dr, dc)))) & ~region & ok
    dura_level = float(np.percentile(smooth[band], 10)) if band.any() else t
    level = 0.5 * (csf_level + dura_level)
    around = ndimage.binary_dilation(region, _disk(max(2.0, 1.0 / min(dr, dc))))
    masked = np.where(around, smooth, min(dura_level, float(smooth.min())))
    # Rootlets inside the sac must not cut the outline: fill the region's inside at the CSF level.
    inner = ndimage.binary_erosion(region, _disk(max(1.0, 0.7 / min(dr, dc))))
    masked = np.where(inner, np.maximum(masked, csf_level), masked)
    best: FloatArray | None = None
    best_area = 0.0
    for cont in measure.find_contours(masked, level):
        if len(cont) < 4 or np.hypot(*(cont[0] - cont[-1])) > 1e-6:
            continue
        poly = cont[:-1]
        if not measure.points_in_poly(np.array([[sr, sc]], float), poly)[0]:
            continue
        area_px = abs(float(np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])))
        if area_px > best_area:
            best, best_area = poly, area_px
    if best is None:
        raise ClickOutsideSacError("no closed outline of the sac was found around the click; click inside the "
                                   "sac or outline it by hand")
    pts_mm = np.column_stack([best[:, 1] * dc, best[:, 0] * dr])  # (x = column, y = row) in mm
    area, _centroid, moments = polygon_area_moments(pts_mm)
    ap = np.array([ap_direction_rc[1], ap_direction_rc[0]], float)
    norm = float(np.linalg.norm(ap))
    ap = ap / norm if norm > 0 else np.array([0.0, 1.0])
    ap_mm, tr_mm = ellipse_diameters(moments, ap)
    if area < p.min_area_mm2:
        raise ClickOutsideSacError(f"the bright region at the click is only {area:.1f} mm2 (a dural sac is at least "
                                   f"{p.min_area_mm2:g} mm2); click inside the sac or outline it by hand")
    warnings: list[str] = []
    if area > p.warn_area_mm2:
        warnings.append(f"the sac area {area:.0f} mm2 is above the plausible {p.warn_area_mm2:.0f} mm2 for a lumbar "
                        f"level: check the outline for a leak")
    contour = best + np.array([ra, ca], float)
    return CanalContour(contour, (r0, c0), (float(sr + ra), float(sc + ca)), area, ap_mm, tr_mm, t, level,
                        tuple(warnings), p)


def canal_summary(result: CanalContour) -> dict[str, Any]:
    """The provenance of one canal click (method, seed, parameters) as plain JSON types."""
    return {"method": result.method, "seed_rc": list(result.seed_rc), "snapped_rc": list(result.snapped_rc),
            "threshold": result.threshold, "contour_level": result.level, "parameters": result.parameters.to_dict(),
            "warnings": list(result.warnings)}
