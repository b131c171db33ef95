"""What a reader meets first, in a real window (offscreen): the views hold still from picking a
tool to the first release; the default arrangement gives the images most of the window and
keeps empty docks closed, remembering what the user closes; the F1 table lists every menu
shortcut (built from the same table); File > Open demo offers all six layouts; About names the
version, the libraries and where the files are; the autosave and the session read at open run
off the GUI thread; saves start in the documents folder or the last one used."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

import lumbarview.services.session_store as store_module
from lumbarview.io.session_file import read_session
from lumbarview.model.measurements import Measurement
from lumbarview.phantom.layouts import LAYOUTS
from lumbarview.ui.measure_binding import AUTOSAVE_DELAY_MS
from tests.qt.conftest import open_and_wait

LEFT = QtCore.Qt.MouseButton.LeftButton


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_WORKSPACE", str(tmp_path / "workspace"))


def _geometry(window: Any) -> dict[str, tuple[Any, ...]]:
    """Each visible view's place on screen and the scene rectangle it shows."""
    out = {}
    for view in window.visible_views():
        corner = view.graphics.mapToGlobal(QtCore.QPoint(0, 0))
        rect = view.viewbox.viewRect()
        out[view.name] = (corner.x(), corner.y(), view.graphics.width(), view.graphics.height(),
                          round(rect.x(), 6), round(rect.y(), 6), round(rect.width(), 6), round(rect.height(), 6))
    return out


