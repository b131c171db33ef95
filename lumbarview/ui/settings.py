"""What the window remembers across runs, in QSettings: recent datasets (absolute paths, no
duplicates), the layout, the window/level per series, the window geometry."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from PySide6 import QtCore, QtWidgets

from lumbarview.core.types import Series
from lumbarview.model.session import LAYOUTS, Session
from lumbarview.model.view_state import WindowLevel
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
    def restore_window(self, window: QtWidgets.QMainWindow) -> None:
        for key, restore in (("window/geometry", window.restoreGeometry), ("window/state", window.restoreState)):
            value = self.value(key)
            if isinstance(value, QtCore.QByteArray):
                restore(value)

    def save_window(self, window: QtWidgets.QMainWindow) -> None:
        self.set_value("window/geometry", window.saveGeometry())
        self.set_value("window/state", window.saveState())

    def value(self, key: str) -> Any:
        return self.qt.value(key)

    def set_value(self, key: str, value: Any) -> None:
        self.qt.setValue(key, value)
