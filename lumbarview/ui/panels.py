"""Dock panels: load issues, DICOM tags, and the keyboard shortcut table."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.errors import LumbarviewError
from lumbarview.core.types import LoadIssue
from lumbarview.io.dicom.tags import read_tags

SHORTCUTS = [
    ("Left click / drag", "set the crosshair (every view follows)"),
    ("Click on a reference line", "go to that slice in the other view"),
    ("Mouse wheel, Up/Down, Left/Right", "previous / next slice"),
    ("Page Up / Page Down", "10 % of the slices back / forward"),
    ("Home / End", "first / last slice"),
    ("Ctrl + wheel", "zoom around the mouse"),
    ("Middle drag", "pan"),
    ("Right drag", "window (horizontal) and level (vertical)"),
    ("Ctrl+1 .. Ctrl+4", "window presets: automatic, DICOM, T1, T2"),
    ("I", "invert"),
    ("F", "fit to window"),
    ("R", "reset zoom and window"),
    ("Space", "cine play / stop"),
    ("Ctrl+O", "open a folder"),
    ("Ctrl+Shift+S", "save a screenshot of the window"),
    ("F1", "this table"),
]


class IssuesPanel(QtWidgets.QTableWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["Severity", "Code", "Message", "File"])
        self.horizontalHeader().setStretchLastSection(True)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(False)
        self.verticalHeader().hide()

    def set_issues(self, issues: Sequence[LoadIssue]) -> None:
        ordered = sorted(issues, key=lambda i: -int(i.severity))
        self.setRowCount(len(ordered))
        colours = {"ERROR": "#ff8a80", "WARNING": "#ffd180", "INFO": "#9e9e9e"}
        for row, issue in enumerate(ordered):
            cells = [issue.severity.label, issue.code, issue.message, issue.path or ""]
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(text)
                if col == 0:
                    item.setForeground(QtGui.QColor(colours[issue.severity.name]))
                self.setItem(row, col, item)
        self.resizeColumnsToContents()


class TagPanel(QtWidgets.QTreeWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self._path: str | None = None

    def show_file(self, path: str | None) -> None:
        if path == self._path:
            return
        self._path = path
        self.clear()
        if path is None:
            self.addTopLevelItem(QtWidgets.QTreeWidgetItem(["", "(no DICOM file for this slice)", "", ""]))
            return
        try:
            rows = read_tags(path)
        except LumbarviewError as exc:
            self.addTopLevelItem(QtWidgets.QTreeWidgetItem(["", str(exc), "", ""]))
            return
        parents: dict[int, QtWidgets.QTreeWidgetItem] = {}
        for row in rows:
            item = QtWidgets.QTreeWidgetItem([row.tag, row.keyword, row.vr, row.value])
            parent = parents.get(row.depth - 1)
            if parent is None or row.depth == 0:
                self.addTopLevelItem(item)
            else:
                parent.addChild(item)
            parents[row.depth] = item
        for col in range(3):
            self.resizeColumnToContents(col)


class ShortcutsDialog(QtWidgets.QDialog):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse")
        table = QtWidgets.QTableWidget(len(SHORTCUTS), 2, self)
        table.setHorizontalHeaderLabels(["Input", "Action"])
        for row, (key, action) in enumerate(SHORTCUTS):
            table.setItem(row, 0, QtWidgets.QTableWidgetItem(key))
            table.setItem(row, 1, QtWidgets.QTableWidgetItem(action))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        table.verticalHeader().hide()
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(table)
        self.resize(560, 480)
        self.setWindowFlag(QtCore.Qt.WindowType.WindowContextHelpButtonHint, False)
