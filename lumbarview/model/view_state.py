"""What one slice view shows: a series (one or more stacks), the slice the cursor selects in it,
and the window/level. Knows nothing about Qt, so linking is testable headless."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lumbarview.core.events import Signal
from lumbarview.core.geometry import FloatArray, SlicePlane
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.cursor import CursorModel


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


class ViewState:
    """The slice of ``series`` nearest to the shared crosshair, or None when the crosshair lies
    outside every stack of the series (common for axial blocks that cover one disc each)."""

    slice_changed = Signal(object)  # SliceRef | None
    window_changed = Signal(object)  # WindowLevel
    series_changed = Signal(object)  # Series

    def __init__(self, series: Series, cursor: CursorModel) -> None:
        self._cursor = cursor
        self._series = series
        self._slices = order_slices(series)
        self._build_index()
        self._window: WindowLevel | None = None
        self._current = self._nearest(cursor.crosshair)
        cursor.crosshair_changed.connect(self._on_crosshair_changed)

    # -- what is shown --------------------------------------------------------------------
    @property
    def series(self) -> Series:
        return self._series

    @property
    def current(self) -> SliceRef | None:
        return self._current

    @property
    def n_slices(self) -> int:
        return len(self._slices)

    def slices(self) -> list[SliceRef]:
        return [SliceRef(s, k, i) for i, (s, k) in enumerate(self._slices)]

    def set_series(self, series: Series) -> None:
        self._series = series
        self._slices = order_slices(series)
        self._build_index()
        self._window = None
        self.series_changed.emit(series)
        self._update(self._cursor.crosshair, force=True)

    def _nearest(self, lps: FloatArray) -> SliceRef | None:
        # One nearest-slice test per stack (not per slice): this runs on every cursor move.
        best: tuple[float, SliceRef] | None = None
        for stack in self._index_of:
            k = stack.geometry.nearest_slice(lps)
            if k is None:
                continue
            dist = abs(float(stack.geometry.slice_plane(k).signed_distance_mm(lps)))
            if best is None or dist < best[0]:
                best = (dist, SliceRef(stack, k, self._index_of[stack][k]))
        return None if best is None else best[1]

    def _build_index(self) -> None:
        self._index_of: dict[ImageStack, dict[int, int]] = {}
        for i, (stack, k) in enumerate(self._slices):
            self._index_of.setdefault(stack, {})[k] = i

    def _update(self, lps: FloatArray, force: bool = False) -> None:
        new = self._nearest(lps)
        old = self._current
        same = (new is None and old is None) or (
            new is not None and old is not None and new.stack is old.stack and new.k == old.k)
        if same and not force:
            return
        self._current = new
        self.slice_changed.emit(new)

    def _on_crosshair_changed(self, lps: FloatArray) -> None:
        self._update(lps)

    # -- navigation: moves the shared cursor, never the view alone ---------------------------
    def go_to(self, series_index: int) -> None:
        """Move the crosshair onto slice ``series_index`` of the series (clamped), keeping its
        in-plane position: the point is projected onto that slice's plane."""
        if not self._slices:
            return
        i = int(np.clip(series_index, 0, len(self._slices) - 1))
        stack, k = self._slices[i]
        plane = stack.geometry.slice_plane(k)
        p = self._cursor.crosshair
        self._cursor.set_crosshair(p - plane.signed_distance_mm(p) * plane.normal_lps)
        # Projection lands exactly on the plane; if a neighbour block overlaps there, still
        # show the slice that was asked for.
        if self._current is None or self._current.series_index != i:
            self._current = SliceRef(stack, k, i)
            self.slice_changed.emit(self._current)

    def scroll(self, n_slices: int) -> None:
        """Step ``n_slices`` along the series (through the blocks of an angled series). From
        outside the series, the first step enters at the nearest slice."""
        if not self._slices:
            return
        if self._current is None:
            p = self._cursor.crosshair
            dists = [abs(float(s.geometry.slice_plane(k).signed_distance_mm(p))) for s, k in self._slices]
            self.go_to(int(np.argmin(dists)))
            return
        self.go_to(self._current.series_index + n_slices)

    # -- window / level -------------------------------------------------------------------
    @property
    def window(self) -> WindowLevel | None:
        return self._window

    def set_window(self, window: WindowLevel) -> None:
        if window.width <= 0:
            raise ValueError("a window width must be positive")
        if window != self._window:
            self._window = window
            self.window_changed.emit(window)

    def close(self) -> None:
        self._cursor.crosshair_changed.disconnect(self._on_crosshair_changed)
