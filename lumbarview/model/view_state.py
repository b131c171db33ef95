"""What one view shows: a plane through patient space and the series it samples. No Qt.

A view has an orientation (sagittal, axial, coronal, or oblique) and a series. When the series
was acquired in that orientation the view is **native**: it steps slice by slice through the
stored slices (through every block of an angled axial series) and shows the stored pixels
(only flipped or transposed into the display convention). Otherwise it is a **reformat**: the
plane of that orientation through the shared cursor, sampled from the series' volume, stepping
along its normal by the volume's voxel size. A *custom plane* (a disc-aligned axial, an oblique
planned by a line on the sagittal) makes any view a reformat along that plane's normal.

Views never talk to each other: each follows the one :class:`CursorModel`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lumbarview.core.events import Signal
from lumbarview.core.geometry import FloatArray, PlaneOrientation, SlicePlane, VolumeGeometry, classify_normal
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.cursor import CursorModel
from lumbarview.slicing.planes import ViewPlane, standard_plane

Mode = Literal["native", "reformat", "empty"]
_SAME_MM = 1e-6
#: Per component: origin (mm), then directions and spacings, as _same_plane compares them.
_SAME_TOLERANCE = np.array([_SAME_MM] * 3 + [1e-9] * 8)


@dataclass(frozen=True)
class SliceRef:
    """One slice of a series: stack, index in the stack, and its position in the series."""

    stack: ImageStack
    k: int
    series_index: int  # 0 .. n-1 over all stacks, ordered along the series

    @property
    def plane(self) -> SlicePlane:
        return self.stack.geometry.slice_plane(self.k)


@dataclass(frozen=True)
class WindowLevel:
    """Display window in stored units: centre and width (a width > 0)."""

    center: float
    width: float
    invert: bool = False

    @property
    def levels(self) -> tuple[float, float]:
        return self.center - self.width / 2, self.center + self.width / 2


def order_slices(series: Series) -> list[tuple[ImageStack, int]]:
    """All slices of a series ordered along it: by projection of each slice centre on the
    mean slice normal (for angled axial blocks this walks down the spine block by block)."""
    stacks = series.stacks
    if not stacks:
        return []
    normals = np.array([s.geometry.slice_normal for s in stacks])
    ref = normals[0]
    mean = np.sum([n if n @ ref >= 0 else -n for n in normals], axis=0)
    mean /= np.linalg.norm(mean)
    items = []
    for stack in stacks:
        k_n, j_n, i_n = stack.geometry.shape_kji
        for k in range(k_n):
            centre = stack.geometry.index_to_lps(((i_n - 1) / 2, (j_n - 1) / 2, k))
            items.append((float(centre @ mean), stack, k))
    items.sort(key=lambda t: t[0])
    return [(stack, k) for _, stack, k in items]


def is_native_for(series: Series, orientation: PlaneOrientation) -> bool:
    """True when every stack of ``series`` was acquired in ``orientation``."""
    return bool(series.stacks) and all(s.geometry.orientation is orientation for s in series.stacks)


def volume_source(series: Series) -> ImageStack:
    """The stack a reformat samples: the series' largest."""
    return max(series.stacks, key=lambda s: int(np.prod(s.geometry.shape_kji)))


def step_along_mm(geometry: VolumeGeometry, normal_lps: FloatArray) -> float:
    """The step along ``normal_lps`` that moves at most one voxel along any index axis."""
    per_mm = np.abs(geometry.lps_to_ijk[:3, :3] @ np.asarray(normal_lps, dtype=np.float64))
    return float(1.0 / max(float(per_mm.max()), 1e-9))


def _extent_along(geometry: VolumeGeometry, normal_lps: FloatArray) -> tuple[float, float]:
    n_k, n_j, n_i = geometry.shape_kji
    corners = np.array([[i, j, k] for i in (0, n_i - 1) for j in (0, n_j - 1) for k in (0, n_k - 1)], dtype=float)
    d = geometry.index_to_lps(corners) @ normal_lps
    return float(d.min()), float(d.max())


def _same_plane(a: SlicePlane | None, b: SlicePlane | None) -> bool:
    if a is None or b is None:
        return a is b
    if a is b:
        return True
    # One vectorised comparison (this runs for every view on every cursor move).
    diff = np.abs(np.concatenate([a.origin_lps - b.origin_lps, a.row_direction_lps - b.row_direction_lps,
                                  a.column_direction_lps - b.column_direction_lps,
                                  np.subtract(a.spacing_mm, b.spacing_mm)]))
    return a.shape_rc == b.shape_rc and bool(np.all(diff <= _SAME_TOLERANCE))


