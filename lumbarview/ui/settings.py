"""What the window remembers across runs, in QSettings: recent datasets (absolute paths, no
duplicates), the layout, the window/level per series, the window geometry."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from lumbarview.core.types import Series
from lumbarview.model.session import LAYOUTS, Session
from lumbarview.model.view_state import WindowLevel
from lumbarview.services.save_folder import start_folder
from lumbarview.services.session_store import MAX_WINDOW_VALUE

ORG, APP = "lumbarview", "lumbarview"
MAX_RECENT = 10


class Settings:
    def __init__(self) -> None:
        self.qt = QtCore.QSettings(ORG, APP)

    # -- recent datasets --------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.qt.value("recent", [])
        items = [value] if isinstance(value, str) else [str(v) for v in value] if isinstance(value, list) else []
        out: list[str] = []
        for path in items:
            absolute = os.path.abspath(path)
            if absolute not in out:
                out.append(absolute)
        return out

    def remember_recent(self, path: str) -> list[str]:
        absolute = os.path.abspath(path)
        recent = [absolute, *(p for p in self.recent() if p != absolute)][:MAX_RECENT]
        self.qt.setValue("recent", recent)
        return recent

    # -- layout -----------------------------------------------------------------------------
    def layout(self) -> str | None:
        value = self.qt.value("layout")
        return value if isinstance(value, str) and value in LAYOUTS else None

    def set_layout(self, layout: str) -> None:
        self.qt.setValue("layout", layout)

    # -- window/level per series ------------------------------------------------------------
    def window(self, series_uid: str) -> WindowLevel | None:
        stored = self.qt.value(f"windows/{series_uid}")
        if not isinstance(stored, str):
            return None
        try:
            center, width, invert = stored.split(",")
            window = WindowLevel(float(center), float(width), invert == "1")
        except ValueError:
            return None
        # The same sanity as a session file's window: a remembered 1e308 must not come back.
        plausible = abs(window.center) <= MAX_WINDOW_VALUE and 0 < window.width <= MAX_WINDOW_VALUE
        return window if plausible else None

    def set_window(self, series_uid: str, window: WindowLevel) -> None:
        self.qt.setValue(f"windows/{series_uid}", f"{window.center},{window.width},{int(window.invert)}")

    def recall_windows(self, session: Session, series: Iterable[Series | None]) -> None:
        """Give ``session`` the windows remembered for ``series``, where it has none yet."""
        for one in series:
            remembered = self.window(one.uid) if one is not None else None
            if one is not None and remembered is not None:
                session.windows.setdefault(one.uid, remembered)

    def remember_windows(self, session: Session) -> None:
        """Remember the windows the user chose for the series the views show."""
        for view in session.views.values():
            if view.series is not None and view.series.uid in session.windows:
                self.set_window(view.series.uid, session.windows[view.series.uid])

    # -- the main window's geometry and docks -----------------------------------------------
    def restore_window(self, window: QtWidgets.QMainWindow) -> bool:
        """The window's geometry and its docks as the user left them; False when there was no
        arrangement to restore (a first start)."""
        restored = False
        for key, restore in (("window/geometry", window.restoreGeometry), ("window/state", window.restoreState)):
            value = self.value(key)
            if isinstance(value, QtCore.QByteArray):
                restored = bool(restore(value)) or restored
        return restored

    def save_window(self, window: QtWidgets.QMainWindow) -> None:
        self.set_value("window/geometry", window.saveGeometry())
        self.set_value("window/state", window.saveState())

    def closed_docks(self) -> set[str]:
        """The docks the user closed (their content does not open them again)."""
        value = self.qt.value("window/closed_docks", [])
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return {str(v) for v in items if v}

    def set_closed_docks(self, names: Iterable[str]) -> None:
        self.qt.setValue("window/closed_docks", sorted(names))

    # -- where save dialogs start (services.save_folder) --------------------------------------
    def save_folder(self, dataset_path: str | None = None) -> Path:
        """The folder a save dialog starts in: the last one used, else the documents folder."""
        last = self.qt.value("save/last_folder")
        return start_folder(last if isinstance(last, str) else None, dataset_path)

    def remember_save_folder(self, saved_path: str | Path) -> None:
        """``saved_path`` was saved: its folder is where the next save dialog starts."""
        self.qt.setValue("save/last_folder", str(Path(saved_path).expanduser().resolve().parent))

    def save_path(self, parent: QtWidgets.QWidget | None, title: str, name: str, filters: str,
                  dataset_path: str | None = None) -> str | None:
        """Ask where to save ``name`` (starting in :meth:`save_folder`); remembers the folder."""
        start = self.save_folder(dataset_path) / name
        path, _ = QtWidgets.QFileDialog.getSaveFileName(parent, title, str(start), filters)
        if not path:
            return None
        self.remember_save_folder(path)
        return str(path)

    def value(self, key: str) -> Any:
        return self.qt.value(key)

    def set_value(self, key: str, value: Any) -> None:
        self.qt.setValue(key, value)
