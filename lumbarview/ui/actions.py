"""Menus and shortcuts as one table (it also feeds the shortcuts dialog)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6 import QtGui, QtWidgets

from lumbarview.model.session import LAYOUTS
from lumbarview.ui.panels.docks import ShortcutsDialog
from lumbarview.ui.screenshot import save_screenshot

if TYPE_CHECKING:
    from lumbarview.ui.main_window import MainWindow

LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def add_action(menu: QtWidgets.QMenu, text: str, slot: Callable[..., Any], shortcut: str | None = None,
               checkable: bool = False, checked: bool = False) -> QtGui.QAction:
    action = menu.addAction(text)
    action.setCheckable(checkable)
    if checkable:
        action.setChecked(checked)
    action.triggered.connect(slot)
    if shortcut:
        action.setShortcut(QtGui.QKeySequence(shortcut))
    return action


def build_menus(w: MainWindow) -> None:
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    add_action(file_menu, "&Open folder…", w.choose_folder, "Ctrl+O")
    add_action(file_menu, "Open &demo", w.open_demo)
    add_action(file_menu, "&Studies (database, PACS)…", w.show_studies, "Ctrl+Shift+O")
    w.recent_menu = file_menu.addMenu("Open &recent")
    file_menu.addSeparator()
    add_action(file_menu, "Save screenshot of the &window…", lambda: save_screenshot(w), "Ctrl+Shift+S")
    file_menu.addSeparator()
    add_action(file_menu, "&Quit", w.close, "Ctrl+Q")

    edit_menu = bar.addMenu("&Edit")
    undo = add_action(edit_menu, "&Undo", w.session.undo.undo, "Ctrl+Z")
    redo = add_action(edit_menu, "&Redo", w.session.undo.redo, "Ctrl+Shift+Z")
    w.session.undo.changed.connect(lambda: _name_undo_redo(w, undo, redo))
    _name_undo_redo(w, undo, redo)

    view_menu = bar.addMenu("&View")
    layout_menu = view_menu.addMenu("&Layout")
    group = QtGui.QActionGroup(w)
    for n, name in enumerate(LAYOUTS, start=1):
        action = add_action(layout_menu, name, lambda _=False, lay=name: w.set_layout(lay), f"Alt+{n}",
                            checkable=True, checked=name == w.session.layout)
        group.addAction(action)
    grid = w.grid
    add_action(view_menu, "&Fit to window", grid.fit_all, "F")
    add_action(view_menu, "&Reset zoom, window and planes", w.reset_views, "R")
    add_action(view_menu, "&Cine play (focused view)", grid.toggle_cine, "Space")
    add_action(view_menu, "&Invert (focused view)", grid.invert, "I")
    add_action(view_menu, "Cross&hair", grid.set_crosshair_visible, "C", checkable=True, checked=True)
    add_action(view_menu, "Acquisition &orientation (as stored)", w.session.set_native_orientation, "O",
               checkable=True, checked=w.session.native_orientation)
    add_action(view_menu, "&3D pane in the 1x3 layout (instead of the coronal)", w.toggle_scene3d, "Ctrl+D",
               checkable=True, checked=grid.scene_in_1x3)
    add_action(view_menu, "&Project models within the slab on the slices", grid.set_mesh_projection, "Ctrl+P",
               checkable=True, checked=False)
    wl_menu = view_menu.addMenu("&Window/level preset")
    for n, name in enumerate(("auto", "dicom", "T1", "T2"), start=1):
        add_action(wl_menu, {"auto": "Automatic (1-99 %)", "dicom": "DICOM window"}.get(name, name),
                   lambda _=False, p=name: w.apply_preset(p), f"Ctrl+{n}")
    layers = w.docks.layer_panel
    add_action(view_menu, "Show all &markers", lambda: layers.set_markers_visible(True), "Shift+M")
    add_action(view_menu, "Hide all mar&kers", lambda: layers.set_markers_visible(False), "Ctrl+Shift+M")
    view_menu.addSeparator()
    for dock in w.docks:
        view_menu.addAction(dock.toggleViewAction())

    plane_menu = bar.addMenu("&Planes")
    for level in LEVELS:
        add_action(plane_menu, f"Align axial to the {level} disc", lambda _=False, lv=level: w.align_to_disc(lv))
    plane_menu.addSeparator()
    plane_menu.addAction("Shift+drag on the sagittal: plan an oblique axial").setEnabled(False)
    add_action(plane_menu, "&Standard planes", w.reset_planes, "Ctrl+R")

    measure_menu = bar.addMenu("&Measure")
    add_action(measure_menu, "&Measure this case", w.levels.measure, "Ctrl+M")
    add_action(measure_menu, "&Export…", w.levels.export_dialog, "Ctrl+E")

    case_menu = bar.addMenu("&Case")
    add_action(case_menu, "&Next case", lambda: w.step_case(1), "Alt+Right")
    add_action(case_menu, "&Previous case", lambda: w.step_case(-1), "Alt+Left")
    annotations = w.docks.annotation_panel
    add_action(case_menu, "Next &annotation", lambda: annotations.step(1), "Alt+Down")
    add_action(case_menu, "Previous a&nnotation", lambda: annotations.step(-1), "Alt+Up")
    build_tools_menu(w)
    help_menu = bar.addMenu("&Help")
    add_action(help_menu, "&Keyboard shortcuts", lambda: ShortcutsDialog(w).exec(), "F1")


def _name_undo_redo(w: MainWindow, undo_action: QtGui.QAction, redo_action: QtGui.QAction) -> None:
    """Edit > Undo and Redo name the step they would take (or are disabled)."""
    undo = w.session.undo
    undo_action.setEnabled(undo.can_undo)
    undo_action.setText(f"&Undo {undo.undo_text}".strip())
    redo_action.setEnabled(undo.can_redo)
    redo_action.setText(f"&Redo {undo.redo_text}".strip())


def list_recent(w: MainWindow) -> None:
    """File > Open recent and the start page list the datasets opened lately."""
    recent = w.settings.recent()
    w.start_page.set_recent(recent)
    w.recent_menu.clear()
    for path in recent:
        w.recent_menu.addAction(path).triggered.connect(lambda _=False, p=path: w.open(p))


def build_tools_menu(w: MainWindow) -> None:
    """The Tools menu and tool bar: one checkable action per measurement tool (shortcuts from
    ``ui.views.tools.SHORTCUTS``), cancel, delete, and the session file."""
    from lumbarview.ui.views.tools import LABELS, SHORTCUTS, TOOLS

    measure = w.measure
    menu = w.menuBar().addMenu("&Tools")
    bar = w.addToolBar("Measurement tools")
    bar.setObjectName("measurement_tools")
    group = QtGui.QActionGroup(w)
    w.tool_actions = {}
    for tool in TOOLS:
        action = add_action(menu, LABELS[tool], lambda _=False, t=tool: measure.tools.set_tool(t), SHORTCUTS[tool],
                            checkable=True, checked=tool == measure.tools.tool)
        group.addAction(action)
        bar.addAction(action)
        w.tool_actions[tool] = action
    measure.tools.tool_changed.connect(lambda t: w.tool_actions[t].setChecked(True))
    menu.addSeparator()
    add_action(menu, "Cancel the drawing", measure.tools.cancel, "Esc")
    add_action(menu, "Close the &polygon", measure.tools.finish)
    add_action(menu, "&Delete the selected measurement", measure.tools.delete_selected, "Delete")
    menu.addSeparator()
    add_action(menu, "&Restore last session", measure.restore_last)
    add_action(menu, "&Save session as…", lambda: _save_session_as(w), "Ctrl+Alt+S")
    add_action(menu, "&Open session…", lambda: _open_session(w))


def _save_session_as(w: MainWindow) -> None:
    path, _ = QtWidgets.QFileDialog.getSaveFileName(w, "Save session", "session.lumbarview.json",
                                                    "lumbarview sessions (*.json)")
    if path:
        w.measure.save_as(path)


def _open_session(w: MainWindow) -> None:
    path, _ = QtWidgets.QFileDialog.getOpenFileName(w, "Open session", "", "lumbarview sessions (*.json)")
    if path:
        w.measure.open_session(path)