def test_picking_a_tool_and_the_first_press_move_no_view(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["sudirman"])
    qtbot.wait(100)
    before = _geometry(window)
    assert len(before) == 3 and not window.docks.measurement_dock.isVisible()
    window.tool_actions["distance"].trigger()  # as the tool bar or the shortcut does
    qtbot.wait(150)
    assert window.measure.tools.tool == "distance"
    assert _geometry(window) == before, "picking the tool moved a view"
    view = window.views["sagittal"]
    viewport = view.graphics.viewport()
    a = QtCore.QPoint(viewport.width() // 3, viewport.height() // 2)
    b = QtCore.QPoint(2 * viewport.width() // 3, viewport.height() // 2)
    qtbot.mousePress(viewport, LEFT, pos=a)
    qtbot.wait(150)
    assert _geometry(window) == before, "the first press moved a view"
    for t in (0.25, 0.5, 0.75, 1.0):
        qtbot.mouseMove(viewport, QtCore.QPoint(round(a.x() + t * (b.x() - a.x())), a.y()))
    qtbot.mouseRelease(viewport, LEFT, pos=b)
    qtbot.wait(150)
    assert len(window.session.measurements) == 1  # the drag made the measurement
    assert _geometry(window) == before, "the first release moved a view"


def test_the_default_arrangement_gives_the_images_most_of_the_window(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    window.resize(1400, 860)
    open_and_wait(qtbot, window, demo_small["sudirman"])
    qtbot.wait(100)
    # Empty docks stay closed: no measurement, no engine result yet.
    assert not window.docks.measurement_dock.isVisible() and not window.docks.levels_dock.isVisible()
    views = window.visible_views()
    area = sum(v.width() * v.height() for v in views)
    assert area > 0.5 * window.width() * window.height(), [(v.width(), v.height()) for v in views]
    assert min(v.width() for v in views) >= 280


def test_a_dock_the_user_closed_stays_closed_and_is_remembered(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.ui.main_window import MainWindow

    open_and_wait(qtbot, window, demo_small["spider"])  # label maps: the Layers dock has content
    dock = window.docks.layer_dock
    qtbot.waitUntil(dock.isVisible, timeout=5000)
    dock.close()  # the dock's own close button
    assert "layers" in window.docks.closed_by_user
    window.step_case(1) if len(window.dataset.cases) > 1 else window.show_case(window.session.case)
    qtbot.waitUntil(lambda: window.session.case is not None, timeout=5000)
    qtbot.wait(300)
    assert not dock.isVisible()  # its content came back, the user's choice holds
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    try:
        assert "layers" in again.docks.closed_by_user
        again.docks.layer_dock.toggleViewAction().trigger()  # View > Layers opens it again
        assert "layers" not in again.docks.closed_by_user
    finally:
        again.close()


def test_the_shortcut_table_lists_every_menu_shortcut_and_the_mouse(window) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.ui.actions import shortcut_rows
    from lumbarview.ui.help import ShortcutsDialog

    dialog = ShortcutsDialog(shortcut_rows(window.menu_entries), window)
    listed = {dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())}
    # Every shortcut of every action in the menu bar, found by walking the real menus.
    shortcuts: set[str] = set()

    def walk(menu: QtWidgets.QMenu) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu())
            elif not action.shortcut().isEmpty():
                shortcuts.add(action.shortcut().toString(QtGui.QKeySequence.SequenceFormat.NativeText))

    for action in window.menuBar().actions():
        walk(action.menu())
    assert len(shortcuts) > 40
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    submenus = [a.text() for a in view_menu.actions() if a.menu() is not None]
    assert submenus == ["&Layout", "&Window/level preset"]  # a title's slash is no submenu
    assert shortcuts <= listed, sorted(shortcuts - listed)
    for mouse in ("Right drag", "Middle drag", "Ctrl + wheel", "Left drag (3D)"):
        assert mouse in listed


def test_open_demo_offers_all_six_layouts_with_a_line_each(window) -> None:  # type: ignore[no-untyped-def]
    menu = window.menus["&File|Open &demo"]
    texts = [a.text() for a in menu.actions()]
    assert [t.split(":")[0] for t in texts] == list(LAYOUTS)
    assert all(len(t.split(":", 1)[1].strip()) > 20 for t in texts)
    assert set(window.start_page.demo_buttons) == set(LAYOUTS)
    with pytest.raises(ValueError, match="unknown demo layout"):
        window.open_demo("nonsense")


def test_about_names_version_libraries_and_folders(window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from importlib import metadata

    from lumbarview import __version__
    from lumbarview.ui.help import about_html

    html = about_html()
    assert __version__ in html
    assert str(tmp_path / "workspace") in html  # LUMBARVIEW_WORKSPACE, set above
    for name in ("pydicom", "vtk", "PySide6-Essentials", "highdicom"):
        assert f"<td>{name}</td><td>{metadata.version(name)}</td>" in html
    assert "LGPL" in html and "MIT" in html


def test_autosave_and_session_read_run_off_the_gui_thread(qtbot, window, demo_small, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    threads: dict[str, list[str]] = {"write": [], "read": []}
    real_write, real_read = store_module.write_session, store_module.read_session

    def write(path, doc):  # type: ignore[no-untyped-def]
        threads["write"].append(threading.current_thread().name)
        return real_write(path, doc)

    def read(path):  # type: ignore[no-untyped-def]
        threads["read"].append(threading.current_thread().name)
        return real_read(path)

    monkeypatch.setattr(store_module, "write_session", write)
    monkeypatch.setattr(store_module, "read_session", read)
    open_and_wait(qtbot, window, demo_small["sudirman"])
    view = window.views["sagittal"]
    plane = view.plane
    points = [plane.centre_lps(), plane.centre_lps() + 20 * plane.right_lps]
    window.session.measurements.add(Measurement.create("distance", np.array(points), plane, ident="d1"))
    path = window.measure.store.path
    qtbot.waitUntil(lambda: bool(threads["write"]) and window.measure.writer.idle, timeout=10_000)
    assert [m.id for m in real_read(path).measurements] == ["d1"]
    assert threading.main_thread().name not in threads["write"]
    # Reopening reads the saved session on the worker, and offers it (no dialog here).
    open_and_wait(qtbot, window, demo_small["sudirman"])
    assert threads["read"] and threading.main_thread().name not in threads["read"]
    assert window.measure.offered is not None and [m.id for m in window.measure.offered.measurements] == ["d1"]
    # Reopening is no edit: once the autosave delay has passed, the saved session is still whole
    # (the change that armed the autosave was the previous opening's).
    qtbot.wait(3 * AUTOSAVE_DELAY_MS)
    assert window.measure.writer.flush(10)
    assert [m.id for m in read_session(path).measurements] == ["d1"]


def test_saves_start_in_the_documents_folder_then_the_last_one(window, demo_small, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                               monkeypatch) -> None:
    from lumbarview.services import save_folder

    documents = tmp_path / "Documents"
    documents.mkdir()
    monkeypatch.setattr(save_folder, "documents_folder", lambda: documents)
    settings = window.settings
    settings.qt.remove("save/last_folder")
    assert settings.save_folder() == documents
    chosen = tmp_path / "exports"
    chosen.mkdir()
    settings.remember_save_folder(chosen / "shot.png")
    assert settings.save_folder() == chosen
    # Never inside the dataset on screen, even when the user saved there last.
    dataset = Path(demo_small["sudirman"])
    settings.remember_save_folder(dataset / "x.png")
    assert settings.save_folder(str(dataset)) == documents
    assert settings.save_folder() == dataset


def test_the_corner_position_names_its_axis_in_the_status_bars_convention(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    import re

    open_and_wait(qtbot, window, demo_small["sudirman"])
    point = window.session.cursor.crosshair + np.array([-3.25, 4.5, 0.35])  # within the axial block
    window.session.cursor.set_crosshair(point)
    qtbot.wait(50)
    # The status bar's LPS: L, P and S positive; the views' corners name the axis across them
    # (the sagittal steps along L, the axial along S, the coronal along P), same sign.
    for name, axis, index in (("sagittal", "L", 0), ("axial", "S", 2), ("coronal", "P", 1)):
        text = window.views[name].hud.text("tr")
        found = re.search(r"pos ([LPS]) (-?\d+\.\d) mm", text)
        assert found is not None, text
        assert found.group(1) == axis
        assert float(found.group(2)) == pytest.approx(point[index], abs=0.051)


def test_the_windows_are_remembered_when_they_change_not_on_every_undo_step(qtbot, window, demo_small,  # type: ignore[no-untyped-def]
                                                                             monkeypatch) -> None:
    from lumbarview.model.view_state import WindowLevel
    from lumbarview.ui.settings import Settings

    open_and_wait(qtbot, window, demo_small["sudirman"])
    writes: list[int] = []
    real = window.settings.remember_windows
    monkeypatch.setattr(window.settings, "remember_windows", lambda session: (writes.append(1), real(session)))
    view = window.views["sagittal"]
    plane = view.plane
    for n in range(5):  # measurement edits and a plane change: undo steps, no window change
        points = np.array([plane.centre_lps(), plane.centre_lps() + (10 + n) * plane.right_lps])
        window.session.measurements.add(Measurement.create("distance", points, plane, ident=f"d{n}"))
    window.session.undo.undo()
    window.reset_planes()
    assert writes == []
    series = view.view_state.series
    window.session.set_window("sagittal", WindowLevel(321.0, 123.0))
    assert writes == [1]
    assert Settings().window(series.uid) == WindowLevel(321.0, 123.0)  # in QSettings, for the next run


def test_an_empty_dock_left_open_last_time_starts_closed(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.ui.main_window import MainWindow

    window.show_dock("levels")
    window.show_dock("tags")
    qtbot.wait(50)
    assert window.docks.levels_dock.isVisible()
    window.close()  # the arrangement is saved
    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    try:
        assert not again.docks.levels_dock.isVisible()  # nothing to show yet
        assert again.docks.tag_dock.isVisible()  # the user's own choice, restored
    finally:
        again.close()
