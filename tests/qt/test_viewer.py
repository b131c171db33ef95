"""The viewer on the phantom: linking by clicks, reference lines, orientation letters, pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from lumbarview.phantom.layouts import TRUTH_FILE
from tests.qt.conftest import open_and_wait

pytestmark = pytest.mark.qt


def _widget_pos(view, lps: np.ndarray) -> QtCore.QPoint:  # type: ignore[no-untyped-def]
    x, y = view.to_scene(lps)
    scene = view.viewbox.mapViewToScene(QtCore.QPointF(x, y))
    return view.graphics.mapFromScene(scene)


def test_opening_fills_both_views(opened) -> None:  # type: ignore[no-untyped-def]
    w = opened
    assert w.views['sagittal'].view_state.series.description == "T2_TSE_SAG_384"
    assert w.views['axial'].view_state.series.description == "T2_TSE_TRA_384"
    assert w.views['sagittal'].view_state.current is not None and w.views['axial'].view_state.current is not None


def test_click_on_a_disc_in_the_sagittal_moves_the_axial_to_its_block(opened, qtbot, demo_small) -> None:  # type: ignore[no-untyped-def]
    w = opened
    truth = json.loads((demo_small["sudirman"] / TRUTH_FILE).read_text())["levels"]
    sag_plane = w.views['sagittal'].plane
    for level in ("L5-S1", "L4-L5", "L3-L4"):
        disc = np.asarray(truth[level]["disc_centre_lps"])
        normal = np.asarray(truth[level]["disc_normal_lps"])
        target = disc + 1.2 * normal  # just above the disc's mid-plane, inside its block
        target = target - sag_plane.signed_distance_mm(target) * sag_plane.normal_lps
        qtbot.mouseClick(w.views['sagittal'].graphics.viewport(), QtCore.Qt.MouseButton.LeftButton,
                         pos=_widget_pos(w.views['sagittal'], target))
        qtbot.wait(20)
        current = w.views['axial'].view_state.current
        assert current is not None, level
        # Independently: the axial slice whose plane is nearest the clicked point.
        candidates = [(abs(s.geometry.slice_plane(k).signed_distance_mm(w.session.cursor.crosshair)), s, k)
                      for s in w.views['axial'].view_state.series.stacks for k in range(s.n_slices)]
        _, stack, k = min(candidates, key=lambda t: t[0])
        assert (current.stack.uid, current.k) == (stack.uid, k), level
        # ...and that slice's plane is parallel to this disc: it is the disc's own block.
        assert abs(current.plane.normal_lps @ normal) == pytest.approx(1.0, abs=1e-6)
        # The click lands where it was made, or snapped onto a reference line within 6 px.
        mm_per_px = max(w.views['sagittal'].viewbox.viewPixelSize())
        assert np.linalg.norm(w.session.cursor.crosshair - target) <= 7 * mm_per_px


def test_reference_lines_match_independent_plane_intersections(opened) -> None:  # type: ignore[no-untyped-def]
    w = opened
    plane = w.views['sagittal'].plane
    lines = [line for line in w.views['sagittal'].reference_segments() if line.source == "axial"]
    assert len(lines) == w.views['axial'].view_state.n_slices == 12
    sx, sy = plane.spacing_mm
    rows, cols = plane.shape_rc
    cc, rr = np.meshgrid(np.arange(cols, dtype=float), np.arange(rows, dtype=float))
    pts = plane.pixel_to_lps(np.stack([cc, rr], axis=-1)).reshape(-1, 3)
    current = w.views['axial'].view_state.current
    stacks = {s.uid: s for s in w.views['axial'].view_state.series.stacks}
    bright = 0
    for line in lines:
        a, b = line.segment.start_lps, line.segment.end_lps
        if line.current:
            other = current.plane
        else:
            uid, k = line.slice_key
            other = stacks[uid].geometry.slice_plane(k)
        # Sagittal pixel centres within half a pixel of the axial plane and inside its FOV.
        near = np.abs(other.signed_distance_mm(pts)) < 0.5 * min(sx, sy)
        inside = other.lps_to_pixel(pts[near])
        orows, ocols = other.shape_rc
        ok = ((inside[:, 0] >= -0.5) & (inside[:, 0] <= ocols - 0.5) & (inside[:, 1] >= -0.5)
              & (inside[:, 1] <= orows - 0.5))
        samples = pts[near][ok]
        assert len(samples) > 5
        d = (b - a) / np.linalg.norm(b - a)
        offsets = samples - a
        along = offsets @ d
        across = np.linalg.norm(offsets - along[:, None] * d, axis=1)
        assert across.max() < max(sx, sy)  # every sample sits on the drawn line
        assert along.min() > -max(sx, sy) and along.max() < np.linalg.norm(b - a) + max(sx, sy)
        # The drawn line is at the axial plane's true angle on the sagittal image.
        in_plane = np.cross(plane.normal_lps, other.normal_lps)
        assert abs(abs(d @ in_plane / np.linalg.norm(in_plane)) - 1) < 1e-6
        bright += line.current
    assert bright == 1


def test_orientation_letters_supine_and_prone(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The radiological convention whatever the patient position (anterior on the left of a
    sagittal); as stored, a prone sagittal has posterior on the left."""
    from lumbarview.phantom.dicom_writer import SeriesSpec, make_uid, write_block
    from lumbarview.phantom.layouts import Sizes, sagittal_geometry
    from lumbarview.phantom.spine import LumbarPhantom

    phantom = LumbarPhantom()
    sizes = Sizes.small()
    letters = {}
    for position in ("HFS", "HFP"):
        g = sagittal_geometry(phantom, sizes.sag_matrix, sizes.sag_pixel_mm, 5, 4.0, patient_position=position)
        images, _ = phantom.render(g, ("T2",))
        folder = tmp_path / position
        write_block(folder, images["T2"], g, SeriesSpec(
            patient_id=position, study_uid=make_uid(position), series_uid=make_uid(position, "s"),
            series_number=1, description=f"T2 SAG {position}", frame_of_reference_uid=make_uid(position, "f"),
            patient_position=position))
        open_and_wait(qtbot, window, folder)
        view = window.views['sagittal']
        letters[position] = {k: view.hud.text(k) for k in ("left", "right", "top", "bottom")}
        window.session.set_native_orientation(True)
        qtbot.wait(20)
        letters[position + " stored"] = {k: view.hud.text(k) for k in ("left", "right", "top", "bottom")}
        window.session.undo.undo()
        qtbot.wait(20)
        assert {k: view.hud.text(k) for k in ("left", "right", "top", "bottom")} == letters[position]
    assert letters["HFS"] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert letters["HFP"] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert letters["HFS stored"] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert letters["HFP stored"] == {"left": "P", "right": "A", "top": "S", "bottom": "I"}


