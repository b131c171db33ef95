"""Per-level rigid registration of two volumes in patient space (LPS, mm).

The current study is the fixed image, the prior the moving one. The result maps a point of the
current study's LPS space to the same anatomy in the prior's LPS space (a 4x4 matrix). Only a
cube around one point (a disc centre, or any LPS point) is compared, so that posture changes
elsewhere in the spine do not pull the level out of place.

Metric: mutual information of a joint histogram whose moving-image bins are filled with linear
weights (so that the metric varies smoothly with the transform); optimiser: Powell's
derivative-free method, coarse to fine (smoothed 4 mm, 2 mm, then 1.25 mm sample grids).
numpy and scipy only: SimpleITK serves as the reference in ``benchmarks/`` and is never
imported here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage, optimize

from lumbarview.core.geometry import VolumeGeometry

FloatArray = npt.NDArray[np.float64]

#: Half the side of the compared cube (mm): "a region about 40 mm around the chosen disc".
DEFAULT_HALF_SIZE_MM = 20.0
#: A transform further than this from the start is not believed (the optimiser ran away).
MAX_ROTATION_DEG = 25.0
MAX_TRANSLATION_MM = 40.0
#: Below this share of the cube falling inside the prior, the metric is not trusted.
MIN_OVERLAP = 0.6
#: The match must stand out: its MI at least this many times the MI 8 mm off it along any axis.
PEAK_SHIFT_MM = 8.0
MIN_PEAK_RATIO = 1.5
_BINS = 32


class RegistrationInputError(ValueError):
    """The volumes or the point cannot be registered (said in words)."""


@dataclass(frozen=True)
class _Level:
    step_mm: float
    sigma_mm: float
    half_scale: float  # cube half size relative to the requested one


_LEVELS = (_Level(4.0, 2.0, 1.5), _Level(2.0, 1.0, 1.0), _Level(1.25, 0.5, 1.0))


@dataclass(frozen=True)
class RigidResult:
    """A rigid transform current LPS -> prior LPS, and whether it can be believed."""

    matrix_lps: FloatArray
    converged: bool
    message: str
    centre_lps: FloatArray
    mutual_information: float
    evaluations: int
    seconds: float
    history: list[str] = field(default_factory=list)

    @property
    def rotation_deg(self) -> FloatArray:
        """Angles (degrees) about the L, P and S axes, applied in that order (R = Rz Ry Rx)."""
        return np.degrees(_angles_from_matrix(self.matrix_lps[:3, :3]))

    @property
    def translation_mm(self) -> FloatArray:
        """The translation column of :attr:`matrix_lps` (where the LPS origin goes)."""
        return np.array(self.matrix_lps[:3, 3], dtype=np.float64)

    @property
    def total_rotation_deg(self) -> float:
        r = self.matrix_lps[:3, :3]
        return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))

    def apply(self, lps: npt.ArrayLike) -> FloatArray:
        """Carry current-LPS points (..., 3) into the prior's LPS."""
        return apply_matrix(self.matrix_lps, lps)


def apply_matrix(matrix: npt.ArrayLike, lps: npt.ArrayLike) -> FloatArray:
    m = np.asarray(matrix, dtype=np.float64)
    p = np.asarray(lps, dtype=np.float64)
    return np.asarray(p @ m[:3, :3].T + m[:3, 3], dtype=np.float64)


def rotation_matrix(angles_rad: npt.ArrayLike) -> FloatArray:
    """R = Rz Ry Rx for angles (rx, ry, rz) about the L, P and S axes."""
    rx, ry, rz = (float(a) for a in np.asarray(angles_rad, dtype=np.float64).reshape(3))
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    r_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return np.asarray(r_z @ r_y @ r_x, dtype=np.float64)


def _angles_from_matrix(r: FloatArray) -> FloatArray:
    ry = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    rx = np.arctan2(r[2, 1], r[2, 2])
    rz = np.arctan2(r[1, 0], r[0, 0])
    return np.array([rx, ry, rz], dtype=np.float64)


