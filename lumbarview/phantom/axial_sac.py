"""An MR-like axial T2 slice through the lumbar canal whose dural sac area is known by construction.

The slice holds, from the inside out: bright CSF with dark nerve rootlets, a dark dura, epidural
fat (bright on T2, less than CSF), the posterior elements and ligamentum flavum (dark), the disc or
body in front and muscle around. It is rendered at 8 x 8 sub-pixels per pixel and averaged
(partial volume), multiplied by a smooth bias field and given Rician noise (the magnitude of a
complex Gaussian signal).

The sac outline is a closed polar curve r(theta) around its centre: an ellipse for a normal level,
a trefoil (three lobes, pinched between them) for a stenotic one. The truth is the area
inside the inner surface of the dura, integrated from the analytic curve (1/2 int r^2 dtheta), not
from the rendered pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

CSF = 1.0
DURA = 0.12
FAT = 0.62
ROOTLET = 0.3
LIGAMENT = 0.15
DISC = 0.45
MUSCLE = 0.32


@dataclass(frozen=True)
class AxialSac:
    """One rendered slice: ``pixels`` (rows, cols), pixel size in mm, and the truth."""

    pixels: npt.NDArray[np.float32]
    pixel_mm: float
    centre_rc: tuple[float, float]
    area_mm2: float
    rootlets_rc: tuple[tuple[float, float], ...]
    kind: str

    def inside_sac(self, row: float, col: float) -> bool:
        """Whether the point (row, col) in pixels lies in the sac (used by tests to place clicks)."""
        dy = (row - self.centre_rc[0]) * self.pixel_mm
        dx = (col - self.centre_rc[1]) * self.pixel_mm
        theta = float(np.arctan2(dy, dx))
        return bool(np.hypot(dx, dy) < float(_radius(self.kind, np.array([theta]))[0]))


def _radius(kind: str, theta: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The inner dura outline in polar form (mm); theta from the patient's left-right axis,
    positive towards posterior (down on the screen)."""
    if kind == "normal":  # an ellipse 17.6 mm wide, 13.3 mm deep: 184 mm2
        a, b = 8.8, 6.655
        return np.asarray(a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2))
    if kind == "stenotic":  # a trefoil: lobes forward and into both posterolateral recesses
        return np.asarray(4.5 * (1.0 + 0.25 * np.sin(3.0 * theta)))
    raise ValueError(f"kind must be 'normal' or 'stenotic', not {kind!r}")


def sac_area_mm2(kind: str) -> float:
    """The analytic area inside the dura: 1/2 int r(theta)^2 dtheta (a fine trapezoid sum of the
    closed curve, exact to far below 1e-6 mm2 for these smooth periodic curves)."""
    theta = np.linspace(0.0, 2.0 * np.pi, 200_001)
    r = _radius(kind, theta)
    return float(0.5 * np.trapezoid(r * r, theta))


def _paint(kind: str, rows: npt.NDArray[np.float64], cols: npt.NDArray[np.float64], centre: tuple[float, float],
           pixel_mm: float, s: int, rootlets: list[tuple[float, float]]) -> npt.NDArray[np.float64]:
    """The noiseless slice on the pixels ``rows`` x ``cols``, each the mean of s x s points."""
    offs = (np.arange(s) + 0.5) / s - 0.5
    y = ((rows[:, None] + offs[None, :]).reshape(-1) - centre[0]) * pixel_mm  # mm, positive = posterior
    x = ((cols[:, None] + offs[None, :]).reshape(-1) - centre[1]) * pixel_mm  # mm, positive = patient's left
    yy, xx = np.meshgrid(y, x, indexing="ij")
    rr = np.hypot(xx, yy)
    theta = np.arctan2(yy, xx)
    r_in = _radius(kind, theta)
    img = np.full(yy.shape, MUSCLE, dtype=np.float64)
    # The disc in front, the posterior elements (a dark arch) behind.
    img[((xx / 22.0) ** 2 + ((yy + 22.0) / 14.0) ** 2) < 1.0] = DISC
    img[(rr < r_in + 7.5) & (yy > -3.0)] = LIGAMENT
    # Epidural fat: a cushion around the sac, thicker behind and in the recesses.
    img[rr < r_in + 0.9 + 2.5 * np.clip(yy / 6.0, 0.0, 1.0) + 1.0] = FAT
    img[rr < r_in + 0.9] = DURA
    img[rr < r_in] = CSF
    # Rootlets: small dark bundles in the back of the sac, where the cauda equina lies.
    for k, angle in enumerate(np.radians([50.0, 75.0, 105.0, 130.0, 90.0])):
        rad = float(_radius(kind, np.array([angle]))[0])
        dist = rad * (0.55 if k < 4 else 0.2)
        cx, cy = dist * np.cos(angle), dist * np.sin(angle)
        img[np.hypot(xx - cx, yy - cy) < (0.75 if k < 4 else 0.6)] = ROOTLET
        rootlets.append((centre[0] + cy / pixel_mm, centre[1] + cx / pixel_mm))
    return np.asarray(img.reshape(len(rows), s, len(cols), s).mean(axis=(1, 3)))


def render_axial_sac(kind: str = "normal", *, size: int = 512, pixel_mm: float = 0.35, seed: int = 0,
                     noise: float = 0.03, bias: float = 0.25, supersample: int = 8) -> AxialSac:
    """Render one slice (see the module). ``noise`` is the Rician sigma as a fraction of the CSF
    signal; ``bias`` the peak-to-peak relative amplitude of the smooth bias field."""
    rng = np.random.default_rng(seed)
    centre = ((size - 1) / 2.0 + 20.0, (size - 1) / 2.0 - 7.0)  # (row, col): off the grid's centre
    rootlets: list[tuple[float, float]] = []
    pixels = _paint(kind, np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), centre, pixel_mm,
                    1, rootlets)
    # Partial volume where it matters: the canal and its surroundings at supersample^2 points a pixel.
    half = int(np.ceil(30.0 / pixel_mm))
    r0, c0 = max(0, int(centre[0]) - half), max(0, int(centre[1]) - half)
    r1, c1 = min(size, int(centre[0]) + half), min(size, int(centre[1]) + half)
    pixels[r0:r1, c0:c1] = _paint(kind, np.arange(r0, r1, dtype=np.float64), np.arange(c0, c1, dtype=np.float64),
                                  centre, pixel_mm, supersample, [])
    ry, rx = np.meshgrid(np.linspace(-1.0, 1.0, size), np.linspace(-1.0, 1.0, size), indexing="ij")
    field = 1.0 + 0.5 * bias * (0.8 * rx - 0.6 * ry + 0.4 * rx * ry)
    clean = pixels * field
    re = clean + rng.normal(0.0, noise, clean.shape)
    im = rng.normal(0.0, noise, clean.shape)
    noisy = np.hypot(re, im).astype(np.float32)
    return AxialSac(noisy * np.float32(1000.0), pixel_mm, centre, sac_area_mm2(kind), tuple(rootlets), kind)
