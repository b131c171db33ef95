"""The Grading dock: a grading panel per level, the measurements of that level beside the grades,
and the structured report's free text.

Every grading of :data:`~lumbarview.model.gradings.GRADINGS` is a combo box (its definition and
source one hover away, each value's meaning on its item); a grade the dataset gave is marked
"dataset" until the reader sets it. Each choice is an undoable command of the session
(:class:`~lumbarview.model.gradings.GradingDocument`); a grade a measured value of the level
contradicts by a published cut-off is pointed out in red under the grades, never changed. The
case's dataset grades are put in when a case is shown (:func:`lumbarview.services.gradings.prefill`).
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets

from lumbarview.model.gradings import GRADE_SIDES, GRADINGS, LEVELS, Measured, disagreements, reader_quantity
from lumbarview.model.report_fields import REPORT_FIELDS, level_field
from lumbarview.model.session import Session
from lumbarview.services.gradings import dataset_grades, prefill

NONE_TEXT = "—"


class GradingPanel(QtWidgets.QWidget):
    """Level chooser, one combo per grading (and side), the level's measurements, pointers and text."""

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._updating = False
        self.level = QtWidgets.QComboBox()
        self.level.addItems(list(LEVELS))
        self.level.currentTextChanged.connect(lambda _t: self.refresh())
        self.combos: dict[tuple[str, str | None], QtWidgets.QComboBox] = {}
        self.marks: dict[tuple[str, str | None], QtWidgets.QLabel] = {}
        form = QtWidgets.QFormLayout()
        form.addRow("Level", self.level)
        for g in GRADINGS:
            for side in (GRADE_SIDES if g.sided else (None,)):
                combo = QtWidgets.QComboBox()
                combo.addItem(NONE_TEXT, None)
                for value, meaning in g.values:
                    combo.addItem(value, value)
                    combo.setItemData(combo.count() - 1, meaning, QtCore.Qt.ItemDataRole.ToolTipRole)
                tip = f"{g.name}: {g.definition}\nSource: {g.source}"
                combo.setToolTip(tip)
                combo.currentIndexChanged.connect(lambda _i, k=g.key, s=side: self._chosen(k, s))
                mark = QtWidgets.QLabel()
                row = QtWidgets.QHBoxLayout()
                row.addWidget(combo, 1)
                row.addWidget(mark)
                label = QtWidgets.QLabel(g.name + (f" ({side})" if side else ""))
                label.setToolTip(tip)
                form.addRow(label, row)
                self.combos[(g.key, side)] = combo
                self.marks[(g.key, side)] = mark
        self.pointers = QtWidgets.QLabel()
        self.pointers.setWordWrap(True)
        self.pointers.setStyleSheet("color: #c33")
        self.measured = QtWidgets.QLabel()
        self.measured.setWordWrap(True)
        self.measured.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.comment = QtWidgets.QPlainTextEdit()
        self.comment.setPlaceholderText("comment on this level")
        self.comment.setMaximumHeight(60)
        self.comment.textChanged.connect(lambda: self._typed(level_field(self.level.currentText()), self.comment))
        self.fields: dict[str, QtWidgets.QPlainTextEdit] = {}
        text_form = QtWidgets.QFormLayout()
        for key, title in REPORT_FIELDS.items():
            edit = QtWidgets.QPlainTextEdit()
            edit.setMaximumHeight(28 if key == "reader" else 60)
            edit.setPlaceholderText("not assessed")
            edit.textChanged.connect(lambda k=key, e=edit: self._typed(k, e))
            self.fields[key] = edit
            text_form.addRow(title, edit)
        inner = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(inner)
        layout.addLayout(form)
        layout.addWidget(self.pointers)
        layout.addWidget(QtWidgets.QLabel("Measured at this level:"))
        layout.addWidget(self.measured)
        layout.addWidget(self.comment)
        layout.addWidget(QtWidgets.QLabel("Report"))
        layout.addLayout(text_form)
        layout.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        session.gradings.changed.connect(lambda _slots: self.refresh())
        session.report_fields.changed.connect(self._fields_changed)
        session.measurements.changed.connect(lambda *_a: self.refresh())
        session.case_changed.connect(self._case_changed)
        self.refresh()

    # -- the session -> the widgets ---------------------------------------------------------------
    @property
    def case_id(self) -> str | None:
        return None if self.session.case is None else self.session.case.id

    def _case_changed(self, case: Any) -> None:
        if case is not None:
            prefill(self.session, case)
        self.refresh()

    def _fields_changed(self, which: Any) -> None:
        if not self._updating:
            self.refresh()

    def measured_at(self, level: str) -> list[tuple[str, Measured]]:
        """The session's measurements of ``level`` of the case: their text and value."""
        out = []
        for m in self.session.measurements.of_case(self.case_id):
            if m.level != level:
                continue
            q = m.value()
            text = f"{m.kind} {m.value_text()} [{m.source}]" + (f" ({m.note})" if m.note else "")
            quantity = reader_quantity(m.kind, q.unit, f"{m.note} {m.label}")
            out.append((text, Measured(level, quantity, q.value, q.unit, m.source)))
        return out

    def refresh(self) -> None:
        """Show the current level's grades, marks, pointers, measurements and text."""
        if self._updating:
            return
        self._updating = True
        try:
            case, level = self.case_id, self.level.currentText()
            doc = self.session.gradings
            if self.session.case is not None and not any(g.source == "dataset" for g in doc.of_case(case)) \
                    and dataset_grades(self.session.case)[0]:
                prefill(self.session, self.session.case)  # a restored session without them
            for (key, side), combo in self.combos.items():
                grade = doc.get(case, level, key, side)
                combo.setCurrentIndex(0 if grade is None else max(0, combo.findData(grade.value)))
                mark = self.marks[(key, side)]
                mark.setText("dataset" if grade is not None and grade.source == "dataset" else "")
                mark.setToolTip(grade.note if grade is not None else "")
            measured = self.measured_at(level)
            self.measured.setText("\n".join(text for text, _m in measured) or "none")
            found = disagreements(doc.of_case(case), [m for _t, m in measured])
            self.pointers.setText("\n".join(f"Pointed out: {d.why}" for d in found))
            for key, edit in self.fields.items():
                if edit.toPlainText() != self.session.report_fields.get(case, key):
                    edit.setPlainText(self.session.report_fields.get(case, key))
            comment = self.session.report_fields.get(case, level_field(level))
            if self.comment.toPlainText() != comment:
                self.comment.setPlainText(comment)
        finally:
            self._updating = False

    # -- the widgets -> the session ---------------------------------------------------------------
    def _chosen(self, key: str, side: str | None) -> None:
        if self._updating:
            return
        value = self.combos[(key, side)].currentData()
        self.session.gradings.set(self.case_id, key, self.level.currentText(), value, side)

    def _typed(self, key: str, edit: QtWidgets.QPlainTextEdit) -> None:
        if self._updating:
            return
        self._updating = True
        try:
            self.session.report_fields.set(self.case_id, key, edit.toPlainText())
        finally:
            self._updating = False
