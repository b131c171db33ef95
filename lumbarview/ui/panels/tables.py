"""The Tables dock: the dataset's and the case's tables (UniData export, SPIDER overview, BIDS
participants and sidecars, MRIQC, RSNA grades), with sort (click a header) and filter.

Filtering and sorting are :mod:`lumbarview.services.documents` functions (tested without Qt);
this module only shows their result through a table model.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6 import QtCore, QtWidgets

from lumbarview.core.dataset import Case, Dataset, Table
from lumbarview.core.types import LoadIssue
from lumbarview.services.annotations import table_row_position
from lumbarview.services.documents import case_tables, filter_rows, sort_key

_Role = QtCore.Qt.ItemDataRole


class RowsModel(QtCore.QAbstractTableModel):
    """Rows (dicts) of one table under its columns."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.columns: list[str] = []
        self.rows: list[dict[str, Any]] = []

    def set_rows(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.columns, self.rows = list(columns), list(rows)
        self.endResetModel()

    def rowCount(self, parent: Any = QtCore.QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Any = QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Any, role: int = _Role.DisplayRole) -> Any:
        if not index.isValid() or role not in (_Role.DisplayRole, _Role.ToolTipRole):
            return None
        value = self.rows[index.row()].get(self.columns[index.column()])
        return "" if value is None else str(value)

    def headerData(self, section: int, orientation: QtCore.Qt.Orientation, role: int = _Role.DisplayRole) -> Any:
        if role != _Role.DisplayRole:
            return None
        if orientation == QtCore.Qt.Orientation.Horizontal:
            return self.columns[section] if 0 <= section < len(self.columns) else None
        return str(section + 1)


class TablesPanel(QtWidgets.QWidget):
    """A table chooser, a filter box (``text`` or ``column: text``) and the rows, sortable. A row
    that points somewhere (an RSNA grade at its coordinate, a SPIDER grading at its disc) takes
    the views there when it is picked (``jump`` with the LPS position)."""

    jump = QtCore.Signal(object)  # LPS position (3,)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.case: Case | None = None
        self.tables: list[Table] = []
        self.issues: list[LoadIssue] = []
        self.shown: list[dict[str, Any]] = []
        self.sort_column: str | None = None
        self.descending = False
        layout = QtWidgets.QVBoxLayout(self)
        bar = QtWidgets.QHBoxLayout()
        self.chooser = QtWidgets.QComboBox()
        self.chooser.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.chooser.setMinimumContentsLength(18)
        self.chooser.currentIndexChanged.connect(lambda _i: self._on_table())
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("filter: text, or column: text")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(lambda _t: self.refresh())
        bar.addWidget(self.chooser)
        bar.addWidget(self.filter, 1)
        layout.addLayout(bar)
        self.model = RowsModel(self)
        self.view = QtWidgets.QTableView()
        self.view.setModel(self.model)
        self.view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.view.horizontalHeader()
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.sectionClicked.connect(self._on_header)
        self.view.selectionModel().currentRowChanged.connect(lambda current, _previous: self._on_row(current.row()))
        layout.addWidget(self.view, 1)
        self.status = QtWidgets.QLabel("No table in this dataset")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

    @property
    def table(self) -> Table | None:
        i = self.chooser.currentIndex()
        return self.tables[i] if 0 <= i < len(self.tables) else None

    def show_case(self, dataset: Dataset | None, case: Case | None) -> None:
        """The tables of ``case`` and ``dataset``; keeps the chosen table (by name) when it is
        there again, as the grades table of the next RSNA study is."""
        previous = self.table.name if self.table is not None else None
        self.case = case
        self.tables, self.issues = case_tables(dataset, case)
        self.chooser.blockSignals(True)
        self.chooser.clear()
        for table in self.tables:
            where = os.path.basename(str(table.source)) if os.path.sep in str(table.source) else ""
            label = table.name if not where or where == table.name else f"{table.name} ({where})"
            self.chooser.addItem(f"{label}  [{table.kind}]")
        names = [t.name for t in self.tables]
        self.chooser.setCurrentIndex(names.index(previous) if previous in names else 0 if names else -1)
        self.chooser.blockSignals(False)
        self._on_table()

    def select(self, name: str) -> bool:
        """Show the table called ``name``; False when there is none."""
        for i, table in enumerate(self.tables):
            if table.name == name:
                self.chooser.setCurrentIndex(i)
                return True
        return False

    def row_position(self, row: int) -> Any:
        """Where shown row ``row`` points in LPS, or None."""
        table = self.table
        if self.case is None or table is None or not 0 <= row < len(self.shown):
            return None
        return table_row_position(self.case, table, self.shown[row])

    def _on_row(self, row: int) -> None:
        position = self.row_position(row)
        if position is not None:
            self.jump.emit(position)

    def _on_table(self) -> None:
        self.sort_column, self.descending = None, False
        self.view.horizontalHeader().setSortIndicator(-1, QtCore.Qt.SortOrder.AscendingOrder)
        self.refresh()

    def _on_header(self, section: int) -> None:
        table = self.table
        if table is None or not 0 <= section < len(table.columns):
            return
        column = table.columns[section]
        self.sort_by(column, descending=not self.descending if column == self.sort_column else False)

    def sort_by(self, column: str, descending: bool = False) -> None:
        """Sort the shown rows by ``column`` (numbers by value, text without case, empty last)."""
        self.sort_column, self.descending = column, descending
        table = self.table
        if table is not None and column in table.columns:
            order = QtCore.Qt.SortOrder.DescendingOrder if descending else QtCore.Qt.SortOrder.AscendingOrder
            self.view.horizontalHeader().setSortIndicator(table.columns.index(column), order)
        self.refresh()

    def refresh(self) -> None:
        table = self.table
        if table is None:
            self.shown = []
            self.model.set_rows([], [])
            note = f"; {len(self.issues)} could not be read" if self.issues else ""
            self.status.setText(f"No table in this dataset or case{note}")
            return
        rows = filter_rows(table, self.filter.text())
        if self.sort_column is not None:
            column = self.sort_column
            filled = [r for r in rows if r.get(column) not in (None, "")]
            empty = [r for r in rows if r.get(column) in (None, "")]
            filled.sort(key=lambda r: sort_key(r.get(column)), reverse=self.descending)
            rows = filled + empty
        self.shown = rows
        self.model.set_rows(table.columns, rows)
        self.view.resizeColumnsToContents()
        sort = f", sorted by {self.sort_column}{' (descending)' if self.descending else ''}" if self.sort_column else ""
        self.status.setText(f"{len(rows)} of {len(table.rows)} rows{sort} — {table.source}")

    def column_values(self, column: str) -> list[Any]:
        """The shown rows' values of ``column``, in order (for tests and export)."""
        return [r.get(column) for r in self.shown]
