"""Measurements drawn on a slice view: on the plane where each was drawn, and faintly within
half a slice thickness of it (a measurement on another plane orientation is not drawn).

The registry from the model (the session's :class:`MeasurementDocument`) to the pyqtgraph items
of one view lives here, as napari keeps its layer-to-visual map in the view package.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from lumbarview.core.geometry import FloatArray
from lumbarview.model.measurements import Measurement
from lumbarview.model.session import Session
from lumbarview.model.view_state import ViewState, step_along_mm

if TYPE_CHECKING:
    from lumbarview.ui.views.slice_view import SliceView

#: Two planes are the same orientation within this many degrees.
PARALLEL_DEG = 0.5
#: A measurement within this distance of the view's plane is on it.
ON_PLANE_MM = 1e-3
FAINT_OPACITY = 0.35
COLOURS = {"manual": "#ffd166", "engine": "#4cc9f0", "dataset": "#b5e48c"}
SELECTED = "#ff6b6b"


def half_thickness_mm(state: ViewState) -> float:
    """Half the slice thickness of what a view shows (native: the stored thickness or spacing;
    reformat: one voxel step along the normal)."""
    source, plane = state.source, state.plane
    if source is None or plane is None:
        return 0.5
    if state.mode == "native":
        thick = source.meta.get("slice_thickness_mm") or source.geometry.slice_spacing_mm
        return 0.5 * float(thick)
    return 0.5 * step_along_mm(source.geometry, plane.normal_lps)


def placement(m: Measurement, state: ViewState) -> str | None:
    """``"on"`` the view's plane, ``"near"`` (within half a slice thickness), or None."""
    plane = state.plane
    if plane is None or m.plane is None:
        return None
    normal = np.asarray(m.plane.normal_lps, dtype=np.float64)
    if abs(float(normal @ plane.normal_lps)) < np.cos(np.radians(PARALLEL_DEG)):
        return None
    distance = float(np.max(np.abs(plane.signed_distance_mm(m.points))))
    if distance <= ON_PLANE_MM:
        return "on"
    return "near" if distance <= half_thickness_mm(state) + ON_PLANE_MM else None


def outline_lps(m: Measurement, n: int = 72) -> list[FloatArray]:
    """The polylines that draw ``m`` (LPS), one per stroke."""
    p = m.points
    if m.kind in ("distance", "angle"):
        return [p]
    if m.kind == "cobb":
        return [p[:2], p[2:]]
    if m.kind == "ellipse":
        t = np.linspace(0, 2 * np.pi, n)
        return [p[0] + np.outer(np.cos(t), p[1] - p[0]) + np.outer(np.sin(t), p[2] - p[0])]
    if m.kind in ("polygon", "freehand"):
        return [np.vstack([p, p[:1]])]
    return []


class MeasurementItems:
    """The measurements of the session drawn on one :class:`SliceView`."""

    def __init__(self, view: SliceView, session: Session) -> None:
        self.view = view
        self.session = session
        self.document = session.measurements
        self._items: list[Any] = []
        self.shown: dict[str, str] = {}  # id -> "on" | "near"
        self.document.changed.connect(self.refresh)
        self.document.selection_changed.connect(lambda _id: self.refresh())
        view.view_state.plane_changed.connect(lambda _p: self.refresh())

    def clear(self) -> None:
        for item in self._items:
            self.view.viewbox.removeItem(item)
        self._items = []
        self.shown = {}

    def scene_points(self, lps: FloatArray) -> FloatArray:
        plane = self.view.plane
        assert plane is not None
        return np.asarray(plane.lps_to_pixel(lps) * np.asarray(plane.spacing_mm), dtype=np.float64)

    def refresh(self) -> None:
        self.clear()
        state = self.view.view_state
        if state.plane is None:
            return
        case = self.session.case.id if self.session.case is not None else None
        for m in self.document.of_case(case):
            where = placement(m, state)
            if where is None:
                continue
            self.shown[m.id] = where
            self._draw(m, where == "near", m.id == self.document.selected)

    def _add(self, item: Any, z: float) -> None:
        item.setZValue(z)
        self.view.viewbox.addItem(item, ignoreBounds=True)
        self._items.append(item)

    def _draw(self, m: Measurement, faint: bool, selected: bool) -> None:
        colour = SELECTED if selected else COLOURS.get(m.source, COLOURS["manual"])
        opacity = FAINT_OPACITY if faint else 1.0
        pen = pg.mkPen(colour, width=2 if selected else 1.5,
                       style=QtCore.Qt.PenStyle.DashLine if faint else QtCore.Qt.PenStyle.SolidLine)
        for stroke in outline_lps(m):
            xy = self.scene_points(stroke)
            curve = pg.PlotCurveItem(xy[:, 0], xy[:, 1], pen=pen)
            curve.setOpacity(opacity)
            self._add(curve, 30)
        handles = self.scene_points(m.points)
        if m.kind == "freehand" and not selected:
            handles = handles[:0]
        scatter = pg.ScatterPlotItem(handles[:, 0], handles[:, 1], size=9 if selected else 6, pen=pg.mkPen(colour),
                                     brush=pg.mkBrush(colour if selected else None), symbol="s" if m.kind != "point"
                                     else "o")
        scatter.setOpacity(opacity)
        self._add(scatter, 31)
        label = pg.TextItem(m.value_text() + (f"  {m.level}" if m.level else "")
                            + (f" {m.side}" if m.side and m.side != "midline" else ""), color=colour, anchor=(0, 1))
        everything = self.scene_points(m.points)
        # Beside the drawing, not across it: an end, the vertex, the end of the first line.
        anchor = (everything[-1] if m.kind in ("distance", "point") else everything[1] if m.kind in ("angle", "cobb")
                  else self.scene_points(m.centre_lps()[None])[0])
        label.setPos(float(anchor[0]) + 2, float(anchor[1]) - 2)
        label.setOpacity(opacity)
        self._add(label, 32)

    # -- picking -----------------------------------------------------------------------------------
    def handle_at(self, x_mm: float, y_mm: float, tolerance_mm: float) -> tuple[str, int] | None:
        """The (measurement id, point index) of the handle nearest a scene point, within
        ``tolerance_mm``; the selected measurement first."""
        best: tuple[float, str, int] | None = None
        for ident, where in self.shown.items():
            m = self.document.get(ident)
            if m is None or where != "on" or m.source == "engine":
                continue
            d = np.linalg.norm(self.scene_points(m.points) - (x_mm, y_mm), axis=1)
            k = int(np.argmin(d))
            score = float(d[k]) - (tolerance_mm * 0.5 if ident == self.document.selected else 0.0)
            if d[k] <= tolerance_mm and (best is None or score < best[0]):
                best = (score, ident, k)
        return None if best is None else (best[1], best[2])

    def measurement_at(self, x_mm: float, y_mm: float, tolerance_mm: float) -> str | None:
        """The measurement whose drawing passes within ``tolerance_mm`` of a scene point."""
        p = np.array([x_mm, y_mm])
        for ident in self.shown:
            m = self.document.get(ident)
            if m is None:
                continue
            strokes = [self.scene_points(s) for s in outline_lps(m)] or [self.scene_points(m.points)]
            for xy in strokes:
                if len(xy) == 1 and float(np.linalg.norm(xy[0] - p)) <= tolerance_mm:
                    return ident
                for a, b in itertools.pairwise(xy):
                    d = b - a
                    t = float(np.clip((p - a) @ d / max(float(d @ d), 1e-12), 0.0, 1.0))
                    if float(np.linalg.norm(a + t * d - p)) <= tolerance_mm:
                        return ident
        return None
