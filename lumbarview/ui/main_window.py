"""The main window: an adapter that builds the widgets and binds them to a :class:`Session`.

It decides nothing the session or the services can decide: loading a case and which series
each view shows are ``services.case_loader`` and ``services.case_browser``; custom planes are
``services.view_planes``; planes, windows and layers are the session's (undoable) edits. The
views stand in a :class:`ViewGrid`, the panels in a :class:`DockSet`, the menus come from
``ui.actions``, long jobs run through ``ui.tasks``; views never talk to each other.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import STUDY_PREFIX, Case, Dataset
from lumbarview.model.flags import FlagStore, default_flag_file
from lumbarview.model.session import LAYOUTS, Session
from lumbarview.model.window_presets import default_window
from lumbarview.services import view_planes
from lumbarview.services.case_browser import CaseBrowser, find_series, neighbour_case
from lumbarview.services.case_loader import CaseView
from lumbarview.services.demo import default_demo_root, ensure_demo
from lumbarview.services.open_dataset import open_path
from lumbarview.slicing.cache import PlaneCache
from lumbarview.ui.actions import build_menus, list_recent
from lumbarview.ui.measure_binding import MeasureBinding
from lumbarview.ui.panels.dock_set import DockSet
from lumbarview.ui.panels.levels import LevelsController
from lumbarview.ui.settings import Settings
from lumbarview.ui.start_page import StartPage
from lumbarview.ui.tasks import ProgressRunner
from lumbarview.ui.threading import Worker
from lumbarview.ui.views.slice_view import SliceView
from lumbarview.ui.views.view_grid import ViewGrid


class MainWindow(QtWidgets.QMainWindow):
    dataset_loaded = QtCore.Signal(object)
    views_ready = QtCore.Signal()
    load_failed = QtCore.Signal(str)

    def __init__(self, cache_bytes: int = 256 * 2**20, layout: str | None = None,
                 native_orientation: bool = False) -> None:
        super().__init__()
        self.setWindowTitle("lumbarview")
        self.settings = Settings()
        self.session = Session(default_window)
        self.session.layout = layout or self.settings.layout() or "1x3"
        self.session.set_native_orientation(native_orientation)
        self.session.undo.clear()
        self.worker = Worker(max_workers=2)
        self.tasks = ProgressRunner(self, self.worker, self.load_failed.emit)
        self.cache = PlaneCache(cache_bytes)
        # Decoded cases kept while browsing: a few, bounded by bytes (LUMBARVIEW_CASE_CACHE_MB).
        case_budget = int(os.environ.get("LUMBARVIEW_CASE_CACHE_MB", "1500")) * 2**20
        self.cases = CaseBrowser(self.session, self.worker.submit, case_budget)
        self.flags: FlagStore | None = None
        self.pending_plane: str | None = None  # a disc level to align the axial to once shown
        self.recent_menu: QtWidgets.QMenu  # the menus are built by ui.actions
        self.tool_actions: dict[str, QtGui.QAction] = {}  # ui.actions.build_tools_menu
        self.grid = ViewGrid(self.session, self.cache, self.worker.submit)
        self.views = self.grid.views
        for view in self.views.values():
            view.hover_text.connect(self._on_hover_text)
            view.series_dropped.connect(lambda uid, v=view: self.show_series_in(v.name, uid))
            view.line_planned.connect(self.plan_from_line)
        self.start_page = StartPage(self.choose_folder, self.open_demo, self.open, self.show_studies)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.grid)
        self.setCentralWidget(self.stack)
        self.measure = MeasureBinding(self)  # measurement tools, table and sessions
        self.levels = LevelsController(self)  # the engine's levels panel and exports
        self.docks = DockSet(self, self.session, self.worker.submit, self.measure, self.levels, self.grid.go_to)
        self.docks.tree.itemDoubleClicked.connect(self._on_tree_double_click)
        # The panels that tests and scripts reach through the window.
        self.layer_panel = self.docks.layer_panel
        self.annotation_panel = self.docks.annotation_panel
        self.report_panel = self.docks.report_panel
        self.report_dock = self.docks.report_dock
        self.tables_panel = self.docks.tables_panel
        self.tables_dock = self.docks.tables_dock
        build_menus(self)
        self.session.undo.changed.connect(lambda: self.settings.remember_windows(self.session))
        list_recent(self)
        self.set_layout(self.session.layout)
        self.statusBar().showMessage("Ready")
        self.setAcceptDrops(True)
        self.resize(1400, 860)
        self.settings.restore_window(self)

    @property
    def dataset(self) -> Dataset | None:
        return self.session.dataset

    @property
    def scene3d(self) -> Any:
        """The 3D pane (``ui.scene3d.SceneView``), or None until a layout first shows it."""
        return self.grid.scene3d

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

    def open_demo(self) -> None:
        self.tasks.run(lambda _p, _c: ensure_demo(default_demo_root())["sudirman"],
                       lambda root: self.open(str(root)), "Preparing the demo dataset…")

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
        """Open a dataset off the GUI thread, with a progress bar that can cancel."""
        self.tasks.run(lambda progress, cancel: open_path(path, progress=progress, cancel=cancel, lazy=True),
                       lambda ds: self._on_dataset(path, ds), f"Opening {path}…")

    def _on_dataset(self, path: str, dataset: Dataset) -> None:
        self.session.set_dataset(dataset)
        self.settings.remember_recent(path)
        list_recent(self)
        self.docks.tree.fill(dataset)
        self.flags = FlagStore(default_flag_file(dataset.path), dataset.path)
        own = [self.flags.issue] if self.flags.notice and self.flags.issue is not None else []
        if self.flags.notice and own:
            self.statusBar().showMessage(self.flags.notice)
        self.docks.show_issues(dataset, [*own, *self.measure.on_dataset(dataset)])
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
        self.cases.shown(case)
        if self.dataset is not None:  # the cases listed but not read yet, once this one shows
            dataset = self.dataset
            self.docks.tree.read_pending(dataset, lambda: self.docks.show_issues(dataset))
        QtCore.QTimer.singleShot(0, self.views_ready.emit)

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

    def _on_hover_text(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(text)

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
        self.tasks.cancel()
        self.measure.flush()
        self.grid.shutdown()
        self.worker.shutdown()
        super().closeEvent(event)
