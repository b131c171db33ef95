"""The Studies window: the local study database (search, import, open, delete) and a PACS
(find, retrieve series with progress and cancel, a preview of the first slice as soon as it
arrives).

Every database query, import and network operation runs off the GUI thread (its own worker);
results come back through :func:`call_in_gui_thread`. Double-clicking a study emits
:attr:`StudiesWindow.open_study` with its Study Instance UID.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.errors import Cancelled, LumbarviewError
from lumbarview.services.pacs.servers import load_config, resolve_server
from lumbarview.services.study_db import StudyDatabase, StudyQuery, StudyRecord, slice_preview
from lumbarview.ui.threading import Worker, call_in_gui_thread

_COLUMNS = ("Date", "Patient ID", "Patient name", "Description", "Series", "Instances", "UID")
_UID_ROLE = QtCore.Qt.ItemDataRole.UserRole


def _fill(tree: QtWidgets.QTreeWidget, studies: Sequence[StudyRecord]) -> None:
    tree.clear()
    for study in studies:
        item = QtWidgets.QTreeWidgetItem([study.study_date, study.patient_id, study.patient_name, study.description,
                                          str(len(study.series)), str(sum(s.n_instances for s in study.series)),
                                          study.study_uid])
        item.setData(0, _UID_ROLE, ("study", study.study_uid))
        for series in study.series:
            child = QtWidgets.QTreeWidgetItem(["", series.modality, "", series.description, "",
                                               str(series.n_instances), series.uid])
            child.setData(0, _UID_ROLE, ("series", series.uid))
            item.addChild(child)
        tree.addTopLevelItem(item)
    for column in range(len(_COLUMNS) - 1):
        tree.resizeColumnToContents(column)


def _tree() -> QtWidgets.QTreeWidget:
    tree = QtWidgets.QTreeWidget()
    tree.setHeaderLabels(list(_COLUMNS))
    tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
    tree.setAlternatingRowColors(True)
    return tree


class StudiesWindow(QtWidgets.QWidget):
    """See the module. ``database``: the study database (the user's by default)."""

    open_study = QtCore.Signal(str)
    retrieve_finished = QtCore.Signal(object)  # the RetrieveResult, or the error
    first_instance = QtCore.Signal(str)  # the path of the first instance a retrieve stored

    def __init__(self, database: StudyDatabase | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.Window)
        self.setWindowTitle("lumbarview — Studies")
        self.db = database or StudyDatabase()
        self.worker = Worker(max_workers=1)  # database and network jobs, in order
        self.net = Worker(max_workers=1)  # a retrieve, so that searching goes on meanwhile
        self._cancel: threading.Event | None = None
        self._remote: list[StudyRecord] = []
        layout = QtWidgets.QVBoxLayout(self)

        # -- search ------------------------------------------------------------------------------
        form = QtWidgets.QHBoxLayout()
        self.fields: dict[str, QtWidgets.QLineEdit] = {}
        for key, label, hint in (("patient_id", "Patient ID", "e.g. P1*"), ("patient_name", "Name", "e.g. DOE*"),
                                 ("date", "Dates", "YYYYMMDD-YYYYMMDD"), ("modality", "Modality", "MR"),
                                 ("description", "Description", "words")):
            edit = QtWidgets.QLineEdit()
            edit.setPlaceholderText(hint)
            edit.returnPressed.connect(self.search)
            form.addWidget(QtWidgets.QLabel(label))
            form.addWidget(edit)
            self.fields[key] = edit
        self.search_button = QtWidgets.QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        form.addWidget(self.search_button)
        layout.addLayout(form)

        # -- the local database ------------------------------------------------------------------
        layout.addWidget(QtWidgets.QLabel("<b>This computer</b> (double-click a study to open it)"))
        self.local_tree = _tree()
        self.local_tree.itemDoubleClicked.connect(self._on_double_click)
        layout.addWidget(self.local_tree, 3)
        local_buttons = QtWidgets.QHBoxLayout()
        for text, slot in (("Import folder…", self.choose_import), ("Open", self.open_selected),
                           ("Remove from database", self.delete_selected)):
            button = QtWidgets.QPushButton(text)
            button.clicked.connect(slot)
            local_buttons.addWidget(button)
        local_buttons.addStretch(1)
        layout.addLayout(local_buttons)

        # -- a PACS ------------------------------------------------------------------------------
        pacs_row = QtWidgets.QHBoxLayout()
        pacs_row.addWidget(QtWidgets.QLabel("<b>PACS</b>"))
        self.server_box = QtWidgets.QComboBox()
        self.server_box.setEditable(True)
        self.server_box.setMinimumWidth(320)
        line = self.server_box.lineEdit()
        if line is not None:
            line.setPlaceholderText("a configured name, dicom://AET@HOST:PORT or https://…")
        pacs_row.addWidget(self.server_box, 1)
        self.method_box = QtWidgets.QComboBox()
        self.method_box.addItems(["C-GET", "C-MOVE"])
        pacs_row.addWidget(self.method_box)
        self.find_button = QtWidgets.QPushButton("Find on PACS")
        self.find_button.clicked.connect(self.find_remote)
        pacs_row.addWidget(self.find_button)
        layout.addLayout(pacs_row)
        middle = QtWidgets.QHBoxLayout()
        self.remote_tree = _tree()
        middle.addWidget(self.remote_tree, 3)
        self.preview = QtWidgets.QLabel("The first slice of a retrieve shows here as soon as it arrives")
        self.preview.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.preview.setFixedSize(260, 260)
        self.preview.setWordWrap(True)
        self.preview.setStyleSheet("QLabel { border: 1px solid palette(mid); }")
        middle.addWidget(self.preview)
        layout.addLayout(middle, 3)
        retrieve_row = QtWidgets.QHBoxLayout()
        self.retrieve_button = QtWidgets.QPushButton("Retrieve selected series")
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        retrieve_row.addWidget(self.retrieve_button)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setFormat("%v / %m instances")
        self.progress.setValue(0)
        retrieve_row.addWidget(self.progress, 1)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        retrieve_row.addWidget(self.cancel_button)
        layout.addLayout(retrieve_row)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._load_servers()
        self.resize(1200, 760)
        self.search()

    # -- helpers ---------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _run(self, job: Callable[[], Any], done: Callable[[Any], None], worker: Worker | None = None) -> None:
        def failed(error: BaseException) -> None:
            message = str(error) if isinstance(error, LumbarviewError) else f"{type(error).__name__}: {error}"
            self._say(message)

        (worker or self.worker).submit(job, done, failed)

    def _load_servers(self) -> None:
        try:
            servers, _ = load_config()
        except LumbarviewError as exc:
            self._say(str(exc))
            return
        self.server_box.addItems(sorted(servers))

    def query(self) -> StudyQuery:
        """The search fields as a query (a bad date range raises ValueError)."""
        text = {k: e.text().strip() for k, e in self.fields.items()}
        date_from, date_to = StudyQuery.parse_date_range(text["date"]) if text["date"] else ("", "")
        return StudyQuery(patient_id=text["patient_id"], patient_name=text["patient_name"], date_from=date_from,
                          date_to=date_to, modality=text["modality"], description=text["description"])

    # -- local -----------------------------------------------------------------------------------
    def search(self) -> None:
        try:
            query = self.query()
        except ValueError as exc:
            self._say(f"Dates: {exc}")
            return

        def done(studies: list[StudyRecord]) -> None:
            _fill(self.local_tree, studies)
            self._say(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} in the database match")

        self._run(lambda: self.db.search(query), done)

    @staticmethod
    def _top(item: QtWidgets.QTreeWidgetItem) -> QtWidgets.QTreeWidgetItem:
        parent = item.parent()
        return item if parent is None else parent

    def _on_double_click(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        self.open_study.emit(self._top(item).data(0, _UID_ROLE)[1])

    def open_selected(self) -> None:
        items = self.local_tree.selectedItems()
        if items:
            self._on_double_click(items[0], 0)

    def choose_import(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Import a DICOM folder, disc or DICOMDIR folder")
        if folder:
            self.import_path(folder)

    def import_path(self, folder: str) -> None:
        self._say(f"Importing {folder}…")

        def done(report: Any) -> None:
            self._say(f"Imported {report.added} instance(s) ({report.already_there} already there, "
                      f"{len(report.issues)} issue(s))")
            self.search()

        self._run(lambda: self.db.import_path(folder), done)

    def delete_selected(self) -> None:
        uids = [i.data(0, _UID_ROLE)[1] for i in self.local_tree.selectedItems() if i.parent() is None]
        if not uids:
            return
        def done(_: object) -> None:
            self._say(f"Removed {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} (files outside the database's "
                      "store are kept)")
            self.search()

        self._run(lambda: [self.db.delete_study(u) for u in uids], done)

    # -- PACS ------------------------------------------------------------------------------------
    def _server(self) -> Any:
        text = self.server_box.currentText().strip()
        if not text:
            raise LumbarviewError("choose a PACS: a configured name, dicom://AET@HOST:PORT or an https:// root")
        return resolve_server(text)

    def find_remote(self) -> None:
        try:
            server, query = self._server(), self.query()
        except (LumbarviewError, ValueError) as exc:
            self._say(str(exc))
            return
        from lumbarview.services.pacs import dimse, web

        _, local = load_config()
        self._say(f"Searching {server.describe()}…")

        def find() -> list[StudyRecord]:
            if server.is_web:
                return web.find_studies(server, query.patient_id, query.patient_name, query.date_from, query.date_to,
                                        query.modality)
            return dimse.find_studies(server, query.patient_id, query.patient_name, query.date_from, query.date_to,
                                      query.modality, local=local)

        def done(studies: list[StudyRecord]) -> None:
            self._remote = studies
            _fill(self.remote_tree, studies)
            self._say(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} on {server.describe()}")

        self._run(find, done)

    def _selected_remote(self) -> tuple[str, list[str]] | None:
        """The study of the selection and its selected series (all of them for a study row)."""
        items = self.remote_tree.selectedItems()
        if not items:
            return None
        study_item = self._top(items[0])
        series = [i.data(0, _UID_ROLE)[1] for i in items if i.parent() is study_item]
        if not series:
            children = (study_item.child(k) for k in range(study_item.childCount()))
            series = [c.data(0, _UID_ROLE)[1] for c in children if c is not None]
        return study_item.data(0, _UID_ROLE)[1], series

    def retrieve_selected(self) -> None:
        chosen = self._selected_remote()
        if chosen is None:
            self._say("Select a study or some of its series in the PACS list first")
            return
        try:
            server = self._server()
        except LumbarviewError as exc:
            self._say(str(exc))
            return
        self.start_retrieve(server, *chosen)

    def start_retrieve(self, server: Any, study_uid: str, series_uids: list[str]) -> None:
        """Retrieve off the GUI thread: progress at most every 0.25 s, the first instance previewed."""
        from lumbarview.services.pacs import dimse, web

        cancel = self._cancel = threading.Event()
        method = "move" if self.method_box.currentText() == "C-MOVE" else "get"
        _, local = load_config()
        last = [0.0]
        first: list[str] = []
        self.cancel_button.setEnabled(True)
        self.retrieve_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first count
        self._say(f"Retrieving {len(series_uids)} series from {server.describe()}…")

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.25 or done >= total:
                last[0] = now
                call_in_gui_thread(lambda: self._set_progress(done, total))

        def arrived(path: str) -> None:
            if first:
                return
            first.append(path)
            try:
                image = slice_preview(path)
            except LumbarviewError:
                return
            call_in_gui_thread(lambda: self._show_preview(path, image))

        def job() -> Any:
            if server.is_web:
                return web.retrieve(server, study_uid, self.db, series_uids, progress=progress, cancel=cancel,
                                    on_instance=arrived)
            return dimse.retrieve(server, study_uid, self.db, series_uids, method, local, progress=progress,
                                  cancel=cancel, on_instance=arrived)

        def finished(result: Any) -> None:
            self._retrieve_over()
            self.progress.setRange(0, max(result.expected, 1))
            self.progress.setValue(result.expected)
            notes = "; ".join(result.messages[-1:] + [i.message for i in result.issues[:2]])
            self._say(f"Retrieved {result.received} instance(s) by {result.method.upper()} ({result.already_had} "
                      f"already here)" + (f". {notes}" if notes else ""))
            self.search()
            self.retrieve_finished.emit(result)

        def failed(error: BaseException) -> None:
            self._retrieve_over()
            if isinstance(error, Cancelled):
                self._say("Retrieve cancelled; what arrived is kept")
            else:
                self._say(str(error) if isinstance(error, LumbarviewError) else f"{type(error).__name__}: {error}")
            self.search()
            self.retrieve_finished.emit(error)

        self.net.submit(job, finished, failed)

    def _set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _show_preview(self, path: str, image: np.ndarray[Any, Any]) -> None:
        data = np.ascontiguousarray(image)
        qimage = QtGui.QImage(data.data, data.shape[1], data.shape[0], data.strides[0],
                              QtGui.QImage.Format.Format_Grayscale8).copy()
        self.preview.setPixmap(QtGui.QPixmap.fromImage(qimage).scaled(
            self.preview.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio))
        self.preview.setToolTip(path)
        self.first_instance.emit(path)

    def _retrieve_over(self) -> None:
        self.cancel_button.setEnabled(False)
        self.retrieve_button.setEnabled(True)
        self._cancel = None

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self._say("Cancelling…")

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.cancel()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the workers and close the database (the window is going away)."""
        self.cancel()
        self.worker.shutdown()
        self.net.shutdown()
