"""SliceView: draws one ViewState (pyqtgraph) and forwards user input to the model.

Scene units are in-plane millimetres of the current stack: the centre of pixel (column c, row r)
is at (c * sx, r * sy). Every overlay (crosshair, reference lines) is computed from patient
space (LPS), never from another view's pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.geometry import FloatArray, SlicePlane
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.cursor import CursorModel
from lumbarview.model.view_state import SliceRef, ViewState, WindowLevel
from lumbarview.slicing.cache import SliceCache
from lumbarview.ui import theme

SERIES_MIME = "application/x-lumbarview-series"
_INVERT_LUT = np.arange(255, -1, -1, dtype=np.uint8)
_LINE_PICK_PX = 6.0


class _ViewBox(pg.ViewBox):
    """ViewBox with radiology mouse bindings: left sets the crosshair, right drag is window/level,
    middle drag pans, the wheel scrolls slices and Ctrl+wheel zooms."""

    def __init__(self, view: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._view = view
        self.setMouseEnabled(x=False, y=False)

    def mouseClickEvent(self, ev: Any) -> None:
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self._view.pick(self.mapSceneToView(ev.scenePos()), snap=True)
        else:
            ev.ignore()

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:
        button = ev.button()
        ev.accept()
        if button == QtCore.Qt.MouseButton.LeftButton:
            self._view.pick(self.mapSceneToView(ev.scenePos()), snap=ev.isStart())
        elif button == QtCore.Qt.MouseButton.MiddleButton:
            delta = self.mapSceneToView(ev.scenePos()) - self.mapSceneToView(ev.lastScenePos())
            self.translateBy(x=-delta.x(), y=-delta.y())
        elif button == QtCore.Qt.MouseButton.RightButton:
            d = ev.screenPos() - ev.lastScreenPos()
            self._view.adjust_window(d.x(), d.y(), start=ev.isStart())

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        ev.accept()
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            factor = 0.85 if delta > 0 else 1 / 0.85
            self.scaleBy((factor, factor), center=self.mapSceneToView(ev.scenePos()))
        else:
            self._view.scroll(-1 if delta > 0 else 1)


class Hud:
    """Everything written over the image (orientation letters, corner text, a message and the
    scale bar), painted by the graphics view itself as its foreground, in the same pass as the
    image: overlay widgets (one per label, or even one for all) each cost a repaint of their own
    on every slice step."""

    KEYS = ("top", "bottom", "left", "right", "tl", "tr", "bl", "center")

    def __init__(self, view: QtWidgets.QGraphicsView) -> None:
        self._view = view
        self._texts = dict.fromkeys(self.KEYS, "")
        self._mm_per_px = 0.0
        self._font = QtGui.QFont("monospace")
        self._font.setStyleHint(QtGui.QFont.StyleHint.Monospace)
        self._font.setPixelSize(11)
        self._bold = QtGui.QFont(self._font)
        self._bold.setPixelSize(13)
        self._bold.setBold(True)

    def text(self, key: str) -> str:
        return self._texts[key]

    def set_text(self, key: str, text: str) -> None:
        if self._texts[key] != text:
            self._texts[key] = text
            self.update()

    def set_scale(self, mm_per_px: float) -> None:
        if abs(mm_per_px - self._mm_per_px) > 1e-9:
            self._mm_per_px = mm_per_px
            self.update()

    def bar(self) -> tuple[float, int]:
        """(length in mm, length in screen pixels) of the scale bar at the current zoom."""
        if self._mm_per_px <= 0:
            return 0.0, 0
        target = 100 * self._mm_per_px
        nice = [1, 2, 5, 10, 20, 25, 50, 100, 200, 500]
        mm = max([n for n in nice if n <= target] or [nice[0]])
        return float(mm), round(mm / self._mm_per_px)

    def update(self) -> None:
        self._view.viewport().update()

    def paint(self, painter: QtGui.QPainter, area: QtCore.QRect) -> None:
        painter.setPen(QtGui.QColor(theme.TEXT))
        rect = area.adjusted(6, 6, -6, -6)
        a = QtCore.Qt.AlignmentFlag
        painter.setFont(self._bold)
        for key, flags in (("top", a.AlignHCenter | a.AlignTop), ("bottom", a.AlignHCenter | a.AlignBottom),
                           ("left", a.AlignLeft | a.AlignVCenter), ("right", a.AlignRight | a.AlignVCenter)):
            if self._texts[key]:
                painter.drawText(rect, int(flags), self._texts[key])
        painter.setFont(self._font)
        for key, flags in (("tl", a.AlignLeft | a.AlignTop), ("tr", a.AlignRight | a.AlignTop),
                           ("bl", a.AlignLeft | a.AlignBottom)):
            if self._texts[key]:
                painter.drawText(rect, int(flags), self._texts[key])
        if self._texts["center"]:
            box = painter.boundingRect(rect, int(a.AlignCenter), self._texts["center"]).adjusted(-8, -6, 8, 6)
            painter.fillRect(box, QtGui.QColor(0, 0, 0, 140))
            painter.drawText(rect, int(a.AlignCenter), self._texts["center"])
        mm, px = self.bar()
        if px > 0:
            painter.setPen(QtGui.QPen(QtGui.QColor(theme.TEXT), 2))
            x1 = rect.right()
            x0 = x1 - px
            y = rect.bottom() - 18
            painter.drawLine(x0, y, x1, y)
            painter.drawLine(x0, y - 4, x0, y + 1)
            painter.drawLine(x1, y - 4, x1, y + 1)
            painter.drawText(QtCore.QRect(x0 - 40, y - 20, px + 40, 16), int(a.AlignRight | a.AlignBottom),
                             f"{mm:g} mm")


class _Graphics(pg.GraphicsLayoutWidget):
    """The graphics view, with the HUD drawn as its foreground in viewport pixels."""

    hud: Hud | None = None

    def drawForeground(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        super().drawForeground(painter, rect)
        if self.hud is not None:
            painter.save()
            painter.resetTransform()
            self.hud.paint(painter, self.viewport().rect())
            painter.restore()


class SliceView(QtWidgets.QWidget):
    """One linked slice view. Owns no state of its own that the model does not have."""

    hover_text = QtCore.Signal(str)
    series_dropped = QtCore.Signal(str)  # series uid
    painted = QtCore.Signal()

    def __init__(self, name: str, cursor: CursorModel, cache: SliceCache,
                 window_memory: dict[str, WindowLevel],
                 default_window: Callable[[ImageStack], WindowLevel],
                 prefetch: Callable[[ImageStack, list[int]], None] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.cursor = cursor
        self.cache = cache
        self.state: ViewState | None = None
        self.case_label = ""
        self._window_memory = window_memory
        self._default_window = default_window
        self._prefetch = prefetch
        self._references: list[tuple[ViewState, bool]] = []
        self.overlay: Any = None  # OverlayItems, set by the window
        self._ref_items: list[tuple[pg.PlotCurveItem, SliceRef, FloatArray, FloatArray]] = []
        self._stack_uid: str | None = None
        self._letters_for: str | None = None
        self.setAcceptDrops(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 200)

        self.graphics = _Graphics(parent=self)
        self.graphics.setBackground("#0c0c0d")
        self.graphics.ci.setContentsMargins(0, 0, 0, 0)
        self.viewbox = _ViewBox(self)
        self.graphics.addItem(self.viewbox)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.image)
        pen = pg.mkPen(theme.CROSSHAIR, width=1, style=QtCore.Qt.PenStyle.DashLine)
        self.cross_v = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.cross_h = pg.InfiniteLine(angle=0, movable=False, pen=pen)
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
        cursor.crosshair_changed.connect(self._on_crosshair_changed)
        self.show_message("Drop a series here, or open a dataset")

    # -- model binding --------------------------------------------------------------------
    def set_series(self, series: Series, case_label: str = "") -> None:
        self.case_label = case_label
        if self.state is None:
            self.state = ViewState(series, self.cursor)
            self.state.slice_changed.connect(self._on_slice_changed)
            self.state.window_changed.connect(self._on_window_changed)
        else:
            self.state.set_series(series)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, self.state.n_slices - 1))
        self.slider.blockSignals(False)
        self._stack_uid = None
        self._letters_for = None
        self._on_slice_changed(self.state.current)

    def add_reference(self, other: ViewState, all_slices: bool) -> None:
        """Draw where ``other``'s slices cut this view: all of them faint (``all_slices``) and
        its current slice bright."""
        self._references.append((other, all_slices))
        other.slice_changed.connect(lambda _: self.update_reference_lines())
        other.series_changed.connect(lambda _: self.update_reference_lines())
        self.update_reference_lines()

    @property
    def plane(self) -> SlicePlane | None:
        current = self.state.current if self.state else None
        return None if current is None else current.plane

    # -- drawing --------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self.hud.set_text("center", text)

    def _on_slice_changed(self, ref: SliceRef | None) -> None:
        if self.state is None:
            return
        if ref is None:
            self.image.clear()
            self.hud.set_scale(0.0)
            if self.overlay is not None:
                self.overlay.refresh()
            self.show_message(f"The crosshair is outside\n{self.state.series.description or 'this series'}"
                              "\n(scroll to enter it)")
            for key in ("top", "bottom", "left", "right"):
                self.hud.set_text(key, "")
            self._update_corner_text()
            self.update_reference_lines()
            return
        self.show_message("")
        self.hud.set_scale(self.viewbox.viewPixelSize()[0])
        stack = ref.stack
        pixels = self.cache.get(stack, ref.k)
        window = self._window_memory.get(self.state.series.uid)
        if window is None:
            window = self._default_window(stack)
            self._window_memory[self.state.series.uid] = window
        if self.state.window != window:
            self.state.set_window(window)  # emits window_changed -> levels
        if stack.uid != self._stack_uid:
            sx, sy = stack.geometry.spacing_mm[:2]
            self.image.setTransform(QtGui.QTransform(sx, 0, 0, sy, -0.5 * sx, -0.5 * sy))
            first = self._stack_uid is None
            self._stack_uid = stack.uid
            self.image.setImage(pixels, autoLevels=False, levels=window.levels)
            if first:
                self.fit()
        else:
            # Scrolling: only the pixels change; the levels belong to the view state.
            self.image.setImage(pixels, autoLevels=False)
        if stack.uid != self._letters_for:
            self._letters_for = stack.uid
            self.image.setLookupTable(_INVERT_LUT if window.invert else None)
            letters = ref.plane.edge_letters()  # the same for every slice of a stack
            for key in ("top", "bottom", "left", "right"):
                self.hud.set_text(key, getattr(letters, key))
        self.slider.blockSignals(True)
        self.slider.setValue(ref.series_index)
        self.slider.blockSignals(False)
        self._update_crosshair()
        self._update_corner_text()
        self.update_reference_lines()
        if self.overlay is not None:
            self.overlay.refresh()
        if self._prefetch is not None:
            self._prefetch(stack, [ref.k + d for d in (1, -1, 2, -2, 3, -3)])
        self.painted.emit()

    def _on_window_changed(self, window: WindowLevel) -> None:
        self.image.setLevels(window.levels)
        self.image.setLookupTable(_INVERT_LUT if window.invert else None)
        self._update_corner_text()

    def _on_crosshair_changed(self, _lps: FloatArray) -> None:
        self._update_crosshair()
        self._update_corner_text()

    def to_scene(self, lps: FloatArray) -> tuple[float, float] | None:
        ref = self.state.current if self.state else None
        if ref is None:
            return None
        plane = ref.plane
        c, r = plane.lps_to_pixel(lps)
        return float(c * plane.spacing_mm[0]), float(r * plane.spacing_mm[1])

    def to_lps(self, x_mm: float, y_mm: float) -> FloatArray | None:
        plane = self.plane
        if plane is None:
            return None
        return plane.pixel_to_lps(np.array([x_mm / plane.spacing_mm[0], y_mm / plane.spacing_mm[1]]))

    def _update_crosshair(self) -> None:
        pos = self.to_scene(self.cursor.crosshair)
        visible = pos is not None
        self.cross_v.setVisible(visible)
        self.cross_h.setVisible(visible)
        if pos is not None:
            self.cross_v.setValue(pos[0])
            self.cross_h.setValue(pos[1])

    def update_reference_lines(self) -> None:
        for item, *_ in self._ref_items:
            self.viewbox.removeItem(item)
        self._ref_items = []
        plane = self.plane
        if plane is None:
            return
        sx, sy = plane.spacing_mm
        for other, all_slices in self._references:
            current = other.current
            refs = other.slices() if all_slices else ([current] if current is not None else [])
            for ref in refs:
                seg = plane.intersection(ref.plane)
                if seg is None:
                    continue
                is_current = current is not None and ref.stack is current.stack and ref.k == current.k
                a = plane.lps_to_pixel(seg.start_lps) * (sx, sy)
                b = plane.lps_to_pixel(seg.end_lps) * (sx, sy)
                pen = pg.mkPen(theme.ACCENT if is_current else theme.REFERENCE_FAINT,
                               width=2 if is_current else 1)
                item = pg.PlotCurveItem([a[0], b[0]], [a[1], b[1]], pen=pen)
                item.setZValue(15 if is_current else 10)
                item.setOpacity(1.0 if is_current else 0.55)
                self.viewbox.addItem(item, ignoreBounds=True)
                self._ref_items.append((item, ref, seg.start_lps, seg.end_lps))

    def reference_segments(self) -> list[tuple[SliceRef, FloatArray, FloatArray]]:
        """The reference lines drawn now: (slice of the other view, start LPS, end LPS)."""
        return [(ref, a, b) for _, ref, a, b in self._ref_items]

    def _update_corner_text(self) -> None:
        state = self.state
        if state is None:
            return
        ref = state.current
        series = state.series
        self.hud.set_text("tl", f"{self.case_label}\n{series.description or series.uid}"
                          + (f"\n#{series.number}" if series.number is not None else ""))
        if ref is not None:
            meta = ref.stack.meta
            pos = float(self.cursor.crosshair @ ref.plane.normal_lps)
            thick = meta.get("slice_thickness_mm")
            self.hud.set_text("tr", f"slice {ref.series_index + 1}/{state.n_slices}\n"
                              f"pos {pos:.1f} mm\n" + (f"thk {thick:.1f} mm" if thick else "thk ?"))
        else:
            self.hud.set_text("tr", f"-/{state.n_slices}")
        window = state.window
        self.hud.set_text("bl", (f"W {window.width:.0f} L {window.center:.0f}{' inv' if window.invert else ''}\n"
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
        """Fit the current slice to the view."""
        plane = self.plane
        if plane is None:
            return
        rows, cols = plane.shape_rc
        sx, sy = plane.spacing_mm
        self.viewbox.setRange(QtCore.QRectF(-0.5 * sx, -0.5 * sy, cols * sx, rows * sy), padding=0.0)

    # -- input ----------------------------------------------------------------------------
    def pick(self, scene_point: QtCore.QPointF, snap: bool) -> None:
        """Set the crosshair at a point of this view (snapped onto a reference line when the
        click is within a few pixels of one: that goes to the other view's slice)."""
        x, y = scene_point.x(), scene_point.y()
        plane = self.plane
        if plane is None:
            return
        if snap:
            snapped = self._snap_to_reference(x, y)
            if snapped is not None:
                self.cursor.set_crosshair(snapped)
                return
        lps = self.to_lps(x, y)
        if lps is not None:
            self.cursor.set_crosshair(lps)

    def _snap_to_reference(self, x: float, y: float) -> FloatArray | None:
        plane = self.plane
        if plane is None or not self._ref_items:
            return None
        sx, sy = plane.spacing_mm
        px_mm = max(self.viewbox.viewPixelSize())
        best: tuple[float, FloatArray] | None = None
        p = np.array([x, y])
        for _, _ref, a_lps, b_lps in self._ref_items:
            a = plane.lps_to_pixel(a_lps) * (sx, sy)
            b = plane.lps_to_pixel(b_lps) * (sx, sy)
            d = b - a
            t = float(np.clip((p - a) @ d / max(d @ d, 1e-12), 0.0, 1.0))
            dist_px = float(np.linalg.norm(a + t * d - p)) / px_mm
            if dist_px <= _LINE_PICK_PX and (best is None or dist_px < best[0]):
                best = (dist_px, a_lps + t * (b_lps - a_lps))
        return None if best is None else best[1]

    def scroll(self, n: int) -> None:
        if self.state is not None:
            self.state.scroll(n)

    def adjust_window(self, dx: float, dy: float, start: bool) -> None:
        """Right-drag: horizontal changes the width, vertical the level (drag up = brighter)."""
        state = self.state
        if state is None or state.window is None:
            return
        w = state.window
        scale = max(w.width, 1.0) / 200.0
        new = WindowLevel(w.center - dy * scale, max(1.0, w.width + dx * scale), w.invert)
        state.set_window(new)
        self._window_memory[state.series.uid] = new

    def set_window(self, window: WindowLevel) -> None:
        if self.state is not None:
            self.state.set_window(window)
            self._window_memory[self.state.series.uid] = window

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        key = event.key()
        k = QtCore.Qt.Key
        state = self.state
        if state is None:
            return super().keyPressEvent(event)
        step = max(1, state.n_slices // 10)
        if key in (k.Key_Up, k.Key_Left):
            state.scroll(-1)
        elif key in (k.Key_Down, k.Key_Right):
            state.scroll(1)
        elif key == k.Key_PageUp:
            state.scroll(-step)
        elif key == k.Key_PageDown:
            state.scroll(step)
        elif key == k.Key_Home:
            state.go_to(0)
        elif key == k.Key_End:
            state.go_to(state.n_slices - 1)
        else:
            return super().keyPressEvent(event)
        event.accept()
        return None

    def toggle_cine(self) -> None:
        if self.cine.isActive():
            self.cine.stop()
        elif self.state is not None and self.state.n_slices > 1:
            self.cine.start()

    def _cine_step(self) -> None:
        state = self.state
        if state is None:
            return
        current = state.current
        nxt = 0 if current is None or current.series_index >= state.n_slices - 1 else current.series_index + 1
        state.go_to(nxt)

    def _on_slider(self, value: int) -> None:
        if self.state is not None:
            self.state.go_to(value)

    def _on_mouse_moved(self, args: tuple[QtCore.QPointF]) -> None:
        scene_pos = args[0]
        if not self.viewbox.sceneBoundingRect().contains(scene_pos):
            self.cursor.set_hover(None)
            return
        p = self.viewbox.mapSceneToView(scene_pos)
        lps = self.to_lps(p.x(), p.y())
        self.cursor.set_hover(lps)
        ref = self.state.current if self.state else None
        if lps is None or ref is None:
            self.hover_text.emit("")
            return
        plane = ref.plane
        c, r = (math.floor(v + 0.5) for v in plane.lps_to_pixel(lps))
        rows, cols = plane.shape_rc
        value = ""
        if 0 <= r < rows and 0 <= c < cols:
            v = self.cache.get(ref.stack, ref.k)[r, c]
            value = f"value {v:g}  at column {c}, row {r}  "
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
