"""The main window: dataset browser, linked sagittal and axial views, issues and tag panels."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.errors import Cancelled, LumbarviewError
from lumbarview.core.types import ImageStack, LoadIssue, Series, Severity
from lumbarview.model.cursor import CursorModel
from lumbarview.model.flags import FlagStore, default_flag_file
from lumbarview.model.overlays import OverlayModel
from lumbarview.model.view_state import WindowLevel
from lumbarview.model.window_presets import default_window, preset_window
from lumbarview.services.annotations import case_annotations, case_summary
from lumbarview.services.open_dataset import open_path
from lumbarview.slicing.cache import SliceCache
from lumbarview.ui import theme
from lumbarview.ui.overlay_items import OverlayItems
from lumbarview.ui.panels import AnnotationPanel, IssuesPanel, LayerPanel, ShortcutsDialog, SummaryPanel, TagPanel
from lumbarview.ui.slice_view import SERIES_MIME, SliceView
from lumbarview.ui.threading import Worker, call_in_gui_thread

ORG, APP = "lumbarview", "lumbarview"
_MAX_RECENT = 8


def best_series(case: Case, orientation: str, exclude: set[str] | frozenset[str] = frozenset()) -> Series | None:
    """The series a reader would start with: the right orientation, T2 before T1, then the most
    slices (series in ``exclude``, e.g. those that failed to decode, are passed over)."""
    candidates = [s for s in case.series if s.uid not in exclude and s.stacks and all(
        k.geometry.orientation.value == orientation for k in s.stacks)
        and s.stacks[0].meta.get("has_patient_geometry", True)]
    if not candidates:
        return None

    def score(s: Series) -> tuple[int, int]:
        text = (s.description or "").upper()
        return (2 if "T2" in text else 1 if "T1" in text else 0, s.n_slices)

    return max(candidates, key=score)


class _SeriesTree(QtWidgets.QTreeWidget):
    """Cases -> series; series items can be dragged onto a view."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Series", "Orientation", "Slices"])
        self.setDragEnabled(True)
        self.setIconSize(QtCore.QSize(48, 48))
        self.setRootIsDecorated(True)
        self.header().setStretchLastSection(False)
        self.header().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.header().setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.header().setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumWidth(330)

    def mimeData(self, items: Any) -> QtCore.QMimeData:
        data = QtCore.QMimeData()
        uid = items[0].data(0, QtCore.Qt.ItemDataRole.UserRole) if items else None
        if uid:
            data.setData(SERIES_MIME, QtCore.QByteArray(str(uid).encode()))
        return data


class WindowMemory(dict):  # type: ignore[type-arg]
    """Window/level per series, remembered across sessions in QSettings (keyed by series UID)."""

    def __init__(self, settings: QtCore.QSettings) -> None:
        super().__init__()
        self._settings = settings

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        stored = self._settings.value(f"windows/{key}")
        if isinstance(stored, str):
            try:
                center, width, invert = stored.split(",")
                value = WindowLevel(float(center), float(width), invert == "1")
            except ValueError:
                return default
            super().__setitem__(key, value)
            return value
        return default

    def __setitem__(self, key: str, value: WindowLevel) -> None:
        super().__setitem__(key, value)
        self._settings.setValue(f"windows/{key}", f"{value.center},{value.width},{int(value.invert)}")


