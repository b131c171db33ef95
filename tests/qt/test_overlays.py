"""Overlays in the viewer, checked as pixels: the mask colour where the phantom's canal is, a
box's severity colour on its slice."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from lumbarview.phantom.layouts import TRUTH_FILE
from tests.qt.conftest import open_and_wait

pytestmark = pytest.mark.qt


def _rgb(widget) -> np.ndarray:  # type: ignore[no-untyped-def]
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    arr = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h).reshape(h, -1)
    return arr[:, : w * 3].reshape(h, w, 3).astype(int)


def _pos(view, lps) -> QtCore.QPoint:  # type: ignore[no-untyped-def]
    x, y = view.to_scene(np.asarray(lps))
    p = view.graphics.mapFromScene(view.viewbox.mapViewToScene(QtCore.QPointF(x, y)))
    return view.graphics.mapTo(view, p)


def test_mask_colour_is_on_the_canal(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["spider"])
    view = window.views['sagittal']
    layers = [lay for lay in window.session.overlays.layers if lay.kind == "labels" and lay.visible]
    assert len(layers) == 1  # the mask of the series on screen; the other sequence's mask is hidden
    truth = json.loads((demo_small["spider"] / TRUTH_FILE).read_text())["levels"]
    canal = np.asarray(truth["L3-L4"]["canal_centre_lps"])
    plane = view.plane
    on_plane = canal - plane.signed_distance_mm(canal) * plane.normal_lps
    window.session.overlays.update(layers[0], opacity=0.8)
    qtbot.wait(20)
    rgb = _rgb(view)
    p = _pos(view, on_plane)
    r, g, b = rgb[p.y(), p.x()]
    assert b - r > 60, (r, g, b)  # the canal's blue
    # 40 mm in front of the disc: no label, plain grey.
    front = np.asarray(truth["L3-L4"]["disc_centre_lps"]) + np.array([0.0, -45.0, 0.0])
    q = _pos(view, front - plane.signed_distance_mm(front) * plane.normal_lps)
    r, g, b = rgb[q.y(), q.x()]
    assert abs(int(r) - int(b)) < 12
    # Outline mode keeps the colour on the edge only.
    window.session.overlays.update(layers[0], outline=True)
    qtbot.wait(20)
    r, g, b = _rgb(view)[p.y(), p.x()]
    assert b - r < 30


def test_box_is_drawn_in_its_severity_colour_on_its_slice(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["aisslab"])
    case = window.session.case
    box = next(b for s in case.box_sets for b in s.boxes if b.severity == 2)
    window.session.cursor.set_crosshair(box.corners_lps.mean(axis=0))
    qtbot.wait(20)
    view = window.views['sagittal']
    assert view.view_state.current.k == box.slice_index
    assert any(b is box for b, _ in view.overlay.shown_boxes)
    rgb = _rgb(view)
    top_mid = (box.corners_lps[0] + box.corners_lps[1]) / 2
    p = _pos(view, top_mid)
    patch = rgb[p.y() - 2: p.y() + 3, p.x() - 2: p.x() + 3].reshape(-1, 3)
    orange = np.array([0xF0, 0x9A, 0x3E])
    assert (np.abs(patch - orange).sum(axis=1) < 60).any()
    # Hovering describes it.
    text = view.overlay.describe(*view.plane.lps_to_pixel(box.corners_lps.mean(axis=0)))
    assert "severity 2" in text and "L4-L5" in text


def test_case_navigation_and_annotation_jump(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["aisslab"])
    panel = window.annotation_panel
    assert panel.table.rowCount() == len(panel.shown) > 0
    panel.level.setCurrentText("L5-S1")
    assert all(a.level == "L5-S1" for a in panel.shown)
    panel.table.selectRow(0)
    qtbot.wait(10)
    target = panel.shown[0].position_lps
    assert np.allclose(window.session.cursor.crosshair, target)


def test_label_planes_of_a_reformatted_view_come_from_the_plane_cache_and_follow_edits(
        qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    """The axial view of SPIDER (sagittal only: reformatted) cuts its mask through the plane
    cache, prefetches the neighbouring label planes with the image's while it steps, and shows
    an edit of the map (a new revision) on the next refresh, never the cached plane."""
    open_and_wait(qtbot, window, demo_small["spider"])
    view = window.views["axial"]
    assert view.view_state.mode == "reformat"
    layer = next(lay for lay in window.session.overlays.layers if lay.kind == "labels" and lay.visible)
    stack = layer.source.stack
    view.view_state.go_to(view.view_state.position()[1] // 2)
    shown = view.overlay.cut(layer)
    assert shown is not None and np.count_nonzero(shown) > 0
    assert shown is window.cache.get(stack, view.plane, kind="labels").pixels  # the cache's own plane
    view.view_state.step(1)
    qtbot.waitUntil(window.cache.idle, timeout=10_000)
    ahead = view.view_state.neighbour_planes(1)[0]
    hits = window.cache.hits
    window.cache.get(stack, ahead, kind="labels")
    assert window.cache.hits == hits + 1  # prefetched off the GUI thread with the image's plane
    stack.replace_region((slice(None), slice(None), slice(None)), np.zeros(stack.geometry.shape_kji, np.uint8))
    view.overlay.refresh()
    assert np.count_nonzero(view.overlay.cut(layer)) == 0
