"""Manual measurements reach every export (issue 20 "Show it works"): on the demo's Sudirman case
(DICOM, no label maps) a distance, an angle and a polygon drawn with mouse events are exported
as CSV, JSON, DICOM SR and HTML without running the engine; the values are checked against the
analytic ones (computed here from the widget positions through Qt's transforms and the plane,
with numpy); the SR, re-read by highdicom, gives them back with their image references and
SCOORD3D regions. Then, on a labelled case, engine and manual rows export together. Nothing is
written into the dataset (a snapshot of the whole tree before and after). A handle drag commits
one command on release and redraws that measurement only; labels do not overlap."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6 import QtCore, QtGui

from tests.qt.conftest import open_and_wait
from tests.qt.test_tools import _angle, _click, _drag, _in_plane, _lps_at, _shoelace, _widget
from tests.tree_snapshot import tree_snapshot

pytestmark = pytest.mark.qt
LEFT = QtCore.Qt.MouseButton.LeftButton


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_WORKSPACE", str(tmp_path / "workspace"))


def _tag(win, ident: str, level: str, side: str) -> None:  # type: ignore[no-untyped-def]
    """Type the level and side into the Measurements table, as a user does on an unlabelled study."""
    from lumbarview.ui.panels.measurements import COLUMNS

    panel = win.measure.panel
    row = panel._ids.index(ident)
    panel.item(row, COLUMNS.index("level")).setText(level)
    panel.item(row, COLUMNS.index("side")).setText(side)


def test_manual_measurements_export_without_the_engine(qtbot, window, demo_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    win = window
    win.set_layout("2x2")
    dataset = demo_small["sudirman"]
    before = tree_snapshot(dataset)
    open_and_wait(qtbot, win, dataset)
    for view in win.visible_views():
        view.fit()
    qtbot.wait(30)
    assert not win.session.case.label_maps, "the Sudirman layout has no label maps"
    view = win.views["sagittal"]

    win.measure.tools.set_tool("distance")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-20.0, -15.0), (18.0, 22.0)]))
    _drag(qtbot, view, a, b)
    distance = list(win.session.measurements)[-1]
    truth = {"distance": float(np.linalg.norm(_lps_at(view, b) - _lps_at(view, a)))}

    win.measure.tools.set_tool("angle")
    pts = [_widget(view, p) for p in _in_plane(view, [(-25.0, 30.0), (-5.0, 40.0), (20.0, 28.0)])]
    for p in pts:
        _click(qtbot, view, p)
    angle = list(win.session.measurements)[-1]
    truth["angle"] = _angle(*(_lps_at(view, p) for p in pts))

    win.measure.tools.set_tool("polygon")
    pts = [_widget(view, p) for p in _in_plane(view, [(-15.0, -40.0), (15.0, -42.0), (18.0, -25.0),
                                                       (-10.0, -22.0)])]
    for p in [*pts, pts[0]]:
        _click(qtbot, view, p)
    polygon = list(win.session.measurements)[-1]
    truth["polygon"] = _shoelace(view, [_lps_at(view, p) for p in pts])
    assert [m.kind for m in win.session.measurements] == ["distance", "angle", "polygon"]
    tags = {"distance": ("L4-L5", "left"), "angle": ("L3-L4", "midline"), "polygon": ("L5-S1", "right")}
    for m in (distance, angle, polygon):
        _tag(win, m.id, *tags[m.kind])
    series = view.view_state.series
    assert win.levels.result is None  # the engine never ran

    out = tmp_path / "out"
    written = {suffix: win.levels.export_to(out / f"m{suffix}") for suffix in (".csv", ".json", ".dcm", ".html")}

    def check(rows: list[dict[str, object]]) -> None:
        assert [r["quantity"] for r in rows] == ["distance", "angle", "polygon"]
        for r in rows:
            kind = str(r["quantity"])
            assert float(str(r["value"])) == pytest.approx(truth[kind], rel=1e-3), kind
            assert (r["level"], r["side"]) == tags[kind]
            assert (r["source"], r["series"], r["case"]) == ("manual", series.description, win.session.case.id)
        area = rows[2]
        assert area["roi_pixels"] not in (None, "") and int(str(area["roi_pixels"])) > 0
        assert area["roi_mean"] not in (None, "")

    with open(written[".csv"], newline="", encoding="utf-8") as f:
        check(list(csv.DictReader(f)))
    data = json.loads(written[".json"].read_text(encoding="utf-8"))
    check(data["rows"])
    assert data["rows"][2]["points_lps"] == [list(p) for p in polygon.points_lps]

    back = {r["quantity"]: r for r in _sr_rows(written[".dcm"])}
    assert set(back) == {"distance", "angle", "polygon"}
    stack = series.stacks[0]
    uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in stack.meta["files"]}
    for m in (distance, angle, polygon):
        r = back[m.kind]
        assert r["value"] == pytest.approx(truth[m.kind], rel=1e-3)
        assert len(r["referenced_sop_instance_uids"]) == 1 and r["referenced_sop_instance_uids"][0] in uids
        # The referenced slice is the one the measurement lies on.
        ref = pydicom.dcmread(uids[r["referenced_sop_instance_uids"][0]], stop_before_pixels=True)
        normal = stack.geometry.ijk_to_lps[:3, 2] / np.linalg.norm(stack.geometry.ijk_to_lps[:3, 2])
        gap = abs(float((m.centre_lps() - np.asarray(ref.ImagePositionPatient, dtype=float)) @ normal))
        assert gap <= 0.5 * stack.geometry.slice_spacing_mm + 1e-6
        expected_type = {"distance": "POLYLINE", "angle": "POLYLINE", "polygon": "POLYGON"}[m.kind]
        assert r["graphic_type"] == expected_type
        drawn = np.asarray(m.points_lps)
        if m.kind == "polygon":
            drawn = np.vstack([drawn, drawn[:1]])
        np.testing.assert_allclose(r["points_lps"], drawn, atol=1e-3)  # SCOORD3D is float32

    page = written[".html"].read_text(encoding="utf-8")
    for kind, (level, _side) in tags.items():
        assert f"<h3>{level}</h3>" in page and f"<td>{kind}</td>" in page
    assert "The engine was not run" in page

    # The "never write into the dataset" rule is the service's: a path inside is refused.
    with pytest.raises(ValueError, match="never writes into a dataset"):
        win.levels.export_to(dataset / "inside.csv")

    # Then the engine runs (it finds no label map here): the manual rows still export, as manual.
    with qtbot.waitSignal(win.levels.panel.measured, timeout=180_000):
        win.levels.measure()
    assert win.levels.result is not None
    after = json.loads(win.levels.export_to(out / "after.json").read_text(encoding="utf-8"))["rows"]
    assert [r["source"] for r in after] == ["manual"] * 3 + ["engine"] * len(win.levels.result.rows)
    check(after[:3])
    assert tree_snapshot(dataset) == before


def _sr_rows(path: Path) -> list[dict[str, object]]:
    from lumbarview.services.sr import read_sr

    return read_sr(path)


def test_engine_and_manual_rows_export_together(qtbot, window, demo_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    win = window
    dataset = demo_small["spider"]
    before = tree_snapshot(dataset)
    open_and_wait(qtbot, win, dataset)
    view = win.views["sagittal"]
    view.fit()
    qtbot.wait(30)
    win.measure.tools.set_tool("distance")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-10.0, -5.0), (12.0, 6.0)]))
    _drag(qtbot, view, a, b)
    truth = float(np.linalg.norm(_lps_at(view, b) - _lps_at(view, a)))
    with qtbot.waitSignal(win.levels.panel.measured, timeout=180_000):
        win.levels.measure()
    engine_rows = len(win.levels.result.rows)
    assert engine_rows > 10
    for suffix in (".csv", ".json", ".dcm", ".html"):
        win.levels.export_to(tmp_path / f"both{suffix}")
    rows = json.loads((tmp_path / "both.json").read_text())["rows"]
    assert [r["source"] for r in rows].count("engine") == engine_rows
    manual = [r for r in rows if r["source"] == "manual"]
    assert len(manual) == 1 and manual[0]["value"] == pytest.approx(truth, rel=1e-3)
    assert manual[0]["level"] is not None  # tagged from the label map's discs
    sr_rows = _sr_rows(tmp_path / "both.dcm")
    assert any(r["quantity"] == "distance" and r["value"] == pytest.approx(truth, rel=1e-3) for r in sr_rows)
    assert any(r["algorithm_version"] for r in sr_rows)  # the engine's rows say which engine
    page = (tmp_path / "both.html").read_text()
    assert "<td>manual</td>" in page and "<td>engine</td>" in page and "<img" in page
    assert tree_snapshot(dataset) == before


def _sagittal_of_sudirman(qtbot, win, demo_small):  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, win, demo_small["sudirman"])
    view = win.views["sagittal"]
    view.fit()
    qtbot.wait(30)
    return view


def test_a_handle_drag_commits_once_and_redraws_one_measurement(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    win = window
    view = _sagittal_of_sudirman(qtbot, win, demo_small)
    win.measure.tools.set_tool("distance")
    for y in (-30.0, -10.0, 10.0):
        a, b = (_widget(view, p) for p in _in_plane(view, [(-20.0, y), (20.0, y)]))
        _drag(qtbot, view, a, b)
    first, second, third = list(win.session.measurements)
    win.session.measurements.select(second.id)  # (a change of selection redraws the two concerned)
    layer = win.measure.layers["sagittal"]
    kept = {m.id: layer.items(m.id) for m in (first, third)}
    changes: list[object] = []
    pushes: list[object] = []
    win.session.measurements.changed.connect(lambda: changes.append(1))
    win.session.undo.changed.connect(lambda: pushes.append(1))
    win.measure.tools.set_tool("navigate")
    end = _widget(view, second.points[1])
    target = _widget(view, _in_plane(view, [(25.0, 5.0)])[0])
    moves = _drag(qtbot, view, end, target, steps=12)
    assert len(moves) == 12
    assert changes == [1] and pushes == [1]  # one commit, on release
    moved = win.session.measurements.get(second.id)
    assert moved is not None and moved.points_lps != second.points_lps
    assert moved.value().value == pytest.approx(float(np.linalg.norm(_lps_at(view, target) - second.points[0])),
                                                rel=1e-3)
    for ident, items in kept.items():  # the others were not rebuilt
        assert layer.items(ident) == items
    win.session.undo.undo()
    assert win.session.measurements.get(second.id) == second
    # Esc during a drag puts the measurement back where it was, and commits nothing.
    vp = view.graphics.viewport()
    qtbot.mousePress(vp, LEFT, pos=end)
    qtbot.mouseMove(vp, target)
    assert layer.items(second.id)[0].xData[1] != pytest.approx(layer.scene_points(second.points)[1][0])
    win.measure.tools.cancel()
    qtbot.mouseRelease(vp, LEFT, pos=target)
    assert win.session.measurements.get(second.id) == second and changes == [1, 1]  # (the undo above)
    np.testing.assert_allclose(layer.items(second.id)[0].xData, layer.scene_points(second.points)[:, 0])


def test_labels_have_a_backing_and_do_not_overlap(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    win = window
    view = _sagittal_of_sudirman(qtbot, win, demo_small)
    win.measure.tools.set_tool("distance")
    a0, b0 = (_widget(view, p) for p in _in_plane(view, [(-20.0, -10.0), (10.0, -5.0)]))
    for k in range(5):  # five distances ending 11 px apart: their labels (22 px high) would pile up
        step = QtCore.QPoint(0, 11 * k)
        _drag(qtbot, view, a0 + step, b0 + step)
    qtbot.wait(20)
    layer = win.measure.layers["sagittal"]
    rects = []
    for ident, (label, _leader, _anchor) in layer._labels.items():
        assert label.fill.color().alpha() > 100, ident  # a backing
        rects.append(label.mapRectToDevice(label.boundingRect()))
    assert len(rects) == 5
    for i in range(len(rects)):
        for j in range(i + 1, len(rects)):
            assert not rects[i].intersects(rects[j]), (i, j)
    view.viewbox.scaleBy((0.25, 0.25))  # zoom in: the labels are laid out again
    qtbot.wait(20)
    rects = [label.mapRectToDevice(label.boundingRect()) for label, _l, _a in layer._labels.values()]
    assert all(not rects[i].intersects(rects[j]) for i in range(5) for j in range(i + 1, 5))


def test_area_statistics_show_in_the_table_and_the_label(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.model.measurements import roi_statistics

    win = window
    view = _sagittal_of_sudirman(qtbot, win, demo_small)
    win.measure.tools.set_tool("rectangle")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-10.0, -8.0), (12.0, 9.0)]))
    _drag(qtbot, view, a, b)
    m = list(win.session.measurements)[-1]
    assert m.kind == "rectangle"
    pa, pb = _lps_at(view, a), _lps_at(view, b)
    plane = view.plane
    w, h = abs(float((pb - pa) @ plane.right_lps)), abs(float((pb - pa) @ plane.down_lps))
    assert m.value().value == pytest.approx(w * h, rel=1e-3)
    stats = roi_statistics(m, view.view_state.series.stacks[0])
    assert stats.n_pixels > 0
    row = win.measure.panel.rows()[-1]
    assert f"{stats.n_pixels:,} px" in row["statistics"] and f"mean {stats.mean:.1f}" in row["statistics"]
    label = win.measure.layers["sagittal"]._labels[m.id][0]
    assert f"{stats.n_pixels:,} px" in label.textItem.toPlainText()


def test_every_kind_has_its_tool_binding_and_a_menu_entry(window) -> None:  # type: ignore[no-untyped-def]
    """A new kind is its class in model/kinds.py and its binding in ui/views/tools.py: the Tools
    bar and menu take it from there."""
    from lumbarview.model.kinds import TOOLS as KIND_TOOLS
    from lumbarview.ui.views.tools import LABELS, SHORTCUTS, TOOLS

    assert ("navigate", *KIND_TOOLS) == TOOLS
    assert set(SHORTCUTS) == set(LABELS) == set(TOOLS)
    assert len(set(SHORTCUTS.values())) == len(SHORTCUTS)  # one key each
    texts = {a.text().replace("&", "") for a in window.findChildren(QtGui.QAction)}
    for tool in TOOLS:
        assert LABELS[tool].replace("&", "") in texts, tool
