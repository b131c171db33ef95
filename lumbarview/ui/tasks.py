"""Long jobs the user waits for (opening a dataset, preparing the demo, measuring a case): run
off the GUI thread behind a progress dialog that can cancel them, with the failure told in the
status bar and, when the window is interactive, in a message box."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtWidgets

from lumbarview.core.errors import Cancelled, LumbarviewError
from lumbarview.ui.threading import Worker, call_in_gui_thread

#: ``job(progress, cancel)``: reports ``progress(done, total)`` and stops when ``cancel`` is set.
Job = Callable[[Callable[[int, int], None], threading.Event], Any]


class ProgressRunner:
    """Runs one job at a time for ``window`` on ``worker`` (see the module); ``failed(message)``
    hears about every failure but a cancel; ``interactive``: whether a message box may open."""

    def __init__(self, window: QtWidgets.QMainWindow, worker: Worker, failed: Callable[[str], None],
                 interactive: bool = False) -> None:
        self.window = window
        self.interactive = interactive
        self.worker = worker
        self.failed = failed
        self._cancel: threading.Event | None = None

    def run(self, job: Job, done: Callable[[Any], None], label: str) -> None:
        """Run ``job`` behind a progress dialog showing ``label``; ``done(result)`` on the GUI thread."""
        cancel = self._cancel = threading.Event()
        dialog = QtWidgets.QProgressDialog(label, "Cancel", 0, 0, self.window)
        dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(cancel.set)

        def progress(n: int, total: int) -> None:
            def update() -> None:
                dialog.setMaximum(max(total, 1))
                dialog.setValue(n)

            call_in_gui_thread(update)

        def finished(result: Any) -> None:
            dialog.reset()
            done(result)

        def failed(error: BaseException) -> None:
            dialog.reset()
            self._report(error)

        self.worker.submit(lambda: job(progress, cancel), finished, failed)

    def cancel(self) -> None:
        """Ask the running job to stop (the window is closing)."""
        if self._cancel is not None:
            self._cancel.set()

    def _report(self, error: BaseException) -> None:
        status = self.window.statusBar()
        if isinstance(error, Cancelled):
            status.showMessage("Opening cancelled")
            return
        message = str(error) if isinstance(error, LumbarviewError) else (
            f"Unexpected error: {type(error).__name__}: {error}")
        status.showMessage(message)
        self.failed(message)
        if self.interactive:
            QtWidgets.QMessageBox.warning(self.window, "lumbarview", message)
