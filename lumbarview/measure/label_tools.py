"""Label-editing tools as geometry in patient space (LPS, mm): which voxels of a label map a
brush, fill, polygon, islands or interpolation touches, and what they become.

Every tool works on the label map's own grid, whatever view it was drawn on (acquired,
reformatted, oblique): a shape drawn on a plane selects the voxels whose centres fall in it,
never a resampled copy of the map. A plane's voxels are the one-voxel-thick digital plane
``-h <= d < h`` around it, ``d`` the signed distance of a voxel centre and ``h`` half the largest
step a grid axis makes along the normal: every line of voxels along the grid axis most nearly
normal to the plane crosses it exactly once (on an acquired plane: exactly its slice).

Each tool returns a :class:`Selection`: flat indices into the C-ordered ``[k, j, i]`` array and
the values to write there (after the preserve and threshold rules). No Qt here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import SlicePlane, VolumeGeometry

FloatArray = npt.NDArray[np.float64]


class ToolError(ValueError):
    """A tool cannot run on this input (a point outside the grid, an empty key slice...);
    the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Selection:
    """``flat`` voxel indices and the ``values`` they become (one per index)."""

    flat: npt.NDArray[np.int64]
    values: npt.NDArray[Any]

    @property
    def size(self) -> int:
        return int(self.flat.size)


@dataclass(frozen=True)
class EditPlane:
    """A drawing plane in LPS: ``origin``, in-plane unit ``right`` and ``down``, ``normal``."""

    origin_lps: FloatArray
    right_lps: FloatArray
    down_lps: FloatArray

    @property
    def normal_lps(self) -> FloatArray:
        n = np.cross(self.right_lps, self.down_lps)
        return np.asarray(n / np.linalg.norm(n), dtype=np.float64)

    @classmethod
    def of(cls, plane: SlicePlane) -> EditPlane:
        """The drawing plane of a view's :class:`SlicePlane`."""
        return cls(np.asarray(plane.origin_lps, dtype=np.float64), np.asarray(plane.row_direction_lps, np.float64),
                   np.asarray(plane.column_direction_lps, np.float64))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EditPlane:
        right = _vector(data["right_lps"], "plane.right_lps")
        down = _vector(data["down_lps"], "plane.down_lps")
        right, down = right / np.linalg.norm(right), down / np.linalg.norm(down)
        if abs(float(right @ down)) > 1e-3:
            raise ToolError("the plane's right_lps and down_lps are not orthogonal; give two perpendicular "
                            "unit vectors")
        return cls(_vector(data["origin_lps"], "plane.origin_lps"), right, down)

    def to_dict(self) -> dict[str, list[float]]:
        return {"origin_lps": [float(v) for v in self.origin_lps], "right_lps": [float(v) for v in self.right_lps],
                "down_lps": [float(v) for v in self.down_lps], "normal_lps": [float(v) for v in self.normal_lps]}


