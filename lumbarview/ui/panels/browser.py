"""The dataset browser: cases -> series with thumbnails; a series can be dragged onto a view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import Dataset
from lumbarview.core.types import Series
from lumbarview.ui.views.slice_view import SERIES_MIME


def thumbnail_pixels(series: Series, size: int = 48) -> npt.NDArray[np.uint8]:
    """A small 8-bit image of the middle slice of the series' middle stack (off the GUI thread)."""
    stack = series.stacks[len(series.stacks) // 2]
    pixels = stack.pixels()
    image = np.asarray(pixels[pixels.shape[0] // 2], dtype=np.float32)
    step = max(1, max(image.shape) // size)
    small = image[::step, ::step]
    lo, hi = np.percentile(small, (1, 99))
    scaled: npt.NDArray[np.uint8] = np.clip((small - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255).astype(np.uint8)
    return scaled


class SeriesTree(QtWidgets.QTreeWidget):
    """Cases -> series. ``submit(job, done, failed)`` runs thumbnail work off the GUI thread."""

    def __init__(self, submit: Callable[..., Any], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit = submit
        self.setHeaderLabels(["Series", "Orientation", "Slices"])
        self.setDragEnabled(True)
        self.setIconSize(QtCore.QSize(48, 48))
        self.setRootIsDecorated(True)
        self.header().setStretchLastSection(False)
        self.header().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.header().setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.header().setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumWidth(300)

    def mimeData(self, items: Any) -> QtCore.QMimeData:
        data = QtCore.QMimeData()
        uid = items[0].data(0, QtCore.Qt.ItemDataRole.UserRole) if items else None
        if uid:
            data.setData(SERIES_MIME, QtCore.QByteArray(str(uid).encode()))
        return data

    def fill(self, dataset: Dataset) -> None:
        self.clear()
        for case in dataset.cases:
            case_item = QtWidgets.QTreeWidgetItem([f"case {case.id}", "", ""])
            self.addTopLevelItem(case_item)
            for series in case.series:
                orientation = {k.geometry.orientation.value for k in series.stacks}
                item = QtWidgets.QTreeWidgetItem([
                    series.description or series.uid, "/".join(sorted(orientation)), str(series.n_slices)])
                item.setData(0, QtCore.Qt.ItemDataRole.UserRole, series.uid)
                if len(series.stacks) > 1:
                    item.setToolTip(0, f"{len(series.stacks)} stacks (blocks at different angles or grids)")
                case_item.addChild(item)
                if series.stacks:
                    self._thumbnail(series, item)
            case_item.setExpanded(True)

    def _thumbnail(self, series: Series, item: QtWidgets.QTreeWidgetItem) -> None:
        def show(array: npt.NDArray[np.uint8]) -> None:
            h, w = array.shape
            qimage = QtGui.QImage(np.ascontiguousarray(array).data, w, h, w, QtGui.QImage.Format.Format_Grayscale8)
            item.setIcon(0, QtGui.QIcon(QtGui.QPixmap.fromImage(qimage.copy())))

        def failed(error: BaseException) -> None:
            item.setToolTip(0, f"cannot be decoded: {error}")
            item.setForeground(0, QtGui.QBrush(QtGui.QColor("#d08080")))

        self._submit(lambda: thumbnail_pixels(series), show, failed)
