"""The measurement tools driven by mouse events on the phantom: each tool gives the analytic
value of the points it was given (computed here from the widget positions through Qt's own
transforms and the plane, with numpy, not with lumbarview's primitives); handles edit with one
undo step; Esc cancels; Delete removes; the table goes to a measurement's plane; the drawing is
faint within half a slice; the session is autosaved, offered again and opened from the command
line; the screenshot sidecar lists the measurements."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from lumbarview.phantom.layouts import TRUTH_FILE
from tests.qt.conftest import open_and_wait
from tests.tree_snapshot import tree_snapshot

pytestmark = pytest.mark.qt
LEFT = QtCore.Qt.MouseButton.LeftButton
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_WORKSPACE", str(tmp_path / "workspace"))


@pytest.fixture
def win(qtbot, window, demo_small):  # type: ignore[no-untyped-def]
    window.set_layout("2x2")
    open_and_wait(qtbot, window, demo_small["sudirman"])
    for view in window.visible_views():
        view.fit()
    qtbot.wait(30)
    return window


def _widget(view, lps):  # type: ignore[no-untyped-def]
    x, y = view.to_scene(np.asarray(lps, dtype=float))
    return view.graphics.mapFromScene(view.viewbox.mapViewToScene(QtCore.QPointF(x, y)))


def _lps_at(view, pos) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Where a widget pixel lands in patient space: Qt's transforms, then the plane."""
    p = view.viewbox.mapSceneToView(view.graphics.mapToScene(pos))
    plane = view.plane
    return plane.pixel_to_lps(np.array([p.x() / plane.spacing_mm[0], p.y() / plane.spacing_mm[1]]))


def _in_plane(view, mm):  # type: ignore[no-untyped-def]
    """LPS points at in-plane offsets (mm along screen right, down) from the view's centre."""
    plane = view.plane
    centre = plane.centre_lps()
    return [centre + a * plane.right_lps + b * plane.down_lps for a, b in mm]


def _click(qtbot, view, pos) -> None:  # type: ignore[no-untyped-def]
    vp = view.graphics.viewport()
    qtbot.mousePress(vp, LEFT, pos=pos)
    qtbot.mouseRelease(vp, LEFT, pos=pos)


def _drag(qtbot, view, a, b, steps: int = 4) -> list:  # type: ignore[no-untyped-def]
    vp = view.graphics.viewport()
    qtbot.mousePress(vp, LEFT, pos=a)
    path = []
    for t in np.linspace(0, 1, steps + 1)[1:]:
        p = QtCore.QPoint(round(a.x() + t * (b.x() - a.x())), round(a.y() + t * (b.y() - a.y())))
        qtbot.mouseMove(vp, p)
        path.append(p)
    qtbot.mouseRelease(vp, LEFT, pos=b)
    return path


def _latest(win):  # type: ignore[no-untyped-def]
    items = list(win.session.measurements)
    assert items, "no measurement was created"
    return items[-1]


def _angle(a: np.ndarray, v: np.ndarray, b: np.ndarray) -> float:
    u, w = a - v, b - v
    return math.degrees(math.atan2(np.linalg.norm(np.cross(u, w)), float(u @ w)))


def _shoelace(view, points) -> float:  # type: ignore[no-untyped-def]
    plane = view.plane
    xy = np.array([[(p - plane.origin_lps) @ plane.right_lps, (p - plane.origin_lps) @ plane.down_lps]
                   for p in points])
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(x @ np.roll(y, -1) - y @ np.roll(x, -1)))


def _oblique_axial(win, qtbot):  # type: ignore[no-untyped-def]
    """Plan an oblique axial through a tilted line on the sagittal (as a technologist does)."""
    sag = win.views["sagittal"]
    a, b = _in_plane(sag, [(-25.0, -6.0), (25.0, 8.0)])
    win.plan_from_line(a, b)
    qtbot.wait(30)
    axial = win.views["axial"]
    axial.fit()
    qtbot.wait(20)
    normal = axial.plane.normal_lps
    assert min(abs(normal)) < 0.99 and abs(normal[2]) < 0.99, "the axial is not oblique"
    return axial


def test_distance_by_drag_and_by_two_clicks(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = win.views["sagittal"]
    win.measure.tools.set_tool("distance")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-20.0, -15.0), (18.0, 22.0)]))
    _drag(qtbot, view, a, b)
    truth = float(np.linalg.norm(_lps_at(view, b) - _lps_at(view, a)))
    m = _latest(win)
    assert m.kind == "distance" and m.value().value == pytest.approx(truth, rel=1e-3)
    # Click-click (away from the first one's handles: a press on a handle edits it).
    b2, c = (_widget(view, p) for p in _in_plane(view, [(-25.0, 20.0), (5.0, -30.0)]))
    _click(qtbot, view, b2)
    assert len(win.session.measurements) == 1 and win.measure.tools.drawing
    _click(qtbot, view, c)
    m2 = _latest(win)
    assert m2.id != m.id and m2.value().value == pytest.approx(
        float(np.linalg.norm(_lps_at(view, c) - _lps_at(view, b2))), rel=1e-3)
    assert len(win.session.measurements) == 2
    # The crosshair did not move: the tool took the clicks.
    assert m2.series == view.view_state.series.uid


