"""The levels panel: the engine's values per level and side beside the images.

:class:`LevelsPanel` shows an :class:`~lumbarview.services.engine_view.EngineResult` as a tree:
level (and series when the case has several measured label maps) > part (canal, foramen left,
foramen right, disc) > one line per ``lumbarview measure`` row (value, unit, confidence, flag
with its source, dataset grade; the method and the confidence's reason as tooltips). A click on
any line emits :attr:`LevelsPanel.part_selected` with its row; the context menu's "Replace by a
manual measurement…" emits :attr:`LevelsPanel.replace_requested` (the measurement tools hook
there; the engine's row is never changed).

:class:`LevelsController` binds the panel to the main window: runs the engine off the GUI
thread with progress ("Measure this case"), takes the view to the plane the engine measured
on (an undoable session edit) and draws what it measured on every view as a temporary overlay,
and exports (CSV, JSON, DICOM SR, HTML report).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import Case
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.types import Series
from lumbarview.services.view_planes import best_volume, covering_view_plane
from lumbarview.ui.items.engine_items import EngineOverlay

if TYPE_CHECKING:
    from lumbarview.services.engine_view import EngineResult, PartGeometry
    from lumbarview.ui.main_window import MainWindow

ROLE = QtCore.Qt.ItemDataRole.UserRole
COLUMNS = ("Level / quantity", "Value", "Unit", "Confidence", "Flag", "Dataset grade")
PART_TITLES = {("canal", None): "Canal", ("foramen", "left"): "Foramen left", ("foramen", "right"): "Foramen right",
               ("disc", None): "Disc"}
_NAMES = {"canal_ap": "AP diameter", "canal_transverse": "transverse diameter", "canal_area": "area",
          "canal_area_min": "minimum area", "foramen_height": "height", "foramen_width": "width",
          "foramen_area": "area", "posterior_disc_height": "posterior disc height",
          "disc_height_anterior": "anterior height", "disc_height_middle": "middle height",
          "disc_height_posterior": "posterior height", "dhi": "DHI", "slip": "slip"}


def _value_text(row: dict[str, Any]) -> str:
    value = row.get("value")
    if value is None:
        return "—"
    return f"{value:.3f}" if row.get("unit") == "ratio" else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


class LevelsPanel(QtWidgets.QWidget):
    """The engine's rows per level and part (see the module)."""

    part_selected = QtCore.Signal(object)  # a row (dict): go to its part's plane
    replace_requested = QtCore.Signal(object)  # a row (dict): replace it by a manual measurement
    measure_requested = QtCore.Signal()
    measured = QtCore.Signal()  # a result is shown

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: EngineResult | None = None
        self._rows: list[dict[str, Any]] = []
        self.status = QtWidgets.QLabel("Measure → Measure this case (Ctrl+M) to see the engine's values per level.")
        self.status.setWordWrap(True)
        self.button = QtWidgets.QPushButton("Measure this case")
        self.button.clicked.connect(self.measure_requested.emit)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.itemClicked.connect(self._on_clicked)
        self.tree.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.status)
        layout.addWidget(self.button)
        layout.addWidget(self.tree, 1)

    # -- content -----------------------------------------------------------------------------
    def clear(self, message: str = "") -> None:
        self.result = None
        self._rows = []
        self.tree.clear()
        self.status.setText(message or "Measure → Measure this case (Ctrl+M) to see the engine's values per level.")

    def set_result(self, result: EngineResult) -> None:
        from lumbarview.services.engine_view import part_of  # the engine loads on first use
        self.result = result
        self.tree.clear()
        self._rows = []
        several = len({r.get("series") for r in result.rows}) > 1
        levels: dict[tuple[Any, Any], QtWidgets.QTreeWidgetItem] = {}
        parts: dict[tuple[Any, Any, Any, Any], QtWidgets.QTreeWidgetItem] = {}
        for row in result.rows:
            self._rows.append(row)
            level_key = (row.get("series"), row.get("level"))
            level_item = levels.get(level_key)
            if level_item is None:
                title = str(row.get("level") or "not measured")
                if several:
                    title += f" — {row.get('series')}"
                level_item = levels[level_key] = QtWidgets.QTreeWidgetItem(self.tree, [title])
                level_item.setData(0, ROLE, row)
                level_item.setExpanded(True)
                font = level_item.font(0)
                font.setBold(True)
                level_item.setFont(0, font)
            part = part_of(row.get("quantity"))
            side = row.get("side") if part == "foramen" else None
            part_key = (*level_key, part, side)
            parent = parts.get(part_key)
            if parent is None and part is not None:
                parent = parts[part_key] = QtWidgets.QTreeWidgetItem(level_item, [PART_TITLES.get((part, side),
                                                                                                   part)])
                parent.setData(0, ROLE, row)
                parent.setExpanded(part == "canal")
            item = QtWidgets.QTreeWidgetItem(parent or level_item, self.cells(row))
            item.setData(0, ROLE, row)
            tip = "\n".join(t for t in (row.get("method"), f"confidence: {row.get('confidence_reason')}",
                                        row.get("reason")) if t)
            for column in range(len(COLUMNS)):
                item.setToolTip(column, tip)
            if row.get("flag"):
                item.setForeground(4, QtGui.QBrush(QtGui.QColor("#e5534b")))
        for column in range(len(COLUMNS) - 2):
            self.tree.resizeColumnToContents(column)
        measured = sum(1 for r in result.rows if r.get("value") is not None)
        self.status.setText(f"Case {result.case_id}: {measured} of {len(result.rows)} values measured "
                            f"({result.engine_version}). Click a line to see where; right-click to replace a value "
                            "by a manual measurement." + ("".join(f"\n{n}" for n in result.notes)))

    @staticmethod
    def cells(row: dict[str, Any]) -> list[str]:
        quantity = str(row.get("quantity"))
        return [_NAMES.get(quantity, quantity), _value_text(row), str(row.get("unit") or ""),
                str(row.get("confidence") or ""), str(row.get("flag") or ""), str(row.get("dataset_grade") or "")]

    def shown_rows(self) -> list[dict[str, Any]]:
        """The rows the panel shows, with the keys of ``lumbarview measure`` rows."""
        if not self._rows:
            return []  # (the screenshot's sidecar asks before any measuring: the engine stays unloaded)
        from lumbarview.services.measure_case import EXTRA_KEYS, ROW_KEYS

        return [{key: row.get(key) for key in (*ROW_KEYS, *EXTRA_KEYS)} for row in self._rows]

    def row_items(self) -> list[QtWidgets.QTreeWidgetItem]:
        """The value lines (leaves), in order."""
        out: list[QtWidgets.QTreeWidgetItem] = []

        def walk(item: QtWidgets.QTreeWidgetItem | None) -> None:
            if item is None:
                return
            if item.childCount() == 0:
                out.append(item)
            for n in range(item.childCount()):
                walk(item.child(n))

        for n in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(n))
        return out

    # -- interaction -------------------------------------------------------------------------
    def _on_clicked(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        row = item.data(0, ROLE)
        if isinstance(row, dict):
            self.part_selected.emit(row)

    def _context_menu(self, pos: QtCore.QPoint) -> None:
        item = self.tree.itemAt(pos)
        row = item.data(0, ROLE) if item is not None else None
        if not isinstance(row, dict) or item is None or item.childCount():
            return
        menu = QtWidgets.QMenu(self)
        menu.addAction("Show where it was measured").triggered.connect(lambda: self.part_selected.emit(row))
        menu.addAction("Replace by a manual measurement…").triggered.connect(
            lambda: self.replace_requested.emit(row))
        menu.exec(self.tree.viewport().mapToGlobal(pos))


class LevelsController:
    """Binds the levels panel, the engine and the exports to the main window (see the module)."""

    EXPORT_FILTERS = "CSV (*.csv);;JSON (*.json);;DICOM Structured Report (*.dcm);;HTML report (*.html)"

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.panel = LevelsPanel()
        self.panel.part_selected.connect(self.show_part)
        self.panel.measure_requested.connect(self.measure)
        self.panel.replace_requested.connect(self.replace_by_manual)
        self.overlays = {name: EngineOverlay(view) for name, view in window.views.items()}
        self.result: EngineResult | None = None
        self.part: PartGeometry | None = None
        window.session.case_changed.connect(lambda _case: self.reset())

    def reset(self) -> None:
        self.result = None
        self.panel.clear()
        self.set_part(None)

    def set_part(self, part: PartGeometry | None) -> None:
        self.part = part
        for overlay in self.overlays.values():
            overlay.set_part(part)

    # -- the engine --------------------------------------------------------------------------
    def measure(self) -> None:
        """Measure the loaded case off the GUI thread (a progress dialog can cancel)."""
        from lumbarview.services.engine_view import run_engine
        case = self.w.session.case
        if case is None:
            self.w.statusBar().showMessage("Open a case first")
            return
        self.panel.status.setText(f"Measuring case {case.id}…")
        self.w.tasks.run(lambda progress, cancel: run_engine(case, progress, cancel),
                         lambda result: self._on_result(case, result), f"Measuring case {case.id}…")

    def _on_result(self, case: Case, result: EngineResult) -> None:
        if case is not self.w.session.case:
            return  # the user moved on to another case meanwhile
        self.result = result
        self.panel.set_result(result)
        self.w.docks.levels_dock.show()
        self.w.docks.levels_dock.raise_()
        if not result.rows:
            self.panel.status.setText(f"Case {case.id}: nothing to measure (the engine measures 3D label maps "
                                      "that name disc levels)" + "".join(f"\n{n}" for n in result.notes))
        self.w.statusBar().showMessage(f"Case {case.id}: {len(result.rows)} engine values")
        self.panel.measured.emit()

    def _source(self, series_name: str) -> Series | None:
        from lumbarview.services import report
        case = self.w.session.case
        if case is None:
            return None
        stack = report.image_stack(case, series_name)
        found = next((s for s in case.series if stack is not None and stack in s.stacks and len(s.stacks) == 1), None)
        return found or best_volume(case)

    def show_part(self, row: dict[str, Any]) -> bool:
        """Take the view to the plane the engine measured ``row`` on and draw what it measured."""
        part = self.result.part_for(row) if self.result is not None else None
        if part is None:
            self.w.statusBar().showMessage(f"{row.get('level')} {row.get('quantity')}: nothing was measured to show"
                                           + (f" ({row['reason']})" if row.get("reason") else ""))
            return False
        source = self._source(part.series)
        if source is None:
            self.w.statusBar().showMessage("No volume in this case to show the engine's plane")
            return False
        plane = covering_view_plane(source, part.right_lps, part.down_lps, part.centre_lps)
        self.set_part(part)
        title = PART_TITLES.get((part.part, part.side), part.part)
        self.w.session.set_plane(part.view, plane, source, f"show {part.level} {title.lower()}",
                                 cursor_lps=part.centre_lps)
        view = self.w.views[part.view]
        view.zoom_to(part.centre_lps, 70.0)
        self.w.statusBar().showMessage(f"{part.level} {title.lower()}: the engine's plane")
        return True

    def replace_by_manual(self, row: dict[str, Any]) -> None:
        """Replace ``row`` by a manual measurement: the view goes to the engine's plane, then the
        measurement tools take over (the engine's row is never changed)."""
        self.show_part(row)
        self.w.measure.tools.replace_engine_value(row)

    # -- exports -----------------------------------------------------------------------------
    def export_rows(self) -> list[dict[str, Any]]:
        """The rows to export: the engine's (manual measurements can be added by the caller)."""
        from lumbarview.services import export
        if self.result is None:
            return []
        return export.export_rows(self.result.rows, "engine", self.result.engine_version)

    def export_to(self, path: str | Path, rows: list[dict[str, Any]] | None = None) -> Path:
        """Export to ``path`` by its suffix: .csv, .json, .dcm (SR) or .html (report)."""
        from lumbarview.services import export, report, sr  # highdicom: on first use
        case = self.w.session.case
        if self.result is None or case is None:
            raise ValueError("measure the case first (Measure → Measure this case)")
        rows = self.export_rows() if rows is None else rows
        suffix = Path(path).suffix.lower()
        dataset_path = self.w.dataset.path if self.w.dataset is not None else ""
        if dataset_path and Path(path).resolve().is_relative_to(Path(dataset_path).resolve()):
            raise ValueError(f"{path} is inside the dataset: lumbarview never writes into a dataset")
        if suffix in (".csv", ".json"):
            return export.write(path, rows, case.id)
        if suffix == ".dcm":
            return sr.write_sr(path, rows, case, case.id, self.result.engine_version).path
        if suffix in (".html", ".htm"):
            return report.write_report(path, case, self.result, rows, dataset_path)
        raise ValueError(f"cannot export to {suffix or 'a file without suffix'}: choose .csv, .json, .dcm or .html")

    def export_dialog(self) -> None:
        from lumbarview.services import report
        case = self.w.session.case
        if self.result is None or case is None:
            self.w.statusBar().showMessage("Measure the case first (Measure → Measure this case)")
            return
        dataset_path = self.w.dataset.path if self.w.dataset is not None else ""
        start = report.default_report_path(dataset_path or case.id, case.id).with_suffix(".csv")
        start.parent.mkdir(parents=True, exist_ok=True)
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self.w, "Export measurements", str(start),
                                                        self.EXPORT_FILTERS)
        if not path:
            return
        try:
            written = self.export_to(path)
        except (LumbarviewError, ValueError, OSError) as exc:
            self.w.statusBar().showMessage(f"Export failed: {exc}")
            if not os.environ.get("LUMBARVIEW_NO_DIALOGS"):
                QtWidgets.QMessageBox.warning(self.w, "lumbarview", f"Export failed: {exc}")
            return
        self.w.statusBar().showMessage(f"Exported {written}")
