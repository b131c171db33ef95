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
from lumbarview.model.measurements import Measurement, region_statistics, roi_text
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


def outline_lps(m: Measurement) -> list[FloatArray]:
    """The polylines that draw ``m`` (LPS), one per stroke: what its kind says."""
    return m.outline_lps()


#: Label placement, in screen pixels: the first try beside the anchor, the step between tries.
LABEL_GAP_PX = 6.0
LABEL_TRIES = 24
LABEL_BACKING = (20, 20, 20, 190)


Rect = tuple[float, float, float, float]


def place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], fixed: list[Rect] | None = None,
                 bounds: tuple[float, float] | None = None) -> list[tuple[float, float]]:
    """Top-left corners (screen pixels, y down) of labels of ``sizes`` near their ``anchors``
    that overlap neither each other nor the ``fixed`` rectangles (left, top, right, bottom)
    and stay inside ``bounds`` (width, height) where it can be helped: the first free spot of a
    widening series of tries above, below, right and left of each anchor (in anchor order, top
    to bottom)."""
    placed: list[Rect] = list(fixed or [])
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(anchors)
    order = sorted(range(len(anchors)), key=lambda n: (anchors[n][1], anchors[n][0]))
    for n in order:
        (ax, ay), (w, h) = anchors[n], sizes[n]
        tries = []
        for t in range(LABEL_TRIES):
            ring, side = divmod(t, 4)
            dy = ring * (h + 2)
            x = ax + LABEL_GAP_PX if side in (0, 1) else ax - LABEL_GAP_PX - w
            y = ay - LABEL_GAP_PX - h - dy if side in (0, 2) else ay + LABEL_GAP_PX + dy
            tries.append((x, y))

        def free(x: float, y: float, w: float = w, h: float = h) -> bool:
            rect = (x - 1, y - 1, x + w + 1, y + h + 1)  # a pixel apart at least
            return not any(rect[0] < r[2] and r[0] < rect[2] and rect[1] < r[3] and r[1] < rect[3] for r in placed)

        def inside(x: float, y: float, w: float = w, h: float = h) -> bool:
            return bounds is None or (x >= 0 and y >= 0 and x + w <= bounds[0] and y + h <= bounds[1])
        # Free and on screen; else free; else the first try.
        best = next((p for p in tries if free(*p) and inside(*p)), None) or next(
            (p for p in tries if free(*p)), tries[0])
        placed.append((best[0], best[1], best[0] + w, best[1] + h))
        out[n] = best
    return out