class ViewState:
    """The plane a view shows, derived from the shared cursor."""

    plane_changed = Signal(object)  # ViewPlane | None
    series_changed = Signal(object)  # Series | None
    window_changed = Signal(object)  # WindowLevel

    def __init__(self, name: str, orientation: PlaneOrientation, cursor: CursorModel,
                 native_orientation: bool = False) -> None:
        self.name = name
        self.orientation = orientation
        self._cursor = cursor
        self._native_orientation = native_orientation
        self._series: Series | None = None
        self._source: ImageStack | None = None
        self._custom: ViewPlane | None = None
        self._slices: list[tuple[ImageStack, int]] = []
        self._index_of: dict[ImageStack, dict[int, int]] = {}
        self._native_planes: dict[tuple[str, int], ViewPlane] = {}
        self._current: SliceRef | None = None
        self._plane: ViewPlane | None = None
        self._window: WindowLevel | None = None
        self._held = 0  # inside ``held()``: updates wait for its end
        self._compute_mode()
        cursor.crosshair_changed.connect(self._on_crosshair_changed)

    # -- what is shown --------------------------------------------------------------------
    @property
    def series(self) -> Series | None:
        return self._series

    @property
    def mode(self) -> Mode:
        return self._mode

    def _compute_mode(self) -> None:
        if self._series is None or not self._series.stacks:
            self._mode: Mode = "empty"
        elif self._custom is None and is_native_for(self._series, self.orientation):
            self._mode = "native"
        else:
            self._mode = "reformat"
        self._extents: dict[tuple[float, ...], tuple[float, float, float]] = {}
        #: The last reformatted planes by their offset along the normal (see _reformat_plane);
        #: emptied whenever what decides the plane changes (series, custom plane, orientation).
        self._reformats: dict[float, ViewPlane] = {}

    @property
    def source(self) -> ImageStack | None:
        """The stack whose pixels are on screen now (native: the current slice's stack)."""
        if self.mode == "native":
            return self._current.stack if self._current is not None else None
        return self._source

    @property
    def current(self) -> SliceRef | None:
        """The stored slice shown (native mode), else None."""
        return self._current if self.mode == "native" else None

    @property
    def plane(self) -> ViewPlane | None:
        return self._plane

    @property
    def custom_plane(self) -> ViewPlane | None:
        return self._custom

    @property
    def native_orientation(self) -> bool:
        return self._native_orientation

    @property
    def has_patient_geometry(self) -> bool:
        stack = self.source or (self._series.stacks[0] if self._series and self._series.stacks else None)
        return bool(stack is not None and stack.meta.get("has_patient_geometry", True))

    @property
    def note(self) -> str:
        """What a reader must know about the pixels ("reformatted from ...")."""
        if self.mode != "reformat" or self._series is None or self._source is None:
            return ""
        meta = self._source.meta
        thick = meta.get("slice_thickness_mm") or self._source.geometry.slice_spacing_mm
        acquired = self._source.geometry.orientation.value
        name = self._series.description or "the series"
        return f"reformatted from {name} ({acquired}), {float(thick):.1f} mm slices"

    @property
    def n_slices(self) -> int:
        return self.position()[1]

    def slices(self) -> list[SliceRef]:
        """Every stored slice of a native series, in order (empty for a reformat)."""
        if self.mode != "native":
            return []
        return [SliceRef(s, k, i) for i, (s, k) in enumerate(self._slices)]

    # -- changing what is shown ------------------------------------------------------------
    def set_series(self, series: Series | None) -> None:
        self._series = series
        self._slices = order_slices(series) if series is not None else []
        self._index_of = {}
        for i, (stack, k) in enumerate(self._slices):
            self._index_of.setdefault(stack, {})[k] = i
        self._source = volume_source(series) if series is not None and series.stacks else None
        self._native_planes.clear()
        self._window = None
        self._compute_mode()
        self.series_changed.emit(series)
        self._update(force=True)

    def set_custom_plane(self, plane: ViewPlane | None) -> None:
        """Show ``plane`` (moved along its normal through the cursor) instead of the standard
        plane of the view's orientation; None goes back to the standard plane."""
        self._custom = plane
        self._compute_mode()
        self._update(force=True)

    def set_native_orientation(self, flag: bool) -> None:
        """Show acquired slices with rows and columns as stored instead of the convention."""
        if flag != self._native_orientation:
            self._native_orientation = flag
            self._native_planes.clear()
            self._reformats.clear()
            self._update(force=True)

    # -- navigation: moves the shared cursor, never the view alone ---------------------------
    def step(self, n: int) -> None:
        """Step ``n`` slices (native) or ``n`` voxel steps along the normal (reformat). From
        outside a native series, the first step enters at the nearest slice."""
        mode = self.mode
        if mode == "native":
            if self._current is None:
                p = self._cursor.crosshair
                dists = [abs(float(s.geometry.slice_plane(k).signed_distance_mm(p))) for s, k in self._slices]
                self.go_to(int(np.argmin(dists)))
            else:
                self.go_to(self._current.series_index + n)
        elif mode == "reformat" and self._plane is not None and self._source is not None:
            normal = self._plane.normal_lps
            self._cursor.step(normal, n * step_along_mm(self._source.geometry, normal))

    def position(self) -> tuple[int, int]:
        """(index, count) of the shown slice, for a slider: stored slices (native) or voxel
        steps across the volume along the normal (reformat); (-1, count) outside."""
        mode = self.mode
        if mode == "native":
            return (self._current.series_index if self._current else -1), len(self._slices)
        if mode == "reformat" and self._plane is not None and self._source is not None:
            normal = self._plane.normal_lps
            step, lo, hi = self._step_extent(normal)
            count = math.floor((hi - lo) / step + 1e-6) + 1
            index = round((float(self._cursor.crosshair @ normal) - lo) / step)
            return (index if 0 <= index < count else -1), count
        return -1, 0

    def go_to(self, index: int) -> None:
        """Move the crosshair onto slice ``index`` (clamped), keeping its in-plane position."""
        mode = self.mode
        p = self._cursor.crosshair
        if mode == "native" and self._slices:
            i = int(np.clip(index, 0, len(self._slices) - 1))
            stack, k = self._slices[i]
            plane = stack.geometry.slice_plane(k)
            self._cursor.set_crosshair(p - plane.signed_distance_mm(p) * plane.normal_lps)
            # Projection lands exactly on the plane; if a neighbour block overlaps there, still
            # show the slice that was asked for.
            if self._current is None or self._current.series_index != i:
                self._set(SliceRef(stack, k, i))
        elif mode == "reformat" and self._plane is not None and self._source is not None:
            normal = self._plane.normal_lps
            step, lo, _hi = self._step_extent(normal)
            count = self.position()[1]
            target = lo + int(np.clip(index, 0, max(count - 1, 0))) * step
            self._cursor.set_crosshair(p + (target - float(p @ normal)) * normal)

    # -- window / level -------------------------------------------------------------------
    @property
    def window(self) -> WindowLevel | None:
        return self._window

    def set_window(self, window: WindowLevel) -> None:
        if not (window.width > 0 and math.isfinite(window.width) and math.isfinite(window.center)):
            raise ValueError("a window needs a finite centre and a positive finite width")
        if window != self._window:
            self._window = window
            self.window_changed.emit(window)

    def close(self) -> None:
        self._cursor.crosshair_changed.disconnect(self._on_crosshair_changed)

    # -- internals ------------------------------------------------------------------------
    def _step_extent(self, normal: FloatArray) -> tuple[float, float, float]:
        """(step, lowest, highest position) of the source volume along ``normal`` (memoised:
        asked on every step)."""
        assert self._source is not None
        key = tuple(np.round(normal, 9))
        found = self._extents.get(key)
        if found is None:
            lo, hi = _extent_along(self._source.geometry, normal)
            found = self._extents[key] = (step_along_mm(self._source.geometry, normal), lo, hi)
        return found

    def _nearest(self, lps: FloatArray) -> SliceRef | None:
        # One nearest-slice test per stack (not per slice): this runs on every cursor move.
        best: tuple[float, SliceRef] | None = None
        for stack, ks in self._index_of.items():
            k = stack.geometry.nearest_slice(lps)
            if k is None:
                continue
            dist = abs(float(stack.geometry.slice_plane(k).signed_distance_mm(lps)))
            if best is None or dist < best[0]:
                best = (dist, SliceRef(stack, k, ks[k]))
        return None if best is None else best[1]

    def _native_plane(self, ref: SliceRef) -> ViewPlane:
        key = (ref.stack.uid, ref.k)
        plane = self._native_planes.get(key)
        if plane is None:
            geometry = ref.stack.geometry
            _k_n, j_n, i_n = geometry.shape_kji
            on_slice = geometry.index_to_lps(((i_n - 1) / 2, (j_n - 1) / 2, float(ref.k)))
            orientation = classify_normal(geometry.slice_normal)
            if orientation is PlaneOrientation.OBLIQUE:
                orientation = self.orientation
            plane = standard_plane(geometry, orientation, on_slice, native_orientation=self._native_orientation,
                                   has_patient_geometry=bool(ref.stack.meta.get("has_patient_geometry", True)))
            self._native_planes[key] = plane
        return plane

    def _compute(self) -> tuple[SliceRef | None, ViewPlane | None]:
        mode = self.mode
        cursor = self._cursor.crosshair
        if mode == "empty":
            return None, None
        if mode == "native":
            ref = self._nearest(cursor)
            return ref, (None if ref is None else self._native_plane(ref))
        return None, self._reformat_plane(cursor)

    def _reformat_plane(self, cursor: FloatArray) -> ViewPlane:
        """The reformatted plane through ``cursor``. It depends on the cursor only through the
        cursor's offset along the plane's normal (the plane covers the whole volume, or is the
        custom plane moved along its normal), so a cursor moving within the plane, as when
        another view steps, finds the plane it already has (a few planes are kept)."""
        if self._reformats:
            normal = next(iter(self._reformats.values())).normal_lps
            found = self._reformats.get(round(float(cursor @ normal), 6))
            if found is not None:
                return found
        plane = self._fresh_reformat_plane(cursor)
        if len(self._reformats) >= 8:
            self._reformats.pop(next(iter(self._reformats)))
        self._reformats[round(float(cursor @ plane.normal_lps), 6)] = plane
        return plane

    def _fresh_reformat_plane(self, cursor: FloatArray) -> ViewPlane:
        if self._custom is not None:
            return self._custom.through(cursor)
        assert self._source is not None
        orientation = self.orientation if self.orientation is not PlaneOrientation.OBLIQUE else (
            PlaneOrientation.CORONAL)
        return standard_plane(self._source.geometry, orientation, cursor,
                              native_orientation=self._native_orientation,
                              has_patient_geometry=bool(self._source.meta.get("has_patient_geometry", True)),
                              snap_to_slice=False)

    def neighbour_planes(self, direction: int = 1) -> list[ViewPlane]:
        """The reformatted planes one step on each side of the shown one (the side of
        ``direction`` first), exactly as :meth:`step` would show them, for prefetching; none
        in native or empty mode (native slices are read, not computed)."""
        if self.mode != "reformat" or self._plane is None or self._source is None:
            return []
        normal = self._plane.normal_lps
        step = step_along_mm(self._source.geometry, normal)
        index, count = self.position()
        out = []
        for n in (direction, -direction):
            if 0 <= index + n < count:
                out.append(self._reformat_plane(self._cursor.crosshair + n * step * normal))
        return out

    def _set(self, ref: SliceRef | None, plane: ViewPlane | None = None) -> None:
        self._current = ref
        if ref is not None and plane is None:
            plane = self._native_plane(ref)
        if not _same_plane(plane, self._plane) or ref is not None:
            self._plane = plane
            self.plane_changed.emit(plane)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Within, changes of the series, custom plane and cursor do not update the plane; at
        the end it is computed and ``plane_changed`` emitted once (a case switch: one update per
        view, not one per change)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if self._held == 0:
                self._update(force=True)

    def _update(self, force: bool = False) -> None:
        if self._held:
            return
        ref, plane = self._compute()
        old_ref = self._current
        same_ref = (ref is None and old_ref is None) or (
            ref is not None and old_ref is not None and ref.stack is old_ref.stack and ref.k == old_ref.k)
        if not force and same_ref and _same_plane(plane, self._plane):
            return
        self._current = ref
        self._plane = plane
        self.plane_changed.emit(plane)

    def _on_crosshair_changed(self, _lps: FloatArray) -> None:
        self._update()
