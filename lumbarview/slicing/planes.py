"""View planes in patient space (LPS mm) and the radiological display convention.

A view shows one :class:`ViewPlane`: the centre of its top-left output pixel (``origin_lps``),
the unit directions of screen +x (``right_lps``) and screen +y (``down_lps``), the pixel
spacing along them and the output size. Its normal is ``right x down``: it points *away from
the viewer*, into the screen (a radiological axial, right = patient left and down = posterior,
has its normal toward superior: it is seen from the feet). Stepping a view moves the plane
along that normal.

The radiological convention, whatever the acquisition (supine, prone, feet-first, rows running
posterior-up):

========  ==============================  ==================  ===============
view      screen right (+x)               screen down (+y)    normal (right x down)
========  ==============================  ==================  ===============
sagittal  posterior (anterior on the left)  inferior            right (R)
axial     patient left (right on the left)  posterior           superior (S)
coronal   patient left (right on the left)  inferior            posterior (P)
========  ==============================  ==================  ===============

A plane parallel to the acquired slices is built on the stored pixel grid (its right/down are
+/- the stack's row and column directions, swapped if needed, at the stored spacings), so that
:func:`lumbarview.slicing.reformat.reformat` returns the stored pixels, only flipped or
transposed. With ``native_orientation`` (or for an image without patient geometry) such a
plane shows the rows and columns as stored. Other planes are reformats: spanned by two of the
volume's axes when one pair of them makes a plane within 35 degrees of the asked orientation
(the usual multiplanar reformat), else by the patient axes; they always follow the convention
(a reformat has no stored orientation to keep).

Only numpy here: no Qt, no VTK.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import (
    EdgeLetters,
    FloatArray,
    PlaneOrientation,
    SlicePlane,
    VolumeGeometry,
    classify_normal,
)
from lumbarview.core.limits import limits

# Ideal (screen right, screen down) directions of each standard view, in LPS.
CONVENTION_AXES: dict[PlaneOrientation, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    PlaneOrientation.SAGITTAL: ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    PlaneOrientation.AXIAL: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    PlaneOrientation.CORONAL: ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}
# A volume-aligned reformat is used when two volume axes span a plane within this angle of the
# asked orientation (the same threshold as core.geometry.classify_normal).
_ALIGNED_DEG = 35.0


def _unit(v: npt.ArrayLike) -> FloatArray:
    a = np.asarray(v, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(a))
    if not math.isfinite(n) or n < 1e-12:
        raise ValueError(f"expected a non-zero finite 3-vector, got {a.tolist()}")
    return a / n


class ViewPlane(SlicePlane):
    """A :class:`~lumbarview.core.geometry.SlicePlane` as a view shows it.

    ``row_direction_lps`` is screen right and ``column_direction_lps`` screen down; the two
    aliases below name them so. ``spacing_mm`` is (along right, along down) and ``shape_rc``
    (rows, columns) of the output image.
    """

    @property
    def right_lps(self) -> FloatArray:
        return self.row_direction_lps

    @property
    def down_lps(self) -> FloatArray:
        return self.column_direction_lps

    @classmethod
    def centred(cls, centre_lps: npt.ArrayLike, right_lps: npt.ArrayLike, down_lps: npt.ArrayLike,
                spacing_mm: tuple[float, float], shape_rc: tuple[int, int]) -> ViewPlane:
        """The plane whose output image is centred on ``centre_lps``."""
        right, down = _unit(right_lps), _unit(down_lps)
        rows, cols = int(shape_rc[0]), int(shape_rc[1])
        _check_size(rows, cols)
        origin = (np.asarray(centre_lps, dtype=np.float64).reshape(3)
                  - right * (cols - 1) / 2.0 * spacing_mm[0] - down * (rows - 1) / 2.0 * spacing_mm[1])
        return cls(origin, right, down, spacing_mm, (rows, cols))

    @classmethod
    def from_slice_plane(cls, plane: SlicePlane) -> ViewPlane:
        return cls(plane.origin_lps, plane.row_direction_lps, plane.column_direction_lps, plane.spacing_mm,
                   plane.shape_rc)

    def centre_lps(self) -> FloatArray:
        rows, cols = self.shape_rc
        return self.pixel_to_lps(np.array([(cols - 1) / 2.0, (rows - 1) / 2.0]))

    def stepped(self, distance_mm: float) -> ViewPlane:
        """The same plane moved ``distance_mm`` along its normal (into the screen)."""
        return ViewPlane(self.origin_lps + float(distance_mm) * self.normal_lps, self.right_lps, self.down_lps,
                         self.spacing_mm, self.shape_rc)

    def through(self, point_lps: npt.ArrayLike) -> ViewPlane:
        """The same plane moved along its normal until it contains ``point_lps``."""
        return self.stepped(float(self.signed_distance_mm(np.asarray(point_lps, dtype=np.float64))))

    def to_json(self) -> dict[str, Any]:
        """The plane as the ``view --screenshot`` JSON contract names it."""
        return {"origin_lps": self.origin_lps.tolist(), "right_lps": self.right_lps.tolist(),
                "down_lps": self.down_lps.tolist(), "normal_lps": self.normal_lps.tolist(),
                "spacing_mm": list(self.spacing_mm), "shape_rc": list(self.shape_rc)}


def _check_size(rows: int, cols: int) -> None:
    if rows < 1 or cols < 1:
        raise ValueError(f"a view plane needs at least one pixel, got {rows} x {cols}")
    limits().check_image(None, rows * cols, "reformatted view")


def letters(plane: SlicePlane, has_patient_geometry: bool = True) -> EdgeLetters | None:
    """Orientation letters at the four screen edges of ``plane`` as displayed, from the plane
    itself; None for an image without patient geometry (its directions mean nothing)."""
    return plane.edge_letters() if has_patient_geometry else None


def convention_axes(normal_lps: npt.ArrayLike, orientation: PlaneOrientation) -> tuple[FloatArray, FloatArray]:
    """Screen (right, down) on the plane of ``normal_lps`` (either sense) closest to the
    radiological convention for ``orientation``: the ideal directions projected on the plane
    and made orthonormal (right first). The resulting normal ``right x down`` takes the sense
    the convention implies."""
    n = _unit(normal_lps)
    ideal_r, ideal_d = (np.asarray(v) for v in CONVENTION_AXES[_standard(orientation)])
    r = ideal_r - (ideal_r @ n) * n
    if np.linalg.norm(r) < 1e-6:  # the ideal right is the normal: derive right from down
        d = _unit(ideal_d - (ideal_d @ n) * n)
        return _unit(np.cross(d, n)), d
    r = _unit(r)
    d = ideal_d - (ideal_d @ n) * n - (ideal_d @ r) * r
    if np.linalg.norm(d) < 1e-6:
        d = np.cross(n, r)
    d = _unit(d)
    return r, d


def _standard(orientation: PlaneOrientation) -> PlaneOrientation:
    if orientation not in CONVENTION_AXES:
        raise ValueError(f"a standard view is sagittal, axial or coronal, not {orientation.value}")
    return orientation


def _best_signed_pair(a: FloatArray, b: FloatArray, ideal_r: FloatArray, ideal_d: FloatArray,
                      ) -> tuple[int, int, int]:
    """Which of the axes ``a`` (0) or ``b`` (1) goes right, and the signs of the right and down
    axes, closest to the ideal directions."""
    best = (-math.inf, 0, 1, 1)
    for right_axis in (0, 1):
        r, d = (a, b) if right_axis == 0 else (b, a)
        for sr in (1, -1):
            for sd in (1, -1):
                score = sr * float(r @ ideal_r) + sd * float(d @ ideal_d)
                if score > best[0] + 1e-9:
                    best = (score, right_axis, sr, sd)
    return best[1], best[2], best[3]


def standard_plane(geometry: VolumeGeometry, orientation: PlaneOrientation, cursor_lps: npt.ArrayLike, *,
                   native_orientation: bool = False, has_patient_geometry: bool = True,
                   snap_to_slice: bool = True) -> ViewPlane:
    """The sagittal, axial or coronal view of a volume through ``cursor_lps``.

    When the volume's slices have the asked orientation the plane lies on the stored pixel grid
    (on the slice nearest the cursor with ``snap_to_slice``, as the viewer steps slice by
    slice; through the cursor otherwise or when it lies outside the stack). Otherwise the plane
    passes through the cursor and covers the volume's extent with square pixels of the finer
    spacing of the two volume axes in it. See the module docstring for the axes.
    """
    target = _standard(orientation)
    cursor = np.asarray(cursor_lps, dtype=np.float64).reshape(3)
    stored = not has_patient_geometry or native_orientation
    axes = [geometry.ijk_to_lps[:3, a] for a in range(3)]
    unit_axes = [_unit(v) for v in axes]
    spacing = geometry.spacing_mm
    row, col = unit_axes[0], unit_axes[1]
    in_plane_orthogonal = abs(float(row @ col)) < 1e-6
    if in_plane_orthogonal and (classify_normal(geometry.slice_normal) is target or not has_patient_geometry):
        return _native_plane(geometry, target, cursor, stored, snap_to_slice)
    ideal_r, ideal_d = (np.asarray(v) for v in CONVENTION_AXES[target])
    ideal_n = np.cross(ideal_r, ideal_d)
    # The pair of volume axes whose plane is closest to the asked one.
    best: tuple[float, int, int] | None = None
    for a, b in ((0, 1), (1, 2), (2, 0)):
        n = np.cross(unit_axes[a], unit_axes[b])
        cos = abs(float(_unit(n) @ ideal_n))
        if best is None or cos > best[0]:
            best = (cos, a, b)
    assert best is not None
    cos, a, b = best
    if math.degrees(math.acos(min(1.0, cos))) <= _ALIGNED_DEG:
        right_axis, sr, sd = _best_signed_pair(unit_axes[a], unit_axes[b], ideal_r, ideal_d)
        ra, da = (a, b) if right_axis == 0 else (b, a)
        right = sr * unit_axes[ra]
        down = sd * unit_axes[da]
        down = _unit(down - (down @ right) * right)  # sheared grids: keep the screen orthonormal
        pixel_mm = min(spacing[a], spacing[b])
    else:
        right, down = convention_axes(ideal_n, target)
        pixel_mm = min(spacing)
    return covering_plane(geometry, right, down, cursor, pixel_mm)


def _native_plane(geometry: VolumeGeometry, target: PlaneOrientation, cursor: FloatArray, stored: bool,
                  snap_to_slice: bool) -> ViewPlane:
    _n_k, n_j, n_i = geometry.shape_kji
    row, col = geometry.row_direction_lps, geometry.column_direction_lps
    if stored:
        right_axis, sr, sd = 0, 1, 1
    else:
        ideal_r, ideal_d = (np.asarray(v) for v in CONVENTION_AXES[target])
        right_axis, sr, sd = _best_signed_pair(row, col, ideal_r, ideal_d)
    # Screen axis -> (index axis, sign); index axis 0 = i (along a row), 1 = j (down a column).
    (ra, rs), (da, ds) = ((0, sr), (1, sd)) if right_axis == 0 else ((1, sr), (0, sd))
    sizes = (n_i, n_j)
    corner = [0.0, 0.0]
    corner[ra] = 0.0 if rs > 0 else sizes[ra] - 1.0
    corner[da] = 0.0 if ds > 0 else sizes[da] - 1.0
    k = geometry.nearest_slice(cursor) if snap_to_slice else None
    k_frac = float(k) if k is not None else float(geometry.lps_to_index(cursor)[2])
    origin = geometry.index_to_lps((corner[0], corner[1], k_frac))
    dirs = (row, col)
    spacing = geometry.spacing_mm
    return ViewPlane(origin, rs * dirs[ra], ds * dirs[da], (spacing[ra], spacing[da]), (sizes[da], sizes[ra]))


def covering_plane(geometry: VolumeGeometry, right_lps: npt.ArrayLike, down_lps: npt.ArrayLike,
                   point_lps: npt.ArrayLike, pixel_mm: float, margin_px: int = 0) -> ViewPlane:
    """The plane spanned by ``right_lps`` and ``down_lps`` through ``point_lps`` whose square
    pixels of ``pixel_mm`` cover the volume's projection (its voxel edges) on it. The pixel
    grid is phased on the volume's first voxel, so that a plane along volume axes puts its
    pixel centres on voxel centres."""
    right, down = _unit(right_lps), _unit(down_lps)
    if abs(float(right @ down)) > 1e-6:
        raise ValueError("right and down must be orthogonal")
    if not (math.isfinite(pixel_mm) and pixel_mm > 0):
        raise ValueError(f"pixel size must be positive, got {pixel_mm}")
    point = np.asarray(point_lps, dtype=np.float64).reshape(3)
    normal = np.cross(right, down)
    n_k, n_j, n_i = geometry.shape_kji
    edges = np.array([[i, j, k] for i in (-0.5, n_i - 0.5) for j in (-0.5, n_j - 0.5) for k in (-0.5, n_k - 0.5)])
    corners = geometry.index_to_lps(edges)
    anchor = geometry.index_to_lps((0.0, 0.0, 0.0))
    anchor = anchor - float((anchor - point) @ normal) * normal
    u = (corners - anchor) @ right / pixel_mm
    v = (corners - anchor) @ down / pixel_mm
    # Pixel centres at integer multiples from the anchor, covering [min, max] with their edges.
    u0 = math.floor(float(u.min()) + 0.5) - margin_px
    v0 = math.floor(float(v.min()) + 0.5) - margin_px
    cols = math.ceil(float(u.max()) - 0.5) - u0 + 1 + margin_px
    rows = math.ceil(float(v.max()) - 0.5) - v0 + 1 + margin_px
    cols, rows = max(cols, 1), max(rows, 1)
    _check_size(rows, cols)
    origin = anchor + u0 * pixel_mm * right + v0 * pixel_mm * down
    return ViewPlane(origin, right, down, (pixel_mm, pixel_mm), (rows, cols))


def disc_aligned_plane(centre_lps: npt.ArrayLike, normal_lps: npt.ArrayLike, pixel_mm: float,
                       shape_rc: tuple[int, int]) -> ViewPlane:
    """The axial view aligned to a disc: through the disc centre, normal to the disc (oriented
    superior, as a radiological axial), screen right toward the patient's left and down toward
    posterior as far as the tilt allows. ``centre_lps`` and ``normal_lps`` come from
    :func:`lumbarview.measure.measurer.disc_plane` (the engine's own level plane)."""
    n = _unit(normal_lps)
    if n[2] < 0:
        n = -n
    right, down = convention_axes(n, PlaneOrientation.AXIAL)
    return ViewPlane.centred(centre_lps, right, down, (pixel_mm, pixel_mm), shape_rc)


def plane_from_sagittal_line(start_lps: npt.ArrayLike, end_lps: npt.ArrayLike, sagittal: SlicePlane,
                             pixel_mm: float, shape_rc: tuple[int, int]) -> ViewPlane:
    """The oblique axial planned by a line drawn on a sagittal view, as a technologist plans an
    axial block: the plane contains the line and the sagittal normal (so it cuts the sagittal
    along the line); its normal is perpendicular to the line within the sagittal plane,
    oriented superior; it is centred on the line's midpoint. Screen right runs along the
    sagittal normal toward the patient's left, screen down along the line toward posterior.
    Stepping (:meth:`ViewPlane.stepped`) then moves along that normal."""
    p0 = np.asarray(start_lps, dtype=np.float64).reshape(3)
    p1 = np.asarray(end_lps, dtype=np.float64).reshape(3)
    s = sagittal.normal_lps
    line = (p1 - p0) - float((p1 - p0) @ s) * s  # keep it in the sagittal plane
    if np.linalg.norm(line) < 1e-6:
        raise ValueError("the line is too short (or perpendicular to the sagittal plane) to plan a plane")
    line = _unit(line)
    right = s if s[0] >= 0 else -s
    down = line if line[1] >= 0 else -line
    if abs(float(down[1])) < 1e-9 and down[2] > 0:  # a vertical line: keep down inferior
        down = -down
    if float(np.cross(right, down)[2]) < 0:  # keep the normal superior (seen from the feet)
        down = -down
    return ViewPlane.centred((p0 + p1) / 2.0, right, down, (pixel_mm, pixel_mm), shape_rc)
