"""The measurement table (a dock): kind, value, unit, level, side, series, note, source and, for
an area, its ROI statistics (mean, SD, minimum, maximum, pixel count of the image it was drawn
on) of every measurement of the case on screen. Level, side and note are edited in place (undoable);
a click on a row emits :attr:`MeasurementPanel.jump` (the window goes to its plane) and selects
it; Delete removes the selected row."""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.model.measurements import SIDES, Measurement, region_statistics, roi_text
from lumbarview.model.session import Session

COLUMNS = ("kind", "value", "unit", "level", "side", "series", "note", "source", "statistics")
EDITABLE = ("level", "side", "note")
_UNIT_TEXT = {"mm2": "mm²", "deg": "°"}


class MeasurementPanel(QtWidgets.QTableWidget):
    jump = QtCore.Signal(str)  # measurement id

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.session = session
        self.document = session.measurements
        self.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.horizontalHeader().setStretchLastSection(True)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.DoubleClicked
                             | QtWidgets.QAbstractItemView.EditTrigger.EditKeyPressed)
        self.verticalHeader().setVisible(False)
        self._ids: list[str] = []
        self._updating = False
        self.document.changed.connect(self.rebuild)
        self.document.selection_changed.connect(self._sync_selection)
        session.case_changed.connect(lambda _c: self.rebuild())
        self.itemChanged.connect(self._on_item_changed)
        self.cellClicked.connect(self._on_clicked)
        self.rebuild()

    def rows(self) -> list[dict[str, str]]:
        """The table's text, row by row (what the user sees)."""
        out = []
        for r in range(self.rowCount()):
            cells = [self.item(r, n) for n in range(len(COLUMNS))]
            out.append({c: (cell.text() if cell is not None else "") for c, cell in zip(COLUMNS, cells, strict=True)})
        return out

    def _series_name(self, uid: str | None) -> str:
        case = self.session.case
        series = next((s for s in case.series if s.uid == uid), None) if case is not None and uid else None
        return (series.description or series.uid) if series is not None else (uid or "")

    def _cells(self, m: Measurement) -> dict[str, str]:
        q = m.value()
        value = (m.label or "") if m.kind == "point" else (f"{q.value:.2f}" if q.ok else f"— {q.reason}")
        return {"kind": m.kind, "value": value, "unit": _UNIT_TEXT.get(m.unit, m.unit), "level": m.level or "",
                "side": m.side or "", "series": self._series_name(m.series), "note": m.note, "source": m.source,
                "statistics": roi_text(region_statistics(m, self.session.case.series))
                if self.session.case is not None else ""}

    def rebuild(self) -> None:
        self._updating = True
        case = self.session.case.id if self.session.case is not None else None
        items = self.document.of_case(case)
        self._ids = [m.id for m in items]
        self.setRowCount(len(items))
        for r, m in enumerate(items):
            cells = self._cells(m)
            for n, column in enumerate(COLUMNS):
                item = QtWidgets.QTableWidgetItem(cells[column])
                flags = item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable
                if column in EDITABLE and m.source != "engine":
                    flags |= QtCore.Qt.ItemFlag.ItemIsEditable
                item.setFlags(flags)
                if column == "value":
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                if column == "side":
                    item.setToolTip("left, right or midline (the patient's)")
                self.setItem(r, n, item)
        self.resizeColumnsToContents()
        self._updating = False
        self._sync_selection(self.document.selected)

    def _sync_selection(self, ident: Any) -> None:
        self._updating = True
        if ident in self._ids:
            self.selectRow(self._ids.index(ident))
        else:
            self.clearSelection()
        self._updating = False

    def _on_item_changed(self, item: QtWidgets.QTableWidgetItem) -> None:
        if self._updating:
            return
        column = COLUMNS[item.column()]
        ident = self._ids[item.row()] if item.row() < len(self._ids) else None
        if ident is None or column not in EDITABLE:
            return
        text = item.text().strip()
        value: str | None = text or (None if column != "note" else "")
        if column == "side" and value is not None:
            value = value.lower()
            if value not in SIDES:
                QtCore.QTimer.singleShot(0, self.rebuild)  # put the old value back
                return
        changes: dict[str, Any] = {column: value}
        self.document.edit(ident, **changes)

    def _on_clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self._ids):
            ident = self._ids[row]
            self.document.select(ident)
            self.jump.emit(ident)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if event.key() in (QtCore.Qt.Key.Key_Delete, QtCore.Qt.Key.Key_Backspace) and self.state() != (
                QtWidgets.QAbstractItemView.State.EditingState):
            if self.document.selected is not None:
                self.document.remove([self.document.selected])
            event.accept()
            return
        super().keyPressEvent(event)
