"""An analytic lumbar spine whose measurements are known by construction.

The spine is built in a *spine frame* (x to the patient's left, y posterior, z superior, mm) and
placed in LPS by a rigid transform (a pitch about the left-right axis, ``tilt_deg``, and a
translation). From S1 up to T12 it chains vertebral bodies (parallel endplates, each with its
own lordotic angle) and wedge-shaped discs between them.

Everything behind the bodies is defined *in the frame of the nearest disc*: space is split by
the disc mid-planes (each point belongs to the disc whose plane is nearest), and in the frame of
disc ``d`` (``u`` along the disc normal, ``a`` posterior, ``x`` left) the phantom has

* the posterior wall of bodies and disc at ``a = 16`` (flat, as real posterior walls are);
* the thecal sac: an ellipse of half-axes ``canal_transverse/2`` (x) and ``b(u)`` (a) centred
  at ``a = 18 + b0``, where ``b`` narrows to ``canal_ap/2`` on the disc plane (stenosis);
* pedicles at ``|x|`` in ``[13, 20]`` whose edges are ``hu`` above and ``hl`` below the disc
  plane, and facet columns at ``|x|`` in ``[13, 20]`` starting at ``a = 16 + foramen_width``;
* hence on any parasagittal plane ``x = c`` with ``13 < |c| < 20`` the neural foramen is the
  rectangle ``a`` in ``[16, 16 + width]``, ``u`` in ``[-hl, hu]``: its height, width and area
  are exact.

Disc heights (anterior, middle, posterior) are where a line along the disc normal meets the two
endplate planes, also exact. The ground truth is written as JSON beside every layout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, VolumeGeometry

VERTEBRAE_BOTTOM_UP = ("S1", "L5", "L4", "L3", "L2", "L1", "T12")
LEVELS_BOTTOM_UP = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1")
LUMBAR_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")

# Labels (SPIDER numbering: vertebra 1 = L5 counted from the bottom, canal 100, disc 200+v below
# vertebra v) plus phantom-only roles.
LABEL_CANAL = 100
LABEL_CORD = 151
LABEL_ROOT = 152
LABEL_SACRUM = 153
VERTEBRA_LABELS = {"L5": 1, "L4": 2, "L3": 3, "L2": 4, "L1": 5, "T12": 6}
DISC_LABELS = {"L5-S1": 201, "L4-L5": 202, "L3-L4": 203, "L2-L3": 204, "L1-L2": 205, "T12-L1": 206}
#: Posterior elements (pedicles, facets, lamina, spinous process) of each vertebra: 170 + v.
POSTERIOR_LABELS = {name: 170 + v for name, v in VERTEBRA_LABELS.items()}
POSTERIOR_LABELS["S1"] = LABEL_SACRUM


def to_spider_labels(labels: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int16]:
    """Phantom labels in SPIDER's convention: posterior elements join their vertebra, the cord
    joins the canal (the sac), nerve roots are not labelled. The sacrum keeps the phantom's
    value (:data:`LABEL_SACRUM`, which :func:`~lumbarview.core.labels.spider_scheme` reads as
    the sacrum): SPIDER's own masks count vertebrae from L5 up and leave the sacrum out, but the
    demo's L5-S1 (slip, the narrowed right foramen) can only be measured against it."""
    out = labels.astype(np.int16, copy=True)
    for name, value in POSTERIOR_LABELS.items():
        if value != LABEL_SACRUM:
            out[labels == value] = VERTEBRA_LABELS.get(name, 0)
    out[labels == LABEL_CORD] = LABEL_CANAL
    out[labels == LABEL_ROOT] = 0
    return out