def rigid_matrix(angles_rad: npt.ArrayLike, translation_mm: npt.ArrayLike,
                 centre_lps: npt.ArrayLike) -> FloatArray:
    """x -> R (x - c) + c + t as a 4x4 matrix."""
    r = rotation_matrix(angles_rad)
    c = np.asarray(centre_lps, dtype=np.float64).reshape(3)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c + np.asarray(translation_mm, dtype=np.float64).reshape(3) - r @ c
    return m


class _Image:
    """A smoothed crop of a volume that can be sampled at LPS points."""

    def __init__(self, pixels: npt.NDArray[Any], geometry: VolumeGeometry, lo_kji: npt.NDArray[np.int64],
                 hi_kji: npt.NDArray[np.int64], sigma_mm: float) -> None:
        crop = np.asarray(pixels[lo_kji[0]:hi_kji[0], lo_kji[1]:hi_kji[1], lo_kji[2]:hi_kji[2]],
                          dtype=np.float32)
        si, sj, sk = geometry.spacing_mm
        if sigma_mm > 0:
            crop = ndimage.gaussian_filter(crop, sigma=(sigma_mm / sk, sigma_mm / sj, sigma_mm / si),
                                           mode="nearest", truncate=2.5)
        self.data = crop
        # LPS -> index of the crop, in (k, j, i) order for map_coordinates.
        shift = np.eye(4)
        shift[:3, 3] = -np.array([lo_kji[2], lo_kji[1], lo_kji[0]], dtype=np.float64)
        to_ijk = shift @ geometry.lps_to_ijk
        self.to_kji = to_ijk[[2, 1, 0, 3]]
        self.upper = np.array(crop.shape, dtype=np.float64) - 1.0

    def sample(self, lps: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        kji = lps @ self.to_kji[:3, :3].T + self.to_kji[:3, 3]
        inside = np.all((kji >= 0.0) & (kji <= self.upper), axis=1)
        values = ndimage.map_coordinates(self.data, kji[inside].T, order=1, mode="nearest")
        return values.astype(np.float64), inside


def _crop_bounds(geometry: VolumeGeometry, centre_lps: FloatArray, half_mm: float
                 ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    ijk = geometry.lps_to_index(centre_lps + half_mm * corners)
    kji = np.asarray(ijk)[:, ::-1]
    shape = np.array(geometry.shape_kji)
    lo = np.clip(np.floor(kji.min(axis=0)).astype(np.int64) - 2, 0, shape)
    hi = np.clip(np.ceil(kji.max(axis=0)).astype(np.int64) + 3, 0, shape)
    return lo, hi


def _grid(centre: FloatArray, half_mm: float, step_mm: float) -> FloatArray:
    n = max(int(np.floor(2 * half_mm / step_mm)) + 1, 3)
    axis = np.linspace(-half_mm, half_mm, n)
    g = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return np.asarray(g + centre, dtype=np.float64)


def _bin_edges(values: FloatArray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [1.0, 99.0]) if values.size else (0.0, 1.0)
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _mutual_information(fixed_bins: npt.NDArray[np.int64], moving: FloatArray, lo: float, hi: float) -> float:
    """MI of a joint histogram; the moving value is split linearly between its two nearest bins."""
    x = np.clip((moving - lo) / (hi - lo) * (_BINS - 1), 0.0, _BINS - 1 - 1e-9)
    b0 = x.astype(np.int64)
    frac = x - b0
    base = fixed_bins * _BINS + b0
    joint = (np.bincount(base, weights=1.0 - frac, minlength=_BINS * _BINS)
             + np.bincount(base + 1, weights=frac, minlength=_BINS * _BINS + 1)[:_BINS * _BINS])
    joint = joint.reshape(_BINS, _BINS)
    total = joint.sum()
    if total <= 0:
        return 0.0
    p = joint / total
    pf = p.sum(axis=1, keepdims=True)
    pm = p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / (pf @ pm)[nz])))


