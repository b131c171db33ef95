"""The one position that links every view, in patient space (LPS mm)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lumbarview.core.events import Signal
from lumbarview.core.geometry import FloatArray

_SAME_POINT_MM = 1e-4


def _frozen_point(value: npt.ArrayLike) -> FloatArray:
    point = np.array(value, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(point)):
        raise ValueError(f"a cursor position must be finite, got {point.tolist()}")
    point.setflags(write=False)
    return point


class CursorModel:
    """The crosshair (committed: click, scroll, keys) and the hover point (transient: the mouse).

    Views change slice to pass through ``crosshair``; they only display ``hover``.
    """

    crosshair_changed = Signal(object)  # FloatArray (3,)
    hover_changed = Signal(object)  # FloatArray (3,) | None

    def __init__(self, crosshair: npt.ArrayLike = (0.0, 0.0, 0.0)) -> None:
        self._crosshair = _frozen_point(crosshair)
        self._hover: FloatArray | None = None

    @property
    def crosshair(self) -> FloatArray:
        return self._crosshair

    @property
    def hover(self) -> FloatArray | None:
        return self._hover

    def set_crosshair(self, lps: npt.ArrayLike) -> None:
        point = _frozen_point(lps)
        if np.allclose(point, self._crosshair, atol=_SAME_POINT_MM, rtol=0):
            return  # a no-op move must not start a redraw cascade
        self._crosshair = point
        self.crosshair_changed.emit(point)

    def step(self, direction: npt.ArrayLike, distance_mm: float) -> None:
        """Move the crosshair ``distance_mm`` along the unit vector ``direction``."""
        self.set_crosshair(self._crosshair + distance_mm * np.asarray(direction, dtype=np.float64))

    def set_hover(self, lps: npt.ArrayLike | None) -> None:
        point = None if lps is None else _frozen_point(lps)
        if point is None and self._hover is None:
            return
        self._hover = point
        self.hover_changed.emit(point)
