"""The Report dock: the PDF attachments of the dataset and the case, one page at a time, zoomed.

Pages are rendered off the GUI thread by :mod:`lumbarview.services.documents` (pypdfium2) and
shown here; a newer request makes an older result stale (it is dropped when it arrives).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.errors import LumbarviewError
from lumbarview.services.documents import PdfInfo, open_pdf, pdf_attachments, render_page

Submit = Callable[[Callable[[], Any], Callable[[Any], None], Callable[[BaseException], None]], Any]
ZOOMS = (50, 75, 100, 125, 150, 200, 300)
#: dpi of 100 % zoom (a page at its printed size on a typical screen).
BASE_DPI = 96.0


class ReportPanel(QtWidgets.QWidget):
    """Document chooser, page number, zoom, and the rendered page in a scroll area."""

    page_shown = QtCore.Signal(str, int)  # path, page index (after a render landed)

    def __init__(self, submit: Submit, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit = submit
        self._info: PdfInfo | None = None
        self._request = 0
        self._buffer: npt.NDArray[np.uint8] | None = None
        self.paths: list[str] = []
        layout = QtWidgets.QVBoxLayout(self)
        bar = QtWidgets.QHBoxLayout()
        self.documents = QtWidgets.QComboBox()
        self.documents.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.documents.setMinimumContentsLength(16)
        self.documents.currentIndexChanged.connect(self._on_document)
        self.page_box = QtWidgets.QSpinBox()
        self.page_box.setRange(1, 1)
        self.page_box.setPrefix("page ")
        self.page_box.valueChanged.connect(lambda _v: self.show_page())
        self.previous_button = QtWidgets.QToolButton()
        self.previous_button.setText("◀")
        self.previous_button.setToolTip("previous page")
        self.previous_button.clicked.connect(lambda: self.page_box.setValue(self.page_box.value() - 1))
        self.next_button = QtWidgets.QToolButton()
        self.next_button.setText("▶")
        self.next_button.setToolTip("next page")
        self.next_button.clicked.connect(lambda: self.page_box.setValue(self.page_box.value() + 1))
        self.pages_label = QtWidgets.QLabel("")
        self.zoom = QtWidgets.QComboBox()
        self.zoom.addItems(["fit width", *(f"{z} %" for z in ZOOMS)])
        self.zoom.setCurrentIndex(0)
        self.zoom.currentIndexChanged.connect(lambda _i: self.show_page())
        for widget in (self.documents, self.previous_button, self.page_box, self.next_button, self.pages_label,
                       self.zoom):
            bar.addWidget(widget)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.image = QtWidgets.QLabel()
        self.image.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignTop)
        self.page_area = QtWidgets.QScrollArea()
        self.page_area.setWidget(self.image)
        self.page_area.setWidgetResizable(True)
        self.page_area.setBackgroundRole(QtGui.QPalette.ColorRole.Dark)
        # A page is taller than wide: a vertical scroll bar that is always there keeps the
        # viewport's width (and so "fit width") from changing when it would appear.
        self.page_area.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        layout.addWidget(self.page_area, 1)
        self._refit = QtCore.QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(150)
        self._refit.timeout.connect(self._refit_now)
        self.message = QtWidgets.QLabel("No document in this dataset")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        """With "fit width", a resized dock renders the page again (once the resizing settles)."""
        super().resizeEvent(event)
        if self.zoom.currentIndex() == 0 and self._info is not None:
            self._refit.start()

    def _refit_now(self) -> None:
        shown = self.image.pixmap()
        wanted = max(100, self.page_area.viewport().width() - 8)
        if shown is None or shown.isNull() or abs(shown.width() - wanted) > 4:
            self.show_page()

    @property
    def zoom_percent(self) -> float:
        """The zoom in percent; "fit width" fits the page's width into the dock."""
        index = self.zoom.currentIndex()
        if index > 0:
            return float(ZOOMS[index - 1])
        info = self._info
        if info is None:
            return 100.0
        width_pt = info.page_sizes_pt[max(0, min(self.page_box.value() - 1, info.n_pages - 1))][0]
        available_px = max(100, self.page_area.viewport().width() - 8)
        fit = available_px / (width_pt * BASE_DPI / 72.0) * 100
        return float(max(10.0, min(ZOOMS[-1], fit)))

    def show_case(self, dataset: Dataset | None, case: Case | None) -> None:
        """The PDFs of ``case`` and ``dataset``; keeps the document shown when it is still there."""
        paths = pdf_attachments(dataset, case)
        if paths == self.paths:
            return
        current = self.documents.currentData()
        self.paths = paths
        self.documents.blockSignals(True)
        self.documents.clear()
        for path in paths:
            self.documents.addItem(os.path.basename(path), path)
        self.documents.blockSignals(False)
        index = paths.index(current) if current in paths else 0
        if paths:
            self.documents.setCurrentIndex(index)
            self._on_document(index)
        else:
            self._info = None
            self.image.clear()
            self.message.setText("No PDF document in this dataset or case")

    def _on_document(self, index: int) -> None:
        path = self.documents.itemData(index) if index >= 0 else None
        if not path:
            return
        self._request += 1
        request = self._request
        self.message.setText(f"Opening {os.path.basename(path)}…")
        self._submit(lambda: open_pdf(path), lambda info: self._on_opened(request, info),
                     lambda error: self._on_error(request, path, error))

    def _on_opened(self, request: int, info: PdfInfo) -> None:
        if request != self._request:
            return
        self._info = info
        self.pages_label.setText(f"of {info.n_pages}")
        self.page_box.blockSignals(True)
        self.page_box.setRange(1, info.n_pages)
        self.page_box.setValue(1)
        self.page_box.blockSignals(False)
        self.show_page()

    def show_page(self) -> None:
        """Render the current page at the current zoom, off the GUI thread."""
        info = self._info
        if info is None:
            return
        self._request += 1
        request = self._request
        path, index, dpi = info.path, self.page_box.value() - 1, BASE_DPI * self.zoom_percent / 100
        self.message.setText(f"Rendering page {index + 1}…")
        self._submit(lambda: render_page(path, index, dpi), lambda rgb: self._on_rendered(request, path, index, rgb),
                     lambda error: self._on_error(request, path, error))

    def _on_rendered(self, request: int, path: str, index: int, rgb: npt.NDArray[np.uint8]) -> None:
        if request != self._request:
            return
        self._buffer = np.ascontiguousarray(rgb)
        h, w = self._buffer.shape[:2]
        image = QtGui.QImage(self._buffer.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
        self.image.setPixmap(QtGui.QPixmap.fromImage(image))
        info = self._info
        pages = info.n_pages if info is not None else 1
        self.message.setText(f"{os.path.basename(path)}: page {index + 1} of {pages}, {self.zoom_percent:.0f} %")
        self.page_shown.emit(path, index)

    def _on_error(self, request: int, path: str, error: BaseException) -> None:
        if request != self._request:
            return
        self.image.clear()
        text = str(error) if isinstance(error, LumbarviewError) else \
            f"{os.path.basename(path)} cannot be shown ({type(error).__name__}: {str(error)[:160]})"
        self.message.setText(text)

    def shown_image(self) -> QtGui.QImage | None:
        """The page on screen (for tests and screenshots)."""
        pixmap = self.image.pixmap()
        return None if pixmap is None or pixmap.isNull() else pixmap.toImage()
