"""The measurement tools and the session file, bound to the window through its :class:`~lumbarview.ui.shell.Shell`.

Builds the tool controller, the measurement items of every view and the measurement table;
autosaves the session into the user's workspace after every change (atomically, through
``services.session_store``, never into the dataset); offers the last session when a dataset
is reopened; restores a session named on the command line (``view --session FILE``).
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.model.session import Session
from lumbarview.services.case_browser import find_series
from lumbarview.services.session_store import (
    Opened,
    SessionFile,
    SessionStore,
    apply,
    find_by_fingerprint,
    locate_dataset,
    open_session_file,
    restored_whole,
)
from lumbarview.services.session_writer import SessionWriter, open_autosave
from lumbarview.services.view_planes import plan_go_to
from lumbarview.ui.items.measurement_items import MeasurementItems
from lumbarview.ui.panels.measurements import MeasurementPanel
from lumbarview.ui.shell import Shell
from lumbarview.ui.threading import call_in_gui_thread
from lumbarview.ui.views.slice_view import SliceView
from lumbarview.ui.views.tools import ToolController

AUTOSAVE_DELAY_MS = 250


class MeasureBinding(QtCore.QObject):
    """Everything the window needs for measurements and sessions (see the module docstring)."""

    restored = QtCore.Signal(object)  # list[LoadIssue]

    def __init__(self, shell: Shell, session: Session, views: dict[str, SliceView]) -> None:
        super().__init__()
        self.shell = shell
        self.session = session
        self.views = views
        self.layers = {name: MeasurementItems(view, session) for name, view in views.items()}
        self.tools = ToolController(views, self.layers)
        self.tools.message.connect(shell.status)
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
        # Autosaves are written on a background thread (services.session_writer): the GUI never
        # waits for a disk; a failure is told in the status bar.
        self.writer = SessionWriter(failed=lambda path, exc: call_in_gui_thread(
            lambda: shell.status(f"The session could not be saved to {path}: {exc.strerror or exc}")))

    # -- autosave ---------------------------------------------------------------------------------
    def _on_change(self) -> None:
        if self.session.undo.can_undo or self.session.measurements.selected is not None:
            self._armed = True
        if self._armed and self.store is not None:
            self._timer.start()

    def flush(self) -> None:
        """Write the session now if it changed since it was opened, and wait until it is on disk
        (the window is closing)."""
        if self._timer.isActive() or self._armed:
            self.autosave_now()
        if not self.writer.close():
            self.shell.status("The session is still being written; it may be the previous one")

    def save_pending(self) -> None:
        """A change waiting for its autosave is written now (another dataset is about to replace
        the session's)."""
        if self._timer.isActive():
            self.autosave_now()

    def autosave_now(self) -> None:
        """Snapshot the session and have it written off the GUI thread."""
        self._timer.stop()
        if self.store is None or self.session.dataset is None:
            return
        before = len(self.store.kept_aside)
        try:
            self.store.keep_previous()  # a session not taken in whole is kept aside before any write
        except OSError as exc:
            self.shell.status(f"The session could not be saved to {self.store.path}: {exc.strerror or exc}")
            return
        self.writer.save(self.store, self.session)
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
        self.shell.status(issue.message)
        self.shell.show_issues([issue])
        if self.shell.interactive:
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "lumbarview", issue.message,
                                        QtWidgets.QMessageBox.StandardButton.Ok, self.shell.widget)
            box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    # -- datasets and cases -------------------------------------------------------------------------
    def on_dataset(self, dataset: Dataset, autosave: tuple[SessionStore, Opened] | None = None) -> list[LoadIssue]:
        """A dataset was opened: its session store; the last session is offered (or restored when
        a session file was asked for). ``autosave``: the store and what it held, read off the GUI
        thread with the dataset (``services.session_writer.open_autosave``; read here when not
        given). Returns issues for the issues panel."""
        # The change that armed the timer was the previous dataset's (saved by
        # ``save_pending`` before the session let it go): an autosave now would write an empty
        # session over this dataset's saved one.
        self._timer.stop()
        self._armed = False
        if autosave is None:
            autosave = open_autosave(dataset.path, read=self.pending is None)
        self.store, opened = autosave
        self.offered = None
        if self.pending is not None:
            return []
        self.offered = opened.doc if opened.doc is not None and opened.doc.measurements else None
        self.offered_from = str(self.store.path)
        if opened.backup is not None:  # set aside as unreadable: said once the case shows
            self._notices = list(opened.issues)
            return []
        if opened.issues:
            self.shell.status(opened.issues[0].message)
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
            if not self.shell.interactive:
                self.offered = doc
                self.shell.status(
                    f"A saved session of this dataset has {len(doc.measurements)} measurement(s): "
                    "Tools > Restore last session")
                return
            copied = "" if self.store is None or source == str(self.store.path) else \
                f" (found by its content: saved for {doc.dataset_path})"
            answer = QtWidgets.QMessageBox.question(
                self.shell.widget, "lumbarview", f"Restore the last session of this dataset{copied} "
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
            self.shell.status("No saved session for this dataset")
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
        self.shell.set_layout(self.session.layout)
        self.issues = issues
        self._armed = True
        n = len(self.session.measurements)
        self.shell.status(
            f"Session restored: {n} measurement(s)" + (f"; {len(issues)} problem(s), see the issues panel"
                                                        if issues else ""))
        if issues:
            self.shell.show_issues(issues)
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
        self.shell.open(dataset_path)
        return True

    def save_as(self, path: str) -> None:
        try:
            SessionStore(path).save(self.session)
        except OSError as exc:
            self.shell.status(f"Could not save the session to {path}: {exc.strerror or exc}")
            return
        self.shell.status(f"Session saved to {path}")

    def _report(self, issues: list[LoadIssue]) -> None:
        message = "; ".join(i.message for i in issues) or "The session could not be opened"
        self.shell.fail(message)

    # -- the table's click: go to the measurement's plane -------------------------------------------
    def go_to(self, ident: str) -> None:
        """Show the measurement where it was drawn (``services.view_planes.plan_go_to``: the
        views that show its plane, else a custom plane in one view) and centre on it."""
        m = self.session.measurements.get(ident)
        if m is None:
            return
        self.session.measurements.select(ident)
        plane = m.view_plane()
        points = m.points
        extent = float(np.ptp(points, axis=0).max()) if len(points) else 0.0
        go = plan_go_to(self.session, m.centre_lps(), right_lps=None if plane is None else plane.right_lps,
                        down_lps=None if plane is None else plane.down_lps, points_lps=points,
                        series=find_series(self.session.case, m.series),
                        field_mm=max(60.0, 3 * extent), text=f"go to {m.kind}")
        go.apply(self.session)
        for name in go.zoom:
            if go.planned is not None:
                self.views[name].fit()
            else:
                self.views[name].zoom_to(go.cursor_lps, field_mm=go.field_mm)
