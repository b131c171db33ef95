"""Patient-space geometry: voxel grids, slice planes, plane intersections, orientation labels.

Everything here is in DICOM patient coordinates, LPS, millimetres: +x points to the patient's
Left, +y to Posterior, +z to Superior (head), whatever the patient position on the table.
Voxel index ``(i, j, k)`` is (column, row, slice) and pixel arrays are stored ``[k, j, i]``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from lumbarview.core.errors import LumbarviewError

FloatArray = npt.NDArray[np.float64]

# Letters for the +x, +y, +z patient axes and their opposites (PS3.3 C.7.6.1.1.1,
# (0020,0020) *Patient Orientation*).
_POSITIVE_LETTERS = ("L", "P", "S")
_NEGATIVE_LETTERS = ("R", "A", "I")


class PlaneOrientation(enum.Enum):
    """Anatomical name of a plane, from its normal."""

    SAGITTAL = "sagittal"
    CORONAL = "coronal"
    AXIAL = "axial"
    OBLIQUE = "oblique"


class GeometryError(LumbarviewError, ValueError):
    """Geometry that cannot describe a grid in patient space: a non-finite number (inf, NaN,
    or a value whose square overflows), a zero or negative spacing, a degenerate direction.
    A :class:`ValueError`, so callers that guard geometry with ``except ValueError`` keep
    working; readers turn it into an issue for the file it came from."""


def _finite(values: npt.ArrayLike, what: str) -> FloatArray:
    a = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise GeometryError(f"{what} must be finite, got {a.tolist()}")
    return a


def _unit(vector: npt.ArrayLike, what: str) -> FloatArray:
    v = _finite(vector, what).reshape(3)
    # Scale first: the norm of (1e308, 1e308, 0) overflows to inf although the direction is
    # perfectly defined.
    scale = float(np.max(np.abs(v)))
    if scale == 0.0:
        raise GeometryError(f"{what} must be a non-zero finite 3-vector, got {v.tolist()}")
    v = v / scale
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-9:
        raise GeometryError(f"{what} must be a non-zero finite 3-vector, got {v.tolist()}")
    return v / norm


def _readonly(array: npt.ArrayLike) -> FloatArray:
    a = np.array(array, dtype=np.float64)
    a.setflags(write=False)
    return a


def classify_normal(normal_lps: npt.ArrayLike, oblique_deg: float = 35.0) -> PlaneOrientation:
    """Name the plane whose normal is ``normal_lps``.

    A plane is sagittal, coronal or axial when its normal lies within ``oblique_deg`` of the
    x (L-R), y (A-P) or z (S-I) axis; otherwise it is oblique. The default of 35 degrees keeps
    lumbar axial blocks angled along the L5-S1 disc (typically 10-30 degrees) "axial", which is
    what a reader calls them.
    """
    n = np.abs(_unit(normal_lps, "normal"))
    axis = int(np.argmax(n))
    angle_deg = float(np.degrees(np.arccos(min(1.0, n[axis]))))
    if angle_deg > oblique_deg:
        return PlaneOrientation.OBLIQUE
    return (PlaneOrientation.SAGITTAL, PlaneOrientation.CORONAL, PlaneOrientation.AXIAL)[axis]


def direction_letters(direction_lps: npt.ArrayLike, min_component: float = 0.25) -> str:
    """Orientation letters for a direction, strongest component first.

    ``(0, 0, -1)`` gives ``"I"``; a direction 20 degrees from inferior toward anterior gives
    ``"IA"``. Components whose magnitude is below ``min_component`` (about 15 degrees) are left
    out, so a slightly oblique edge reads as its main direction plus at most two more letters.
    """
    d = _unit(direction_lps, "direction")
    order = np.argsort(-np.abs(d), kind="stable")
    letters: list[str] = []
    for axis in order:
        c = d[axis]
        if letters and abs(c) < min_component:
            break
        letters.append(_POSITIVE_LETTERS[axis] if c > 0 else _NEGATIVE_LETTERS[axis])
    return "".join(letters)


@dataclass(frozen=True)
class EdgeLetters:
    """Orientation letters shown at the four edges of a displayed slice."""

    left: str
    right: str
    top: str
    bottom: str


@dataclass(frozen=True)
class Segment:
    """A line segment in patient space (LPS mm)."""

    start_lps: FloatArray
    end_lps: FloatArray

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.end_lps - self.start_lps))


@dataclass(frozen=True, eq=False)
class SlicePlane:
    """One displayed 2D slice in patient space.

    Parameters
    ----------
    origin_lps : (3,) array_like
        Centre of the first transmitted pixel (row 0, column 0), as (0020,0032)
        *Image Position (Patient)*.
    row_direction_lps : (3,) array_like
        Unit vector along a row, i.e. of increasing column index (first triplet of
        (0020,0037) *Image Orientation (Patient)*). Displayed left to right.
    column_direction_lps : (3,) array_like
        Unit vector down a column, i.e. of increasing row index (second triplet).
        Displayed top to bottom.
    spacing_mm : (float, float)
        (along a row, down a column): the column spacing then the row spacing. Note that
        (0028,0030) *Pixel Spacing* lists them the other way round.
    shape_rc : (int, int)
        (rows, columns).
    """

    origin_lps: FloatArray
    row_direction_lps: FloatArray
    column_direction_lps: FloatArray
    spacing_mm: tuple[float, float]
    shape_rc: tuple[int, int]

    def __post_init__(self) -> None:
        row = _unit(self.row_direction_lps, "row direction")
        col = _unit(self.column_direction_lps, "column direction")
        if abs(float(row @ col)) > 1e-3:
            raise GeometryError("row and column directions of a slice must be orthogonal")
        spacing = _finite(self.spacing_mm, "pixel spacing").reshape(2)
        if float(spacing.min()) <= 0:
            raise GeometryError(f"pixel spacing must be positive, got {self.spacing_mm}")
        origin = _finite(self.origin_lps, "slice origin").reshape(3)
        object.__setattr__(self, "origin_lps", _readonly(origin))
        object.__setattr__(self, "row_direction_lps", _readonly(row))
        object.__setattr__(self, "column_direction_lps", _readonly(col))
        object.__setattr__(self, "spacing_mm", (float(self.spacing_mm[0]), float(self.spacing_mm[1])))
        object.__setattr__(self, "shape_rc", (int(self.shape_rc[0]), int(self.shape_rc[1])))

    @cached_property
    def normal_lps(self) -> FloatArray:
        """Unit normal, row direction x column direction."""
        return _readonly(np.cross(self.row_direction_lps, self.column_direction_lps))

    @cached_property
    def orientation(self) -> PlaneOrientation:
        return classify_normal(self.normal_lps)

    def pixel_to_lps(self, col_row: npt.ArrayLike) -> FloatArray:
        """Map fractional (column, row) pixel coordinates of shape ``(..., 2)`` to LPS mm."""
        cr = np.asarray(col_row, dtype=np.float64)
        return (
            self.origin_lps
            + cr[..., :1] * self.spacing_mm[0] * self.row_direction_lps
            + cr[..., 1:2] * self.spacing_mm[1] * self.column_direction_lps
        )

    def lps_to_pixel(self, lps: npt.ArrayLike) -> FloatArray:
        """Project LPS points of shape ``(..., 3)`` onto the plane as (column, row) pixels."""
        d = np.asarray(lps, dtype=np.float64) - self.origin_lps
        col = d @ self.row_direction_lps / self.spacing_mm[0]
        row = d @ self.column_direction_lps / self.spacing_mm[1]
        return np.stack([col, row], axis=-1)

    def signed_distance_mm(self, lps: npt.ArrayLike) -> FloatArray:
        """Signed distance of points from the plane along its normal."""
        return (np.asarray(lps, dtype=np.float64) - self.origin_lps) @ self.normal_lps

    def corners_lps(self) -> FloatArray:
        """The four outer corners (pixel edges, not centres): top-left, top-right,
        bottom-right, bottom-left as displayed."""
        rows, cols = self.shape_rc
        cr = np.array([[-0.5, -0.5], [cols - 0.5, -0.5], [cols - 0.5, rows - 0.5], [-0.5, rows - 0.5]])
        return self.pixel_to_lps(cr)

    def edge_letters(self) -> EdgeLetters:
        """Orientation letters at the four edges of the slice as displayed (row 0 at the top,
        column 0 at the left), from the geometry alone. Because (0020,0037) is in patient
        coordinates, prone, decubitus and feet-first positions need no special case."""
        row, col = self.row_direction_lps, self.column_direction_lps
        return EdgeLetters(
            left=direction_letters(-row),
            right=direction_letters(row),
            top=direction_letters(-col),
            bottom=direction_letters(col),
        )

    def intersection(self, other: SlicePlane, clip_to_other: bool = True) -> Segment | None:
        """Where ``other``'s plane cuts this slice, as a segment clipped to this slice's extent.

        This is what a cross-reference (scout) line is drawn from. With ``clip_to_other`` the
        segment is also clipped to ``other``'s own extent, so that a small axial field of view
        gives a short line. Returns None when the planes are parallel or do not meet inside
        the extent(s).
        """
        direction = np.cross(self.normal_lps, other.normal_lps)
        sin_angle = float(np.linalg.norm(direction))
        if sin_angle < 1e-6:
            return None
        direction = direction / sin_angle
        # A point on both planes: solve n1.x = d1, n2.x = d2, direction.x = 0 (closest to origin).
        a = np.stack([self.normal_lps, other.normal_lps, direction])
        b = np.array(
            [self.normal_lps @ self.origin_lps, other.normal_lps @ other.origin_lps, 0.0]
        )
        point = np.linalg.solve(a, b)
        interval = _clip_line_to_rect(point, direction, self)
        if interval is None:
            return None
        t0, t1 = interval
        if clip_to_other:
            other_interval = _clip_line_to_rect(point, direction, other)
            if other_interval is None:
                return None
            t0, t1 = max(t0, other_interval[0]), min(t1, other_interval[1])
            if t1 - t0 <= 1e-9:
                return None
        return Segment(_readonly(point + t0 * direction), _readonly(point + t1 * direction))


def _clip_line_to_rect(
    point: FloatArray, direction: FloatArray, plane: SlicePlane
) -> tuple[float, float] | None:
    """Parameter interval of ``point + t * direction`` (a line lying in ``plane``) inside the
    plane's pixel-edge rectangle (Liang-Barsky clipping in pixel units)."""
    p = plane.lps_to_pixel(point)
    d = plane.lps_to_pixel(point + direction) - p
    rows, cols = plane.shape_rc
    lo = np.array([-0.5, -0.5])
    hi = np.array([cols - 0.5, rows - 0.5])
    t0, t1 = -np.inf, np.inf
    for axis in range(2):
        if abs(d[axis]) < 1e-12:
            if p[axis] < lo[axis] or p[axis] > hi[axis]:
                return None
            continue
        ta = (lo[axis] - p[axis]) / d[axis]
        tb = (hi[axis] - p[axis]) / d[axis]
        t0 = max(t0, min(ta, tb))
        t1 = min(t1, max(ta, tb))
    if t1 - t0 <= 1e-9:
        return None
    return float(t0), float(t1)