class MeasurementItems:
    """The measurements of the session drawn on one :class:`SliceView`: one group of items per
    measurement, updated by id (an edit redraws that measurement only; a handle drag previews
    one measurement without touching the document)."""

    def __init__(self, view: SliceView, session: Session) -> None:
        self.view = view
        self.session = session
        self.document = session.measurements
        self._groups: dict[str, list[Any]] = {}
        self._labels: dict[str, tuple[pg.TextItem, pg.PlotCurveItem, FloatArray]] = {}
        self._rects: dict[str, Rect] = {}  # each label's place on screen at the last layout
        self._placement: dict[str, tuple[str, bool]] = {}  # id -> (where, selected) as drawn
        self.shown: dict[str, str] = {}  # id -> "on" | "near"
        self._selected: str | None = self.document.selected
        self.document.items_changed.connect(self._on_items_changed)
        self.document.selection_changed.connect(self._on_selection)
        view.view_state.plane_changed.connect(lambda _p: self.refresh())
        view.viewbox.sigTransformChanged.connect(lambda *_: self.layout_labels())
        view.viewbox.sigResized.connect(lambda *_: self.layout_labels())

    def items(self, ident: str | None = None) -> list[Any]:
        """The graphics items drawn (of measurement ``ident``, or all)."""
        if ident is not None:
            return list(self._groups.get(ident, []))
        return [item for group in self._groups.values() for item in group]

    def clear(self) -> None:
        for ident in list(self._groups):
            self._drop(ident)
        self.shown = {}

    def scene_points(self, lps: FloatArray) -> FloatArray:
        plane = self.view.plane
        assert plane is not None
        return np.asarray(plane.lps_to_pixel(lps) * np.asarray(plane.spacing_mm), dtype=np.float64)

    def refresh(self) -> None:
        """Redraw every measurement (a new plane, a new case, a restored session)."""
        self.clear()
        state = self.view.view_state
        if state.plane is None:
            return
        case = self.session.case.id if self.session.case is not None else None
        for m in self.document.of_case(case):
            self._show(m)
        self.layout_labels()

    def update(self, idents: tuple[str, ...]) -> None:
        """Redraw the measurements ``idents`` only (gone ones are removed)."""
        if self.view.view_state.plane is None:
            return
        case = self.session.case.id if self.session.case is not None else None
        for ident in idents:
            self._drop(ident)
            self.shown.pop(ident, None)
            m = self.document.get(ident)
            if m is not None and (m.case is None or case is None or m.case == case):
                self._show(m)
        self.layout_labels()

    def preview(self, m: Measurement) -> None:
        """Draw ``m`` in place of the document's measurement of its id (a handle drag's live
        step: the document is not touched; the items move in place, only its label is placed
        again)."""
        if self.view.view_state.plane is None:
            return
        where = placement(m, self.view.view_state)
        if where is not None and self._placement.get(m.id) == (where, m.id == self.document.selected):
            self._move(m)
        else:
            self._drop(m.id)
            self.shown.pop(m.id, None)
            self._show(m)
        self.layout_labels(only=m.id)

    def _move(self, m: Measurement) -> None:
        """Move the drawn items of ``m`` to its points (same placement and selection)."""
        group = self._groups[m.id]
        strokes = outline_lps(m)
        curves = group[:len(strokes)]
        for curve, stroke in zip(curves, strokes, strict=True):
            xy = self.scene_points(stroke)
            curve.setData(xy[:, 0], xy[:, 1])
        handles = self.scene_points(m.points)
        if m.kind_of.stroke and m.id != self.document.selected:
            handles = handles[:0]
        group[len(strokes)].setData(handles[:, 0], handles[:, 1])
        label, leader, _anchor = self._labels[m.id]
        label.setText(self.label_text(m, live=True))
        self._labels[m.id] = (label, leader, self.scene_points(m.label_anchor_lps()[None])[0])

    def _on_items_changed(self, idents: tuple[str, ...] | None) -> None:
        if idents is None:
            self.refresh()
        else:
            self.update(idents)

    def _on_selection(self, ident: str | None) -> None:
        before, self._selected = self._selected, ident
        self.update(tuple(i for i in dict.fromkeys((before, ident)) if i is not None))

    def _show(self, m: Measurement) -> None:
        where = placement(m, self.view.view_state)
        if where is None:
            return
        self.shown[m.id] = where
        selected = m.id == self.document.selected
        self._placement[m.id] = (where, selected)
        self._draw(m, where == "near", selected)

    def _drop(self, ident: str) -> None:
        for item in self._groups.pop(ident, []):
            self.view.viewbox.removeItem(item)
        self._labels.pop(ident, None)
        self._rects.pop(ident, None)
        self._placement.pop(ident, None)

    def _add(self, ident: str, item: Any, z: float) -> None:
        item.setZValue(z)
        self.view.viewbox.addItem(item, ignoreBounds=True)
        self._groups.setdefault(ident, []).append(item)

    def label_text(self, m: Measurement, live: bool = False) -> str:
        """The label: value, level and side, and an area's ROI statistics on a second line (not
        while ``live``: a drag shows the value, the statistics come on release)."""
        text = (m.value_text() + (f"  {m.level}" if m.level else "")
                + (f" {m.side}" if m.side and m.side != "midline" else ""))
        if m.is_area and self.session.case is not None and not live:
            stats = roi_text(region_statistics(m, self.session.case.series), short=True)
            if stats:
                text += "\n" + stats
        return text

    def _draw(self, m: Measurement, faint: bool, selected: bool) -> None:
        colour = SELECTED if selected else COLOURS.get(m.source, COLOURS["manual"])
        opacity = FAINT_OPACITY if faint else 1.0
        pen = pg.mkPen(colour, width=2 if selected else 1.5,
                       style=QtCore.Qt.PenStyle.DashLine if faint else QtCore.Qt.PenStyle.SolidLine)
        for stroke in outline_lps(m):
            xy = self.scene_points(stroke)
            curve = pg.PlotCurveItem(xy[:, 0], xy[:, 1], pen=pen)
            curve.setOpacity(opacity)
            self._add(m.id, curve, 30)
        handles = self.scene_points(m.points)
        if m.kind_of.stroke and not selected:  # a stroke's many points: handles when selected
            handles = handles[:0]
        scatter = pg.ScatterPlotItem(handles[:, 0], handles[:, 1], size=9 if selected else 6, pen=pg.mkPen(colour),
                                     brush=pg.mkBrush(colour if selected else None), symbol="s" if m.kind != "point"
                                     else "o")
        scatter.setOpacity(opacity)
        self._add(m.id, scatter, 31)
        label = pg.TextItem(self.label_text(m), color=colour, anchor=(0, 0), fill=pg.mkBrush(*LABEL_BACKING),
                            border=pg.mkPen(colour, width=0.5))
        label.setOpacity(opacity)
        leader = pg.PlotCurveItem(pen=pg.mkPen(colour, width=0.8, style=QtCore.Qt.PenStyle.DotLine))
        leader.setOpacity(opacity)
        self._add(m.id, leader, 31.5)
        self._add(m.id, label, 32)
        self._labels[m.id] = (label, leader, self.scene_points(m.label_anchor_lps()[None])[0])

    def layout_labels(self, only: str | None = None) -> None:
        """Place every label beside its anchor without overlapping another (in screen pixels,
        so it holds at any zoom), a dotted leader line to the anchor when it had to move away;
        with ``only``, that label alone among the others where they are."""
        if not self._labels or self.view.view_state.plane is None:
            return
        vb = self.view.viewbox
        if only is not None and only in self._labels and set(self._rects) >= set(self._labels) - {only}:
            idents = [only]
            fixed = [rect for ident, rect in self._rects.items() if ident != only]
        else:
            idents, fixed = list(self._labels), []
        anchors_scene = [self._labels[i][2] for i in idents]
        to_px = [vb.mapViewToDevice(QtCore.QPointF(float(a[0]), float(a[1]))) for a in anchors_scene]
        if any(p is None for p in to_px):
            return
        anchors = [(float(p.x()), float(p.y())) for p in to_px]
        sizes = []
        for ident in idents:
            rect = self._labels[ident][0].textItem.boundingRect()
            sizes.append((float(rect.width()), float(rect.height())))
        screen = self.view.graphics.viewport().size()
        corners = place_labels(anchors, sizes, fixed, (float(screen.width()), float(screen.height())))
        for ident, anchor, (ax, ay), (x, y), (w, h) in zip(idents, anchors_scene, anchors, corners, sizes,
                                                           strict=True):
            label, leader, _ = self._labels[ident]
            corner = vb.mapDeviceToView(QtCore.QPointF(x, y))
            if corner is None:
                continue
            label.setPos(corner)
            self._rects[ident] = (x, y, x + w, y + h)
            # A label moved away from its first spot is tied to its anchor by a leader line.
            edge_x = x if x >= ax else x + w
            moved = float(np.hypot(edge_x - ax, y + h / 2 - ay)) > LABEL_GAP_PX * 2 + h
            near = vb.mapDeviceToView(QtCore.QPointF(edge_x, y + h / 2)) if moved else None
            if near is not None:
                leader.setData([float(anchor[0]), float(near.x())], [float(anchor[1]), float(near.y())])
            leader.setVisible(near is not None)

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
