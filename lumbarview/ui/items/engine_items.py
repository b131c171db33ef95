"""What the engine measured, drawn on one SliceView as a temporary overlay (not a layer, not
in the undo history): the polylines of one :class:`~lumbarview.services.engine_view.PartGeometry`
that lie on the view's plane (within :data:`TOLERANCE_MM`), redrawn when the plane moves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

if TYPE_CHECKING:
    from lumbarview.services.engine_view import PartGeometry, Polyline
    from lumbarview.ui.views.slice_view import SliceView

TOLERANCE_MM = 1.0
CONTOUR_COLOUR = "#ffdc00"
CHORD_COLOUR = "#00e6ff"


def colour_of(line: Polyline) -> str:
    return CONTOUR_COLOUR if ("contour" in line.name or "outline" in line.name) else CHORD_COLOUR


class EngineOverlay:
    """The engine's geometry on one view (see the module)."""

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self.part: PartGeometry | None = None
        self.items: list[tuple[pg.PlotCurveItem, Polyline]] = []
        view.view_state.plane_changed.connect(lambda _p: self.redraw())

    def set_part(self, part: PartGeometry | None) -> None:
        self.part = part
        self.redraw()

    def _clear(self) -> None:
        for item, _line in self.items:
            self.view.viewbox.removeItem(item)
        self.items = []

    def shown(self) -> list[Polyline]:
        """The polylines drawn now (those on the view's plane)."""
        return [line for _item, line in self.items]

    def redraw(self) -> None:
        self._clear()
        plane = self.view.plane
        if self.part is None or plane is None:
            return
        sx, sy = plane.spacing_mm
        for line in self.part.polylines:
            points = np.asarray(line.points_lps, dtype=np.float64)
            if len(points) < 2 or np.abs(plane.signed_distance_mm(points)).max() > TOLERANCE_MM:
                continue
            cr = plane.lps_to_pixel(points)
            x, y = cr[:, 0] * sx, cr[:, 1] * sy
            if line.closed:
                x, y = np.append(x, x[0]), np.append(y, y[0])
            pen = pg.mkPen(colour_of(line), width=2, cosmetic=True)
            item = pg.PlotCurveItem(x, y, pen=pen, antialias=True)
            item.setZValue(25)
            item.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
            self.view.viewbox.addItem(item, ignoreBounds=True)
            self.items.append((item, line))