@dataclass(frozen=True, eq=False)
class VolumeGeometry:
    """Where a voxel grid sits in patient space.

    Parameters
    ----------
    shape_kji : tuple of int
        ``(n_slices, n_rows, n_cols)``.
    ijk_to_lps : (4, 4) array_like
        Homogeneous affine from voxel index (i = column, j = row, k = slice) to LPS mm.
        Columns 0 and 1 are the row and column directions times the pixel spacing; column 2
        is the step from one slice to the next, which may be sheared (gantry tilt).
    """

    shape_kji: tuple[int, int, int]
    ijk_to_lps: FloatArray

    def __post_init__(self) -> None:
        affine = np.array(self.ijk_to_lps, dtype=np.float64)
        if affine.shape != (4, 4):
            raise GeometryError(f"ijk_to_lps must be 4x4, got shape {affine.shape}")
        if not np.all(np.isfinite(affine)):
            raise GeometryError("ijk_to_lps must be finite")
        with np.errstate(all="ignore"):
            det = float(np.linalg.det(affine[:3, :3]))
        # A determinant that overflows (spacings of 1e200 mm) is as unusable as a zero one:
        # the inverse would hold zeros and the grid could not be mapped back.
        if not np.isfinite(det) or abs(det) < 1e-12:
            raise GeometryError("ijk_to_lps must be finite and invertible")
        affine.setflags(write=False)
        object.__setattr__(self, "ijk_to_lps", affine)
        shape = tuple(int(s) for s in self.shape_kji)
        if len(shape) != 3 or min(shape) < 1:
            raise GeometryError(f"shape_kji must be three positive sizes, got {self.shape_kji}")
        object.__setattr__(self, "shape_kji", shape)

    @classmethod
    def from_directions(
        cls,
        shape_kji: tuple[int, int, int],
        origin_lps: npt.ArrayLike,
        row_direction_lps: npt.ArrayLike,
        column_direction_lps: npt.ArrayLike,
        spacing_mm: tuple[float, float, float],
        slice_direction_lps: npt.ArrayLike | None = None,
    ) -> VolumeGeometry:
        """Build from unit directions and spacings (i, j, k). The slice direction defaults to
        row x column (a right-handed, unsheared stack)."""
        row = _unit(row_direction_lps, "row direction")
        col = _unit(column_direction_lps, "column direction")
        k_dir = np.cross(row, col) if slice_direction_lps is None else _unit(
            slice_direction_lps, "slice direction"
        )
        spacing = _finite(spacing_mm, "voxel spacing").reshape(3)
        if float(spacing.min()) <= 0:
            raise GeometryError(f"voxel spacing must be positive, got {list(spacing_mm)}")
        affine = np.eye(4)
        affine[:3, 0] = row * spacing_mm[0]
        affine[:3, 1] = col * spacing_mm[1]
        affine[:3, 2] = k_dir * spacing_mm[2]
        affine[:3, 3] = _finite(origin_lps, "origin").reshape(3)
        return cls(shape_kji, affine)

    @cached_property
    def lps_to_ijk(self) -> FloatArray:
        return _readonly(np.linalg.inv(self.ijk_to_lps))

    @cached_property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along i, j, k. The k value is the step between slice centres."""
        di, dj, dk = np.linalg.norm(self.ijk_to_lps[:3, :3], axis=0)
        return float(di), float(dj), float(dk)

    @cached_property
    def row_direction_lps(self) -> FloatArray:
        return _readonly(_unit(self.ijk_to_lps[:3, 0], "i axis"))

    @cached_property
    def column_direction_lps(self) -> FloatArray:
        return _readonly(_unit(self.ijk_to_lps[:3, 1], "j axis"))

    @cached_property
    def slice_normal(self) -> FloatArray:
        """Unit normal of the slices (row x column), oriented toward increasing k."""
        normal = np.cross(self.row_direction_lps, self.column_direction_lps)
        return _readonly(normal if normal @ self.ijk_to_lps[:3, 2] > 0 else -normal)

    @cached_property
    def slice_spacing_mm(self) -> float:
        """Distance between adjacent slice planes along the normal (less than the k step when
        the stack is sheared)."""
        return float(abs(self.slice_normal @ self.ijk_to_lps[:3, 2]))

    @cached_property
    def orientation(self) -> PlaneOrientation:
        return classify_normal(self.slice_normal)

    def index_to_lps(self, ijk: npt.ArrayLike) -> FloatArray:
        """Map indices of shape ``(..., 3)`` to LPS millimetres."""
        pts = np.asarray(ijk, dtype=np.float64)
        return pts @ self.ijk_to_lps[:3, :3].T + self.ijk_to_lps[:3, 3]

    def lps_to_index(self, lps: npt.ArrayLike) -> FloatArray:
        """Map LPS millimetres of shape ``(..., 3)`` to fractional indices."""
        pts = np.asarray(lps, dtype=np.float64)
        return pts @ self.lps_to_ijk[:3, :3].T + self.lps_to_ijk[:3, 3]

    def nearest_slice(self, lps: npt.ArrayLike) -> int | None:
        """Slice closest to ``lps``, or None if it lies more than half a slice outside."""
        k = int(np.floor(self.lps_to_index(lps)[2] + 0.5))
        return k if 0 <= k < self.shape_kji[0] else None

    def slice_plane(self, k: int) -> SlicePlane:
        """The plane of slice ``k`` (0-based). Planes are immutable and memoised: views ask for
        them on every slice step."""
        if not 0 <= k < self.shape_kji[0]:
            raise IndexError(f"slice {k} is outside 0..{self.shape_kji[0] - 1}")
        cache: dict[int, SlicePlane] = self.__dict__.setdefault("_planes", {})
        found = cache.get(k)
        if found is None:
            found = cache[k] = self._make_slice_plane(k)
        return found

    def _make_slice_plane(self, k: int) -> SlicePlane:
        di, dj, _ = self.spacing_mm
        return SlicePlane(
            origin_lps=self.index_to_lps((0.0, 0.0, float(k))),
            row_direction_lps=self.row_direction_lps,
            column_direction_lps=self.column_direction_lps,
            spacing_mm=(di, dj),
            shape_rc=(self.shape_kji[1], self.shape_kji[2]),
        )

    def centre_lps(self) -> FloatArray:
        """Centre of the grid in LPS mm."""
        k, j, i = self.shape_kji
        return self.index_to_lps(((i - 1) / 2.0, (j - 1) / 2.0, (k - 1) / 2.0))


def is_parallel(normal_a: npt.ArrayLike, normal_b: npt.ArrayLike, tolerance_deg: float = 0.5) -> bool:
    """True when two plane normals are parallel (either sense) within ``tolerance_deg``."""
    a = _unit(normal_a, "normal")
    b = _unit(normal_b, "normal")
    return bool(abs(float(a @ b)) >= np.cos(np.radians(tolerance_deg)))
