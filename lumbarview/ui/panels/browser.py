"""The dataset browser: cases -> series with thumbnails; a series can be dragged onto a view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.types import Series
from lumbarview.services.thumbnails import thumbnail
from lumbarview.ui.views.slice_view import SERIES_MIME


class SeriesTree(QtWidgets.QTreeWidget):
    """Cases -> series. ``submit(job, done, failed)`` runs thumbnail work off the GUI thread."""

    def __init__(self, submit: Callable[..., Any], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit = submit
        self._case_items: dict[int, QtWidgets.QTreeWidgetItem] = {}  # by id(case), for one fill
        self._reading: dict[int, QtWidgets.QTreeWidgetItem] | None = None  # the fill being read
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
        """List every case at once, with the series of each case already read (a lazily opened
        dataset's other cases get theirs through :meth:`case_opened`); thumbnails come later,
        for the rows in sight."""
        self.clear()
        self._series: dict[int, Series] = {}
        self._asked: set[int] = set()
        self._case_items = {}
        for case in dataset.cases:
            case_item = QtWidgets.QTreeWidgetItem([f"case {case.id}", "", ""])
            self.addTopLevelItem(case_item)
            self._case_items[id(case)] = case_item
            if case.is_open:
                self._add_series(case, case_item)
            else:
                case_item.setToolTip(0, "not read yet: its series are listed when it is read")
            # Expanded now, children or not: expanding rows one by one later relays out the
            # whole tree each time (seconds for 500 cases); rows added later show expanded.
            case_item.setExpanded(True)
        QtCore.QTimer.singleShot(0, self.request_visible_thumbnails)

    def case_opened(self, case: Case) -> None:
        """A case listed without its files has been read: list its series."""
        case_item = self._case_items.get(id(case))
        if case_item is None or case_item.childCount():
            return
        case_item.setToolTip(0, "")
        self._add_series(case, case_item)
        QtCore.QTimer.singleShot(0, self.request_visible_thumbnails)

    def read_pending(self, dataset: Dataset, finished: Callable[[], None], chunk: int = 25) -> None:
        """Read, off the GUI thread and a few cases at a time (so other work interleaves), every
        case of ``dataset`` listed without its files, listing each one's series as it is read
        (and those of cases read meanwhile, such as the one on screen); then call ``finished``.
        Stops when another dataset is filled in."""
        generation = self._case_items
        if self._reading is generation:
            return
        # Every case whose series are not listed yet (one may have been read meanwhile, by the
        # viewer's prefetch): reading it again costs nothing.
        def unlisted(case: Case) -> bool:
            item = generation.get(id(case))
            return item is not None and (not case.is_open or (bool(case.series) and not item.childCount()))

        cases = [c for c in dataset.cases if unlisted(c)]
        if not cases:
            return
        self._reading = generation

        def read(batch: list[Case]) -> list[Case]:
            for case in batch:
                case.ensure_open()
            return batch

        def next_batch(start: int) -> None:
            if self._case_items is not generation:
                return
            if start >= len(cases):
                finished()
                return
            batch = cases[start:start + chunk]

            def done(read_cases: list[Case]) -> None:
                for case in read_cases:
                    self.case_opened(case)
                next_batch(start + chunk)

            self._submit(lambda: read(batch), done, lambda _e: next_batch(start + chunk))

        next_batch(0)

    def _add_series(self, case: Case, case_item: QtWidgets.QTreeWidgetItem) -> None:
        for series in case.series:
            orientation = sorted({k.geometry.orientation.value for k in series.stacks})
            # A localizer's three planes in one word: the series' name keeps the room.
            shown = orientation[0] if len(orientation) == 1 else "mixed" if orientation else ""
            item = QtWidgets.QTreeWidgetItem([series.description or series.uid, shown, str(series.n_slices)])
            item.setToolTip(1, "/".join(orientation))
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, series.uid)
            if len(series.stacks) > 1:
                item.setToolTip(0, f"{len(series.stacks)} stacks (blocks at different angles or grids)")
            case_item.addChild(item)
            if series.stacks:
                self._series[id(item)] = series

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
