"""Autosave off the GUI thread: a snapshot of the session is taken where the session lives
(the GUI thread; it is cheap: frozen records), and written atomically on one background thread.

Writes of one file happen in the order they were asked for; a snapshot still waiting when a
newer one of the same file comes is dropped (the newer holds everything it held). The write
itself is :func:`lumbarview.io.session_file.write_session` through the store: a temporary
file, fsync, rename, so a kill at any moment leaves the old file or the new one, never a part.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lumbarview.io.session_file import SessionFile
from lumbarview.model.session import Session
from lumbarview.services.session_store import Opened, SessionStore, default_session_file, snapshot

#: ``written(path, count)``: a snapshot with ``count`` measurements is on disk (writer thread).
Written = Callable[[Path, int], None]
#: ``failed(path, error)``: a write failed (writer thread); the next save tries again.
Failed = Callable[[Path, OSError], None]


class SessionWriter:
    """Writes session snapshots on one background thread (see the module)."""

    def __init__(self, failed: Failed | None = None, written: Written | None = None) -> None:
        self._failed = failed
        self._written = written
        self._lock = threading.Lock()
        self._pending: dict[Path, tuple[SessionStore, SessionFile]] = {}
        self._idle = threading.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lumbarview-autosave")
        self._closed = False

    def save(self, store: SessionStore, session: Session) -> bool:
        """Snapshot ``session`` now and write it to ``store`` on the writer thread; False when
        the store may not be written (an unreadable file it could not move aside)."""
        if store.saving_disabled or self._closed:
            return False
        doc = snapshot(session)
        with self._lock:
            start = not self._pending
            self._pending[store.path] = (store, doc)
            self._idle.clear()
        if start:
            self._executor.submit(self._drain)
        return True

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._idle.set()
                    return
                path = next(iter(self._pending))
                store, doc = self._pending.pop(path)
            try:
                store.write(doc)
            except OSError as exc:
                if self._failed is not None:
                    self._failed(path, exc)
                continue
            if self._written is not None:
                self._written(path, len(doc.measurements))

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every snapshot asked for is written; False when ``timeout_s`` ran out."""
        return self._idle.wait(timeout_s)

    def close(self, timeout_s: float | None = 30.0) -> bool:
        """Write what is waiting, then stop the thread (the window is closing)."""
        done = self.flush(timeout_s)
        self._closed = True
        self._executor.shutdown(wait=done)
        return done


def open_autosave(dataset_path: str, read: bool = True) -> tuple[SessionStore, Opened]:
    """The autosave store of the dataset at ``dataset_path`` and what it holds (``read``
    False: not read, for a session file the user named instead). It touches the disk (sweeps
    stale temporaries, reads, moves an unreadable file aside): run it off the GUI thread."""
    store = SessionStore(default_session_file(dataset_path))
    return store, (store.open() if read else Opened(None, [], None))
