"""File > Export…: the same export as ``lumbarview export`` (de-identified by default), of the
case shown or of the whole dataset, run off the GUI thread behind the progress dialog that can
cancel it (:class:`~lumbarview.ui.tasks.ProgressRunner`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtWidgets

from lumbarview.model.session import Session
from lumbarview.services.deidentify.export import ExportReport, ExportRequest, export
from lumbarview.services.deidentify.identity import read_or_create_key
from lumbarview.services.deidentify.profile import ProfileOptions
from lumbarview.ui.shell import Shell

LAYOUT_CHOICES = (("lumbarview folders (DICOM, volumes, labels)", None), ("SPIDER (images/, masks/, gradings)",
                                                                           "spider"),
                  ("RSNA 2024 (train_images/, train.csv, coordinates)", "rsna"))


class ExportDialog(QtWidgets.QDialog):
    """The export's choices; :meth:`request` builds the request (None until complete)."""

    def __init__(self, parent: QtWidgets.QWidget | None, source: str, case_id: str | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.source = source
        self.case_id = case_id
        form = QtWidgets.QFormLayout(self)
        self.scope = QtWidgets.QComboBox()
        if case_id is not None:
            self.scope.addItem(f"The case shown ({case_id})", case_id)
        self.scope.addItem("The whole dataset", None)
        form.addRow("Export", self.scope)
        self.deidentify = QtWidgets.QCheckBox("De-identify (DICOM PS3.15 Basic Profile)")
        self.deidentify.setChecked(True)
        form.addRow(self.deidentify)
        self.dates = QtWidgets.QCheckBox("Retain dates, shifted (one shift per patient, intervals kept)")
        self.characteristics = QtWidgets.QCheckBox("Retain patient characteristics (age, sex, size, weight)")
        self.descriptors = QtWidgets.QCheckBox("Clean descriptors (keep series and study descriptions, cleaned)")
        for box in (self.dates, self.characteristics, self.descriptors):
            form.addRow(box)
            self.deidentify.toggled.connect(box.setEnabled)
        self.key_file = QtWidgets.QLineEdit()
        self.key_file.setPlaceholderText("none: new identities every export")
        key_button = QtWidgets.QPushButton("Choose…")
        key_button.clicked.connect(self._choose_key)
        key_row = QtWidgets.QHBoxLayout()
        key_row.addWidget(self.key_file)
        key_row.addWidget(key_button)
        form.addRow("Project key file", key_row)
        self.layout_choice = QtWidgets.QComboBox()
        for text, value in LAYOUT_CHOICES:
            self.layout_choice.addItem(text, value)
        form.addRow("Layout", self.layout_choice)
        self.out = QtWidgets.QLineEdit()
        out_button = QtWidgets.QPushButton("Choose…")
        out_button.clicked.connect(self._choose_out)
        out_row = QtWidgets.QHBoxLayout()
        out_row.addWidget(self.out)
        out_row.addWidget(out_button)
        form.addRow("New or empty folder", out_row)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _choose_key(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Project key file (created when missing)", options=QtWidgets.QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.key_file.setText(path)

    def _choose_out(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Export into (a new or empty folder)")
        if path:
            self.out.setText(path)

    def options(self) -> ProfileOptions:
        return ProfileOptions(retain_longitudinal_modified_dates=self.dates.isChecked(),
                              retain_patient_characteristics=self.characteristics.isChecked(),
                              clean_descriptors=self.descriptors.isChecked())

    def request(self, key: bytes | None) -> ExportRequest | None:
        out = self.out.text().strip()
        if not out:
            return None
        case = self.scope.currentData()
        deidentify = self.deidentify.isChecked()
        return ExportRequest(source=Path(self.source), out=Path(out), deidentify=deidentify,
                             options=self.options() if deidentify else ProfileOptions(),
                             key=key if deidentify else None, layout=self.layout_choice.currentData(),
                             cases=(case,) if case else ())


def export_job(dialog: ExportDialog) -> Callable[[Callable[[int, int], None], threading.Event], ExportReport]:
    """The job the progress runner runs (the key file is read there too, off the GUI thread)."""
    key_path = dialog.key_file.text().strip() if dialog.deidentify.isChecked() else ""

    def job(progress: Callable[[int, int], None], cancel: threading.Event) -> ExportReport:
        key = read_or_create_key(key_path)[0] if key_path else None
        request = dialog.request(key)
        if request is None:
            raise ValueError("no output folder")
        return export(request, lambda n, total, _what: progress(n, total), cancel)

    return job


def open_export_dialog(shell: Shell, session: Session) -> None:
    dataset = session.dataset
    if dataset is None:
        shell.status("Open a dataset first: there is nothing to export")
        return
    case = session.case
    dialog = ExportDialog(shell.widget, dataset.path, case.id if case is not None else None)
    if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted or not dialog.out.text().strip():
        return
    out = dialog.out.text().strip()

    def done(report: ExportReport) -> None:
        shell.status(f"Exported {len(report.exported)} file(s) to {out}; held back "
                     f"{len(report.held_back)} (see export-report.txt there)")

    shell.tasks.run(export_job(dialog), done, f"Exporting to {out}…")
