"""SliceView: draws one view state of a session (pyqtgraph) and forwards input to the session.

Scene units are in-plane millimetres of the view's plane: the centre of output pixel (column c,
row r) is at (c * sx, r * sy). The plane comes from the view state (native slices, reformats,
custom planes alike); the crosshair and the reference lines are computed in patient space by
the session and ``lumbarview.slicing``, never from another view's pixels. The view holds no
geometry and no policy of its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.geometry import EdgeLetters, FloatArray
from lumbarview.core.types import ImageStack
from lumbarview.model.session import Session
from lumbarview.model.view_state import ViewState, WindowLevel
from lumbarview.slicing.cache import PlaneCache
from lumbarview.slicing.planes import ViewPlane, letters
from lumbarview.slicing.reference_lines import ReferenceLine, snap
from lumbarview.slicing.reformat import Kind
from lumbarview.ui import theme
from lumbarview.ui.views.hud import Graphics, Hud

SERIES_MIME = "application/x-lumbarview-series"
_INVERT_LUT = np.arange(255, -1, -1, dtype=np.uint8)
_LINE_PICK_PX = 6.0
#: Window/level drag: a drag across the view's width (or height) changes width (or level) by
#: this many times the current width. Right is wider (less contrast); up is brighter (a lower
#: level), as in most PACS viewers.
WINDOW_DRAG_GAIN = 1.5


class _ViewBox(pg.ViewBox):
    """Radiology mouse bindings: left sets the crosshair, right drag is window/level, middle
    drag pans, the wheel steps slices and Ctrl+wheel zooms."""

    def __init__(self, view: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._view = view
        self.setMouseEnabled(x=False, y=False)

    def mouseClickEvent(self, ev: Any) -> None:
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self._view.pick(self.mapSceneToView(ev.scenePos()), snap_to_lines=True)
        else:
            ev.ignore()

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:
        button = ev.button()
        ev.accept()
        if button == QtCore.Qt.MouseButton.LeftButton:
            if ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
                self._view.plan_line(self.mapSceneToView(ev.buttonDownScenePos()),
                                     self.mapSceneToView(ev.scenePos()), ev.isFinish())
            else:
                self._view.pick(self.mapSceneToView(ev.scenePos()), snap_to_lines=ev.isStart())
        elif button == QtCore.Qt.MouseButton.MiddleButton:
            delta = self.mapSceneToView(ev.scenePos()) - self.mapSceneToView(ev.lastScenePos())
            self.translateBy(x=-delta.x(), y=-delta.y())
        elif button == QtCore.Qt.MouseButton.RightButton:
            d = ev.screenPos() - ev.lastScreenPos()
            self._view.adjust_window(d.x(), d.y(), finish=ev.isFinish())

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        ev.accept()
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            factor = 0.85 if delta > 0 else 1 / 0.85
            self.scaleBy((factor, factor), center=self.mapSceneToView(ev.scenePos()))
        else:
            self._view.step_slices(-1 if delta > 0 else 1)


class SliceView(QtWidgets.QWidget):
    """One linked view of a :class:`Session` (``name`` is its view state's name)."""

    hover_text = QtCore.Signal(str)
    series_dropped = QtCore.Signal(str)  # series uid
    line_planned = QtCore.Signal(object, object)  # start LPS, end LPS (Shift+drag)
    painted = QtCore.Signal()

    def __init__(self, name: str, session: Session, cache: PlaneCache,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.session = session
        self.view_state: ViewState = session.views[name]
        self.plane_cache = cache
        self.case_label = ""
        self.overlay: Any = None  # OverlayItems, set by the view grid
        self._ref_items: list[tuple[pg.PlotCurveItem, ReferenceLine]] = []
        self._line_pool: list[pg.PlotCurveItem] = []
        self._frame: tuple[Any, ...] | None = None
        self._letters: tuple[Any, EdgeLetters | None] = (None, None)  # (frame, letters) last shown
        self._pixels: Any = None
        self._along: float | None = None  # the shown reformatted plane's offset along its normal
        self._planned: pg.PlotCurveItem | None = None
        self._stale = False  # hidden when its plane changed: drawn when shown
        self.setAcceptDrops(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 160)

        self.graphics = Graphics(parent=self)
        self.graphics.setBackground("#0c0c0d")
        self.graphics.ci.setContentsMargins(0, 0, 0, 0)
        self.viewbox = _ViewBox(self)
        self.graphics.addItem(self.viewbox)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.image)
        pen = pg.mkPen(theme.CROSSHAIR, width=1, style=QtCore.Qt.PenStyle.DashLine)
        self.cross_v = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.cross_h = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self._crosshair_on = True
        for line in (self.cross_v, self.cross_h):
            line.setZValue(20)
            self.viewbox.addItem(line, ignoreBounds=True)

        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Vertical, self)
        self.slider.setInvertedAppearance(True)
        self.slider.valueChanged.connect(self._on_slider)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.slider)

        self.hud = Hud(self.graphics)
        self.graphics.hud = self.hud
        self.viewbox.sigRangeChanged.connect(self._on_range_changed)
        self._hover_proxy = pg.SignalProxy(self.graphics.scene().sigMouseMoved, rateLimit=60,
                                           slot=self._on_mouse_moved)
        self.cine = QtCore.QTimer(self)
        self.cine.setInterval(150)
        self.cine.timeout.connect(self._cine_step)
        self.view_state.plane_changed.connect(self._on_plane_changed)
        self.view_state.series_changed.connect(self._on_series_changed)
        self.view_state.window_changed.connect(self._on_window_changed)
        session.cursor.crosshair_changed.connect(self._on_crosshair_changed)
        for other in session.views.values():
            if other is not self.view_state:
                other.plane_changed.connect(self._on_other_plane_changed)
        self.show_message("Drop a series here, or open a dataset")

    # -- state ----------------------------------------------------------------------------
    @property
    def plane(self) -> ViewPlane | None:
        return self.view_state.plane

    def show_message(self, text: str) -> None:
        self.hud.set_text("center", text)

    def set_crosshair_visible(self, visible: bool) -> None:
        self._crosshair_on = visible
        self._update_crosshair()

    # -- drawing --------------------------------------------------------------------------
    def _on_series_changed(self, _series: Any) -> None:
        self._frame = None

    def _on_other_plane_changed(self, _plane: Any) -> None:
        if not self._stale:
            self.update_reference_lines()

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:  # what changed while the view was hidden
            self._on_plane_changed(self.view_state.plane)

    def _on_plane_changed(self, plane: ViewPlane | None) -> None:
        if not self.isVisible():
            # A view the layout hides (the coronal of 1x2) draws nothing until it is shown: its
            # pixels, a reformat perhaps (and the resampler's import), are for nobody.
            self._stale = True
            return
        self._stale = False
        state = self.view_state
        if plane is None:
            self.image.clear()
            self._pixels = None
            self.hud.set_scale(0.0)
            for key in ("top", "bottom", "left", "right"):
                self.hud.set_text(key, "")
            if state.series is None:
                self.show_message("No series for this view\n(drop one here)")
            else:
                self.show_message(f"The crosshair is outside\n{state.series.description or 'this series'}"
                                  "\n(scroll to enter it)")
            self._after_draw()
            return
        source = state.source
        if source is None:
            return
        self.show_message("")
        pixels = self.plane_cache.get(source, plane).pixels
        self._pixels = pixels
        if state.mode == "reformat":  # the next steps' pixels, computed while this one shows
            along = float(plane.origin_lps @ plane.normal_lps)
            direction = -1 if self._along is not None and along < self._along else 1
            self._along = along
            wanted: list[tuple[ImageStack, Kind]] = [(source, "image")]
            if self.overlay is not None:  # the label maps drawn over it, in the same pass
                wanted += [(stack, "labels") for stack in self.overlay.label_stacks()]
            self.plane_cache.prefetch_all([(stack, p, kind) for p in state.neighbour_planes(direction)
                                           for stack, kind in wanted])
        sx, sy = plane.spacing_mm
        frame = (tuple(np.round(plane.row_direction_lps, 6)), tuple(np.round(plane.column_direction_lps, 6)),
                 plane.spacing_mm)
        window = state.window
        levels = window.levels if window is not None else None
        if frame != self._frame:
            self.image.setTransform(QtGui.QTransform(sx, 0, 0, sy, -0.5 * sx, -0.5 * sy))
            first = self._frame is None
            self._frame = frame
            self.image.setImage(pixels, autoLevels=levels is None, levels=levels)
            self.image.setLookupTable(_INVERT_LUT if window is not None and window.invert else None)
            if first:
                self.fit()
        else:
            # Stepping: only the pixels change; the levels belong to the view state.
            self.image.setImage(pixels, autoLevels=False)
        self.hud.set_scale(self.viewbox.viewPixelSize()[0])
        if self._letters[0] != (frame, state.has_patient_geometry):  # they follow the directions alone
            self._letters = ((frame, state.has_patient_geometry), letters(plane, state.has_patient_geometry))
        edge = self._letters[1]
        for key in ("top", "bottom", "left", "right"):
            self.hud.set_text(key, getattr(edge, key) if edge is not None else "")
        self._after_draw()

    def _after_draw(self) -> None:
        index, count = self.view_state.position()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, count - 1))
        if index >= 0:
            self.slider.setValue(index)
        self.slider.blockSignals(False)
        self._update_crosshair()
        self._update_corner_text()
        self.update_reference_lines()
        if self.overlay is not None:
            self.overlay.refresh()
        self.painted.emit()

    def _on_window_changed(self, window: WindowLevel) -> None:
        self.image.setLevels(window.levels)
        self.image.setLookupTable(_INVERT_LUT if window.invert else None)
        self._update_corner_text()

    def _on_crosshair_changed(self, _lps: FloatArray) -> None:
        self._update_crosshair()
        self._update_corner_text()

    def to_scene(self, lps: FloatArray) -> tuple[float, float] | None:
        plane = self.plane
        if plane is None:
            return None
        c, r = plane.lps_to_pixel(lps)
        return float(c * plane.spacing_mm[0]), float(r * plane.spacing_mm[1])

    def to_lps(self, x_mm: float, y_mm: float) -> FloatArray | None:
        plane = self.plane
        if plane is None:
            return None
        return plane.pixel_to_lps(np.array([x_mm / plane.spacing_mm[0], y_mm / plane.spacing_mm[1]]))

    def _update_crosshair(self) -> None:
        pos = self.to_scene(self.session.cursor.crosshair)
        visible = pos is not None and self._crosshair_on
        self.cross_v.setVisible(visible)
        self.cross_h.setVisible(visible)
        if pos is not None:
            self.cross_v.setValue(pos[0])
            self.cross_h.setValue(pos[1])

    def update_reference_lines(self) -> None:
        """Draw the other views' planes (from the session); the line items are pooled, so a
        step only moves them."""
        plane = self.plane
        lines = self.session.reference_lines(self.name) if plane is not None else []
        while len(self._line_pool) < len(lines):
            item = pg.PlotCurveItem()
            self.viewbox.addItem(item, ignoreBounds=True)
            self._line_pool.append(item)
        self._ref_items = []
        for item, line in zip(self._line_pool, lines, strict=False):
            assert plane is not None
            sx, sy = plane.spacing_mm
            a = plane.lps_to_pixel(line.segment.start_lps) * (sx, sy)
            b = plane.lps_to_pixel(line.segment.end_lps) * (sx, sy)
            colour = theme.VIEW_COLOURS.get(line.source, theme.ACCENT) if line.current else theme.REFERENCE_FAINT
            style = (colour, 2 if line.current else 1)
            if getattr(item, "_lv_style", None) != style:
                item.setPen(pg.mkPen(colour, width=style[1]))
                item.setZValue(15 if line.current else 10)
                item.setOpacity(1.0 if line.current else 0.55)
                item._lv_style = style
            item.setData([a[0], b[0]], [a[1], b[1]])
            item.setVisible(True)
            self._ref_items.append((item, line))
        for item in self._line_pool[len(lines):]:
            item.setVisible(False)

    def reference_segments(self) -> list[ReferenceLine]:
        """The reference lines drawn now."""
        return [line for _, line in self._ref_items]

    def refresh_text(self) -> None:
        """Redraw the corner text (after the case label changed)."""
        self._update_corner_text()

    def _update_corner_text(self) -> None:
        state = self.view_state
        series = state.series
        if series is None:
            self.hud.set_text("tl", self.name)
            self.hud.set_text("tr", "")
            self.hud.set_text("bl", "")
            return
        note = state.note
        self.hud.set_text("tl", f"{self.case_label}\n{series.description or series.uid}"
                          + (f"\n#{series.number}" if series.number is not None else ""))
        plane = self.plane
        index, count = state.position()
        if plane is not None:
            # The cursor's patient coordinate along the axis nearest the plane's normal, in the
            # status bar's LPS convention (L, P, S positive), the axis named.
            axis = int(np.argmax(np.abs(plane.normal_lps)))
            pos = f"{'LPS'[axis]} {round(float(self.session.cursor.crosshair[axis]), 1) + 0.0:.1f}"  # no "-0.0"
            source = state.source
            thick = source.meta.get("slice_thickness_mm") if source is not None and state.mode == "native" else None
            self.hud.set_text("tr", f"{state.mode} {self.name}\nslice {index + 1}/{count}\npos {pos} mm\n"
                              + (f"thk {float(thick):.1f} mm" if thick else
                                 f"px {plane.spacing_mm[0]:.2f} mm"))
        else:
            self.hud.set_text("tr", f"-/{count}")
        window = state.window
        self.hud.set_text("bl", (f"{note}\n" if note else "")
                          + (f"W {window.width:.0f} L {window.center:.0f}{' inv' if window.invert else ''}\n"
                             if window else "") + f"zoom {self.zoom_factor():.2f}")

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel along a row."""
        plane = self.plane
        if plane is None:
            return 1.0
        mm_per_screen_px = self.viewbox.viewPixelSize()[0]
        return plane.spacing_mm[0] / mm_per_screen_px if mm_per_screen_px > 0 else 1.0

    def _on_range_changed(self, *_: Any) -> None:
        self.hud.set_scale(self.viewbox.viewPixelSize()[0] if self.plane is not None else 0.0)
        self._update_corner_text()

    def fit(self) -> None:
        """Fit the current plane to the view."""
        plane = self.plane
        if plane is None:
            return
        rows, cols = plane.shape_rc
        sx, sy = plane.spacing_mm
        self.viewbox.setRange(QtCore.QRectF(-0.5 * sx, -0.5 * sy, cols * sx, rows * sy), padding=0.0)

    def zoom_to(self, lps: FloatArray, field_mm: float = 60.0) -> None:
        """Centre the view on ``lps`` showing about ``field_mm`` around it."""
        pos = self.to_scene(lps)
        if pos is not None:
            half = field_mm / 2
            self.viewbox.setRange(QtCore.QRectF(pos[0] - half, pos[1] - half, field_mm, field_mm), padding=0.0)

    # -- input ----------------------------------------------------------------------------
    def pick(self, scene_point: QtCore.QPointF, snap_to_lines: bool) -> None:
        """Set the crosshair at a point of this view (snapped onto a reference line when the
        click is within a few pixels of one: that goes to the other view's slice)."""
        lps = self.to_lps(scene_point.x(), scene_point.y())
        plane = self.plane
        if lps is None or plane is None:
            return
        if snap_to_lines and self._ref_items:
            tolerance = _LINE_PICK_PX * max(self.viewbox.viewPixelSize())
            found = snap(plane, self.reference_segments(), lps, tolerance)
            if found is not None:
                self.session.cursor.set_crosshair(found[0])
                return
        self.session.cursor.set_crosshair(lps)

    def plan_line(self, start: QtCore.QPointF, end: QtCore.QPointF, finish: bool) -> None:
        """Shift+drag: a line across the image, drawn while dragging; on release the window
        plans an oblique plane through it (as a technologist plans an axial block)."""
        plane = self.plane
        if plane is None:
            return
        if self._planned is None:
            self._planned = pg.PlotCurveItem(pen=pg.mkPen(theme.ACCENT, width=2,
                                                          style=QtCore.Qt.PenStyle.DashLine))
            self._planned.setZValue(25)
            self.viewbox.addItem(self._planned, ignoreBounds=True)
        self._planned.setData([start.x(), end.x()], [start.y(), end.y()])
        self._planned.setVisible(not finish)
        if finish:
            a = self.to_lps(start.x(), start.y())
            b = self.to_lps(end.x(), end.y())
            if a is not None and b is not None and float(np.linalg.norm(b - a)) > 2.0:
                self.line_planned.emit(a, b)

    def step_slices(self, n: int) -> None:
        self.view_state.step(n)

    def adjust_window(self, dx: float, dy: float, finish: bool) -> None:
        """Right-drag window/level (see :data:`WINDOW_DRAG_GAIN`); one undo step per drag."""
        state = self.view_state
        w = state.window
        if w is not None:
            scale_x = WINDOW_DRAG_GAIN * max(w.width, 1.0) / max(self.width(), 1)
            scale_y = WINDOW_DRAG_GAIN * max(w.width, 1.0) / max(self.height(), 1)
            new = WindowLevel(w.center + dy * scale_y, max(1.0, w.width + dx * scale_x), w.invert)
            self.session.set_window(self.name, new, merge=True)
        if finish:
            self.session.undo.end_merge()

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        key = event.key()
        k = QtCore.Qt.Key
        state = self.view_state
        count = state.position()[1]
        if count == 0:
            return super().keyPressEvent(event)
        page = max(1, count // 10)
        if key in (k.Key_Up, k.Key_Left):
            state.step(-1)
        elif key in (k.Key_Down, k.Key_Right):
            state.step(1)
        elif key == k.Key_PageUp:
            state.step(-page)
        elif key == k.Key_PageDown:
            state.step(page)
        elif key == k.Key_Home:
            state.go_to(0)
        elif key == k.Key_End:
            state.go_to(count - 1)
        else:
            return super().keyPressEvent(event)
        event.accept()
        return None

    def toggle_cine(self) -> None:
        if self.cine.isActive():
            self.cine.stop()
        elif self.view_state.position()[1] > 1:
            self.cine.start()

    def _cine_step(self) -> None:
        index, count = self.view_state.position()
        self.view_state.go_to(0 if index < 0 or index >= count - 1 else index + 1)

    def _on_slider(self, value: int) -> None:
        self.view_state.go_to(value)

    def _on_mouse_moved(self, args: tuple[QtCore.QPointF]) -> None:
        scene_pos = args[0]
        cursor = self.session.cursor
        if not self.viewbox.sceneBoundingRect().contains(scene_pos):
            cursor.set_hover(None)
            return
        p = self.viewbox.mapSceneToView(scene_pos)
        lps = self.to_lps(p.x(), p.y())
        cursor.set_hover(lps)
        plane = self.plane
        if lps is None or plane is None or self._pixels is None:
            self.hover_text.emit("")
            return
        c, r = (math.floor(v + 0.5) for v in plane.lps_to_pixel(lps))
        rows, cols = plane.shape_rc
        value = ""
        if 0 <= r < rows and 0 <= c < cols:
            value = f"value {float(self._pixels[r, c]):g}  at column {c}, row {r}  "
        labels = ""
        if self.overlay is not None:
            col, row = plane.lps_to_pixel(lps)
            described = self.overlay.describe(float(col), float(row))
            labels = f"  |  {described}" if described else ""
        self.hover_text.emit(f"{self.name}: {value}LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm{labels}")

    # -- drag and drop of series ----------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(SERIES_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        data = event.mimeData()
        if data.hasFormat(SERIES_MIME):
            self.series_dropped.emit(bytes(data.data(SERIES_MIME).data()).decode())
            event.acceptProposedAction()