def test_angle_by_three_clicks(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = win.views["axial"]
    win.measure.tools.set_tool("angle")
    pts = [_widget(view, p) for p in _in_plane(view, [(-20.0, -10.0), (0.0, 5.0), (25.0, -15.0)])]
    for p in pts:
        _click(qtbot, view, p)
    truth = _angle(*(_lps_at(view, p) for p in pts))
    m = _latest(win)
    assert m.kind == "angle" and m.value().value == pytest.approx(truth, rel=1e-3)


def test_cobb_by_two_drags_on_an_oblique_plane(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = _oblique_axial(win, qtbot)
    win.measure.tools.set_tool("cobb")
    pts = [_widget(view, p) for p in _in_plane(view, [(-25.0, -20.0), (20.0, -12.0), (-22.0, 15.0), (24.0, 5.0)])]
    _drag(qtbot, view, pts[0], pts[1])
    _drag(qtbot, view, pts[2], pts[3])
    p = [_lps_at(view, q) for q in pts]
    d1, d2 = p[1] - p[0], p[3] - p[2]
    truth = math.degrees(math.acos(abs(float(d1 @ d2)) / np.linalg.norm(d1) / np.linalg.norm(d2)))
    m = _latest(win)
    assert m.kind == "cobb" and m.value().value == pytest.approx(truth, rel=1e-3)
    assert abs(float(np.asarray(m.plane.normal_lps) @ view.plane.normal_lps)) == pytest.approx(1.0, abs=1e-9)


def test_ellipse_by_drag(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = win.views["sagittal"]
    win.measure.tools.set_tool("ellipse")
    c, corner = (_widget(view, p) for p in _in_plane(view, [(0.0, 0.0), (12.0, 7.0)]))
    _drag(qtbot, view, c, corner)
    plane = view.plane
    d = _lps_at(view, corner) - _lps_at(view, c)
    truth = math.pi * abs(float(d @ plane.right_lps)) * abs(float(d @ plane.down_lps))
    m = _latest(win)
    assert m.kind == "ellipse" and m.value().value == pytest.approx(truth, rel=1e-3)


def test_polygon_closed_on_its_first_vertex(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = win.views["axial"]
    win.measure.tools.set_tool("polygon")
    pts = [_widget(view, p) for p in _in_plane(view, [(-15.0, -10.0), (15.0, -12.0), (18.0, 10.0), (-10.0, 14.0)])]
    for p in pts:
        _click(qtbot, view, p)
    assert len(win.session.measurements) == 0  # still drawing
    _click(qtbot, view, pts[0])
    m = _latest(win)
    assert m.kind == "polygon" and len(m.points_lps) == 4
    assert m.value().value == pytest.approx(_shoelace(view, [_lps_at(view, p) for p in pts]), rel=1e-3)


def test_freehand_by_drawing(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = win.views["sagittal"]
    win.measure.tools.set_tool("freehand")
    ring = [(12.0 * math.cos(t), 8.0 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
    pts = [_widget(view, p) for p in _in_plane(view, ring)]
    vp = view.graphics.viewport()
    qtbot.mousePress(vp, LEFT, pos=pts[0])
    for p in pts[1:]:
        qtbot.mouseMove(vp, p)
    qtbot.mouseRelease(vp, LEFT, pos=pts[-1])
    m = _latest(win)
    assert m.kind == "freehand" and len(m.points_lps) == len(pts)
    assert m.value().value == pytest.approx(_shoelace(view, [_lps_at(view, p) for p in pts]), rel=1e-3)


def test_point_is_tagged_with_the_nearest_disc_and_side(window, qtbot, demo_small) -> None:  # type: ignore[no-untyped-def]
    win = window
    open_and_wait(qtbot, win, demo_small["spider"])  # SPIDER: label maps with the disc levels
    truth = json.loads((demo_small["spider"] / TRUTH_FILE).read_text())["levels"]
    view = win.views["sagittal"]
    disc = np.asarray(truth["L4-L5"]["disc_centre_lps"])
    target = disc - view.plane.signed_distance_mm(disc) * view.plane.normal_lps
    win.measure.tools.set_tool("point")
    _click(qtbot, view, _widget(view, target))
    m = _latest(win)
    assert m.kind == "point" and m.label == "P1"
    assert win.session.disc_planes, "the phantom has labelled discs"
    assert m.level == "L4-L5"
    mid_x = np.mean([c[0] for c, _n in win.session.disc_planes.values()])
    expected = "midline" if abs(m.points[0][0] - mid_x) <= 2.0 else ("left" if m.points[0][0] > mid_x else "right")
    assert m.side == expected
    win.measure.panel.rebuild()
    row = win.measure.panel.rows()[0]
    assert (row["kind"], row["level"], row["side"], row["source"]) == ("point", "L4-L5", expected, "manual")


def test_perpendicular_helper(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = win.views["sagittal"]
    win.measure.tools.set_tool("perpendicular")
    pts = [_widget(view, p) for p in _in_plane(view, [(-20.0, 5.0), (20.0, 9.0), (3.0, -8.0)])]
    for p in pts:
        _click(qtbot, view, p)
    a, b, p = (_lps_at(view, q) for q in pts)
    d = (b - a) / np.linalg.norm(b - a)
    truth = float(np.linalg.norm((p - a) - ((p - a) @ d) * d))
    m = _latest(win)
    assert m.kind == "distance" and "perpendicular" in m.note
    assert m.value().value == pytest.approx(truth, rel=1e-3)


def test_handles_edit_in_one_undo_step_and_delete_and_escape(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = win.views["sagittal"]
    win.measure.tools.set_tool("distance")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-20.0, 0.0), (20.0, 0.0)]))
    _drag(qtbot, view, a, b)
    before = _latest(win)
    win.measure.tools.set_tool("navigate")
    cursor = win.session.cursor.crosshair.copy()
    c = _widget(view, _in_plane(view, [(20.0, 25.0)])[0])
    _drag(qtbot, view, b, c, steps=6)  # the end handle, dragged
    after = _latest(win)
    assert after.id == before.id
    assert after.value().value == pytest.approx(float(np.linalg.norm(_lps_at(view, c) - _lps_at(view, a))), rel=1e-3)
    np.testing.assert_allclose(win.session.cursor.crosshair, cursor)  # the crosshair stayed
    win.session.undo.undo()  # the whole drag is one step
    assert _latest(win) == before
    win.session.undo.redo()
    assert _latest(win) == after
    # Esc cancels a drawing in progress.
    win.measure.tools.set_tool("angle")
    _click(qtbot, view, _widget(view, _in_plane(view, [(0.0, -20.0)])[0]))
    assert win.measure.tools.drawing
    win.measure.tools.cancel()
    assert not win.measure.tools.drawing and len(win.session.measurements) == 1
    # Delete removes the selected measurement (undoable).
    win.session.measurements.select(after.id)
    win.measure.tools.delete_selected()
    assert len(win.session.measurements) == 0
    win.session.undo.undo()
    assert len(win.session.measurements) == 1


def test_drawn_on_its_plane_and_faint_within_half_a_slice(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.ui.items.measurement_items import FAINT_OPACITY, half_thickness_mm

    view = _oblique_axial(win, qtbot)
    win.measure.tools.set_tool("distance")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-15.0, 0.0), (15.0, 0.0)]))
    _drag(qtbot, view, a, b)
    m = _latest(win)
    layer = win.measure.layers["axial"]
    assert layer.shown == {m.id: "on"}
    assert win.measure.layers["coronal"].shown == {}  # another orientation: not drawn there
    half = half_thickness_mm(view.view_state)
    normal = view.plane.normal_lps
    win.session.cursor.set_crosshair(m.centre_lps() + 0.6 * half * normal)
    qtbot.wait(20)
    assert layer.shown == {m.id: "near"}
    assert all(item.opacity() == pytest.approx(FAINT_OPACITY) for item in layer.items())
    win.session.cursor.set_crosshair(m.centre_lps() + 1.5 * half * normal)
    qtbot.wait(20)
    assert layer.shown == {}


def test_table_click_goes_to_the_plane_and_selects(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    view = _oblique_axial(win, qtbot)
    win.measure.tools.set_tool("cobb")
    pts = [_widget(view, p) for p in _in_plane(view, [(-20.0, -10.0), (20.0, -5.0), (-20.0, 10.0), (20.0, 2.0)])]
    for p in pts:
        _click(qtbot, view, p)
    m = _latest(win)
    win.measure.tools.set_tool("navigate")
    win.reset_planes()  # standard planes: no view shows the oblique plane now
    win.session.cursor.set_crosshair(m.centre_lps() + np.array([0.0, 0.0, 40.0]))
    qtbot.wait(20)
    assert all(layer.shown == {} for layer in win.measure.layers.values())
    panel = win.measure.panel
    assert panel.rowCount() == 1 and panel.rows()[0]["kind"] == "cobb"
    assert float(panel.rows()[0]["value"]) == pytest.approx(m.value().value, abs=0.01)
    rect = panel.visualItemRect(panel.item(0, 0))
    qtbot.mouseClick(panel.viewport(), LEFT, pos=rect.center())
    qtbot.wait(30)
    assert win.session.measurements.selected == m.id
    shown = {name: layer.shown.get(m.id) for name, layer in win.measure.layers.items()}
    assert "on" in shown.values(), shown
    # Level, side and note are edited in the table, undoably.
    panel.item(0, 6).setText("endplates")
    assert win.session.measurements.get(m.id).note == "endplates"
    win.session.undo.undo()
    assert win.session.measurements.get(m.id).note == ""


def test_sidecar_lists_the_measurements(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.ui.screenshot import sidecar

    view = win.views["sagittal"]
    win.measure.tools.set_tool("distance")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-10.0, 0.0), (10.0, 0.0)]))
    _drag(qtbot, view, a, b)
    doc = json.loads(json.dumps(sidecar(win), allow_nan=False))
    rows = doc["measurements"]
    m = _latest(win)
    assert [set(r) for r in rows] == [{"id", "kind", "value", "unit", "level", "side"}]
    assert rows[0]["id"] == m.id and rows[0]["unit"] == "mm"
    assert rows[0]["value"] == pytest.approx(m.value().value)