def test_screenshot_is_not_blank_and_shows_the_crosshair_at_the_cursor(opened, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = opened
    view = w.views['sagittal']
    image = view.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    ptr = image.constBits()
    arr = np.frombuffer(ptr, dtype=np.uint8, count=image.bytesPerLine() * height).reshape(height, -1)
    rgb = arr[:, : width * 3].reshape(height, width, 3).astype(int)
    grey = rgb.mean(axis=2)
    assert grey.std() > 20  # an image, not a blank panel
    pos = _widget_pos(view, w.session.cursor.crosshair)
    px = view.graphics.mapTo(view, pos)
    target = np.array([0xF0, 0xC0, 0x60])
    close = np.abs(rgb - target).sum(axis=2) < 60
    column = close[:, max(0, px.x() - 1): px.x() + 2].any(axis=1)
    row = close[max(0, px.y() - 1): px.y() + 2, :].any(axis=0)
    assert column.sum() > 0.3 * height and row.sum() > 0.3 * width
    # Elsewhere, far from the crosshair, there is no such column.
    assert close[:, (px.x() + width // 3) % width].sum() < 0.1 * height


def test_keyboard_and_wheel_move_the_shared_cursor(opened, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = opened
    view = w.views['axial']
    view.setFocus()
    start = view.view_state.current.series_index
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Down)
    assert view.view_state.current.series_index == start + 1
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Home)
    assert view.view_state.current.series_index == 0
    qtbot.keyClick(view, QtCore.Qt.Key.Key_End)
    assert view.view_state.current.series_index == view.view_state.n_slices - 1
    # The sagittal view does not change slice for axial scrolling, but its crosshair moves.
    assert w.views['sagittal'].view_state.current is not None


def test_window_presets_and_memory_per_series(opened) -> None:  # type: ignore[no-untyped-def]
    w = opened
    sag = w.views['sagittal']
    sag.setFocus()
    w.apply_preset("auto")
    auto = sag.view_state.window
    w.apply_preset("dicom")
    assert sag.view_state.window.center == 1000 and sag.view_state.window.width == 2000
    assert auto != sag.view_state.window
    assert w.session.windows[sag.view_state.series.uid] == sag.view_state.window
    w.session.undo.undo()
    assert sag.view_state.window == auto


def test_window_level_is_remembered_across_sessions(opened, qtbot) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.model.view_state import WindowLevel
    from lumbarview.ui.settings import Settings

    w = opened
    uid = w.views['sagittal'].view_state.series.uid
    w.session.set_window("sagittal", WindowLevel(1234.0, 567.0, True))
    assert Settings().window(uid) == WindowLevel(1234.0, 567.0, True)
    Settings().qt.remove("windows")  # leave no remembered window for other tests


def test_window_drag_is_one_undo_step_and_up_is_brighter(opened) -> None:  # type: ignore[no-untyped-def]
    w = opened
    view = w.views['sagittal']
    before = view.view_state.window
    for _ in range(10):
        view.adjust_window(0.0, -5.0, finish=False)  # drag up
    view.adjust_window(0.0, 0.0, finish=True)
    after = view.view_state.window
    assert after.center < before.center  # a lower level: brighter
    assert w.session.undo.undo() and view.view_state.window == before
