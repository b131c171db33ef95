"""pyqtgraph items that draw a case's overlay layers on one SliceView, cut through patient space."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import BoxSet, LabelMap, Mesh, PointSet
from lumbarview.core.types import ImageStack
from lumbarview.model.markers import parse_marker_name, point_label
from lumbarview.model.overlays import Layer, OverlayModel, _hex_rgb
from lumbarview.model.view_state import step_along_mm
from lumbarview.slicing.cache import plane_key
from lumbarview.slicing.contours import plane_contour, segments_to_pixels, slab_projection
from lumbarview.slicing.cut import curve_crossings, points_near_plane

SEVERITY_COLOURS = {0: "#6fcf6f", 1: "#e8d44d", 2: "#f09a3e", 3: "#e5534b", None: "#b0b0b0"}
#: Point names drawn per view at most (beyond that the points are drawn without names).
MAX_POINT_LABELS = 60
#: Bytes each view may keep of label colour images and of mesh contours (each cache apart; the
#: label planes themselves are in the plane cache); LUMBARVIEW_OVERLAY_CACHE_MB sets it.
OVERLAY_CACHE_BYTES = int(os.environ.get("LUMBARVIEW_OVERLAY_CACHE_MB", "48")) * 2**20


def _layer_rgb(layer: Layer) -> tuple[int, int, int]:
    """A point or mesh layer's colour: the one set in the layer panel, else its kind's."""
    return layer.colour_rgb or _hex_rgb(layer.colour)


def _bounded_put(cache: OrderedDict[Any, npt.NDArray[Any]], key: Any, value: npt.NDArray[Any],
                 max_bytes: int) -> None:
    """Put ``value`` in an LRU ``cache`` and evict the oldest entries beyond ``max_bytes``
    (entries own their bytes: they are computed arrays, never views of a volume)."""
    cache[key] = value
    total = sum(v.nbytes for v in cache.values())
    while total > max_bytes and len(cache) > 1:
        _, evicted = cache.popitem(last=False)
        total -= evicted.nbytes


def outline(labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Labels kept only on their boundary pixels (4-neighbourhood)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return np.where(edge, labels, 0)


def premultiplied_bgra(table: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An RGBA colour table as premultiplied B, G, R, A bytes (QImage ARGB32 in memory on
    little-endian machines), so a label slice becomes an image with one lookup."""
    alpha = table[:, 3].astype(np.uint16)
    out = np.empty_like(table)
    out[:, 0] = (table[:, 2] * alpha // 255).astype(np.uint8)
    out[:, 1] = (table[:, 1] * alpha // 255).astype(np.uint8)
    out[:, 2] = (table[:, 0] * alpha // 255).astype(np.uint8)
    out[:, 3] = table[:, 3]
    return out


class MaskItem(QtWidgets.QGraphicsObject):
    """An RGBA overlay drawn as one premultiplied ARGB32 image: QPainter blends that format on
    its fast path, while a plain RGBA ImageItem costs a second full conversion per paint."""

    def __init__(self) -> None:
        super().__init__()
        self._image: QtGui.QImage | None = None
        self._rect = QtCore.QRectF()
        self._buffer: npt.NDArray[np.uint8] | None = None

    def set_bgra_premultiplied(self, pre: npt.NDArray[np.uint8], spacing: tuple[float, float]) -> None:
        h, w = pre.shape[:2]
        self._buffer = np.ascontiguousarray(pre)
        self._image = QtGui.QImage(self._buffer.data, w, h, 4 * w, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        sx, sy = spacing
        rect = QtCore.QRectF(-0.5 * sx, -0.5 * sy, w * sx, h * sy)
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self.update()

    def boundingRect(self) -> QtCore.QRectF:
        return self._rect

    def paint(self, painter: QtGui.QPainter, option: Any, widget: Any = None) -> None:
        if self._image is not None:
            painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
            painter.drawImage(self._rect, self._image)


class OverlayItems:
    """Draws every visible layer of ``model`` over ``view``; refreshed on each plane change."""

    def __init__(self, view: Any, model: OverlayModel) -> None:
        self.view = view
        self.model = model
        self._label_items: dict[int, MaskItem] = {}
        self._rgba: OrderedDict[tuple[Any, ...], npt.NDArray[np.uint8]] = OrderedDict()
        self._pool: dict[str, list[Any]] = {"curve": [], "text": [], "scatter": [], "pairs": []}
        self._used: dict[str, int] = {}
        self._tables: dict[int, npt.NDArray[np.uint8]] = {}
        self._box_corners: dict[int, tuple[list[Any], npt.NDArray[np.float64]]] = {}
        self.shown_boxes: list[tuple[Any, npt.NDArray[np.float64]]] = []
        self.shown_points: list[tuple[Layer, npt.NDArray[np.float64]]] = []
        # Meshes: their contour on this view's plane, and optionally (View menu) the part within
        # the slab projected on it (thin nerve roots otherwise show as dots).
        self.project_meshes = False
        self.projection_half_mm = 5.0  # the slab projected: this far each side (or half a slice)
        self.shown_contours: list[tuple[Layer, npt.NDArray[np.float64]]] = []  # (n, 2, 2) pixels
        self._mesh_cuts: OrderedDict[tuple[Any, ...], npt.NDArray[np.float64]] = OrderedDict()
        model.layers_changed.connect(self._on_layers_changed)
        model.layer_changed.connect(self._on_layer_changed)

    # -- model events ---------------------------------------------------------------------
    def _on_layers_changed(self) -> None:
        for item in self._label_items.values():
            self.view.viewbox.removeItem(item)
        self._label_items.clear()
        self._tables.clear()
        self._rgba.clear()
        self._box_corners.clear()
        self._mesh_cuts.clear()
        self.refresh()

    def _on_layer_changed(self, layer: Layer) -> None:
        self._tables.pop(id(layer), None)
        self._rgba.clear()
        self.refresh()

    def _take(self, kind: str) -> Any:
        """A pooled vector item (created once, reused on every slice step)."""
        pool = self._pool[kind]
        n = self._used.get(kind, 0)
        if n == len(pool):
            if kind in ("curve", "pairs"):  # "pairs": mesh contours, drawn as separate segments
                item: Any = pg.PlotCurveItem()
            elif kind == "text":
                item = pg.TextItem(anchor=(0, 1))
            else:
                item = pg.ScatterPlotItem(size=9, symbol="o", pen=pg.mkPen("#101010", width=1),
                                          brush=pg.mkBrush("#5ad1e6"))
            self.view.viewbox.addItem(item, ignoreBounds=True)
            pool.append(item)
        self._used[kind] = n + 1
        item = pool[n]
        item.setVisible(True)
        return item

    # -- drawing --------------------------------------------------------------------------
    def _half_slice_mm(self) -> float:
        """How far from the plane a box or point still shows: half the view's slice."""
        state = self.view.view_state
        source = state.source
        plane = self.view.plane
        if source is None or plane is None:
            return 0.5
        if state.mode == "native":
            spacing = float(source.meta.get("slice_spacing_mm") or source.geometry.slice_spacing_mm)
        else:
            spacing = step_along_mm(source.geometry, plane.normal_lps)
        return max(0.5, spacing / 2)

    def cut(self, layer: Layer) -> npt.NDArray[Any] | None:
        """The layer's labels on the view's plane: a plane-cache request through the same
        ``reformat(kind="labels")`` path as the image (nearest label; 0 off the map), keyed by
        the map's revision and prefetched with the image's planes off the GUI thread."""
        plane = self.view.plane
        if plane is None or not isinstance(layer.source, LabelMap):
            return None
        labels: npt.NDArray[Any] = self.view.plane_cache.get(layer.source.stack, plane, kind="labels").pixels
        return labels

    def label_stacks(self) -> list[ImageStack]:
        """The label maps drawn now (visible label layers): the view prefetches their planes."""
        return [layer.source.stack for layer in self.model.layers
                if layer.kind == "labels" and layer.visible and isinstance(layer.source, LabelMap)]

    def refresh(self) -> None:
        self._used = {}
        self._placed: list[tuple[float, float, Any, list[str], tuple[int, int, int]]] = []
        self.shown_boxes = []
        self.shown_points = []
        self.shown_contours = []
        plane = self.view.plane
        if plane is None:
            for item in self._label_items.values():
                item.setVisible(False)
            self._hide_unused()
            return
        sx, sy = plane.spacing_mm
        half_slice = self._half_slice_mm()
        for z, layer in enumerate(self.model.layers):
            if layer.kind == "labels":
                self._draw_labels(layer, z, sx, sy)
            elif not layer.visible:
                continue
            elif layer.kind == "boxes" and isinstance(layer.source, BoxSet):
                self._draw_boxes(layer, plane, half_slice, sx, sy, z)
            elif layer.kind == "points" and isinstance(layer.source, PointSet):
                self._draw_points(layer, plane, half_slice, sx, sy, z)
            elif layer.kind == "mesh" and isinstance(layer.source, Mesh):
                self._draw_mesh(layer, plane, half_slice, sx, sy, z)
        self._hide_unused()

    def _hide_unused(self) -> None:
        for kind, pool in self._pool.items():
            for item in pool[self._used.get(kind, 0):]:
                item.setVisible(False)

    def _draw_labels(self, layer: Layer, z: int, sx: float, sy: float) -> None:
        item = self._label_items.get(id(layer))
        if not layer.visible:
            if item is not None:
                item.setVisible(False)
            return
        labels = self.cut(layer)
        if labels is None or not isinstance(layer.source, LabelMap):
            return
        key = (id(layer), layer.source.stack.revision, plane_key(self.view.plane), layer.outline)
        rgba = self._rgba.get(key)
        if rgba is None:
            table = self._tables.get(id(layer))
            if table is None:
                table = self._tables[id(layer)] = premultiplied_bgra(layer.colour_table())
            shown = outline(labels) if layer.outline else labels
            rgba = np.take(table, shown, axis=0, mode="clip")
            _bounded_put(self._rgba, key, rgba, OVERLAY_CACHE_BYTES)
        if item is None:
            item = MaskItem()
            self._label_items[id(layer)] = item
            self.view.viewbox.addItem(item)
        item.set_bgra_premultiplied(rgba, (sx, sy))
        item.setZValue(5 + 0.01 * z)
        item.setVisible(True)

    def _draw_boxes(self, layer: Layer, plane: Any, half_slice: float, sx: float, sy: float, z: int) -> None:
        assert isinstance(layer.source, BoxSet)
        placed = self._box_corners.get(id(layer))
        if placed is None:
            boxes = [b for b in layer.source.boxes if b.corners_lps is not None]
            corners = np.array([b.corners_lps for b in boxes]).reshape(-1, 4, 3) if boxes else np.zeros((0, 4, 3))
            placed = self._box_corners[id(layer)] = (boxes, corners)
        boxes, corners = placed
        if not boxes:
            return
        # All boxes at once: those whose four corners lie within half a slice of this plane.
        on = np.all(np.abs(plane.signed_distance_mm(corners)) <= half_slice, axis=1)
        for index in np.nonzero(on)[0]:
            box = boxes[index]
            px = plane.lps_to_pixel(corners[index])
            colour = SEVERITY_COLOURS.get(box.severity, SEVERITY_COLOURS[None])
            xs = np.array([*(px[:, 0] * sx), px[0, 0] * sx])
            ys = np.array([*(px[:, 1] * sy), px[0, 1] * sy])
            curve = self._take("curve")
            curve.setData(xs, ys, pen=pg.mkPen(colour, width=2))
            curve.setZValue(30 + 0.01 * z)
            side = {"left": "L", "right": "R"}.get(box.side or "", "?")
            text = self._take("text")
            text.setText(f"{box.level or '?'} {side} {'' if box.severity is None else box.severity}", color=colour)
            text.setPos(float(px[:, 0].min() * sx), float(px[:, 1].min() * sy))
            text.setZValue(31)
            self.shown_boxes.append((box, px))

    def _draw_points(self, layer: Layer, plane: Any, half_slice: float, sx: float, sy: float, z: int) -> None:
        assert isinstance(layer.source, PointSet)
        ps = layer.source
        if ps.kind in ("curve", "closed-curve") and len(ps.points_lps) > 1:
            px = curve_crossings(ps.points_lps, plane, closed=ps.kind == "closed-curve")
            near = np.zeros(0, dtype=bool)
        else:
            near, all_px = points_near_plane(ps.points_lps, plane, half_slice)
            px = all_px[near]
        if len(px) == 0:
            return
        item = self._take("scatter")
        item.setData(px[:, 0] * sx, px[:, 1] * sy, brush=pg.mkBrush(*_layer_rgb(layer)))
        item.setZValue(40 + 0.01 * z)
        self.shown_points.append((layer, px))
        if ps.kind not in ("curve", "closed-curve"):
            self._label_points(layer, near, px, sx, sy)

    def _label_points(self, layer: Layer, near: npt.NDArray[np.bool_], px: npt.NDArray[np.float64],
                      sx: float, sy: float) -> None:
        """The points' names (from the files) beside them, in the set's colour; a few per view."""
        assert isinstance(layer.source, PointSet)
        marker = parse_marker_name(layer.name)
        source = layer.source
        indices = np.nonzero(near)[0]
        labels = [source.labels[i] if i < len(source.labels) else "" for i in indices]
        infos = [source.info[i] if i < len(source.info) else None for i in indices]
        for n, (label, info, (col, row)) in enumerate(zip(labels, infos, px[:, :2], strict=False)):
            x, y, name = float(col * sx), float(row * sy), point_label(marker, label, n, info)
            # Markers of two sets at one place (a ganglion on its root): one label naming both.
            shared = next((p for p in self._placed if abs(p[0] - x) < 2.0 and abs(p[1] - y) < 2.0), None)
            if shared is not None:
                if name not in shared[3]:
                    shared[3].append(name)
                    shared[2].setText(" / ".join(shared[3]), color=shared[4])
                continue
            if self._used.get("text", 0) >= MAX_POINT_LABELS:
                return
            text = self._take("text")
            text.setText(name, color=_layer_rgb(layer))
            text.setPos(x + 2.0, y - 2.0)
            text.setZValue(41)
            self._placed.append((x, y, text, [name], _layer_rgb(layer)))

    def mesh_segments(self, layer: Layer, plane: Any, half_slice: float, projected: bool) -> npt.NDArray[np.float64]:
        """The mesh's contour (or slab projection) on ``plane`` as (n, 2, 2) pixels; cached."""
        assert isinstance(layer.source, Mesh)
        key = (id(layer), plane_key(plane), projected, round(half_slice, 6) if projected else None)
        found = self._mesh_cuts.get(key)
        if found is None:
            mesh = layer.source
            lps = (slab_projection(mesh.vertices_lps, mesh.faces, plane, half_slice) if projected
                   else plane_contour(mesh.vertices_lps, mesh.faces, plane))
            found = segments_to_pixels(lps, plane)
            _bounded_put(self._mesh_cuts, key, found, OVERLAY_CACHE_BYTES)
        else:
            self._mesh_cuts.move_to_end(key)
        return found

    def _draw_mesh(self, layer: Layer, plane: Any, half_slice: float, sx: float, sy: float, z: int) -> None:
        half_slice = max(half_slice, self.projection_half_mm)  # only the projection uses it
        r, g, b = layer.colour_rgb or (247, 143, 62)
        alpha = round(255 * max(0.0, min(1.0, layer.opacity)))
        passes = [(False, 2.0, alpha)]
        if self.project_meshes:
            passes.insert(0, (True, 1.0, alpha // 2))
        for projected, width, a in passes:
            px = self.mesh_segments(layer, plane, half_slice, projected)
            if len(px) == 0:
                continue
            flat = px.reshape(-1, 2)
            curve = self._take("pairs")
            curve.setData(flat[:, 0] * sx, flat[:, 1] * sy, connect="pairs", pen=pg.mkPen((r, g, b, a), width=width))
            curve.setZValue(35 + 0.01 * z)
            if not projected:
                self.shown_contours.append((layer, px))

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
