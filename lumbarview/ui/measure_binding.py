"""The measurement tools and the session file, bound to the main window.

Builds the tool controller, the measurement items of every view and the measurement table;
autosaves the session into the user's workspace after every change (atomically, through
``services.session_store``, never into the dataset); offers the last session when a dataset
is reopened; restores a session named on the command line (``view --session FILE``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtWidgets

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.services.session_store import (
    SessionFile,
    SessionStore,
    apply,
    default_session_file,
    find_by_fingerprint,
    locate_dataset,
    open_session_file,
    restored_whole,
)
from lumbarview.ui.items.measurement_items import MeasurementItems, placement
from lumbarview.ui.panels.measurements import MeasurementPanel
from lumbarview.ui.views.tools import ToolController

if TYPE_CHECKING:
    from lumbarview.ui.main_window import MainWindow

AUTOSAVE_DELAY_MS = 250


class MeasureBinding(QtCore.QObject):
    """Everything the window needs for measurements and sessions (see the module docstring)."""

    restored = QtCore.Signal(object)  # list[LoadIssue]

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        session = window.session
        self.session = session
        self.layers = {name: MeasurementItems(view, session) for name, view in window.views.items()}
        self.tools = ToolController(window.views, self.layers)
        self.tools.message.connect(lambda text: window.statusBar().showMessage(text))
        self.panel = MeasurementPanel(session)
        self.panel.jump.connect(self.go_to)
        self.store: SessionStore | None = None
        self.pending: tuple[SessionFile, str] | None = None  # restored when its case is shown
        self.offered: SessionFile | None = None
        self.offered_from = "session"  # the file the offered session was read from
        self.issues: list[LoadIssue] = []
        self._open_issues: list[LoadIssue] = []  # from opening a session file, shown with the restore
        self._notices: list[LoadIssue] = []  # announced (status bar, issues dock, dialog) once the case shows
        self._armed = False  # no autosave before the user changed something or restored
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_DELAY_MS)
        self._timer.timeout.connect(self.autosave_now)
        session.undo.changed.connect(self._on_change)
        session.measurements.changed.connect(self._on_change)

    # -- autosave ---------------------------------------------------------------------------------
    def _on_change(self) -> None:
        if self.session.undo.can_undo or self.session.measurements.selected is not None:
            self._armed = True
        if self._armed and self.store is not None:
            self._timer.start()

    def flush(self) -> None:
        """Write the session now if it changed since it was opened (the window is closing)."""
        if self._timer.isActive() or self._armed:
            self.autosave_now()

    def autosave_now(self) -> None:
        self._timer.stop()
        if self.store is None or self.session.dataset is None:
            return
        before = len(self.store.kept_aside)
        try:
            self.store.save(self.session)
        except OSError as exc:
            self.window.statusBar().showMessage(f"The session could not be saved to {self.store.path}: "
                                                f"{exc.strerror or exc}")
            return
        for backup in self.store.kept_aside[before:]:
            self._announce(LoadIssue(
                Severity.WARNING, "session.kept-aside",
                f"The earlier session of this dataset was not restored whole into this one, so it was kept as "
                f"{backup} before this session was saved (rename it to {self.store.path.name} to go back to it).",
                str(backup)))

    def _announce(self, issue: LoadIssue) -> None:
        """Say ``issue`` where it cannot be missed: the status bar, the issues panel (shown) and,
        with dialogs allowed, a message box that does not block the window."""
        self.issues = [*self.issues, issue]
        self.window.statusBar().showMessage(issue.message)
        self.window.docks.add_issues(self.window.dataset, [issue])
        if not os.environ.get("LUMBARVIEW_NO_DIALOGS"):
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "lumbarview", issue.message,
                                        QtWidgets.QMessageBox.StandardButton.Ok, self.window)
            box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    # -- datasets and cases -------------------------------------------------------------------------
    def on_dataset(self, dataset: Dataset) -> list[LoadIssue]:
        """A dataset was opened: its session store; the last session is offered (or restored when
        a session file was asked for). Returns issues for the issues panel."""
        self._armed = False
        self.store = SessionStore(default_session_file(dataset.path))
        self.offered = None
        if self.pending is not None:
            return []
        opened = self.store.open()
        self.offered = opened.doc if opened.doc is not None and opened.doc.measurements else None
        self.offered_from = str(self.store.path)
        if opened.backup is not None:  # set aside as unreadable: said once the case shows
            self._notices = list(opened.issues)
            return []
        if opened.issues:
            self.window.statusBar().showMessage(opened.issues[0].message)
        if opened.doc is None and not self.store.exists():
            # A copied or moved dataset: its session is found by its content, not its path.
            found = find_by_fingerprint(dataset)
            if found is not None:
                copy = open_session_file(found)
                if copy.doc is not None:
                    self.offered, self.offered_from = copy.doc, str(found)
        return list(opened.issues)

    def first_case(self, dataset: Dataset) -> Case | None:
        """The case to show first: the pending session's, else the offered session's (so that it
        is offered at all: the offer is made for the case on screen), else the first."""
        wanted = self.pending[0].case if self.pending is not None else None
        if wanted is None and self.offered is not None:
            wanted = self.offered.case
        return dataset.case(wanted) if wanted else None

    def on_case_shown(self) -> None:
        """After the case is shown: what must not be missed (a session set aside as unreadable),
        then restore the pending session, or offer the last one."""
        notices, self._notices = self._notices, []
        for notice in notices:
            self._announce(notice)
        if self.pending is not None:
            doc, source = self.pending
            self.pending = None
            self._restore(doc, source)
        elif self.offered is not None and self.offered.case in (None, *(c.id for c in [self.session.case] if c)):
            doc, self.offered = self.offered, None
            source = self.offered_from
            if os.environ.get("LUMBARVIEW_NO_DIALOGS"):
                self.offered = doc
                self.window.statusBar().showMessage(
                    f"A saved session of this dataset has {len(doc.measurements)} measurement(s): "
                    "Tools > Restore last session")
                return
            copied = "" if self.store is None or source == str(self.store.path) else \
                f" (found by its content: saved for {doc.dataset_path})"
            answer = QtWidgets.QMessageBox.question(
                self.window, "lumbarview", f"Restore the last session of this dataset{copied} "
                f"({len(doc.measurements)} measurement(s), saved {doc.saved_at or 'earlier'})? If you do not, it "
                "is kept aside, not overwritten, when this session is saved.")
            if answer == QtWidgets.QMessageBox.StandardButton.Yes:
                self._restore(doc, source)

    def restore_last(self) -> None:
        """Tools > Restore last session."""
        if self.offered is None and self.store is not None:
            opened = self.store.open()
            self.offered, self.offered_from = opened.doc, str(self.store.path)
        if self.offered is None:
            self.window.statusBar().showMessage("No saved session for this dataset")
            return
        doc, self.offered = self.offered, None
        self._restore(doc, self.offered_from)

    def _restore(self, doc: SessionFile, source: str) -> None:
        try:
            applied = apply(self.session, doc, source)
        except Exception as exc:  # the last line: a restore never stops the window
            applied = [LoadIssue(Severity.ERROR, "session.entry-skipped",
                                 f"The session could not be restored whole ({type(exc).__name__}: {exc}); what was "
                                 "restored is shown", source)]
        issues = [*self._open_issues, *applied]
        self._open_issues = []
        if self.store is not None and source == str(self.store.path) and restored_whole(issues):
            self.store.adopt()  # its content is all in this session: saves may replace it
        self.window.set_layout(self.session.layout)
        self.issues = issues
        self._armed = True
        n = len(self.session.measurements)
        self.window.statusBar().showMessage(
            f"Session restored: {n} measurement(s)" + (f"; {len(issues)} problem(s), see the issues panel"
                                                        if issues else ""))
        if issues:
            self.window.docks.add_issues(self.window.dataset, issues)
        self.autosave_now()  # after the restore's issues: what it kept aside is said last, in the status bar
        self.restored.emit(self.issues)

    # -- session files named by the user ---------------------------------------------------------------
    def open_session(self, path: str, dataset_path: str | None = None) -> bool:
        """Open the session file ``path`` (its dataset, found through its paths, unless
        ``dataset_path`` is given); False with a message when it cannot be."""
        opened = open_session_file(path)
        if opened.doc is None:
            self._report(opened.issues)
            return False
        self.issues = list(opened.issues)
        if dataset_path is None:
            found, issues = locate_dataset(opened.doc, path)
            self.issues = [*opened.issues, *issues]
            if found is None:
                self._report(self.issues)
                return False
            dataset_path = found
        self.pending = (opened.doc, path)
        self._open_issues = list(self.issues)
        self.window.open(dataset_path)
        return True

    def save_as(self, path: str) -> None:
        try:
            SessionStore(path).save(self.session)
        except OSError as exc:
            self.window.statusBar().showMessage(f"Could not save the session to {path}: {exc.strerror or exc}")
            return
        self.window.statusBar().showMessage(f"Session saved to {path}")

    def _report(self, issues: list[LoadIssue]) -> None:
        message = "; ".join(i.message for i in issues) or "The session could not be opened"
        self.window.statusBar().showMessage(message)
        self.window.load_failed.emit(message)

    # -- the table's click: go to the measurement's plane -------------------------------------------
    def go_to(self, ident: str) -> None:
        """Show the measurement's plane in the view that shows its orientation (the oblique view,
        or the most parallel one, takes a custom plane when none does) and centre on it."""
        m = self.session.measurements.get(ident)
        if m is None:
            return
        self.session.measurements.select(ident)
        centre = m.centre_lps()
        views = self.window.visible_views()
        self.session.cursor.set_crosshair(centre)
        if any(placement(m, v.view_state) == "on" for v in views):
            for v in views:
                if placement(m, v.view_state) == "on":
                    v.zoom_to(centre, field_mm=max(60.0, 3 * float(np.ptp(m.points, axis=0).max())))
            return
        plane = m.view_plane()
        if plane is None:
            return
        normal = np.asarray(plane.normal_lps)
        best = max(views, key=lambda v: abs(float(v.plane.normal_lps @ normal)) if v.plane is not None else -1.0)
        target = next((v for v in views if v.name == "oblique"), best)
        series = next((s for s in (self.session.case.series if self.session.case else []) if s.uid == m.series),
                      None) or target.view_state.series
        source = series.stacks[0] if series is not None and series.stacks else None
        if source is None:
            return
        from lumbarview.slicing.planes import covering_plane

        pixel = min(source.geometry.spacing_mm)
        covering = covering_plane(source.geometry, plane.right_lps, plane.down_lps, centre, pixel)
        self.session.set_plane(target.name, covering, series, f"go to {m.kind}", cursor_lps=centre)
        target.fit()
