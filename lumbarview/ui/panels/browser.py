"""The dataset browser: cases -> series with thumbnails; a series can be dragged onto a view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import Dataset
from lumbarview.core.types import Series
from lumbarview.services.thumbnails import thumbnail
from lumbarview.ui.views.slice_view import SERIES_MIME


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
        """List every case and series at once; thumbnails come later, for the rows in sight."""
        self.clear()
        self._series: dict[int, Series] = {}
        self._asked: set[int] = set()
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
                    self._series[id(item)] = series
            case_item.setExpanded(True)
        QtCore.QTimer.singleShot(0, self.request_visible_thumbnails)

    def request_visible_thumbnails(self) -> int:
        """Ask for the thumbnails of the series rows in sight (once each); returns how many."""
        series_of = getattr(self, "_series", {})
        asked = 0
        viewport = self.viewport().rect()
        item = self.itemAt(viewport.topLeft() + QtCore.QPoint(1, 1))
        while item is not None and self.visualItemRect(item).top() <= viewport.bottom():
            key = id(item)
            series = series_of.get(key)
            if series is not None and key not in self._asked:
                self._asked.add(key)
                self._thumbnail(series, item)
                asked += 1
            item = self.itemBelow(item)
        return asked

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        QtCore.QTimer.singleShot(0, self.request_visible_thumbnails)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        QtCore.QTimer.singleShot(0, self.request_visible_thumbnails)

    def _thumbnail(self, series: Series, item: QtWidgets.QTreeWidgetItem) -> None:
        def show(array: npt.NDArray[np.uint8]) -> None:
            h, w = array.shape
            qimage = QtGui.QImage(np.ascontiguousarray(array).data, w, h, w, QtGui.QImage.Format.Format_Grayscale8)
            item.setIcon(0, QtGui.QIcon(QtGui.QPixmap.fromImage(qimage.copy())))

        def failed(error: BaseException) -> None:
            item.setToolTip(0, f"cannot be decoded: {error}")
            item.setForeground(0, QtGui.QBrush(QtGui.QColor("#d08080")))

        self._submit(lambda: thumbnail(series), show, failed)
