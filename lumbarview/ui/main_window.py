"""The main window: an adapter that builds the widgets and binds them to a :class:`Session`.

It decides nothing the session or the services can decide: loading a case and which series
each view shows are ``services.case_loader`` and ``services.case_browser``; custom planes are
``services.view_planes``; planes, windows and layers are the session's (undoable) edits. The
views stand in a :class:`ViewGrid`, the panels in a :class:`DockSet`, the menus come from
``ui.actions``, long jobs run through ``ui.tasks``; views never talk to each other.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import STUDY_PREFIX, Case, Dataset, LabelMap
from lumbarview.core.labels import DISC_LEVELS
from lumbarview.core.types import LoadIssue
from lumbarview.model.flags import FlagStore, default_flag_file
from lumbarview.model.session import LAYOUTS, Session
from lumbarview.model.window_presets import default_window
from lumbarview.services import view_planes
from lumbarview.services.case_browser import CaseBrowser, find_series, neighbour_case
from lumbarview.services.case_loader import CaseView
from lumbarview.services.demo import DEMO_LAYOUTS, default_demo_root, ensure_demo
from lumbarview.services.open_dataset import open_path
from lumbarview.services.session_store import Opened, SessionStore
from lumbarview.services.session_writer import open_autosave
from lumbarview.services.tags import slice_file
from lumbarview.slicing.cache import PlaneCache
from lumbarview.ui.actions import VIEW_INPUTS, Entry, build_menus, shortcut_rows
from lumbarview.ui.export_dialog import open_export_dialog
from lumbarview.ui.help import HelpDialog, ShortcutsDialog, about_html, manual_html
from lumbarview.ui.measure_binding import MeasureBinding
from lumbarview.ui.panels.dock_set import DockSet
from lumbarview.ui.panels.levels import LevelsController
from lumbarview.ui.screenshot import save_screenshot
from lumbarview.ui.settings import Settings
from lumbarview.ui.start_page import StartPage
from lumbarview.ui.tasks import ProgressRunner
from lumbarview.ui.threading import Worker
from lumbarview.ui.views.slice_view import SliceView
from lumbarview.ui.views.tools import LABELS as TOOL_LABELS
from lumbarview.ui.views.tools import SHORTCUTS as TOOL_SHORTCUTS
from lumbarview.ui.views.tools import TOOLS
from lumbarview.ui.views.view_grid import ViewGrid


@dataclass(frozen=True)
class _Opened:
    """What opening a dataset reads off the GUI thread."""

    dataset: Dataset
    autosave: tuple[SessionStore, Opened]
    flags: FlagStore


class MainWindow(QtWidgets.QMainWindow):
    dataset_loaded = QtCore.Signal(object)
    views_ready = QtCore.Signal()
    load_failed = QtCore.Signal(str)

    def __init__(self, cache_bytes: int = 256 * 2**20, layout: str | None = None,
                 native_orientation: bool = False, interactive: bool = False) -> None:
        """``interactive``: whether modal dialogs may open (``ui.app.run`` says so for a user's
        window; scripts, screenshots and tests keep it False, so nothing waits for a click)."""
        super().__init__()
        self._interactive = interactive
        self.setWindowTitle("lumbarview")
        self.settings = Settings()
        self.session = Session(default_window)
        self.session.layout = layout or self.settings.layout() or "1x3"
        self.session.set_native_orientation(native_orientation)
        self.session.undo.clear()
        self.worker = Worker(max_workers=2)
        self.tasks = ProgressRunner(self, self.worker, self.load_failed.emit, interactive)
        self.cache = PlaneCache(cache_bytes)
        # Decoded cases kept while browsing: a few, bounded by bytes (LUMBARVIEW_CASE_CACHE_MB).
        case_budget = int(os.environ.get("LUMBARVIEW_CASE_CACHE_MB", "1500")) * 2**20
        self.cases = CaseBrowser(self.session, self.worker.submit, case_budget)
        self.flags: FlagStore | None = None
        self.pending_plane: str | None = None  # a disc level to align the axial to once shown
        self.grid = ViewGrid(self.session, self.cache, self.worker.submit)
        self.views = self.grid.views
        for view in self.views.values():
            view.hover_text.connect(self._on_hover_text)
            view.series_dropped.connect(lambda uid, v=view: self.show_series_in(v.name, uid))
            view.line_planned.connect(self.plan_from_line)
        self.start_page = StartPage(self.choose_folder, self.open_demo, self.open, DEMO_LAYOUTS, self.show_studies)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.grid)
        self.setCentralWidget(self.stack)
        self.measure = MeasureBinding(self, self.session, self.views)  # measurement tools, table and sessions
        self.levels = LevelsController(self, self.session, self.views, self.measure.tools)  # the engine's values
        self.docks = DockSet(self, self.session, self.worker.submit, self.measure.panel, self.levels.panel,
                             self.grid.go_to)
        self.docks.closed_by_user.update(self.settings.closed_docks())
        self.measure.restored.connect(lambda _issues: self.docks.follow_measurements())
        self.docks.tree.itemDoubleClicked.connect(self._on_tree_double_click)
        # The DICOM tags dock follows the focused view's slice while it is open.
        self.grid.focus_changed.connect(lambda _name: self.update_tags())
        self.session.cursor.crosshair_changed.connect(lambda _lps: self.update_tags())
        self.docks.tag_dock.visibilityChanged.connect(self._on_tags_visible)
        # The panels that tests and scripts reach through the window.
        self.layer_panel = self.docks.layer_panel
        self.layer_panel.show_as_image = self.show_labels_as_image
        self.annotation_panel = self.docks.annotation_panel
        self.report_panel = self.docks.report_panel
        self.report_dock = self.docks.report_dock
        self.tables_panel = self.docks.tables_panel
        self.tables_dock = self.docks.tables_dock
        self.menu_entries = self.menu_table()
        self.menus, self.named_actions = build_menus(self, self.menu_entries)
        self.recent_menu = self.menus["&File|Open &recent"]
        self.tool_actions = {tool: self.named_actions[f"tool:{tool}"] for tool in TOOLS}
        self.measure.tools.tool_changed.connect(lambda t: self.tool_actions[t].setChecked(True))
        self.session.undo.changed.connect(self._name_undo_redo)
        self._name_undo_redo()
        view_menu = self.menus["&View"]
        view_menu.addSeparator()
        for dock in self.docks:
            view_menu.addAction(dock.toggleViewAction())
        self.session.windows_changed.connect(lambda: self.settings.remember_windows(self.session))
        self.list_recent()
        self.set_layout(self.session.layout)
        self.statusBar().showMessage("Ready")
        self.setAcceptDrops(True)
        self.resize(1400, 860)
        if self.settings.restore_window(self):
            self.docks.keep_user_sizes()
        self.docks.hide_empty()

    @property
    def dataset(self) -> Dataset | None:
        return self.session.dataset

    @property
    def scene3d(self) -> Any:
        """The 3D pane (``ui.scene3d.SceneView``), or None until a layout first shows it."""
        return self.grid.scene3d

    # -- the shell its helpers talk to (ui.shell.Shell) -----------------------------------------
    @property
    def interactive(self) -> bool:
        return self._interactive

    @property
    def widget(self) -> QtWidgets.QWidget:
        return self

    def status(self, text: str) -> None:
        self.statusBar().showMessage(text)

    def show_dock(self, name: str) -> None:
        self.docks.show(name)

    def show_issues(self, issues: Sequence[LoadIssue]) -> None:
        known = self.dataset.all_issues() if self.dataset is not None else []
        self.docks.issues_panel.set_issues([*known, *issues])
        self.docks.show("issues")

    def save_path(self, title: str, name: str, filters: str) -> str | None:
        return self.settings.save_path(self, title, name, filters, self.dataset.path if self.dataset else None)

    def fail(self, message: str) -> None:
        self.status(message)
        self.load_failed.emit(message)

    # -- menus: one table (ui.actions), which Help > Keyboard and mouse lists too ------------------
    def menu_table(self) -> list[Entry]:
        """Every menu entry and input of the window, in menu order (see :mod:`lumbarview.ui.actions`)."""
        grid, session, measure, levels = self.grid, self.session, self.measure, self.levels
        layers, annotations = self.docks.layer_panel, self.docks.annotation_panel
        file_, view, tools = "&File", "&View", "&Tools"
        entries = [
            Entry(file_, "&Open folder…", self.choose_folder, "Ctrl+O"),
            Entry(file_, "&Studies (database, PACS)…", self.show_studies, "Ctrl+Shift+O"),
            *(Entry(f"{file_}|Open &demo", f"{name}: {text}", lambda _=False, n=name: self.open_demo(n))
              for name, text in DEMO_LAYOUTS.items()),
            Entry(f"{file_}|Open &recent", ""),
            Entry(file_, "-"),
            Entry(file_, "&Export (de-identified)…", lambda: open_export_dialog(self, self.session)),
            Entry(file_, "Save screenshot of the &window…", lambda: save_screenshot(self),
                  "Ctrl+Shift+S"),
            Entry(file_, "-"),
            Entry(file_, "&Quit", self.close, "Ctrl+Q"),
            Entry("&Edit", "&Undo", session.undo.undo, "Ctrl+Z", name="undo"),
            Entry("&Edit", "&Redo", session.undo.redo, "Ctrl+Shift+Z", name="redo"),
            *(Entry(f"{view}|&Layout", name, lambda _=False, lay=name: self.set_layout(lay), f"Alt+{n}",
                    checkable=True, checked=name == session.layout, group="layout", name=f"layout:{name}")
              for n, name in enumerate(LAYOUTS, start=1)),
            Entry(view, "&Fit to window", grid.fit_all, "F"),
            Entry(view, "&Reset zoom, window and planes", self.reset_views, "R"),
            Entry(view, "&Cine play (focused view)", grid.toggle_cine, "Space"),
            Entry(view, "&Invert (focused view)", grid.invert, "I"),
            Entry(view, "Cross&hair", grid.set_crosshair_visible, "C", checkable=True, checked=True),
            Entry(view, "Acquisition &orientation (as stored)", session.set_native_orientation, "O",
                  checkable=True, checked=session.native_orientation),
            Entry(view, "&3D pane in the 1x3 layout (instead of the coronal)", self.toggle_scene3d, "Ctrl+D",
                  checkable=True, checked=grid.scene_in_1x3),
            Entry(view, "&Project models within the slab on the slices", grid.set_mesh_projection, "Ctrl+P",
                  checkable=True),
            *(Entry(f"{view}|&Window/level preset", {"auto": "Automatic (1-99 %)", "dicom": "DICOM window"}.get(
                name, name), lambda _=False, p=name: self.apply_preset(p), f"Ctrl+{n}")
              for n, name in enumerate(("auto", "dicom", "T1", "T2"), start=1)),
            Entry(view, "Show all &markers", lambda: layers.set_markers_visible(True), "Shift+M"),
            Entry(view, "Hide all mar&kers", lambda: layers.set_markers_visible(False), "Ctrl+Shift+M"),
            *(Entry("&Planes", f"Align axial to the {level} disc", lambda _=False, lv=level: self.align_to_disc(lv))
              for level in DISC_LEVELS),
            Entry("&Planes", "-"),
            Entry("&Planes", "Shift+drag on the sagittal: plan an oblique axial"),
            Entry("&Planes", "&Standard planes", self.reset_planes, "Ctrl+R"),
            Entry("&Measure", "&Measure this case", levels.measure, "Ctrl+M"),
            Entry("&Measure", "&Export…", levels.export_dialog, "Ctrl+E"),
            Entry("&Case", "&Next case", lambda: self.step_case(1), "Alt+Right"),
            Entry("&Case", "&Previous case", lambda: self.step_case(-1), "Alt+Left"),
            Entry("&Case", "Next &annotation", lambda: annotations.step(1), "Alt+Down"),
            Entry("&Case", "Previous a&nnotation", lambda: annotations.step(-1), "Alt+Up"),
            *(Entry(tools, TOOL_LABELS[tool], lambda _=False, t=tool: measure.tools.set_tool(t), TOOL_SHORTCUTS[tool],
                    checkable=True, checked=tool == measure.tools.tool, group="tools", name=f"tool:{tool}",
                    toolbar="Measurement tools")
              for tool in TOOLS),
            Entry(tools, "-"),
            Entry(tools, "Cancel the drawing", measure.tools.cancel, "Esc"),
            Entry(tools, "Close the &polygon", measure.tools.finish),
            Entry(tools, "&Delete the selected measurement", measure.tools.delete_selected, "Delete"),
            Entry(tools, "-"),
            Entry(tools, "&Restore last session", measure.restore_last),
            Entry(tools, "&Save session as…", self.save_session_as, "Ctrl+Alt+S"),
            Entry(tools, "&Open session…", self.open_session),
            Entry("&Help", "&Keyboard and mouse", self.show_shortcuts, "F1"),
            Entry("&Help", "&Manual", self.show_manual),
            Entry("&Help", "&About lumbarview", self.show_about),
        ]
        return [*entries, *VIEW_INPUTS]

    def _name_undo_redo(self) -> None:
        """Edit > Undo and Redo name the step they would take (or are disabled)."""
        undo = self.session.undo
        self.named_actions["undo"].setEnabled(undo.can_undo)
        self.named_actions["undo"].setText(f"&Undo {undo.undo_text}".strip())
        self.named_actions["redo"].setEnabled(undo.can_redo)
        self.named_actions["redo"].setText(f"&Redo {undo.redo_text}".strip())

    def list_recent(self) -> None:
        """File > Open recent and the start page list the datasets opened lately."""
        recent = self.settings.recent()
        self.start_page.set_recent(recent)
        self.recent_menu.clear()
        for path in recent:
            self.recent_menu.addAction(path).triggered.connect(lambda _=False, p=path: self.open(p))

    def show_shortcuts(self) -> None:
        ShortcutsDialog(shortcut_rows(self.menu_entries), self).exec()

    def show_manual(self) -> None:
        HelpDialog("lumbarview — manual", manual_html(), self).exec()

    def show_about(self) -> None:
        HelpDialog("About lumbarview", about_html(), self).exec()

    def save_session_as(self) -> None:
        path = self.settings.save_path(self, "Save session", "session.lumbarview.json", "lumbarview sessions (*.json)",
                                       self.dataset.path if self.dataset is not None else None)
        if path:
            self.measure.save_as(path)

    def open_session(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open session", str(self.settings.save_folder()),
                                                        "lumbarview sessions (*.json)")
        if path:
            self.measure.open_session(path)

    # -- layout -------------------------------------------------------------------------------
    def set_layout(self, layout: str) -> None:
        """1x2 (sagittal, axial), 1x3 (+ coronal) or 2x2 (+ oblique); remembered."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
        self.session.layout = layout
        self.settings.set_layout(layout)
        self.grid.arrange(layout)

    def toggle_scene3d(self, checked: bool) -> None:
        """Show the 3D pane in the 1x3 layout in place of the coronal view."""
        self.grid.scene_in_1x3 = checked
        self.set_layout("1x3" if checked else self.session.layout)

    def visible_views(self) -> list[SliceView]:
        return self.grid.visible_views()

    # -- opening ------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a dataset folder")
        if path:
            self.open(path)

    def open_demo(self, layout: str = "sudirman") -> None:
        """Open the demo in ``layout`` (one of ``services.demo.DEMO_LAYOUTS``), writing it first
        into the user cache folder when it is not there yet."""
        if layout not in DEMO_LAYOUTS:
            raise ValueError(f"unknown demo layout {layout!r}; one of {', '.join(DEMO_LAYOUTS)}")
        self.tasks.run(lambda _p, _c: ensure_demo(default_demo_root())[layout],
                       lambda root: self.open(str(root)), f"Preparing the demo dataset ({layout})…")

    def show_studies(self) -> Any:
        """The Studies window (the study database and PACS); a study opens here on double-click."""
        if getattr(self, "studies_window", None) is None:
            from lumbarview.ui.studies_window import StudiesWindow

            self.studies_window = StudiesWindow(parent=self)
            self.studies_window.open_study.connect(lambda uid: self.open(STUDY_PREFIX + uid))
        self.studies_window.show()
        self.studies_window.raise_()
        return self.studies_window

    def open(self, path: str) -> None:
        """Open a dataset off the GUI thread, with a progress bar that can cancel; its autosaved
        session and its flags are read there too (the GUI thread never waits for a disk)."""
        read_session = self.measure.pending is None

        def job(progress: Callable[[int, int], None], cancel: threading.Event) -> _Opened:
            dataset = open_path(path, progress=progress, cancel=cancel, lazy=True)
            return _Opened(dataset, open_autosave(dataset.path, read_session),
                           FlagStore(default_flag_file(dataset.path), dataset.path))

        self.tasks.run(job, lambda opened: self._on_dataset(path, opened), f"Opening {path}…")

    def _on_dataset(self, path: str, opened: _Opened) -> None:
        dataset = opened.dataset
        self.measure.save_pending()  # the previous dataset's last change, before the session lets it go
        self.session.set_dataset(dataset)
        self.settings.remember_recent(path)
        self.list_recent()
        self.docks.tree.fill(dataset)
        self.flags = opened.flags
        own = [self.flags.issue] if self.flags.notice and self.flags.issue is not None else []
        if self.flags.notice and own:
            self.statusBar().showMessage(self.flags.notice)
        self.docks.show_issues(dataset, [*own, *self.measure.on_dataset(dataset, opened.autosave)])
        self.setWindowTitle(f"lumbarview — {os.path.basename(dataset.path)} ({dataset.layout})")
        self.stack.setCurrentWidget(self.grid)
        self.dataset_loaded.emit(dataset)
        if dataset.cases:
            self.show_case(self.measure.first_case(dataset) or dataset.cases[0])

    # -- cases and series ---------------------------------------------------------------------
    def show_case(self, case: Case) -> None:
        """Load the case off the GUI thread (the series each view shows, decoded) and show it."""
        self.statusBar().showMessage(f"Loading case {case.id}…")
        self.cases.load(case, self._on_case_loaded,
                        lambda e: self.statusBar().showMessage(f"Cannot load case {case.id}: {e}"))

    def _on_case_loaded(self, view: CaseView) -> None:
        case = view.case
        self.settings.recall_windows(self.session, view.series.values())
        self.session.show_case(case, view.series, view.cursor_lps, view.disc_planes, view.shown_stacks)
        self.grid.show_case_label(f"case {case.id}")
        self.docks.show_case(view, self.dataset, self.flags)
        if not any(view.series.values()):
            self.statusBar().showMessage(f"Case {case.id}: no image could be decoded; see the issues panel")
        else:
            self.statusBar().showMessage(f"Case {case.id}: {len(case.series)} series")
        if self.pending_plane:
            self.align_to_disc(self.pending_plane)
            self.pending_plane = None
        self.measure.on_case_shown()
        self.docks.follow_measurements()
        self.update_tags()
        self.cases.shown(case)
        if self.dataset is not None:  # the cases listed but not read yet, once this one shows
            dataset = self.dataset
            self.docks.tree.read_pending(dataset, lambda: self.docks.show_issues(dataset))
        QtCore.QTimer.singleShot(0, self.views_ready.emit)

    def show_labels_as_image(self, label_map: LabelMap) -> None:
        """A volume taken for a label map by its values (its name does not say so) is shown as
        an image instead: it becomes a series of the case, and the case is shown again."""
        case = self.session.case
        if case is None or label_map not in case.label_maps:
            return
        try:
            series = case.treat_as_image(label_map)
        except ValueError as exc:
            self.statusBar().showMessage(str(exc))
            return
        if self.dataset is not None:
            self.docks.tree.fill(self.dataset)
        self.statusBar().showMessage(f"{series.description} is shown as an image")
        self.show_case(case)

    def step_case(self, delta: int) -> None:
        case = neighbour_case(self.dataset, self.session.case, delta)
        if case is not None:
            self.show_case(case)

    def show_series_in(self, name: str, uid: str) -> None:
        self.cases.show_series(name, uid, lambda series, e: self.statusBar().showMessage(
            f"Cannot load {series.description}: {e}"))

    def _on_tree_double_click(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        series = find_series(self.session.case, item.data(0, QtCore.Qt.ItemDataRole.UserRole))
        if series is not None:
            self.show_series_in(view_planes.view_for_series(series), series.uid)

    # -- planes and windows -------------------------------------------------------------------
    def align_to_disc(self, level: str) -> bool:
        """The axial view on the plane of ``level``'s disc (from the label map)."""
        planned = view_planes.disc_aligned(self.session.case, self.session.disc_planes, level)
        if planned is None:
            self.statusBar().showMessage(f"No labelled {level} disc in this case to align to")
            return False
        planned.apply(self.session)
        return True

    def plan_from_line(self, start: np.ndarray, end: np.ndarray) -> None:
        try:
            planned = view_planes.planned_from_line(self.session.case, self.session.views["sagittal"].plane,
                                                    start, end)
        except ValueError as exc:
            self.statusBar().showMessage(str(exc))
            return
        if planned is not None:
            planned.apply(self.session)

    def reset_planes(self) -> None:
        view_planes.reset_planes(self.session)

    def reset_views(self) -> None:
        self.reset_planes()
        self.grid.reset_zoom_and_windows()

    def apply_preset(self, name: str) -> None:
        if not self.grid.apply_preset(name):
            self.statusBar().showMessage(f"No {name} window in this series")

    def _on_tags_visible(self, shown: bool) -> None:
        if shown:
            self.update_tags()

    def update_tags(self) -> None:
        """The DICOM tags dock shows the focused view's slice (read off the GUI thread)."""
        if self.docks.tag_dock.isVisible():
            view = self.grid.focused_view()
            self.docks.tag_panel.show_slice(slice_file(view.view_state, self.session.cursor.crosshair))

    def _on_hover_text(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(text)

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        QtCore.QTimer.singleShot(0, self.docks.size_shown)  # the docks shown from the start

    # -- drag and drop, closing ----------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        urls = event.mimeData().urls()
        if urls:
            self.open(urls[0].toLocalFile())
            event.acceptProposedAction()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.settings.save_window(self)
        self.settings.set_closed_docks(self.docks.closed_by_user)
        self.tasks.cancel()
        self.measure.flush()
        self.grid.shutdown()
        self.worker.shutdown()
        super().closeEvent(event)