def to_aisslab_classes(labels: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.uint8]:
    """Phantom labels as the six LSS-MRI-AISSLab mask classes (0 background/anterior,
    1 vertebral body, 2 disc, 3 sacrum, 4 posterior A = the canal region, 5 posterior B = the
    posterior elements; the A/B split is our reading of the dataset card)."""
    out = np.zeros(labels.shape, dtype=np.uint8)
    out[(labels >= 1) & (labels <= 99)] = 1
    out[(labels > 200) & (labels < 226)] = 2
    out[labels == LABEL_SACRUM] = 3
    out[(labels == LABEL_CANAL) | (labels == LABEL_CORD)] = 4
    out[(labels >= 170) & (labels < 200)] = 5
    return out

_BODY_HALF_LR = 22.0
_BODY_HALF_AP = 16.0  # anterior half-axis; the posterior wall is flat at a = +16
_POSTERIOR_WALL = 16.0
_PEDICLE_X = (13.0, 20.0)
_PEDICLE_THICK = 12.0
_FACET_DEPTH = 10.0
_ARCH_DEPTH = 10.0
_CANAL_GAP = 2.0  # epidural space between the posterior wall and the sac


@dataclass
class LevelParams:
    """What varies per disc level. Lengths in mm."""

    disc_height_mm: float = 10.0  # middle height
    canal_ap_mm: float = 15.0  # thecal sac AP diameter on the disc plane
    canal_transverse_mm: float = 22.0
    foramen_height_left_mm: float = 20.0
    foramen_height_right_mm: float = 20.0
    foramen_width_left_mm: float = 7.0
    foramen_width_right_mm: float = 7.0
    slip_mm: float = 0.0  # anterior slip of the vertebra above, relative to the one below


def _default_levels() -> dict[str, LevelParams]:
    return {
        "T12-L1": LevelParams(disc_height_mm=8.0),
        "L1-L2": LevelParams(disc_height_mm=9.0),
        "L2-L3": LevelParams(disc_height_mm=10.0),
        "L3-L4": LevelParams(disc_height_mm=10.5, canal_ap_mm=11.0),
        "L4-L5": LevelParams(disc_height_mm=10.0, canal_ap_mm=7.5, canal_transverse_mm=18.0,
                             foramen_height_left_mm=14.0, foramen_width_left_mm=4.0),
        "L5-S1": LevelParams(disc_height_mm=9.0, foramen_height_right_mm=16.0,
                             foramen_width_right_mm=5.0),
    }


@dataclass
class PhantomParams:
    """The whole phantom. Deterministic for a given value (``seed`` drives only the noise)."""

    seed: int = 1
    tilt_deg: float = 0.0  # pitch of the whole spine about the left-right axis
    lordosis_deg: float = 40.0  # angle between the S1 and T12 body axes
    body_height_mm: float = 26.0
    canal_ap_normal_mm: float = 15.0  # sac AP away from the discs
    origin_lps: tuple[float, float, float] = (0.0, 0.0, -60.0)  # S1 top endplate centre
    levels: dict[str, LevelParams] = field(default_factory=_default_levels)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _rot_x(deg: float) -> FloatArray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


