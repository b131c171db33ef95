"""The active measurement tool: a small state machine shared by every view.

Tools: ``navigate`` (the views' own mouse bindings; handles of measurements can still be
dragged and a measurement clicked to select it) and one tool per entry of
:data:`lumbarview.model.kinds.TOOLS`, which says how many inputs complete it and what they make
(``distance``, ``angle``, ``cobb``, ``ellipse`` from its centre to a corner of its box,
``rectangle`` corner to corner, ``polygon`` closed by clicking the first vertex again,
double-click or Enter, ``freehand`` press-draw-release, ``point``, ``perpendicular``). This
module turns events into points only; its tool binding is the shortcut and menu text below.

Every point can be clicked (click-click) or dragged (press at one point, release at the next).
A handle drag moves only that measurement's drawing and commits one undoable edit on release.
Esc cancels the drawing (or the drag), Delete removes the selected measurement. The left
button's events on a view's viewport are filtered here before pyqtgraph sees them, only while a
tool is drawing or a handle is under the mouse; the views keep their own bindings otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from lumbarview.core.geometry import FloatArray
from lumbarview.model.kinds import TOOLS as KIND_TOOLS
from lumbarview.model.measurements import Measurement, tagged
from lumbarview.ui.items.measurement_items import MeasurementItems

if TYPE_CHECKING:
    from lumbarview.ui.views.slice_view import SliceView

TOOLS = ("navigate", *KIND_TOOLS)
#: The tool bindings: a key and a menu text per tool.
SHORTCUTS = {"navigate": "N", "distance": "D", "angle": "A", "cobb": "B", "endplate": "U", "ellipse": "E",
             "rectangle": "Q", "polygon": "G", "freehand": "H", "point": "P", "perpendicular": "T"}
LABELS = {"navigate": "&Navigate", "distance": "&Distance", "angle": "&Angle", "cobb": "&Cobb angle",
          "endplate": "End&plate line",
          "ellipse": "&Ellipse area", "rectangle": "Rectan&gle area", "polygon": "&Polygon area",
          "freehand": "&Freehand area", "point": "P&oint", "perpendicular": "Pe&rpendicular (disc height)"}
PICK_PX = 7.0
DRAG_PX = 4.0
FREEHAND_STEP_MM = 0.5
_E = QtCore.QEvent.Type


class ToolController(QtCore.QObject):
    """The tool state of a window: which tool, the drawing in progress, the handle dragged."""

    tool_changed = QtCore.Signal(str)
    message = QtCore.Signal(str)

    def __init__(self, views: dict[str, SliceView], layers: dict[str, MeasurementItems]) -> None:
        super().__init__()
        self.views = views
        self.layers = layers
        self.tool = "navigate"
        self._view: SliceView | None = None  # where the drawing in progress is
        self._points: list[FloatArray] = []
        self._floating: FloatArray | None = None
        self._press_screen: QtCore.QPointF | None = None
        self._pressed = False
        self._swallow = False
        self._editing: tuple[str, int] | None = None  # (measurement id, handle) being dragged
        self._dragged: Measurement | None = None  # where the drag has taken it (not committed yet)
        self._preview: dict[str, pg.PlotCurveItem] = {}
        self.replacing: dict[str, Any] | None = None  # an engine row being replaced by hand
        for view in views.values():
            view.graphics.viewport().installEventFilter(self)

    # -- the tool --------------------------------------------------------------------------------
    def replace_engine_value(self, row: dict[str, Any]) -> None:
        """Measure by hand what the engine measured in ``row``: the tool for its quantity, and
        the next measurement takes the row's level and side and says what it replaces. The
        engine's value is never changed; both are kept, each with its source."""
        quantity = str(row.get("quantity") or "")
        self.replacing = dict(row)
        self.set_tool("polygon" if quantity.endswith("area") else "distance")
        self.message.emit(f"Measure {quantity.replace('_', ' ')} by hand: it is kept beside the engine's value")

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
        self.cancel()
        self.tool = tool
        for view in self.views.values():
            view.graphics.viewport().setCursor(QtCore.Qt.CursorShape.ArrowCursor if tool == "navigate"
                                               else QtCore.Qt.CursorShape.CrossCursor)
        self.tool_changed.emit(tool)

    @property
    def _stroke(self) -> bool:
        """The tool draws while the button is down (freehand)."""
        return self.tool in KIND_TOOLS and KIND_TOOLS[self.tool].stroke

    @property
    def _clicked_shut(self) -> bool:
        """The tool takes clicks until the user closes it (polygon)."""
        return self.tool in KIND_TOOLS and KIND_TOOLS[self.tool].inputs is None and not self._stroke

    @property
    def drawing(self) -> bool:
        return bool(self._points)

    def cancel(self) -> bool:
        """Esc: drop the drawing in progress (True when there was one), else deselect."""
        if self.cancel_drag():
            return True
        had = bool(self._points)
        self._points, self._floating, self._view, self._pressed = [], None, None, False
        self._update_preview()
        if not had and self._editing is None and self.views:
            next(iter(self.layers.values())).document.select(None)
        return had

    def delete_selected(self) -> None:
        document = next(iter(self.layers.values())).document
        if document.selected is not None:
            document.remove([document.selected])

    def finish(self) -> None:
        """Enter: close a polygon (or freehand) of at least three points."""
        if self.tool in KIND_TOOLS and KIND_TOOLS[self.tool].inputs is None and len(self._points) >= 3:
            self._create(list(self._points))

    # -- events ----------------------------------------------------------------------------------
    def _view_of(self, obj: QtCore.QObject) -> SliceView | None:
        return next((v for v in self.views.values() if v.graphics.viewport() is obj), None)

    def _scene_mm(self, view: SliceView, pos: QtCore.QPointF) -> tuple[float, float]:
        scene = view.graphics.mapToScene(pos.toPoint())
        p = view.viewbox.mapSceneToView(scene)
        return float(p.x()), float(p.y())

    def _tolerance_mm(self, view: SliceView) -> float:
        return PICK_PX * float(max(view.viewbox.viewPixelSize()))

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        kind = event.type()
        if kind not in (_E.MouseButtonPress, _E.MouseMove, _E.MouseButtonRelease, _E.MouseButtonDblClick):
            return False
        view = self._view_of(obj)
        if view is None or view.plane is None or not isinstance(event, QtGui.QMouseEvent):
            return False
        left = QtCore.Qt.MouseButton.LeftButton
        if kind in (_E.MouseButtonPress, _E.MouseButtonRelease, _E.MouseButtonDblClick) and event.button() != left:
            return False
        if event.modifiers() & (QtCore.Qt.KeyboardModifier.ShiftModifier | QtCore.Qt.KeyboardModifier.ControlModifier):
            return False
        x, y = self._scene_mm(view, event.position())
        lps = view.to_lps(x, y)
        if lps is None:
            return False
        if kind == _E.MouseButtonPress:
            # A press taken here takes its moves and its release too (pyqtgraph never saw it).
            self._swallow = self._press(view, x, y, lps, event.position())
            return self._swallow
        if kind == _E.MouseMove:
            taken = self._move(view, lps, bool(event.buttons() & left))
            return taken or (self._swallow and bool(event.buttons() & left))
        if kind == _E.MouseButtonRelease:
            if not self._swallow:
                return False
            self._swallow = False
            self._release(view, lps, event.position())
            return True
        self._swallow = self._double_click(view)
        return self._swallow

    def _press(self, view: SliceView, x: float, y: float, lps: FloatArray, pos: QtCore.QPointF) -> bool:
        view.setFocus()
        layer = self.layers[view.name]
        if self._points and view is not self._view:
            self.cancel()
        if not self._points:
            handle = layer.handle_at(x, y, self._tolerance_mm(view))
            if handle is not None:
                self._editing = handle
                layer.document.select(handle[0])
                return True
            if self.tool == "navigate":
                hit = layer.measurement_at(x, y, self._tolerance_mm(view))
                if hit is not None:
                    layer.document.select(hit)
                    return True
                return False
        self._view = view
        self._pressed = True
        self._press_screen = QtCore.QPointF(pos)
        if self._clicked_shut and len(self._points) >= 3:
            first = layer.scene_points(self._points[0][None])[0]
            if float(np.hypot(first[0] - x, first[1] - y)) <= self._tolerance_mm(view):
                self._create(list(self._points))
                return True
        self._points.append(lps)
        self._floating = None
        self._check_complete()
        self._update_preview()
        return True

    def _move(self, view: SliceView, lps: FloatArray, button_down: bool) -> bool:
        if self._editing is not None:
            if button_down:
                self._drag_handle(lps)
            return True
        if not self._points or view is not self._view:
            return False
        if self._stroke and button_down and self._pressed:
            if float(np.linalg.norm(lps - self._points[-1])) >= FREEHAND_STEP_MM:
                self._points.append(lps)
        else:
            self._floating = lps
        self._update_preview()
        return True

    def _release(self, view: SliceView, lps: FloatArray, pos: QtCore.QPointF) -> bool:
        if self._editing is not None:
            self._finish_drag()
            return True
        if not self._pressed:
            return bool(self._points)
        self._pressed = False
        if view is not self._view or not self._points:
            return True
        if self._stroke:
            if len(self._points) >= 3:
                self._create(list(self._points))
            else:
                self.message.emit(f"{self.tool.capitalize()}: {KIND_TOOLS[self.tool].hint}")
                self.cancel()
            return True
        press = self._press_screen
        dragged = press is not None and float(np.hypot(pos.x() - press.x(), pos.y() - press.y())) > DRAG_PX
        if dragged and not self._clicked_shut:
            self._points.append(lps)
            self._floating = None
            self._check_complete()
        self._update_preview()
        return True

    def _double_click(self, view: SliceView) -> bool:
        if self._clicked_shut and view is self._view:
            # The double click's first press added a vertex already; Qt sends press, release,
            # double-click, release for it.
            if len(self._points) >= 4 and np.allclose(self._points[-1], self._points[-2], atol=1e-6):
                self._points.pop()
            if len(self._points) >= 3:
                self._create(list(self._points))
            return True
        return bool(self._points)

    # -- building the measurement -----------------------------------------------------------------
    def _check_complete(self) -> None:
        needed = KIND_TOOLS[self.tool].inputs if self.tool in KIND_TOOLS else None
        if needed is not None and len(self._points) >= needed:
            self._create(self._points[:needed])

    def _create(self, points: list[FloatArray]) -> None:
        view = self._view
        tool = self.tool
        self._points, self._floating, self._pressed, self._view = [], None, False, None
        self._update_preview()
        if view is None or view.plane is None:
            return
        plane = view.plane
        session = view.session
        try:
            drawn = KIND_TOOLS[tool].from_input(np.asarray(points, dtype=np.float64), plane)
        except ValueError as exc:
            self.message.emit(f"{tool.capitalize()}: {exc}")
            return
        label = ""
        if drawn.kind == "point":
            label = f"P{1 + sum(1 for m in session.measurements if m.kind == 'point')}"
        state = view.view_state
        try:
            m = Measurement.create(drawn.kind, drawn.points, plane,
                                   series=state.series.uid if state.series is not None else None,
                                   case=session.case.id if session.case is not None else None, note=drawn.note,
                                   label=label)
        except ValueError as exc:
            self.message.emit(f"Cannot measure: {exc}")
            return
        m = tagged(m, session.disc_planes)
        if self.replacing is not None:  # a manual value beside the engine's (which stays as it is)
            row = self.replacing
            self.replacing = None
            value = row.get("value")
            unit = row.get("unit") or ""
            engine_value = "not measured" if value is None else f"{value} {unit}".strip()
            m = dataclasses.replace(
                m, level=row.get("level") or m.level, side=row.get("side") or m.side,
                note=f"manual replacement of the engine's {row.get('quantity')} ({engine_value})")
        session.measurements.add(m)
        session.measurements.select(m.id)
        self.message.emit(f"{m.kind}: {m.value_text()}")

    def _document(self) -> Any:
        return next(iter(self.layers.values())).document

    def _drag_handle(self, lps: FloatArray) -> None:
        """Live: only the dragged measurement's drawing moves (nothing is committed)."""
        assert self._editing is not None
        ident, index = self._editing
        base = self._document().get(ident)
        if base is None:
            self._editing, self._dragged = None, None
            return
        moved = (self._dragged or base).dragged(index, lps)
        if moved is None:
            return
        self._dragged = moved
        for layer in self.layers.values():
            layer.preview(moved)

    def _finish_drag(self) -> None:
        """Finished: the drag becomes one undoable edit (nothing when the handle did not move)."""
        moved, self._editing, self._dragged = self._dragged, None, None
        document = self._document()
        if moved is not None and moved.id in document:
            document.edit(moved.id, points_lps=moved.points_lps)

    def cancel_drag(self) -> bool:
        """Esc during a drag: the measurement goes back to where it was."""
        if self._editing is None:
            return False
        ident = self._editing[0]
        self._editing, self._dragged = None, None
        base = self._document().get(ident)
        if base is not None:
            for layer in self.layers.values():
                layer.preview(base)
        return True

    # -- the rubber band ---------------------------------------------------------------------------
    def _update_preview(self) -> None:
        for name, view in self.views.items():
            item = self._preview.get(name)
            if view is not self._view or not self._points:
                if item is not None:
                    item.setVisible(False)
                continue
            if item is None:
                item = pg.PlotCurveItem(pen=pg.mkPen("#ffd166", width=1.5, style=QtCore.Qt.PenStyle.DashLine))
                item.setZValue(35)
                view.viewbox.addItem(item, ignoreBounds=True)
                self._preview[name] = item
            pts = list(self._points) + ([self._floating] if self._floating is not None else [])
            xy = self.layers[name].scene_points(np.asarray(pts))
            split = KIND_TOOLS[self.tool].break_after if self.tool in KIND_TOOLS else 0
            if split and len(xy) > split:
                xy = np.vstack([xy[:split], [[np.nan, np.nan]], xy[split:]])
            item.setData(xy[:, 0], xy[:, 1], connect="finite")
            item.setVisible(True)
