"""The one way work done in executor threads reaches Qt: a queued signal to the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6 import QtCore


class _Bridge(QtCore.QObject):
    call = QtCore.Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.call.connect(self._run, QtCore.Qt.ConnectionType.QueuedConnection)

    @QtCore.Slot(object)
    def _run(self, fn: Callable[[], None]) -> None:
        fn()


_bridge: _Bridge | None = None


def call_in_gui_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the GUI thread (soon, from its event loop). Safe from any thread."""
    global _bridge
    if _bridge is None:
        app = QtCore.QCoreApplication.instance()
        assert app is not None, "a QApplication must exist"
        _bridge = _Bridge()
        _bridge.moveToThread(app.thread())
    if threading.current_thread() is threading.main_thread():
        fn()
    else:
        _bridge.call.emit(fn)


class Worker:
    """A small thread pool whose results are delivered on the GUI thread."""

    def __init__(self, max_workers: int = 2) -> None:
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lumbarview")
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def idle(self) -> bool:
        """True when no submitted work is queued, running, or waiting to deliver its result."""
        with self._lock:
            return self._pending == 0

    def submit(self, fn: Callable[[], Any], on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None]) -> Future[Any]:
        def _delivered() -> None:
            with self._lock:
                self._pending -= 1

        def _finished(future: Future[Any]) -> None:
            if future.cancelled():
                _delivered()
                return
            error = future.exception()

            def deliver() -> None:
                try:
                    if error is not None:
                        on_error(error)
                    else:
                        on_done(future.result())
                finally:
                    _delivered()

            call_in_gui_thread(deliver)

        with self._lock:
            self._pending += 1
        future = self.executor.submit(fn)
        future.add_done_callback(_finished)
        return future

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