@dataclass(frozen=True)
class Frame:
    """An orthonormal frame: origin and unit axes x (left), a (posterior), u (superior)."""

    origin: FloatArray
    x: FloatArray
    a: FloatArray
    u: FloatArray

    def local(self, p: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        d = p - self.origin
        return d @ self.x, d @ self.a, d @ self.u

    def point(self, x: float, a: float, u: float) -> FloatArray:
        return self.origin + x * self.x + a * self.a + u * self.u


def _frame(origin: FloatArray, angle_deg: float) -> Frame:
    """Frame whose u axis is tilted ``angle_deg`` from +z toward anterior (-y)."""
    r = _rot_x(angle_deg)
    return Frame(origin, r @ np.array([1.0, 0, 0]), r @ np.array([0, 1.0, 0]), r @ np.array([0, 0, 1.0]))


@dataclass(frozen=True)
class Vertebra:
    name: str
    frame: Frame  # origin at the body centre
    height: float

    @property
    def inferior_centre(self) -> FloatArray:
        return self.frame.origin - self.height / 2 * self.frame.u

    @property
    def superior_centre(self) -> FloatArray:
        return self.frame.origin + self.height / 2 * self.frame.u


@dataclass(frozen=True)
class Disc:
    level: str
    frame: Frame  # origin at the disc centre, u along the disc normal
    below: Vertebra
    above: Vertebra
    params: LevelParams
    hu: dict[str, float]  # foramen top above the disc plane, per side
    hl: dict[str, float]  # foramen bottom below the disc plane, per side


class LumbarPhantom:
    """Geometry, labels, intensities and ground truth of one analytic lumbar spine, in LPS."""

    def __init__(self, params: PhantomParams | None = None) -> None:
        self.params = params or PhantomParams()
        p = self.params
        self.spine_to_lps = _rot_x(-p.tilt_deg)  # positive tilt pitches the top posteriorly
        self.origin_lps = np.asarray(p.origin_lps, dtype=np.float64)
        self.vertebrae: list[Vertebra] = []
        self.discs: list[Disc] = []
        self._build()

    # -- construction, in the spine frame --------------------------------------------------
    def _build(self) -> None:
        p = self.params
        n = len(VERTEBRAE_BOTTOM_UP)
        # Body axis angles: S1 tilted forward most, T12 least, lordosis spread evenly.
        angles = [p.lordosis_deg / 2 - p.lordosis_deg * i / (n - 1) for i in range(n)]
        # Positive angles tip a body's top anteriorly: S1 faces anterior-superior, T12 leans back.
        s1_frame = _frame(np.zeros(3), angles[0])
        s1 = Vertebra("S1", Frame(s1_frame.origin - p.body_height_mm / 2 * s1_frame.u,
                                  s1_frame.x, s1_frame.a, s1_frame.u), p.body_height_mm)
        vertebrae = [s1]
        for i, level in enumerate(LEVELS_BOTTOM_UP):
            below = vertebrae[-1]
            lp = p.levels.get(level, LevelParams())
            upper_angle = angles[i + 1]
            bis = _frame(np.zeros(3), (angles[i] + upper_angle) / 2)
            top_below = below.superior_centre
            upper_inferior = top_below + lp.disc_height_mm * bis.u - lp.slip_mm * bis.a
            f = _frame(np.zeros(3), upper_angle)
            centre = upper_inferior + p.body_height_mm / 2 * f.u
            above = Vertebra(VERTEBRAE_BOTTOM_UP[i + 1], Frame(centre, f.x, f.a, f.u), p.body_height_mm)
            # The disc frame stays with the body below (a slip moves only what is above).
            disc_centre = top_below + lp.disc_height_mm / 2 * bis.u
            disc_frame = Frame(disc_centre, bis.x, bis.a, bis.u)
            hu = {"left": lp.foramen_height_left_mm / 2, "right": lp.foramen_height_right_mm / 2}
            hl = dict(hu)
            self.discs.append(Disc(level, disc_frame, below, above, lp, hu, hl))
            vertebrae.append(above)
        self.vertebrae = vertebrae

    def to_lps(self, p_spine: npt.ArrayLike) -> FloatArray:
        return np.asarray(p_spine, dtype=np.float64) @ self.spine_to_lps.T + self.origin_lps

    def to_spine(self, p_lps: npt.ArrayLike) -> FloatArray:
        return (np.asarray(p_lps, dtype=np.float64) - self.origin_lps) @ self.spine_to_lps

    def dir_to_lps(self, v: npt.ArrayLike) -> FloatArray:
        return np.asarray(v, dtype=np.float64) @ self.spine_to_lps.T

    def disc(self, level: str) -> Disc:
        return next(d for d in self.discs if d.level == level)

    # -- labels ----------------------------------------------------------------------------
    def labels_at(self, points_lps: FloatArray) -> npt.NDArray[np.int16]:
        """Label value at LPS points of shape ``(N, 3)`` (phantom numbering, see the module)."""
        p_all = self.to_spine(points_lps.reshape(-1, 3))
        result = np.zeros(p_all.shape[0], dtype=np.int16)
        # Cheap reject first: most of a field of view is far from the spine.
        centres = np.array([v.frame.origin for v in self.vertebrae])
        order = np.argsort(centres[:, 2])
        y_mid = np.interp(p_all[:, 2], centres[order, 2], centres[order, 1])
        near = ((np.abs(p_all[:, 0]) < 52.0) & (p_all[:, 1] - y_mid > -45.0)
                & (p_all[:, 1] - y_mid < 95.0) & (p_all[:, 2] > centres[:, 2].min() - 40.0)
                & (p_all[:, 2] < centres[:, 2].max() + 40.0))
        if not near.any():
            return result
        result[near] = self._labels_spine(p_all[near])
        return result

    def _labels_spine(self, p: FloatArray) -> npt.NDArray[np.int16]:
        out = np.zeros(p.shape[0], dtype=np.int16)
        # Nearest disc plane decides the frame for everything behind the bodies.
        dist = np.stack([np.abs((p - d.frame.origin) @ d.frame.u) for d in self.discs], axis=1)
        nearest = np.argmin(dist, axis=1)
        x = np.empty(p.shape[0])
        a = np.empty(p.shape[0])
        u = np.empty(p.shape[0])
        for i, d in enumerate(self.discs):
            sel = nearest == i
            x[sel], a[sel], u[sel] = d.frame.local(p[sel])
        ax = np.abs(x)
        # Cross-section of bodies and discs: flat posterior wall, elliptic anterior half.
        in_section = (ax <= _BODY_HALF_LR) & (a <= _POSTERIOR_WALL) & (
            (a >= 0) | ((x / _BODY_HALF_LR) ** 2 + (a / _BODY_HALF_AP) ** 2 <= 1.0))
        slip_shift = np.zeros(p.shape[0])
        for i, d in enumerate(self.discs):
            sel = (nearest == i) & (u > 0)
            slip_shift[sel] = d.params.slip_mm
        in_section_upper = (ax <= _BODY_HALF_LR) & (a + slip_shift <= _POSTERIOR_WALL) & (
            (a + slip_shift >= 0) | ((x / _BODY_HALF_LR) ** 2 + ((a + slip_shift) / _BODY_HALF_AP) ** 2 <= 1.0))
        for v in self.vertebrae:
            _, _, uv = v.frame.local(p)
            inside = (np.abs(uv) <= v.height / 2) & np.where(u > 0, in_section_upper, in_section)
            if v.name == "S1":
                out[inside] = LABEL_SACRUM
            else:
                out[inside] = VERTEBRA_LABELS[v.name]
        for d in self.discs:
            _, _, u_low = d.below.frame.local(p)
            _, _, u_up = d.above.frame.local(p)
            between = (u_low > d.below.height / 2) & (u_up < -d.above.height / 2)
            out[between & in_section] = DISC_LABELS[d.level]
        # Behind the bodies, in the nearest disc's frame.
        b0 = self.params.canal_ap_normal_mm / 2
        canal_centre_a = _POSTERIOR_WALL + _CANAL_GAP + b0
        for i, d in enumerate(self.discs):
            sel = nearest == i
            xs, as_, us = x[sel], a[sel], u[sel]
            lp = d.params
            b = self._canal_half_ap(us, lp, b0)
            half_lr = self._canal_half_lr(us, lp)
            canal = (xs / half_lr) ** 2 + ((as_ - canal_centre_a) / b) ** 2 <= 1.0
            labels = out[sel]
            arch_front = canal_centre_a + b0 + 1.0
            posterior = np.zeros(xs.shape, dtype=bool)
            for side, sign in (("left", 1.0), ("right", -1.0)):
                sx = sign * xs
                lateral = (sx >= _PEDICLE_X[0]) & (sx <= _PEDICLE_X[1])
                pedicle_a = (as_ >= _POSTERIOR_WALL) & (as_ <= arch_front)
                hu, hl = d.hu[side], d.hl[side]
                upper_ped = lateral & pedicle_a & (us >= hu) & (us <= hu + _PEDICLE_THICK)
                lower_ped = lateral & pedicle_a & (us <= -hl) & (us >= -hl - _PEDICLE_THICK)
                width = lp.foramen_width_left_mm if side == "left" else lp.foramen_width_right_mm
                facet_front = _POSTERIOR_WALL + width
                facet = lateral & (as_ >= facet_front) & (as_ <= facet_front + _FACET_DEPTH)
                posterior |= upper_ped | lower_ped | facet
            arch = (np.abs(xs) <= _PEDICLE_X[1]) & (as_ >= arch_front) & (as_ <= arch_front + _ARCH_DEPTH)
            spinous = (np.abs(xs) <= 3.0) & (as_ > arch_front + _ARCH_DEPTH) & (
                as_ <= arch_front + _ARCH_DEPTH + 25.0) & (np.abs(us) <= 9.0)
            posterior |= arch | spinous
            upper_value = POSTERIOR_LABELS[d.above.name]
            lower_value = POSTERIOR_LABELS[d.below.name]
            labels[posterior & (labels == 0) & (us > 0)] = upper_value
            labels[posterior & (labels == 0) & (us <= 0)] = lower_value
            labels[canal] = LABEL_CANAL
            out[sel] = labels
        # Cord inside the sac above the L1-L2 disc (conus at the L1 body).
        top = self.disc("L1-L2")
        xs, as_, us = top.frame.local(p)
        cord = (us > 8.0) & ((xs / 4.0) ** 2 + ((as_ - canal_centre_a) / 3.0) ** 2 <= 1.0)
        out[cord & (out == LABEL_CANAL)] = LABEL_CORD
        # Exiting nerve roots through each foramen.
        for start, end, radius in self.root_segments_spine():
            axis = end - start
            t = np.clip(((p - start) @ axis) / (axis @ axis), 0.0, 1.0)
            near = np.linalg.norm(p - (start + t[:, None] * axis), axis=1) <= radius
            out[near & ((out == 0) | (out == LABEL_CANAL))] = LABEL_ROOT
        return out

    @staticmethod
    def _canal_half_ap(u: FloatArray, lp: LevelParams, b0: float | None = None) -> FloatArray:
        """Sac AP half-axis along the disc normal: ``canal_ap/2`` on the disc plane, back to
        normal 12 mm away (a smooth cosine bump)."""
        b_normal = 7.5 if b0 is None else b0
        b_min = lp.canal_ap_mm / 2
        w = np.clip(np.abs(u) / 12.0, 0.0, 1.0)
        return b_min + (b_normal - b_min) * (1 - np.cos(np.pi * w)) / 2

    @staticmethod
    def _canal_half_lr(u: FloatArray, lp: LevelParams) -> FloatArray:
        t_normal = 11.0
        t_min = lp.canal_transverse_mm / 2
        w = np.clip(np.abs(u) / 12.0, 0.0, 1.0)
        return t_min + (t_normal - t_min) * (1 - np.cos(np.pi * w)) / 2

    def sac_outline_lps(self, level: str, u_mm: float, n_points: int = 24) -> FloatArray:
        """The thecal sac's outline (the edge of the canal label) on the plane parallel to disc
        ``level`` at ``u_mm`` along its normal: ``n_points`` on the ellipse of the sac's
        transverse and AP half-axes there, centred on the canal's centre line, in LPS. The first
        point is on the patient's left, level with the centre."""
        d = self.disc(level)
        b0 = self.params.canal_ap_normal_mm / 2
        u = np.array([u_mm], dtype=np.float64)
        half_lr = float(self._canal_half_lr(u, d.params)[0])
        half_ap = float(self._canal_half_ap(u, d.params, b0)[0])
        centre_a = _POSTERIOR_WALL + _CANAL_GAP + b0
        t = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
        spine = [d.frame.point(half_lr * math.cos(a), centre_a + half_ap * math.sin(a), u_mm) for a in t]
        return self.to_lps(np.array(spine))

    def canal_centre_spine(self, disc: Disc) -> FloatArray:
        b0 = self.params.canal_ap_normal_mm / 2
        return disc.frame.point(0.0, _POSTERIOR_WALL + _CANAL_GAP + b0, 0.0)

    def root_segments_spine(self) -> list[tuple[FloatArray, FloatArray, float]]:
        """Nerve roots as capsules (start, end, radius) in the spine frame: from the sac's side
        under the upper pedicle, out through the foramen, laterally and downward."""
        out = []
        b0 = self.params.canal_ap_normal_mm / 2
        centre_a = _POSTERIOR_WALL + _CANAL_GAP + b0
        for d in self.discs:
            for side, sign in (("left", 1.0), ("right", -1.0)):
                hu = d.hu[side]
                width = d.params.foramen_width_left_mm if side == "left" else d.params.foramen_width_right_mm
                r = min(2.0, width / 2 - 0.5, hu / 2)
                start = d.frame.point(sign * 8.0, centre_a, hu - 2.5)
                mid = d.frame.point(sign * (_PEDICLE_X[0] + _PEDICLE_X[1]) / 2,
                                    _POSTERIOR_WALL + width / 2, hu - r - 1.0)
                end = d.frame.point(sign * 45.0, _POSTERIOR_WALL - 2.0, hu - 18.0)
                out.append((start, mid, r))
                out.append((mid, end, r))
        return out

    # -- intensities -----------------------------------------------------------------------
    _T2: ClassVar[dict[int, float]] = {0: 1050.0, LABEL_CANAL: 1900.0, LABEL_CORD: 880.0,
                                        LABEL_ROOT: 640.0, LABEL_SACRUM: 600.0}
    _T1: ClassVar[dict[int, float]] = {0: 1250.0, LABEL_CANAL: 320.0, LABEL_CORD: 720.0,
                                        LABEL_ROOT: 560.0, LABEL_SACRUM: 950.0}

    def intensities(self, labels: npt.NDArray[np.int16], points_lps: FloatArray,
                    contrast: str = "T2") -> FloatArray:
        """MR-like signal for labelled points (no noise). Soft tissue outside the spine is fat
        or muscle by distance from the spine; outside the body, air."""
        table = self._T2 if contrast.upper().startswith("T2") else self._T1
        body = 650.0 if contrast.upper().startswith("T2") else 900.0
        disc = 1450.0 if contrast.upper().startswith("T2") else 620.0
        muscle = 420.0 if contrast.upper().startswith("T2") else 520.0
        out = np.full(labels.shape, table[0])
        p = self.to_spine(points_lps.reshape(-1, 3))
        # Paraspinal muscle behind and beside the column; torso outline (air outside).
        ref = self.disc("L3-L4").frame
        xs, as_, _ = ref.local(p)
        # Muscle lateral to the column and behind the laminae; fat stays in the foramina.
        out[((np.abs(xs) > 28) & (np.abs(xs) < 70) & (as_ > 0) & (as_ < 85))
            | ((np.abs(xs) < 70) & (as_ > 50) & (as_ < 85))] = muscle
        out[(np.abs(xs) < 60) & (as_ > -95) & (as_ < -20)] = muscle * 0.9  # psoas/abdomen
        torso = (xs / 170.0) ** 2 + ((as_ + 15.0) / 125.0) ** 2 <= 1.0
        out[~torso] = 20.0
        for value in np.unique(labels):
            if value == 0:
                continue
            if value in table:
                out[labels == value] = table[int(value)]
            elif 200 < value < 226:
                out[labels == value] = disc
            elif 170 <= value < 200:
                out[labels == value] = body * 0.8  # posterior elements: cortical, darker
            else:
                out[labels == value] = body
        return out

    def render(self, geometry: VolumeGeometry, contrasts: tuple[str, ...] = ("T2",),
               noise_sigma: float = 22.0) -> tuple[dict[str, npt.NDArray[np.uint16]], npt.NDArray[np.int16]]:
        """Images (12-bit, one per contrast) and the label volume on ``geometry``, slice by
        slice; labels are taken at voxel centres, noise is Rician and seeded."""
        k_n, j_n, i_n = geometry.shape_kji
        images = {c: np.zeros(geometry.shape_kji, dtype=np.uint16) for c in contrasts}
        labels = np.zeros(geometry.shape_kji, dtype=np.int16)
        rng = np.random.default_rng(self.params.seed)
        jj, ii = np.meshgrid(np.arange(j_n, dtype=np.float64), np.arange(i_n, dtype=np.float64),
                             indexing="ij")
        for k in range(k_n):
            ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, float(k))], axis=1)
            pts = geometry.index_to_lps(ijk)
            lab = self.labels_at(pts)
            labels[k] = lab.reshape(j_n, i_n)
            for contrast in contrasts:
                signal = self.intensities(lab, pts, contrast)
                if noise_sigma > 0:
                    signal = np.hypot(signal + rng.normal(0, noise_sigma, signal.shape),
                                      rng.normal(0, noise_sigma, signal.shape))
                images[contrast][k] = np.clip(np.rint(signal), 0, 4095).astype(np.uint16).reshape(j_n, i_n)
        return images, labels

    # -- ground truth ----------------------------------------------------------------------
    def disc_height_at(self, disc: Disc, a: float, x: float = 0.0) -> float:
        """Disc height along the disc normal at antero-posterior position ``a`` (disc frame)."""
        start = disc.frame.point(x, a, 0.0)
        t = []
        for plane_point, plane_normal in ((disc.below.superior_centre, disc.below.frame.u),
                                          (disc.above.inferior_centre, disc.above.frame.u)):
            t.append(float(((plane_point - start) @ plane_normal) / (disc.frame.u @ plane_normal)))
        return t[1] - t[0]

    def disc_heights(self, disc: Disc) -> dict[str, float]:
        """Anterior, middle and posterior disc heights on the mid-sagittal plane, at 10 % of the
        disc's depth in from its margins (a = -16 and +16: depth 32 mm) and at its middle."""
        depth = _BODY_HALF_AP + _POSTERIOR_WALL
        return {"anterior": self.disc_height_at(disc, -_BODY_HALF_AP + 0.1 * depth),
                "middle": self.disc_height_at(disc, 0.0),
                "posterior": self.disc_height_at(disc, _POSTERIOR_WALL - 0.1 * depth)}

    def posterior_disc_height_foraminal(self, disc: Disc) -> float:
        """Disc height at 10 % of the disc's depth from its posterior wall, on the parasagittal
        plane through the middle of the pedicles (where the foramen is measured)."""
        x = (_PEDICLE_X[0] + _PEDICLE_X[1]) / 2
        a_ant = -_BODY_HALF_AP * math.sqrt(1 - (x / _BODY_HALF_LR) ** 2)
        depth = _POSTERIOR_WALL - a_ant
        return self.disc_height_at(disc, _POSTERIOR_WALL - 0.1 * depth, x)

    def ground_truth(self) -> dict[str, Any]:
        """Per disc level: canal, foramina (per side) and disc heights, with the planes (LPS)."""
        levels: dict[str, Any] = {}
        for d in self.discs:
            if d.level not in LUMBAR_LEVELS:
                continue
            lp = d.params
            heights = self.disc_heights(d)
            mean_body = self.params.body_height_mm
            a_half = lp.canal_transverse_mm / 2
            b_half = lp.canal_ap_mm / 2
            foramen = {}
            for side in ("left", "right"):
                width = lp.foramen_width_left_mm if side == "left" else lp.foramen_width_right_mm
                height = d.hu[side] + d.hl[side]
                x_mid = (1 if side == "left" else -1) * (_PEDICLE_X[0] + _PEDICLE_X[1]) / 2
                foramen[side] = {
                    "height_mm": height, "width_mm": width,
                    "area_mm2": height * width if lp.slip_mm == 0 else None,
                    "centre_lps": self.to_lps(d.frame.point(x_mid, _POSTERIOR_WALL + width / 2,
                                                            (d.hu[side] - d.hl[side]) / 2)).tolist(),
                    "parasagittal_x_range_mm": sorted(
                        float(self.to_lps(d.frame.point((1 if side == "left" else -1) * xx, 0, 0))[0])
                        for xx in _PEDICLE_X),
                }
            levels[d.level] = {
                "disc_label": DISC_LABELS[d.level],
                "disc_centre_lps": self.to_lps(d.frame.origin).tolist(),
                "disc_normal_lps": self.dir_to_lps(d.frame.u).tolist(),
                "canal_centre_lps": self.to_lps(self.canal_centre_spine(d)).tolist(),
                "canal_ap_mm": lp.canal_ap_mm,
                "canal_transverse_mm": lp.canal_transverse_mm,
                "canal_area_mm2": math.pi * a_half * b_half,
                "canal_area_min_mm2": math.pi * a_half * b_half,
                "canal_area_min_offset_mm": 0.0,
                "foramen": foramen,
                "posterior_disc_height_mm": self.posterior_disc_height_foraminal(d),
                "disc_height_anterior_mm": heights["anterior"],
                "disc_height_middle_mm": heights["middle"],
                "disc_height_posterior_mm": heights["posterior"],
                "dhi": (heights["anterior"] + heights["middle"] + heights["posterior"]) / 3 / mean_body,
                "slip_mm": lp.slip_mm,
                "slip_percent": 100.0 * lp.slip_mm / (_BODY_HALF_AP + _POSTERIOR_WALL),
            }
        vertebrae = {v.name: {"centre_lps": self.to_lps(v.frame.origin).tolist(),
                              "axis_lps": self.dir_to_lps(v.frame.u).tolist(),
                              "label": VERTEBRA_LABELS.get(v.name, LABEL_SACRUM)}
                     for v in self.vertebrae}
        return {
            "units": {"length": "mm", "area": "mm2", "frame": "LPS"},
            "definitions": {
                "canal": "thecal sac on the plane through the disc centre, normal to the disc",
                "foramen": "parasagittal rectangle between the pedicles (height, along the disc "
                           "normal), the posterior wall and the facet (width)",
                "disc_heights": "along the disc normal on the mid-sagittal plane, at 10 % of the "
                                "disc depth from its anterior and posterior margins and at its middle",
                "posterior_disc_height": "the same, 10 % in from the posterior wall, on the "
                                         "parasagittal plane through the middle of the pedicles",
                "dhi": "mean(anterior, middle, posterior disc height) / body height",
            },
            "params": self.params.to_json(),
            "levels": levels,
            "vertebrae": vertebrae,
        }

    # -- convenience geometry for the layout writers --------------------------------------
    def extent_lps(self) -> tuple[FloatArray, FloatArray]:
        """Bounding box of the spine (bodies to spinous processes), LPS mm."""
        pts = []
        for v in self.vertebrae:
            for x in (-_BODY_HALF_LR, _BODY_HALF_LR):
                for a in (-_BODY_HALF_AP, 70.0):
                    for u in (-v.height / 2, v.height / 2):
                        pts.append(self.to_lps(v.frame.point(x, a, u)))
        arr = np.array(pts)
        return arr.min(axis=0), arr.max(axis=0)

    def centre_lps(self) -> FloatArray:
        lo, hi = self.extent_lps()
        return (lo + hi) / 2