def _vector(value: Any, what: str) -> FloatArray:
    try:
        v = np.asarray(value, dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        raise ToolError(f"{what} must be three numbers (LPS mm), got {value!r}") from None
    if not np.all(np.isfinite(v)):
        raise ToolError(f"{what} must be finite, got {value!r}")
    return v


# -- the grid ------------------------------------------------------------------------------------
def _axes(geometry: VolumeGeometry) -> FloatArray:
    """The steps (mm, LPS) of the i, j, k axes, as rows."""
    return np.asarray(geometry.ijk_to_lps[:3, :3].T, dtype=np.float64)


def plane_half_thickness(geometry: VolumeGeometry, normal: FloatArray) -> float:
    """``h``: half the largest step a grid axis makes along ``normal``."""
    return 0.5 * float(np.max(np.abs(_axes(geometry) @ normal)))


def _index_box(geometry: VolumeGeometry, lo: FloatArray, hi: FloatArray) -> tuple[slice, slice, slice] | None:
    """The ``[k, j, i]`` index box of the voxels whose centres may lie in the LPS box."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    ijk = geometry.lps_to_index(corners)
    first = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
    shape_ijk = np.array(geometry.shape_kji[::-1])
    last = np.minimum(np.ceil(ijk.max(axis=0)).astype(int), shape_ijk - 1)
    if np.any(last < first):
        return None
    return (slice(first[2], last[2] + 1), slice(first[1], last[1] + 1), slice(first[0], last[0] + 1))


def _centres(geometry: VolumeGeometry, box: tuple[slice, slice, slice], k: int) -> tuple[FloatArray, FloatArray]:
    """The LPS centres (n, 3) of slice ``k`` of the box, and their ``[j, i]`` grid (2, n)."""
    jj, ii = np.meshgrid(np.arange(box[1].start, box[1].stop), np.arange(box[2].start, box[2].stop), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], axis=1).astype(np.float64)
    return geometry.index_to_lps(ijk), np.stack([jj.ravel(), ii.ravel()])


def _flat(geometry: VolumeGeometry, k: int | npt.NDArray[Any], ji: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    _, nj, ni = geometry.shape_kji
    flat = (np.asarray(k, dtype=np.int64) * nj + ji[0].astype(np.int64)) * ni + ji[1].astype(np.int64)
    return np.asarray(flat, dtype=np.int64)


def _select(geometry: VolumeGeometry, lo: FloatArray, hi: FloatArray, keep: Any) -> npt.NDArray[np.int64]:
    """Flat indices of the voxels of the LPS box whose centres ``keep(points) -> bool[n]`` takes
    (computed one slice of the box at a time, so a whole-volume box stays small in memory)."""
    box = _index_box(geometry, lo, hi)
    if box is None:
        return np.zeros(0, dtype=np.int64)
    found = []
    for k in range(box[0].start, box[0].stop):
        points, ji = _centres(geometry, box, k)
        inside = keep(points)
        if inside.any():
            found.append(_flat(geometry, k, ji[:, inside]))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _grid_box(geometry: VolumeGeometry) -> tuple[FloatArray, FloatArray]:
    s = geometry.shape_kji
    corners = np.array([[i, j, k] for i in (0, s[2] - 1) for j in (0, s[1] - 1) for k in (0, s[0] - 1)], float)
    lps = geometry.index_to_lps(corners)
    return lps.min(axis=0) - 1e-6, lps.max(axis=0) + 1e-6


def check_inside(geometry: VolumeGeometry, points_lps: npt.ArrayLike, what: str = "a point") -> None:
    """ToolError when a point lies outside the grid (beyond half a voxel of its edge)."""
    points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(points)):
        raise ToolError(f"{what} is not finite; give LPS coordinates in mm")
    ijk = geometry.lps_to_index(points)
    limit = np.array(geometry.shape_kji[::-1], dtype=np.float64) - 0.5
    bad = np.any((ijk < -0.5) | (ijk > limit), axis=1)
    if bad.any():
        p = points[int(np.argmax(bad))]
        raise ToolError(f"{what} at LPS ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) mm is outside the label map's grid "
                        f"({geometry.shape_kji[::-1]} voxels); draw inside the map")


# -- shapes --------------------------------------------------------------------------------------
def sphere_voxels(geometry: VolumeGeometry, center_lps: npt.ArrayLike, radius_mm: float) -> npt.NDArray[np.int64]:
    """The voxels whose centres lie within ``radius_mm`` of ``center_lps`` (a 3D brush)."""
    c = _vector(center_lps, "center_lps")
    if not (radius_mm > 0 and math.isfinite(radius_mm)):
        raise ToolError(f"the brush radius must be a positive number of mm, got {radius_mm}")
    r = float(radius_mm)
    return _select(geometry, c - r, c + r, lambda p: np.einsum("ij,ij->i", p - c, p - c) <= r * r)


def disk_voxels(geometry: VolumeGeometry, plane: EditPlane, center_lps: npt.ArrayLike,
                radius_mm: float) -> npt.NDArray[np.int64]:
    """The voxels of ``plane``'s digital plane whose centres project within ``radius_mm`` of
    ``center_lps`` (a 2D brush on the view plane)."""
    c = _vector(center_lps, "center_lps")
    if not (radius_mm > 0 and math.isfinite(radius_mm)):
        raise ToolError(f"the brush radius must be a positive number of mm, got {radius_mm}")
    n = plane.normal_lps
    h = plane_half_thickness(geometry, n)
    c = c - float(n @ (c - plane.origin_lps)) * n  # onto the plane
    r = float(radius_mm)
    pad = r + 2 * h

    def keep(p: FloatArray) -> npt.NDArray[np.bool_]:
        rel = p - c
        d = rel @ n
        in_plane = np.einsum("ij,ij->i", rel, rel) - d * d
        return np.asarray((d >= -h) & (d < h) & (in_plane <= r * r))

    return _select(geometry, c - pad, c + pad, keep)


def polygon_voxels(geometry: VolumeGeometry, plane: EditPlane, points_lps: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The voxels of ``plane``'s digital plane whose centres project inside the polygon (or a
    freehand outline: many points), closed from the last point to the first."""
    pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    if len(pts) < 3:
        raise ToolError(f"a polygon needs at least 3 points, got {len(pts)}")
    n = plane.normal_lps
    h = plane_half_thickness(geometry, n)
    uv = np.stack([(pts - plane.origin_lps) @ plane.right_lps, (pts - plane.origin_lps) @ plane.down_lps], axis=1)

    def keep(p: FloatArray) -> npt.NDArray[np.bool_]:
        rel = p - plane.origin_lps
        d = rel @ n
        slab = (d >= -h) & (d < h)
        out = np.zeros(len(p), dtype=bool)
        if slab.any():
            q = np.stack([rel[slab] @ plane.right_lps, rel[slab] @ plane.down_lps], axis=1)
            out[slab] = _inside_polygon(q, uv)
        return out

    onto = pts - np.outer((pts - plane.origin_lps) @ n, n)
    return _select(geometry, onto.min(axis=0) - 2 * h, onto.max(axis=0) + 2 * h, keep)


def _inside_polygon(points: FloatArray, polygon: FloatArray) -> npt.NDArray[np.bool_]:
    """Even-odd rule: a point is inside when a ray along +u crosses the outline an odd number
    of times (the outline closed from the last vertex to the first)."""
    u, v = points[:, 0:1], points[:, 1:2]
    a, b = polygon, np.roll(polygon, -1, axis=0)
    straddles = (a[:, 1] > v) != (b[:, 1] > v)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_u = a[:, 0] + (v - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    crossings = np.count_nonzero(straddles & (u < crossing_u), axis=1)
    return np.asarray(crossings % 2 == 1)


def plane_voxels(geometry: VolumeGeometry, plane: EditPlane) -> npt.NDArray[np.int64]:
    """Every voxel of ``plane``'s digital plane within the grid."""
    n = plane.normal_lps
    h = plane_half_thickness(geometry, n)
    lo, hi = _grid_box(geometry)

    def keep(p: FloatArray) -> npt.NDArray[np.bool_]:
        d = (p - plane.origin_lps) @ n
        return (d >= -h) & (d < h)

    return _select(geometry, lo, hi, keep)


# -- rules ---------------------------------------------------------------------------------------
def paint(labels: npt.NDArray[Any], flat: npt.NDArray[np.int64], label: int, *, preserve: bool = True,
          erase: bool = False, intensity: npt.NDArray[Any] | None = None,
          threshold: tuple[float, float] | None = None) -> Selection:
    """What painting ``label`` (or erasing it) on ``flat`` writes. ``preserve`` (on by default):
    painting changes only background and ``label`` voxels, erasing only ``label`` voxels (off:
    painting takes any voxel, erasing clears any label). ``threshold`` ``[lo, hi]`` limits the
    edit to voxels whose ``intensity`` (an image on the same grid) lies in the range."""
    values = labels.reshape(-1)[flat]
    keep = np.ones(flat.size, dtype=bool)
    if preserve:
        keep &= (values == label) if erase else ((values == 0) | (values == label))
    if threshold is not None:
        if intensity is None:
            raise ToolError("threshold-limited painting needs the image's intensities; give the image")
        lo, hi = float(threshold[0]), float(threshold[1])
        if not lo <= hi:
            raise ToolError(f"the threshold range [{lo}, {hi}] is empty; give [low, high] with low <= high")
        inten = intensity.reshape(-1)[flat]
        keep &= (inten >= lo) & (inten <= hi)
    chosen = flat[keep]
    return Selection(chosen, np.full(chosen.size, 0 if erase else label, dtype=labels.dtype))


def _seed_index(geometry: VolumeGeometry, seed_lps: npt.ArrayLike) -> tuple[int, int, int]:
    check_inside(geometry, seed_lps, "the seed")
    i, j, k = (int(v) for v in np.rint(geometry.lps_to_index(np.asarray(seed_lps, float).reshape(1, 3))[0]))
    return k, j, i


def pick_label(labels: npt.NDArray[Any], geometry: VolumeGeometry, point_lps: npt.ArrayLike) -> int:
    """The label under a point (the label picker)."""
    return int(labels[_seed_index(geometry, point_lps)])


def new_label(labels: npt.NDArray[Any]) -> int:
    """A label not used yet: one above the largest."""
    return int(labels.max()) + 1 if labels.size else 1


def fill(labels: npt.NDArray[Any], geometry: VolumeGeometry, seed_lps: npt.ArrayLike, label: int, *,
         plane: EditPlane | None = None, contiguous: bool = True, preserve: bool = True,
         intensity: npt.NDArray[Any] | None = None, threshold: tuple[float, float] | None = None) -> Selection:
    """Fill the region of the seed's value with ``label``: the connected region (face
    connectivity; on ``plane``'s digital plane when one is given, else in 3D) or, not
    ``contiguous``, every voxel of that value (on the plane or in the map). ``preserve``: a seed
    on another label fills nothing."""
    from scipy import ndimage

    k, j, i = _seed_index(geometry, seed_lps)
    seed_value = labels[k, j, i]
    if preserve and seed_value not in (0, label):
        return Selection(np.zeros(0, np.int64), np.zeros(0, labels.dtype))
    same = labels == seed_value
    if plane is not None:
        region = np.zeros(labels.shape, dtype=bool)
        region.reshape(-1)[plane_voxels(geometry, plane)] = True
        same &= region
        structure = np.ones((3, 3, 3), dtype=bool)  # a digital plane is 26-connected
    else:
        structure = ndimage.generate_binary_structure(3, 1)
    if contiguous:
        components, _ = ndimage.label(same, structure=structure)
        seed_component = components[k, j, i]
        same = components == seed_component if seed_component else np.zeros_like(same)
    flat = np.flatnonzero(same)
    return paint(labels, flat, label, preserve=preserve, intensity=intensity, threshold=threshold)


def islands(labels: npt.NDArray[Any], label: int, *, keep_largest: bool = False,
            min_voxels: int = 0) -> Selection:
    """Clear the islands of ``label`` (face-connected components): all but the largest
    (``keep_largest``) and/or those under ``min_voxels`` voxels."""
    from scipy import ndimage

    mask = labels == label
    objects = ndimage.find_objects(mask.astype(np.uint8))
    if not objects or objects[0] is None:
        return Selection(np.zeros(0, np.int64), np.zeros(0, labels.dtype))
    box = objects[0]
    components, count = ndimage.label(mask[box], structure=ndimage.generate_binary_structure(3, 1))
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    drop = np.zeros(count + 1, dtype=bool)
    if keep_largest:
        drop[1:] = True
        drop[int(np.argmax(sizes))] = False
    if min_voxels > 0:
        drop[1:] |= sizes[1:] < min_voxels
    local = drop[components]
    kk, jj, ii = np.nonzero(local)
    flat = np.ravel_multi_index((kk + box[0].start, jj + box[1].start, ii + box[2].start), labels.shape)
    return Selection(flat.astype(np.int64), np.zeros(flat.size, labels.dtype))


def relabel(labels: npt.NDArray[Any], from_label: int, label: int, *, preserve: bool = True) -> Selection:
    """Every voxel of ``from_label`` becomes ``label`` (a wrong label value fixed at once);
    ``preserve`` refuses to merge into a label already present."""
    if preserve and from_label != label and bool(np.any(labels == label)):
        raise ToolError(f"label {label} is already in the map: relabelling {from_label} to it would merge two "
                        "structures; switch 'preserve other labels' off to merge them on purpose")
    flat = np.flatnonzero(labels == from_label)
    return Selection(flat.astype(np.int64), np.full(flat.size, label, dtype=labels.dtype))


# -- interpolation between key slices -------------------------------------------------------------
def grid_axis(geometry: VolumeGeometry, normal_lps: npt.ArrayLike, tolerance_deg: float = 1.0) -> int:
    """The array axis (0 = k, 1 = j, 2 = i) whose grid direction is the chosen normal; ToolError
    when the normal is not along one of the map's axes (interpolate on the map's own slices)."""
    n = _vector(normal_lps, "normal_lps")
    n = n / np.linalg.norm(n)
    axes = _axes(geometry)
    units = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    cosines = np.abs(units @ n)
    best = int(np.argmax(cosines))
    if cosines[best] < np.cos(np.radians(tolerance_deg)):
        raise ToolError("interpolation runs between slices of the label map's own grid: the chosen normal is "
                        f"{np.degrees(np.arccos(min(1.0, cosines[best]))):.1f} degrees from its nearest axis; "
                        "choose a view parallel to the map's slices")
    return 2 - best  # i -> array axis 2, j -> 1, k -> 0


def interpolate(labels: npt.NDArray[Any], geometry: VolumeGeometry, label: int, normal_lps: npt.ArrayLike, *,
                preserve: bool = True, key_slices: Sequence[int] | None = None) -> tuple[Selection, list[int]]:
    """Shape-based (morphological) interpolation of ``label`` between its key slices along the
    grid axis of ``normal_lps``: each slice between two key slices takes the zero level of the
    linear blend of the two key shapes' signed distance maps (in mm, in-plane spacing). Returns
    the selection and the interpolated slice numbers (to be recorded as such: interpolation
    smooths a focal narrowing away)."""
    from scipy import ndimage

    axis = grid_axis(geometry, normal_lps)
    moved = np.moveaxis(labels, axis, 0)
    spacing_kji = geometry.spacing_mm[::-1]
    in_plane = tuple(s for a, s in enumerate(spacing_kji) if a != axis)
    present = np.flatnonzero((moved == label).reshape(moved.shape[0], -1).any(axis=1))
    keys = sorted(set(int(k) for k in key_slices)) if key_slices is not None else present.tolist()
    for k in keys:
        if not 0 <= k < moved.shape[0]:
            raise ToolError(f"key slice {k} is outside the map (0 to {moved.shape[0] - 1})")
    if len(keys) < 2:
        raise ToolError(f"label {label} needs at least two key slices to interpolate between, found {len(keys)}")
    rows = np.flatnonzero((moved == label).any(axis=(0, 2)))
    cols = np.flatnonzero((moved == label).any(axis=(0, 1)))
    if not rows.size:
        raise ToolError(f"label {label} is not in the map")
    pad = 2
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, moved.shape[1])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, moved.shape[2])

    def signed(k: int) -> FloatArray:
        shape = moved[k, r0:r1, c0:c1] == label
        if not shape.any():
            raise ToolError(f"key slice {k} holds no voxel of label {label}")
        inside = ndimage.distance_transform_edt(shape, sampling=in_plane)
        outside = ndimage.distance_transform_edt(~shape, sampling=in_plane)
        half = 0.5 * min(in_plane)  # the outline runs between pixel centres: half a pixel each side
        return np.asarray(np.where(shape, half - inside, outside - half), dtype=np.float64)

    chosen: list[npt.NDArray[np.int64]] = []
    interpolated: list[int] = []
    current = signed(keys[0])
    for a, b in itertools.pairwise(keys):
        following = signed(b)
        for t in range(a + 1, b):
            w = (t - a) / (b - a)
            shape = (1 - w) * current + w * following <= 0
            rr, cc = np.nonzero(shape)
            others = [a_ for a_ in range(3) if a_ != axis]
            kji: list[npt.NDArray[Any]] = [np.empty(0)] * 3
            kji[axis], kji[others[0]], kji[others[1]] = np.full(rr.size, t), rr + r0, cc + c0
            chosen.append(np.ravel_multi_index(tuple(kji), labels.shape).astype(np.int64))
            interpolated.append(t)
        current = following
    flat = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    return paint(labels, flat, label, preserve=preserve), interpolated
