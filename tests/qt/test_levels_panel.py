"""The levels panel: the engine's rows in the viewer, equal to ``lumbarview measure``'s, and a
click on a row takes a view to the engine's plane and draws what it measured there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from lumbarview.ui.items.engine_items import CONTOUR_COLOUR
from tests.qt.conftest import open_and_wait
from tests.tree_snapshot import tree_snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def measured(qtbot, window, demo_small):  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["spider"])
    with qtbot.waitSignal(window.levels.panel.measured, timeout=180_000):
        window.levels.measure()
    return window


def _cli_rows(path: Path) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "lumbarview", "measure", str(path), "--json", "--jobs", "1",
                           "--no-cache"], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_levels_panel_values_equal_the_measure_command(measured, demo_small) -> None:  # type: ignore[no-untyped-def]
    shown = measured.levels.panel.shown_rows()
    cli = _cli_rows(demo_small["spider"])
    case_id = measured.session.case.id
    cli = [r for r in cli if r.get("case") == case_id]
    assert len(shown) > 50 and len(shown) == len(cli)
    keys = ("series", "level", "side", "quantity", "value", "unit", "confidence", "flag", "dataset_grade",
            "position_lps")
    assert sorted(json.dumps([r[k] for k in keys]) for r in shown) == sorted(
        json.dumps([r[k] for k in keys]) for r in cli)
    # The panel's value lines are the chosen mask's rows, one each, with the value text of the row.
    panel = measured.levels.panel
    items = panel.row_items()
    chosen = panel.mask_choice.currentText()
    assert len(items) == sum(1 for r in shown if r["series"] == chosen)
    first = next(i for i in items if i.data(0, QtCore.Qt.ItemDataRole.UserRole)["quantity"] == "canal_area")
    row = first.data(0, QtCore.Qt.ItemDataRole.UserRole)
    assert float(first.text(1)) == pytest.approx(row["value"], abs=0.1)
    # The screenshot sidecar carries them.
    from lumbarview.ui.screenshot import sidecar

    assert sidecar(measured)["engine"] == shown


def _yellow(image: QtGui.QImage) -> np.ndarray:
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    w, h = image.width(), image.height()
    raw = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes()).reshape(h, -1)[:, :4 * w]
    bgra = raw.reshape(h, w, 4).astype(int)
    target = QtGui.QColor(CONTOUR_COLOUR)
    return ((abs(bgra[..., 2] - target.red()) < 40) & (abs(bgra[..., 1] - target.green()) < 40)
            & (bgra[..., 0] < 90))


def test_click_on_a_canal_row_shows_the_engine_contour_on_its_plane(qtbot, measured) -> None:  # type: ignore[no-untyped-def]
    panel = measured.levels.panel
    items = panel.row_items()
    item = next(i for i in items if i.data(0, QtCore.Qt.ItemDataRole.UserRole)["quantity"] == "canal_area"
                and i.data(0, QtCore.Qt.ItemDataRole.UserRole)["level"] == "L3-L4")
    row = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
    part = measured.levels.result.part_for(row)
    assert part is not None and part.view == "axial"
    view = measured.views["axial"]
    before = int(_yellow(view.graphics.grab().toImage()).sum())
    custom_before = view.view_state.custom_plane

    panel.tree.scrollToItem(item)
    qtbot.wait(50)
    rect = panel.tree.visualItemRect(item)
    with qtbot.waitSignal(panel.part_selected, timeout=2000) as clicked:
        qtbot.mouseClick(panel.tree.viewport(), QtCore.Qt.MouseButton.LeftButton,
                         pos=QtCore.QPoint(rect.left() + 20, rect.center().y()))  # on its name
    assert clicked.args[0] == row  # the line clicked is the one aimed at
    qtbot.wait(300)

    plane = view.plane
    assert plane is not None
    assert abs(float(plane.normal_lps @ part.normal_lps)) == pytest.approx(1.0, abs=1e-6)
    assert float(plane.signed_distance_mm(part.centre_lps)) == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(measured.session.cursor.crosshair, part.centre_lps)
    contour = next(line for line in part.polylines if line.name == "canal contour")
    assert next(line.name for line in measured.levels.overlays["axial"].shown()) == "canal contour"

    yellow = _yellow(view.graphics.grab().toImage())
    assert int(yellow.sum()) > before + 100
    # The contour's own points are drawn yellow, where the view puts them.
    ratio = view.graphics.devicePixelRatioF()
    hits = 0
    for lps in contour.points_lps[::8]:
        x, y = view.to_scene(lps)
        scene = view.viewbox.mapViewToScene(QtCore.QPointF(x, y))
        p = view.graphics.mapFromScene(scene)
        c, r = round(p.x() * ratio), round(p.y() * ratio)
        hits += bool(yellow[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3].any())
    assert hits >= 0.9 * len(contour.points_lps[::8])
    # The contour is not drawn on a plane it does not lie on (the sagittal).
    assert "canal contour" not in [line.name for line in measured.levels.overlays["sagittal"].shown()]
    # The plane change is undoable like any other.
    assert view.view_state.custom_plane is not custom_before
    measured.session.undo.undo()
    assert view.view_state.custom_plane is custom_before


def test_replace_requested_carries_the_row(qtbot, measured) -> None:  # type: ignore[no-untyped-def]
    panel = measured.levels.panel
    item = panel.row_items()[0]
    row = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
    with qtbot.waitSignal(panel.replace_requested, timeout=2000) as blocker:
        panel.replace_requested.emit(row)
    assert blocker.args[0] is row
    assert row in measured.levels.result.rows  # the engine's row itself is untouched


def test_export_from_the_viewer_refuses_the_dataset_and_writes_elsewhere(measured, demo_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = tree_snapshot(demo_small["spider"])
    with pytest.raises(ValueError, match="inside the dataset"):
        measured.levels.export_to(demo_small["spider"] / "out.csv")
    assert tree_snapshot(demo_small["spider"]) == before
    written = measured.levels.export_to(tmp_path / "rows.json")
    data = json.loads(written.read_text())
    assert len(data["rows"]) == len(measured.levels.panel.shown_rows())
    assert {r["source"] for r in data["rows"]} == {"engine"}


def _level_titles(panel) -> list[str]:  # type: ignore[no-untyped-def]
    return [panel.tree.topLevelItem(n).text(0) for n in range(panel.tree.topLevelItemCount())]


def test_levels_grouped_per_mask_head_to_feet_with_flags_whole(qtbot, measured) -> None:  # type: ignore[no-untyped-def]
    panel = measured.levels.panel
    series = sorted({r["series"] for r in panel.shown_rows()})
    assert len(series) == 2  # the SPIDER demo case: a T1 and a T2 mask
    assert panel.mask_choice.isVisibleTo(panel) and panel.mask_choice.count() == 2
    for n in range(2):
        panel.mask_choice.setCurrentIndex(n)
        titles = _level_titles(panel)
        # Each level once (not once per mask), head to feet.
        assert titles == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
        rows = [i.data(0, QtCore.Qt.ItemDataRole.UserRole) for i in panel.row_items()]
        assert {r["series"] for r in rows} == {panel.mask_choice.currentText()}
        # Within a level: canal, foramen left, foramen right, disc.
        level = panel.tree.topLevelItem(0)
        assert [level.child(k).text(0) for k in range(level.childCount())] == [
            "Canal", "Foramen left", "Foramen right", "Disc"]
    # A flag's whole text is there: wrapped in its column and as the tooltip.
    assert panel.tree.wordWrap()
    flagged = [i for i in panel.row_items() if i.data(0, QtCore.Qt.ItemDataRole.UserRole)["flag"]]
    assert flagged
    for item in flagged:
        flag = item.data(0, QtCore.Qt.ItemDataRole.UserRole)["flag"]
        assert item.text(5) == flag and item.toolTip(5) == flag
    long = max(flagged, key=lambda i: len(i.text(5)))
    width = panel.tree.columnWidth(5)
    text_width = panel.tree.fontMetrics().horizontalAdvance(long.text(5))
    assert text_width > width  # the column is narrower than the text ...
    rect = panel.tree.visualItemRect(long)
    assert rect.height() > panel.tree.fontMetrics().height() * 1.5  # ... so the line wraps


def test_a_manual_replacement_shows_beside_the_engine_value(qtbot, measured) -> None:  # type: ignore[no-untyped-def]
    panel = measured.levels.panel
    item = next(i for i in panel.row_items() if i.data(0, QtCore.Qt.ItemDataRole.UserRole)["quantity"]
                == "foramen_height" and i.data(0, QtCore.Qt.ItemDataRole.UserRole)["side"] == "left"
                and i.data(0, QtCore.Qt.ItemDataRole.UserRole)["level"] == "L4-L5")
    row = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
    assert item.text(2) == ""
    measured.levels.replace_by_manual(row)  # the view goes to the engine's plane, the distance tool is on
    view = measured.views["sagittal"]
    plane = view.plane
    centre = plane.centre_lps()
    vp = view.graphics.viewport()
    points = []
    for a, b in ((0.0, -6.0), (0.0, 6.0)):
        x, y = view.to_scene(centre + a * plane.right_lps + b * plane.down_lps)
        points.append(view.graphics.mapFromScene(view.viewbox.mapViewToScene(QtCore.QPointF(x, y))))
    qtbot.mousePress(vp, QtCore.Qt.MouseButton.LeftButton, pos=points[0])
    qtbot.mouseMove(vp, points[1])
    qtbot.mouseRelease(vp, QtCore.Qt.MouseButton.LeftButton, pos=points[1])
    manual = list(measured.session.measurements)[-1]
    assert manual.level == "L4-L5" and manual.side == "left"
    # The panel shows the manual value on the engine's line, beside the engine's value.
    item = next(i for i in panel.row_items() if i.data(0, QtCore.Qt.ItemDataRole.UserRole) == row)
    assert item.text(2) == manual.value_text() and item.text(1) != ""
    assert float(item.text(2).split()[0]) == pytest.approx(manual.value().value, abs=0.01)
    # Only that line: the right foramen's height has no manual value.
    others = [i for i in panel.row_items() if i.text(2)]
    assert others == [item]
    # Undo removes the measurement, and the panel follows.
    measured.session.undo.undo()
    assert item.text(2) == ""