class MainWindow(QtWidgets.QMainWindow):
    """Owns the session: dataset, cursor, slice cache and the views observing them."""

    dataset_loaded = QtCore.Signal(object)
    views_ready = QtCore.Signal()
    load_failed = QtCore.Signal(str)

    def __init__(self, cache_bytes: int = 512 * 2**20) -> None:
        super().__init__()
        self.setWindowTitle("lumbarview")
        self.settings = QtCore.QSettings(ORG, APP)
        self.cursor = CursorModel()
        self.cache = SliceCache(cache_bytes)
        self.worker = Worker(max_workers=2)
        self.window_memory: dict[str, WindowLevel] = WindowMemory(self.settings)
        self.dataset: Dataset | None = None
        self.case: Case | None = None
        self._series_by_uid: dict[str, tuple[Case, Series]] = {}
        self._cancel: threading.Event | None = None
        self._progress: QtWidgets.QProgressDialog | None = None
        self._linked = False

        self.sagittal = SliceView("sagittal", self.cursor, self.cache, self.window_memory, default_window,
                                  self._prefetch)
        self.axial = SliceView("axial", self.cursor, self.cache, self.window_memory, default_window,
                               self._prefetch)
        self.views = [self.sagittal, self.axial]
        self.overlays = OverlayModel()
        for view in self.views:
            view.overlay = OverlayItems(view, self.overlays)
        self.flags: FlagStore | None = None
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        for view in self.views:
            self.splitter.addWidget(view)
            view.hover_text.connect(self._on_hover_text)
            view.series_dropped.connect(lambda uid, v=view: self.show_series_in(v, uid))
        # (a third pane, the 3D view, joins this splitter in a later release)
        self.start_page = self._make_start_page()
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.splitter)
        self.setCentralWidget(self.stack)

        self.tree = _SeriesTree()
        self.tree.itemDoubleClicked.connect(self._on_tree_double_click)
        self.browser_dock = self._dock("Browser", self.tree, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.issues_panel = IssuesPanel()
        self.issues_dock = self._dock("Load issues", self.issues_panel, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tag_panel = TagPanel()
        self.tag_dock = self._dock("DICOM tags", self.tag_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.layer_panel = LayerPanel(self.overlays)
        self.layer_dock = self._dock("Layers", self.layer_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.annotation_panel = AnnotationPanel()
        self.annotation_panel.jump.connect(self._jump_to_annotation)
        self.annotation_dock = self._dock("Annotations", self.annotation_panel,
                                          QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.summary_panel = SummaryPanel()
        self.summary_dock = self._dock("Case summary", self.summary_panel, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tag_dock.hide()
        self.issues_dock.hide()
        self.sagittal.painted.connect(self._on_view_painted)
        self.axial.painted.connect(self._on_view_painted)
        self._make_menus()
        self.statusBar().showMessage("Ready")
        self.setAcceptDrops(True)
        self.resize(1400, 860)
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QtCore.QByteArray):
            self.restoreState(state)

    # -- construction ---------------------------------------------------------------------
    def _dock(self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _make_start_page(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        layout.addStretch(1)
        title = QtWidgets.QLabel("<h2>lumbarview</h2><p>Open a lumbar MRI dataset folder, a DICOMDIR or an "
                                 "image file, or drop one on this window.</p>")
        title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        open_button = QtWidgets.QPushButton("Open folder…")
        open_button.clicked.connect(self.choose_folder)
        demo_button = QtWidgets.QPushButton("Open the demo")
        demo_button.clicked.connect(self.open_demo)
        buttons.addWidget(open_button)
        buttons.addWidget(demo_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.recent_list = QtWidgets.QListWidget()
        self.recent_list.setMaximumWidth(700)
        self.recent_list.itemActivated.connect(lambda item: self.open(item.text()))
        recent_box = QtWidgets.QHBoxLayout()
        recent_box.addStretch(1)
        recent_box.addWidget(self.recent_list)
        recent_box.addStretch(1)
        layout.addWidget(QtWidgets.QLabel("Recent", alignment=QtCore.Qt.AlignmentFlag.AlignCenter))
        layout.addLayout(recent_box)
        layout.addStretch(2)
        self._refresh_recent()
        return page

    def _make_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&Open folder…", self.choose_folder, "Ctrl+O")
        self._action(file_menu, "Open &demo", self.open_demo)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._refresh_recent()
        file_menu.addSeparator()
        self._action(file_menu, "Save screenshot of the &window…", lambda: self.save_screenshot(None), "Ctrl+Shift+S")
        self._action(file_menu, "Save screenshot of the &sagittal view…",
                     lambda: self.save_screenshot(self.sagittal))
        self._action(file_menu, "Save screenshot of the &axial view…", lambda: self.save_screenshot(self.axial))
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, "Ctrl+Q")
        view_menu = bar.addMenu("&View")
        self._action(view_menu, "&Fit to window", self._fit_all, "F")
        self._action(view_menu, "&Reset zoom and window", self._reset_views, "R")
        self._action(view_menu, "&Cine play (focused view)", self._toggle_cine, "Space")
        self._action(view_menu, "&Invert (focused view)", self._invert, "I")
        wl_menu = view_menu.addMenu("&Window/level preset")
        for n, name in enumerate(("auto", "dicom", "T1", "T2"), start=1):
            self._action(wl_menu, {"auto": "Automatic (1-99 %)", "dicom": "DICOM window"}.get(name, name),
                         lambda _=False, p=name: self._apply_preset(p), f"Ctrl+{n}")
        view_menu.addSeparator()
        for dock in (self.browser_dock, self.layer_dock, self.annotation_dock, self.summary_dock,
                     self.issues_dock, self.tag_dock):
            view_menu.addAction(dock.toggleViewAction())
        case_menu = bar.addMenu("&Case")
        self._action(case_menu, "&Next case", lambda: self.step_case(1), "Alt+Right")
        self._action(case_menu, "&Previous case", lambda: self.step_case(-1), "Alt+Left")
        self._action(case_menu, "Next &annotation", lambda: self.annotation_panel.step(1), "Alt+Down")
        self._action(case_menu, "Previous a&nnotation", lambda: self.annotation_panel.step(-1), "Alt+Up")
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", lambda: ShortcutsDialog(self).exec(), "F1")

    def _action(self, menu: QtWidgets.QMenu, text: str, slot: Any, shortcut: str | None = None) -> QtGui.QAction:
        action = menu.addAction(text)
        action.triggered.connect(slot)
        if shortcut:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        return action

    # -- opening --------------------------------------------------------------------------
    def choose_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a dataset folder")
        if path:
            self.open(path)

    def open_demo(self) -> None:
        from lumbarview.io.dicom.scan import default_cache_dir
        from lumbarview.services.demo import ensure_demo

        self._run_with_progress("Preparing the demo dataset…",
                                lambda progress, cancel: ensure_demo(default_cache_dir() / "demo")["sudirman"],
                                lambda root: self.open(str(root)))

    def open(self, path: str) -> None:
        """Open a dataset off the GUI thread, with a progress bar that can cancel."""
        self._run_with_progress(f"Opening {path}…",
                                lambda progress, cancel: open_path(path, progress=progress, cancel=cancel),
                                lambda ds: self._on_dataset(path, ds))

    def _run_with_progress(self, label: str, job: Any, done: Any) -> None:
        cancel = threading.Event()
        self._cancel = cancel
        dialog = QtWidgets.QProgressDialog(label, "Cancel", 0, 0, self)
        dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(cancel.set)
        self._progress = dialog

        def progress(n: int, total: int) -> None:
            def update() -> None:
                if self._progress is dialog:
                    dialog.setMaximum(max(total, 1))
                    dialog.setValue(n)
            call_in_gui_thread(update)

        def finished(result: Any) -> None:
            dialog.reset()
            self._progress = None
            done(result)

        def failed(error: BaseException) -> None:
            dialog.reset()
            self._progress = None
            if isinstance(error, Cancelled):
                self.statusBar().showMessage("Opening cancelled")
                return
            message = str(error) if isinstance(error, LumbarviewError) else (
                f"Unexpected error: {type(error).__name__}: {error}")
            self.statusBar().showMessage(message)
            self.load_failed.emit(message)
            if not os.environ.get("LUMBARVIEW_NO_DIALOGS"):
                QtWidgets.QMessageBox.warning(self, "lumbarview", message)

        self.worker.submit(lambda: job(progress, cancel), finished, failed)

    def _on_dataset(self, path: str, dataset: Dataset) -> None:
        self.dataset = dataset
        self._remember_recent(path)
        self._series_by_uid = {s.uid: (c, s) for c in dataset.cases for s in c.series}
        self._fill_tree(dataset)
        self.issues_panel.set_issues(dataset.all_issues())
        n_issues = sum(1 for i in dataset.all_issues() if i.severity.name != "INFO")
        if n_issues:
            self.issues_dock.show()
        self.setWindowTitle(f"lumbarview — {Path(path).name} ({dataset.layout})")
        self.flags = FlagStore(default_flag_file(dataset.path), dataset.path)
        if self.flags.notice and self.flags.issue is not None:
            self.statusBar().showMessage(self.flags.notice)
            self.issues_panel.set_issues([*dataset.all_issues(), self.flags.issue])
            self.issues_dock.show()
        self.stack.setCurrentWidget(self.splitter)
        self.dataset_loaded.emit(dataset)
        if dataset.cases:
            self.show_case(dataset.cases[0])

    def show_case(self, case: Case) -> None:
        """Fill the views with the case's best sagittal and axial series that decode."""
        self.case = case
        self.statusBar().showMessage(f"Loading case {case.id}…")
        wanted: list[tuple[SliceView, Series]] = []
        sag: Series | None = None
        ax: Series | None = None

        def decodes(series: Series) -> bool:
            for stack in series.stacks:
                try:
                    stack.pixels()  # decode off the GUI thread
                except LumbarviewError as exc:  # one damaged series: say so, try the next best
                    case.issues.append(LoadIssue(Severity.ERROR, "image.unreadable", str(exc),
                                                 stack.meta.get("source")))
                    return False
                default_window(stack)
            return True

        def choose(orientation: str | None, failed: set[str]) -> Series | None:
            while True:
                if orientation is None:
                    series = next((s for s in case.series if s.uid not in failed and s.stacks), None)
                else:
                    series = best_series(case, orientation, exclude=failed)
                if series is None or decodes(series):
                    return series
                failed.add(series.uid)

        def load() -> list[Any]:
            nonlocal sag, ax, wanted
            failed: set[str] = set()
            sag = choose("sagittal", failed)
            ax = choose("axial", failed)
            if sag is None and ax is None:
                sag = choose(None, failed)
            wanted = [(v, s) for v, s in ((self.sagittal, sag), (self.axial, ax)) if s is not None]
            for label_map in case.label_maps:
                try:
                    label_map.stack.pixels()
                except LumbarviewError as exc:
                    case.issues.append(LoadIssue(Severity.ERROR, "labels.unreadable", str(exc), label_map.source))
            case.label_maps[:] = [m for m in case.label_maps if m.stack.is_loaded]
            # The summary shares the disc centroids' cost: both are worked out here, off the GUI thread.
            return case_annotations(case), case_summary(case)

        def done(result: Any) -> None:
            annotations, summary = result
            if case.issues:
                self.issues_panel.set_issues(self.dataset.all_issues() if self.dataset else case.issues)
            if not wanted:
                self.statusBar().showMessage(f"Case {case.id}: no image could be decoded; see the issues panel")
                self.issues_dock.show()
                QtCore.QTimer.singleShot(0, self.views_ready.emit)
                return
            self.overlays.set_case(case, {k.uid for _, series in wanted for k in series.stacks})
            self.annotation_panel.set_rows(annotations, self.flags)
            # Panels with nothing to show give their room to the images.
            self.layer_dock.setVisible(bool(self.overlays.layers))
            self.annotation_dock.setVisible(bool(annotations))
            self.summary_panel.show_summary(case.id, summary)
            # Start at the middle of the axial series (or the sagittal one): both views show it.
            anchor = ax or sag
            assert anchor is not None
            mid = anchor.stacks[len(anchor.stacks) // 2]
            k, j, i = mid.geometry.shape_kji
            self.cursor.set_crosshair(mid.geometry.index_to_lps(((i - 1) / 2, (j - 1) / 2, (k - 1) // 2)))
            for view, series in wanted:
                view.set_series(series, f"case {case.id}")
            if sag is not None and ax is not None and not self._linked:
                # Linked once: the view states persist and follow whatever series they show.
                self.sagittal.add_reference(self.axial.state, all_slices=True)  # type: ignore[arg-type]
                self.axial.add_reference(self.sagittal.state, all_slices=False)  # type: ignore[arg-type]
                self._linked = True
            self.statusBar().showMessage(f"Case {case.id}: {len(case.series)} series")
            self._update_tags()
            self._prefetch_case(1)
            QtCore.QTimer.singleShot(0, self.views_ready.emit)

        self.worker.submit(load, done, lambda e: self.statusBar().showMessage(f"Cannot load case {case.id}: {e}"))

    def step_case(self, delta: int) -> None:
        """Next / previous case of the dataset."""
        if self.dataset is None or not self.dataset.cases:
            return
        i = self.dataset.cases.index(self.case) if self.case in self.dataset.cases else 0
        j = (i + delta) % len(self.dataset.cases)
        self.show_case(self.dataset.cases[j])

    def _prefetch_case(self, delta: int) -> None:
        """Decode the next case's series in the background while this one is read."""
        if self.dataset is None or self.case not in self.dataset.cases or len(self.dataset.cases) < 2:
            return
        nxt = self.dataset.cases[(self.dataset.cases.index(self.case) + delta) % len(self.dataset.cases)]

        def load() -> None:
            for series in (best_series(nxt, "sagittal"), best_series(nxt, "axial")):
                for stack in series.stacks if series else []:
                    stack.pixels()

        self.worker.submit(load, lambda _: None, lambda e: None)

    def _jump_to_annotation(self, annotation: Any) -> None:
        if annotation.position_lps is not None:
            self.cursor.set_crosshair(annotation.position_lps)

    def show_series_in(self, view: SliceView, uid: str) -> None:
        found = self._series_by_uid.get(uid)
        if found is None:
            return
        case, series = found

        def load() -> None:
            for stack in series.stacks:
                stack.pixels()

        self.worker.submit(load, lambda _: view.set_series(series, f"case {case.id}"),
                           lambda e: self.statusBar().showMessage(f"Cannot load {series.description}: {e}"))

    def _prefetch(self, stack: ImageStack, ks: list[int]) -> None:
        self.cache.prefetch(stack, ks, self.worker.executor)

    # -- browser --------------------------------------------------------------------------
    def _fill_tree(self, dataset: Dataset) -> None:
        self.tree.clear()
        for case in dataset.cases:
            case_item = QtWidgets.QTreeWidgetItem([f"case {case.id}", "", ""])
            self.tree.addTopLevelItem(case_item)
            for series in case.series:
                orientation = {k.geometry.orientation.value for k in series.stacks}
                item = QtWidgets.QTreeWidgetItem([
                    series.description or series.uid, "/".join(sorted(orientation)), str(series.n_slices)])
                item.setData(0, QtCore.Qt.ItemDataRole.UserRole, series.uid)
                blocks = len(series.stacks)
                if blocks > 1:
                    item.setToolTip(0, f"{blocks} stacks (blocks at different angles or grids)")
                case_item.addChild(item)
                self._thumbnail(series, item)
            case_item.setExpanded(True)

    def _thumbnail(self, series: Series, item: QtWidgets.QTreeWidgetItem) -> None:
        stack = series.stacks[len(series.stacks) // 2]

        def make() -> np.ndarray:
            pixels = stack.pixels()
            image = np.asarray(pixels[pixels.shape[0] // 2], dtype=np.float32)
            step = max(1, max(image.shape) // 48)
            small = image[::step, ::step]
            lo, hi = np.percentile(small, (1, 99))
            return np.clip((small - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)

        def show(array: np.ndarray) -> None:
            h, w = array.shape
            qimage = QtGui.QImage(np.ascontiguousarray(array).data, w, h, w, QtGui.QImage.Format.Format_Grayscale8)
            item.setIcon(0, QtGui.QIcon(QtGui.QPixmap.fromImage(qimage.copy())))

        def failed(error: BaseException) -> None:
            item.setToolTip(0, f"cannot be decoded: {error}")
            item.setForeground(0, QtGui.QBrush(QtGui.QColor("#d08080")))

        self.worker.submit(make, show, failed)

    def _on_tree_double_click(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        uid = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
        if not uid:
            return
        found = self._series_by_uid.get(str(uid))
        if found is None:
            return
        orientation = {k.geometry.orientation.value for k in found[1].stacks}
        view = self.axial if orientation == {"axial"} else self.sagittal
        self.show_series_in(view, str(uid))

    # -- view helpers ---------------------------------------------------------------------
    def _focused_view(self) -> SliceView:
        for view in self.views:
            if view.hasFocus():
                return view
        return self.sagittal

    def _fit_all(self) -> None:
        for view in self.views:
            view.fit()

    def _reset_views(self) -> None:
        for view in self.views:
            view.fit()
            state = view.state
            current = state.current if state else None
            if state is not None and current is not None:
                view.set_window(default_window(current.stack))

    def _toggle_cine(self) -> None:
        self._focused_view().toggle_cine()

    def _invert(self) -> None:
        view = self._focused_view()
        if view.state is not None and view.state.window is not None:
            w = view.state.window
            view.set_window(WindowLevel(w.center, w.width, not w.invert))

    def _apply_preset(self, name: str) -> None:
        view = self._focused_view()
        current = view.state.current if view.state else None
        if current is None:
            return
        window = preset_window(current.stack, name)
        if window is None:
            self.statusBar().showMessage(f"No {name} window in this series")
            return
        view.set_window(window)

    def _on_hover_text(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(text)

    def _on_view_painted(self) -> None:
        if self.tag_dock.isVisible():
            self._update_tags()

    def _update_tags(self) -> None:
        current = self.sagittal.state.current if self.sagittal.state else None
        focused = self._focused_view()
        if focused.state is not None and focused.state.current is not None:
            current = focused.state.current
        if current is None:
            self.tag_panel.show_file(None)
            return
        files = current.stack.meta.get("files")
        self.tag_panel.show_file(files[current.k] if files else None)

    def save_screenshot(self, view: SliceView | None, path: str | None = None) -> str | None:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save screenshot", "lumbarview.png",
                                                            "PNG images (*.png)")
            if not path:
                return None
        target = view if view is not None else self
        ok = target.grab().save(path)
        self.statusBar().showMessage(f"Saved {path}" if ok else f"Could not save {path}")
        return path if ok else None

    # -- recent files and drag and drop ---------------------------------------------------
    def _remember_recent(self, path: str) -> None:
        recent = [p for p in self._recent() if p != path]
        recent.insert(0, path)
        self.settings.setValue("recent", recent[:_MAX_RECENT])
        self._refresh_recent()

    def _recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            return [value]
        return [str(v) for v in (value or [])]

    def _refresh_recent(self) -> None:
        recent = self._recent()
        if hasattr(self, "recent_list"):
            self.recent_list.clear()
            self.recent_list.addItems(recent)
        if hasattr(self, "recent_menu"):
            self.recent_menu.clear()
            for path in recent:
                self._action(self.recent_menu, path, lambda _=False, p=path: self.open(p))

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        urls = event.mimeData().urls()
        if urls:
            self.open(urls[0].toLocalFile())
            event.acceptProposedAction()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        if self._cancel is not None:
            self._cancel.set()
        for view in self.views:
            view.cine.stop()
        self.worker.shutdown()
        super().closeEvent(event)


__all__ = ["MainWindow", "best_series", "theme"]