def test_autosave_then_the_last_session_is_offered_and_restored(win, qtbot, demo_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.services.session_store import default_session_file
    from lumbarview.ui.main_window import MainWindow

    view = win.views["sagittal"]
    before = tree_snapshot(demo_small["sudirman"])
    win.measure.tools.set_tool("angle")
    for p in _in_plane(view, [(-10.0, 0.0), (0.0, 10.0), (10.0, 0.0)]):
        _click(qtbot, view, _widget(view, p))
    m = _latest(win)
    path = default_session_file(str(demo_small["sudirman"]))
    qtbot.waitUntil(lambda: path.exists() and m.id in path.read_text(), timeout=5000)
    assert tree_snapshot(demo_small["sudirman"]) == before  # nothing written into the dataset
    other = MainWindow()
    qtbot.addWidget(other)
    other.resize(1000, 700)
    other.show()
    open_and_wait(qtbot, other, demo_small["sudirman"])
    assert len(other.session.measurements) == 0 and other.measure.offered is not None
    other.measure.restore_last()
    assert [x.id for x in other.session.measurements] == [m.id]
    assert other.session.measurements.get(m.id).value().value == pytest.approx(m.value().value, rel=1e-12)
    other.close()


def test_view_session_on_the_command_line(win, qtbot, demo_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    view = win.views["sagittal"]
    win.measure.tools.set_tool("distance")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-10.0, 3.0), (12.0, 3.0)]))
    _drag(qtbot, view, a, b)
    m = _latest(win)
    session_file = tmp_path / "mine.json"
    win.measure.save_as(str(session_file))
    out = tmp_path / "shot.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen",
           "LUMBARVIEW_WORKSPACE": str(tmp_path / "ws2")}
    proc = subprocess.run([sys.executable, "-m", "lumbarview", "view", "--session", str(session_file),
                           "--screenshot", str(out), "--size", "1200x800"], env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert [(r["id"], r["kind"]) for r in sidecar["measurements"]] == [(m.id, "distance")]
    assert sidecar["measurements"][0]["value"] == pytest.approx(m.value().value, rel=1e-9)
    # A session file that is not one: a clear message, exit code 2, no traceback.
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "lumbarview", "view", "--session", str(bad), "--screenshot",
                           str(tmp_path / "bad.png")], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2 and "malformed" in proc.stderr and "Traceback" not in proc.stderr


def test_an_engine_value_replaced_by_hand_keeps_both(win, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Levels panel > Replace by a manual measurement: the tool for the quantity, the manual value
    tagged with the engine row's level and side and saying what it replaces; the engine's row is
    left as it was."""
    row = {"case": "0001", "series": "x", "level": "L4-L5", "label": 202, "side": "left",
           "quantity": "foramen_height", "value": 13.9, "unit": "mm", "source": "engine"}
    before = dict(row)
    win.measure.tools.replace_engine_value(row)
    assert win.measure.tools.tool == "distance"
    view = win.views["sagittal"]
    a, b = (_widget(view, p) for p in _in_plane(view, [(-10.0, -8.0), (6.0, 9.0)]))
    _drag(qtbot, view, a, b)
    m = _latest(win)
    assert m.source == "manual" and m.level == "L4-L5" and m.side == "left"
    assert "foramen_height" in m.note and "13.9 mm" in m.note
    assert row == before  # the engine's value is never overwritten
    # The next measurement is an ordinary one again.
    c, d = (_widget(view, p) for p in _in_plane(view, [(-30.0, 25.0), (-20.0, 35.0)]))
    _drag(qtbot, view, c, d)
    assert "replacement" not in _latest(win).note