def _check_inputs(pixels: npt.NDArray[Any], geometry: VolumeGeometry, what: str) -> None:
    if pixels.ndim != 3 or tuple(pixels.shape) != tuple(geometry.shape_kji):
        raise RegistrationInputError(
            f"the {what} pixels have shape {pixels.shape} but its geometry says {geometry.shape_kji}")
    if np.issubdtype(pixels.dtype, np.floating) and not np.isfinite(pixels).all():
        raise RegistrationInputError(f"the {what} volume holds NaN or infinite values")


class _LevelProblem:
    """The metric at one pyramid level: fixed samples on a grid over the cube, the prior sampled
    where the transform carries them."""

    def __init__(self, current: npt.NDArray[Any], current_geometry: VolumeGeometry, prior: npt.NDArray[Any],
                 prior_geometry: VolumeGeometry, centre: FloatArray, start: FloatArray, half: float,
                 level: _Level) -> None:
        # The cube's corners reach sqrt(3) half sizes once rotated; the search may move it further.
        margin = half * 1.75 + MAX_TRANSLATION_MM * 0.5
        fixed_img = _Image(current, current_geometry,
                           *_crop_bounds(current_geometry, centre, half + 3 * level.sigma_mm), sigma_mm=level.sigma_mm)
        moving_bounds = _crop_bounds(prior_geometry, apply_matrix(start, centre), margin)
        self.moving = _Image(prior, prior_geometry, *moving_bounds, sigma_mm=level.sigma_mm)
        points = _grid(centre, half, level.step_mm)
        fixed_values, fixed_inside = fixed_img.sample(points)
        self.points = points[fixed_inside]
        if self.points.shape[0] < 64:
            raise RegistrationInputError("the region around the point holds too few voxels of the current volume")
        f_lo, f_hi = _bin_edges(fixed_values)
        self.fixed_bins = np.clip(((fixed_values - f_lo) / (f_hi - f_lo) * (_BINS - 1)).round(), 0, _BINS - 1
                                  ).astype(np.int64)
        step = max(1, self.moving.data.size // 20000)
        self.m_lo, self.m_hi = _bin_edges(self.moving.data.ravel()[::step].astype(np.float64))
        self.centre = centre
        self.start = start
        self.evaluations = 0

    def cost(self, p: FloatArray) -> float:
        """Minus the mutual information for parameters (rx, ry, rz rad, tx, ty, tz mm) on top of
        the start; 1.0 when too little of the cube falls inside the prior."""
        self.evaluations += 1
        full = self.start @ rigid_matrix(p[:3], p[3:], self.centre)
        values, inside = self.moving.sample(apply_matrix(full, self.points))
        if inside.sum() < MIN_OVERLAP * self.points.shape[0]:
            return 1.0
        return -_mutual_information(self.fixed_bins[inside], values, self.m_lo, self.m_hi)

    def scaled_cost(self, q: FloatArray, scale: FloatArray) -> float:
        return self.cost(q * scale)


def register_rigid(
    current: npt.NDArray[Any], current_geometry: VolumeGeometry,
    prior: npt.NDArray[Any], prior_geometry: VolumeGeometry,
    centre_lps: npt.ArrayLike, *, half_size_mm: float = DEFAULT_HALF_SIZE_MM,
    initial_matrix: npt.ArrayLike | None = None,
) -> RigidResult:
    """Register a cube around ``centre_lps`` (current LPS) of the current volume to the prior.

    ``initial_matrix`` (current LPS -> prior LPS) is where the search starts: identity when both
    share a frame of reference, otherwise a manual offset. When the result cannot be believed
    (the metric fell, the cube left the prior, or the transform ran beyond 25 degrees / 40 mm
    of the start) it is returned with ``converged`` False and the start matrix kept.
    """
    t0 = time.perf_counter()
    _check_inputs(current, current_geometry, "current")
    _check_inputs(prior, prior_geometry, "prior")
    centre = np.asarray(centre_lps, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(centre)):
        raise RegistrationInputError("the registration point must be three finite LPS numbers (mm)")
    start = np.eye(4) if initial_matrix is None else np.asarray(initial_matrix, dtype=np.float64)
    if start.shape != (4, 4) or not np.all(np.isfinite(start)):
        raise RegistrationInputError("the starting matrix must be a finite 4x4 matrix")
    inside_current = current_geometry.lps_to_index(centre)
    if np.any(inside_current < -0.5) or np.any(inside_current > np.array(current_geometry.shape_kji[::-1]) - 0.5):
        raise RegistrationInputError(
            f"the point {np.round(centre, 1).tolist()} (LPS mm) lies outside the current volume: "
            "choose a disc or point inside it")

    params = np.zeros(6)  # rx, ry, rz (rad) about the centre, then tx, ty, tz (mm), on top of start
    history: list[str] = []
    evaluations = 0
    final_mi = 0.0
    peak = 0.0
    start_centre = apply_matrix(start, centre)
    for level in _LEVELS:
        problem = _LevelProblem(current, current_geometry, prior, prior_geometry, centre, start,
                                half_size_mm * level.half_scale, level)
        scale = np.array([np.radians(2.0)] * 3 + [level.step_mm] * 3)
        res = optimize.minimize(
            problem.scaled_cost, params / scale, args=(scale,), method="Powell",
            options={"xtol": 0.05, "ftol": 1e-4, "maxfev": 600},
        )
        params = np.asarray(res.x, dtype=np.float64) * scale
        final_mi = -float(res.fun)
        evaluations += problem.evaluations
        history.append(f"{level.step_mm:g} mm grid: MI {final_mi:.4f} after {problem.evaluations} evaluations")
    # A real match is a peak: the metric falls when the region is shifted off it. Between unrelated
    # images it is flat, and whatever the optimiser stopped on means nothing.
    off = [-problem.cost(params + np.r_[0.0, 0.0, 0.0, d]) for d in PEAK_SHIFT_MM * np.vstack([np.eye(3), -np.eye(3)])]
    peak = final_mi / max(max(off), 1e-9)
    history.append(f"peak: MI {final_mi:.4f} against at most {max(off):.4f} {PEAK_SHIFT_MM:g} mm off it")

    result = start @ rigid_matrix(params[:3], params[3:], centre)
    angle = float(np.degrees(np.linalg.norm(params[:3])))
    shift = float(np.linalg.norm(apply_matrix(result, centre) - start_centre))
    reason = ""
    if final_mi <= 0.0 or peak < MIN_PEAK_RATIO:
        reason = (f"the two regions show no clear match (the similarity is {peak:.2f}x of its value "
                  f"{PEAK_SHIFT_MM:g} mm off it; at least {MIN_PEAK_RATIO:g}x is needed)")
    elif angle > MAX_ROTATION_DEG or shift > MAX_TRANSLATION_MM:
        reason = (f"the transform ran to {angle:.0f} degrees and {shift:.0f} mm from the start "
                  f"(more than {MAX_ROTATION_DEG:.0f} degrees / {MAX_TRANSLATION_MM:.0f} mm)")
    elif _overlap(result, centre, half_size_mm, prior_geometry) < MIN_OVERLAP:
        reason = "the region falls mostly outside the prior volume"
    seconds = time.perf_counter() - t0
    if reason:
        return RigidResult(start, False, f"the registration did not converge: {reason}; the starting "
                           "alignment is kept", centre, final_mi, evaluations, seconds, history)
    return RigidResult(result, True, f"converged: MI {final_mi:.3f}, {evaluations} evaluations, "
                       f"{seconds:.1f} s", centre, final_mi, evaluations, seconds, history)


def _overlap(matrix: FloatArray, centre: FloatArray, half_mm: float, geometry: VolumeGeometry) -> float:
    pts = apply_matrix(matrix, _grid(centre, half_mm, max(half_mm / 5.0, 1.0)))
    ijk = geometry.lps_to_index(pts)
    upper = np.array(geometry.shape_kji[::-1], dtype=np.float64) - 0.5
    return float(np.mean(np.all((ijk >= -0.5) & (ijk <= upper), axis=1)))
