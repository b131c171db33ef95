"""pyqtgraph items that draw a case's overlay layers on one SliceView, cut through patient space."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from lumbarview.core.dataset import BoxSet, LabelMap, PointSet
from lumbarview.model.overlays import Layer, OverlayModel
from lumbarview.slicing.cut import boxes_on_plane, curve_crossings, cut_labels, points_near_plane

SEVERITY_COLOURS = {0: "#6fcf6f", 1: "#e8d44d", 2: "#f09a3e", 3: "#e5534b", None: "#b0b0b0"}
_CUT_CACHE = 256


def outline(labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Labels kept only on their boundary pixels (4-neighbourhood)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return np.where(edge, labels, 0)


class OverlayItems:
    """Draws every visible layer of ``model`` over ``view``; refreshed on each slice change."""

    def __init__(self, view: Any, model: OverlayModel) -> None:
        self.view = view
        self.model = model
        self._label_items: dict[int, pg.ImageItem] = {}
        self._vector_items: list[Any] = []
        self._cuts: OrderedDict[tuple[int, str, int], npt.NDArray[Any]] = OrderedDict()
        self._tables: dict[int, npt.NDArray[np.uint8]] = {}
        self.shown_boxes: list[tuple[Any, npt.NDArray[np.float64]]] = []
        self.shown_points: list[tuple[Layer, npt.NDArray[np.float64]]] = []
        model.layers_changed.connect(self._on_layers_changed)
        model.layer_changed.connect(self._on_layer_changed)

    # -- model events ---------------------------------------------------------------------
    def _on_layers_changed(self) -> None:
        for item in self._label_items.values():
            self.view.viewbox.removeItem(item)
        self._label_items.clear()
        self._tables.clear()
        self._cuts.clear()
        self.refresh()

    def _on_layer_changed(self, layer: Layer) -> None:
        self._tables.pop(id(layer), None)
        self.refresh()

    # -- drawing --------------------------------------------------------------------------
    def cut(self, layer: Layer) -> npt.NDArray[Any] | None:
        ref = self.view.state.current if self.view.state else None
        if ref is None or not isinstance(layer.source, LabelMap):
            return None
        key = (id(layer), ref.stack.uid, ref.k)
        found = self._cuts.get(key)
        if found is None:
            stack = layer.source.stack
            half = None
            if stack.geometry.shape_kji[0] == 1:
                half = max(0.5, stack.geometry.slice_spacing_mm / 2)
            found = cut_labels(stack.pixels(), stack.geometry, ref.plane, half)
            self._cuts[key] = found
            while len(self._cuts) > _CUT_CACHE:
                self._cuts.popitem(last=False)
        else:
            self._cuts.move_to_end(key)
        return found

    def refresh(self) -> None:
        for item in self._vector_items:
            self.view.viewbox.removeItem(item)
        self._vector_items = []
        self.shown_boxes = []
        self.shown_points = []
        ref = self.view.state.current if self.view.state else None
        if ref is None:
            for item in self._label_items.values():
                item.setVisible(False)
            return
        plane = ref.plane
        sx, sy = plane.spacing_mm
        half_slice = max(0.5, float(ref.stack.meta.get("slice_spacing_mm") or ref.stack.geometry.slice_spacing_mm) / 2)
        for z, layer in enumerate(self.model.layers):
            if layer.kind == "labels":
                self._draw_labels(layer, z, sx, sy)
            elif not layer.visible:
                continue
            elif layer.kind == "boxes" and isinstance(layer.source, BoxSet):
                self._draw_boxes(layer, plane, half_slice, sx, sy, z)
            elif layer.kind == "points" and isinstance(layer.source, PointSet):
                self._draw_points(layer, plane, half_slice, sx, sy, z)

    def _draw_labels(self, layer: Layer, z: int, sx: float, sy: float) -> None:
        item = self._label_items.get(id(layer))
        if not layer.visible:
            if item is not None:
                item.setVisible(False)
            return
        labels = self.cut(layer)
        if labels is None:
            return
        table = self._tables.get(id(layer))
        if table is None:
            table = self._tables[id(layer)] = layer.colour_table()
        shown = outline(labels) if layer.outline else labels
        rgba = table[np.clip(shown, 0, len(table) - 1)]
        if item is None:
            item = pg.ImageItem(axisOrder="row-major")
            self._label_items[id(layer)] = item
            self.view.viewbox.addItem(item)
        item.setTransform(QtGui.QTransform(sx, 0, 0, sy, -0.5 * sx, -0.5 * sy))
        item.setImage(rgba, autoLevels=False, levels=(0, 255))
        item.setZValue(5 + 0.01 * z)
        item.setVisible(True)

    def _draw_boxes(self, layer: Layer, plane: Any, half_slice: float, sx: float, sy: float, z: int) -> None:
        assert isinstance(layer.source, BoxSet)
        for box, px in boxes_on_plane(layer.source.boxes, plane, half_slice):
            colour = SEVERITY_COLOURS.get(box.severity, SEVERITY_COLOURS[None])
            xs = [*(px[:, 0] * sx), px[0, 0] * sx]
            ys = [*(px[:, 1] * sy), px[0, 1] * sy]
            curve = pg.PlotCurveItem(xs, ys, pen=pg.mkPen(colour, width=2))
            curve.setZValue(30 + 0.01 * z)
            side = {"left": "L", "right": "R"}.get(box.side or "", "?")
            text = pg.TextItem(f"{box.level or '?'} {side} {'' if box.severity is None else box.severity}",
                               color=colour, anchor=(0, 1))
            text.setPos(float(px[:, 0].min() * sx), float(px[:, 1].min() * sy))
            text.setZValue(31)
            for item in (curve, text):
                self.view.viewbox.addItem(item, ignoreBounds=True)
                self._vector_items.append(item)
            self.shown_boxes.append((box, px))

    def _draw_points(self, layer: Layer, plane: Any, half_slice: float, sx: float, sy: float, z: int) -> None:
        assert isinstance(layer.source, PointSet)
        ps = layer.source
        if ps.kind in ("curve", "closed-curve") and len(ps.points_lps) > 1:
            px = curve_crossings(ps.points_lps, plane, closed=ps.kind == "closed-curve")
        else:
            near, all_px = points_near_plane(ps.points_lps, plane, half_slice)
            px = all_px[near]
        if len(px) == 0:
            return
        item = pg.ScatterPlotItem(px[:, 0] * sx, px[:, 1] * sy, size=9, symbol="o",
                                  pen=pg.mkPen("#101010", width=1), brush=pg.mkBrush("#5ad1e6"))
        item.setZValue(40 + 0.01 * z)
        self.view.viewbox.addItem(item, ignoreBounds=True)
        self._vector_items.append(item)
        self.shown_points.append((layer, px))

    # -- hover ----------------------------------------------------------------------------
    def describe(self, col: float, row: float) -> str:
        """Names of the labels and boxes under pixel (col, row) of the current slice."""
        parts = []
        c, r = int(np.floor(col + 0.5)), int(np.floor(row + 0.5))
        for layer in self.model.layers:
            if not layer.visible or layer.kind != "labels" or not isinstance(layer.source, LabelMap):
                continue
            labels = self.cut(layer)
            if labels is None or not (0 <= r < labels.shape[0] and 0 <= c < labels.shape[1]):
                continue
            v = int(labels[r, c])
            if v and v not in layer.hidden_labels:
                parts.append(f"{layer.source.scheme.entry(v).name} ({v})")
        for box, px in self.shown_boxes:
            if px[:, 0].min() <= col <= px[:, 0].max() and px[:, 1].min() <= row <= px[:, 1].max():
                parts.append(f"box {box.name}: {box.side or '?'} {box.level or '?'} severity "
                             f"{'?' if box.severity is None else box.severity}")
        return "; ".join(parts)


def colour_icon(rgb: tuple[int, int, int]) -> QtGui.QIcon:
    pix = QtGui.QPixmap(12, 12)
    pix.fill(QtGui.QColor(*rgb))
    return QtGui.QIcon(pix)


__all__ = ["SEVERITY_COLOURS", "OverlayItems", "QtCore", "colour_icon", "outline"]
