"""The levels panel: the engine's values per level and side beside the images.

:class:`LevelsPanel` shows an :class:`~lumbarview.services.engine_view.EngineResult` as a tree:
level (head to feet: T12-L1 first) > part (canal, foramen left, foramen right, disc) > one line
per ``lumbarview measure`` row (value, a manual measurement that replaces it, unit, confidence,
flag with its source, wrapped, and dataset grade; the method and the confidence's reason as
tooltips). A case with several measured label maps (T1 and T2 masks) shows one at a time,
chosen above the tree. A click on
any line emits :attr:`LevelsPanel.part_selected` with its row; the context menu's "Replace by a
manual measurement…" emits :attr:`LevelsPanel.replace_requested` (the measurement tools hook
there; the engine's row is never changed).

:class:`LevelsController` binds the panel to the main window: runs the engine off the GUI
thread with progress ("Measure this case"), takes the view to the plane the engine measured
on (an undoable session edit) and draws what it measured on every view as a temporary overlay,
and exports the case's measurements (those drawn by hand, and the engine's when it ran) through
:mod:`lumbarview.services.measurement_export`, which picks the format and keeps the dataset
untouched.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import Case
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.labels import VERTEBRAE_TOP_DOWN
from lumbarview.core.types import Series
from lumbarview.model.session import Session
from lumbarview.services.view_planes import best_volume, plan_go_to
from lumbarview.ui.items.engine_items import EngineOverlay
from lumbarview.ui.shell import Shell
from lumbarview.ui.views.slice_view import SliceView
from lumbarview.ui.views.tools import ToolController

if TYPE_CHECKING:  # the engine, the report and the SR (highdicom) load on first use, not at launch
    from lumbarview.services.engine_view import EngineResult, PartGeometry

ROLE = QtCore.Qt.ItemDataRole.UserRole
COLUMNS = ("Level / quantity", "Value", "Manual", "Unit", "Confidence", "Flag", "Dataset grade")
VALUE, MANUAL, FLAG = 1, 2, 5  # column indices
PART_TITLES = {("canal", None): "Canal", ("foramen", "left"): "Foramen left", ("foramen", "right"): "Foramen right",
               ("disc", None): "Disc"}
_PART_ORDER = list(PART_TITLES)
_NAMES = {"canal_ap": "AP diameter", "canal_transverse": "transverse diameter", "canal_area": "area",
          "canal_area_min": "minimum area", "foramen_height": "height", "foramen_width": "width",
          "foramen_area": "area", "posterior_disc_height": "posterior disc height",
          "disc_height_anterior": "anterior height", "disc_height_middle": "middle height",
          "disc_height_posterior": "posterior height", "dhi": "DHI", "slip": "slip"}
#: Disc levels head to feet (T10-T11 ... L5-S1): the panel's order.
LEVEL_ORDER = tuple(f"{a}-{b}" for a, b in itertools.pairwise(VERTEBRAE_TOP_DOWN))
#: How the measurement tools note a manual measurement that replaces an engine value.
_REPLACES = re.compile(r"manual replacement of the engine's (?P<quantity>\w+)")


def level_rank(level: object) -> tuple[int, str]:
    """Sort key of a level: head to feet, unknown names after the known ones, none last."""
    if not isinstance(level, str):
        return (len(LEVEL_ORDER) + 1, "")
    return (LEVEL_ORDER.index(level) if level in LEVEL_ORDER else len(LEVEL_ORDER), level)


@dataclass(frozen=True)
class ManualValue:
    """A manual measurement shown beside the engine value it replaces."""

    level: str | None
    side: str | None
    quantity: str
    text: str  # its value with unit, as the measurements table shows it


def manual_values(measurements: Iterable[Any]) -> list[ManualValue]:
    """The session's manual measurements that replace an engine value (the tools note which)."""
    out = []
    for m in measurements:
        found = _REPLACES.search(str(getattr(m, "note", "") or ""))
        if found is not None and getattr(m, "source", "manual") == "manual":
            out.append(ManualValue(m.level, m.side, found["quantity"], m.value_text()))
    return out


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
        self._manual: list[ManualValue] = []
        self.status = QtWidgets.QLabel("Measure → Measure this case (Ctrl+M) to see the engine's values per level.")
        self.status.setWordWrap(True)
        self.button = QtWidgets.QPushButton("Measure this case")
        self.button.clicked.connect(self.measure_requested.emit)
        # A case with several measured masks (T1 and T2) shows one at a time, levels grouped.
        self.mask_label = QtWidgets.QLabel("Mask:")
        self.mask_choice = QtWidgets.QComboBox()
        self.mask_choice.setToolTip("The label map (mask) whose values are shown; each is measured on its own")
        self.mask_choice.currentIndexChanged.connect(lambda _i: self._build())
        masks = QtWidgets.QHBoxLayout()
        masks.addWidget(self.mask_label)
        masks.addWidget(self.mask_choice, 1)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setWordWrap(True)  # flags wrap in their column rather than being cut
        self.tree.setMinimumHeight(160)  # a few levels in view, however long the status above
        self.tree.itemClicked.connect(self._on_clicked)
        self.tree.header().sectionResized.connect(self._on_section_resized)
        self.tree.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.status)
        layout.addWidget(self.button)
        layout.addLayout(masks)
        layout.addWidget(self.tree, 1)
        self._show_masks([])

    # -- content -----------------------------------------------------------------------------
    def clear(self, message: str = "") -> None:
        self.result = None
        self._rows = []
        self.tree.clear()
        self._show_masks([])
        self.status.setText(message or "Measure → Measure this case (Ctrl+M) to see the engine's values per level.")

    def _show_masks(self, series: list[str]) -> None:
        self.mask_choice.blockSignals(True)
        self.mask_choice.clear()
        self.mask_choice.addItems(series)
        self.mask_choice.blockSignals(False)
        self.mask_label.setVisible(len(series) > 1)
        self.mask_choice.setVisible(len(series) > 1)

    def set_result(self, result: EngineResult) -> None:
        self.result = result
        self._rows = list(result.rows)
        self._show_masks([str(s) for s in dict.fromkeys(r.get("series") for r in result.rows) if s is not None])
        self._build()
        measured = sum(1 for r in result.rows if r.get("value") is not None)
        self.status.setText(f"Case {result.case_id}: {measured} of {len(result.rows)} values measured "
                            f"({result.engine_version}). Click a line to see where; right-click to replace a value "
                            "by a manual measurement." + ("".join(f"\n{n}" for n in result.notes)))

    def set_manual(self, values: Iterable[ManualValue]) -> None:
        """Show these manual measurements beside the engine values they replace."""
        self._manual = list(values)
        for item in self.row_items():
            row = item.data(0, ROLE)
            if isinstance(row, dict):
                self._fill_manual(item, row)

    def _fill_manual(self, item: QtWidgets.QTreeWidgetItem, row: dict[str, Any]) -> None:
        found = [m.text for m in self._manual if m.quantity == row.get("quantity") and m.level == row.get("level")
                 and m.side == row.get("side") and (row.get("unit") != "%")]
        item.setText(MANUAL, "; ".join(found))
        item.setToolTip(MANUAL, "Measured by hand in place of the engine's value (both are kept)" if found else "")

    def _build(self) -> None:
        """The tree of the chosen mask's rows: levels head to feet, then canal, foramina, disc."""
        from lumbarview.services.engine_view import part_of  # the engine loads on first use
        self.tree.clear()
        chosen = self.mask_choice.currentText() if self.mask_choice.count() > 1 else None
        rows = [r for r in self._rows if chosen is None or r.get("series") == chosen]
        order = {id(r): n for n, r in enumerate(rows)}

        def part_key(row: dict[str, Any]) -> tuple[int, int]:
            part = part_of(row.get("quantity"))
            key = (part, row.get("side") if part == "foramen" else None)
            return (_PART_ORDER.index(key) if key in _PART_ORDER else len(_PART_ORDER), order[id(row)])

        levels: dict[Any, QtWidgets.QTreeWidgetItem] = {}
        parts: dict[tuple[Any, Any, Any], QtWidgets.QTreeWidgetItem] = {}
        for row in sorted(rows, key=lambda r: (level_rank(r.get("level")), part_key(r))):
            level_item = levels.get(row.get("level"))
            if level_item is None:
                title = str(row.get("level") or "not measured")
                level_item = levels[row.get("level")] = QtWidgets.QTreeWidgetItem(self.tree, [title])
                level_item.setData(0, ROLE, row)
                level_item.setExpanded(True)
                font = level_item.font(0)
                font.setBold(True)
                level_item.setFont(0, font)
            part = part_of(row.get("quantity"))
            side = row.get("side") if part == "foramen" else None
            parent = parts.get((row.get("level"), part, side))
            if parent is None and part is not None:
                parent = parts[(row.get("level"), part, side)] = QtWidgets.QTreeWidgetItem(
                    level_item, [PART_TITLES.get((part, side), part)])
                parent.setData(0, ROLE, row)
                parent.setExpanded(part == "canal")
            item = QtWidgets.QTreeWidgetItem(parent or level_item, self.cells(row))
            item.setData(0, ROLE, row)
            tip = "\n".join(t for t in (row.get("method"), f"confidence: {row.get('confidence_reason')}",
                                        row.get("reason")) if t)
            for column in range(len(COLUMNS)):
                item.setToolTip(column, tip)
            if row.get("flag"):
                item.setForeground(FLAG, QtGui.QBrush(QtGui.QColor("#e5534b")))
                item.setToolTip(FLAG, str(row["flag"]))  # the whole text, however narrow the column
            self._fill_manual(item, row)
        for column in range(FLAG):
            self.tree.resizeColumnToContents(column)
        self.tree.setColumnWidth(FLAG, 260)  # long flags wrap (their whole text is the tooltip too)
        self._wrap_flags()

    def _on_section_resized(self, column: int, _old: int, _new: int) -> None:
        if column == FLAG:
            self._wrap_flags()

    def _wrap_flags(self) -> None:
        """Each line tall enough for its flag wrapped in the flag column (a tree view wraps text
        but does not grow the row for it)."""
        width = max(40, self.tree.columnWidth(FLAG) - 8)
        metrics = self.tree.fontMetrics()
        for item in self.row_items():
            text = item.text(FLAG)
            if text:
                bound = metrics.boundingRect(QtCore.QRect(0, 0, width, 10_000),
                                             int(QtCore.Qt.TextFlag.TextWordWrap), text)
                item.setSizeHint(FLAG, QtCore.QSize(width, bound.height() + 4))

    @staticmethod
    def cells(row: dict[str, Any]) -> list[str]:
        quantity = str(row.get("quantity"))
        return [_NAMES.get(quantity, quantity), _value_text(row), "", str(row.get("unit") or ""),
                str(row.get("confidence") or ""), str(row.get("flag") or ""), str(row.get("dataset_grade") or "")]

    def shown_rows(self) -> list[dict[str, Any]]:
        """The engine's rows (every mask's), with the keys of ``lumbarview measure`` rows."""
        if not self._rows:
            return []  # (the screenshot's sidecar asks before any measuring: the engine stays unloaded)
        from lumbarview.services.measure_case import EXTRA_KEYS, ROW_KEYS
        return [{key: row.get(key) for key in (*ROW_KEYS, *EXTRA_KEYS)} for row in self._rows]

    def row_items(self) -> list[QtWidgets.QTreeWidgetItem]:
        """The value lines (leaves) of the mask shown, in order."""
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

    def __init__(self, shell: Shell, session: Session, views: dict[str, SliceView], tools: ToolController) -> None:
        self.shell = shell
        self.session = session
        self.views = views
        self.tools = tools
        self.panel = LevelsPanel()
        self.panel.part_selected.connect(self.show_part)
        self.panel.measure_requested.connect(self.measure)
        self.panel.replace_requested.connect(self.replace_by_manual)
        self.overlays = {name: EngineOverlay(view) for name, view in views.items()}
        self.result: EngineResult | None = None
        self.part: PartGeometry | None = None
        session.case_changed.connect(lambda _case: self.reset())
        # Manual measurements that replace an engine value show beside it.
        session.measurements.changed.connect(lambda: self.panel.set_manual(manual_values(session.measurements)))

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
        case = self.session.case
        if case is None:
            self.shell.status("Open a case first")
            return
        self.panel.status.setText(f"Measuring case {case.id}…")
        self.shell.tasks.run(lambda progress, cancel: run_engine(case, progress, cancel),
                         lambda result: self._on_result(case, result), f"Measuring case {case.id}…")

    def _on_result(self, case: Case, result: EngineResult) -> None:
        if case is not self.session.case:
            return  # the user moved on to another case meanwhile
        self.result = result
        self.panel.set_result(result)
        self.shell.show_dock("levels")
        if not result.rows:
            self.panel.status.setText(f"Case {case.id}: nothing to measure (the engine measures 3D label maps "
                                      "that name disc levels)" + "".join(f"\n{n}" for n in result.notes))
        self.shell.status(f"Case {case.id}: {len(result.rows)} engine values")
        self.panel.measured.emit()

    def _source(self, series_name: str) -> Series | None:
        from lumbarview.services import report
        case = self.session.case
        if case is None:
            return None
        stack = report.image_stack(case, series_name)
        found = next((s for s in case.series if stack is not None and stack in s.stacks and len(s.stacks) == 1), None)
        return found or best_volume(case)

    def show_part(self, row: dict[str, Any]) -> bool:
        """Take the view to the plane the engine measured ``row`` on and draw what it measured."""
        part = self.result.part_for(row) if self.result is not None else None
        if part is None:
            self.shell.status(f"{row.get('level')} {row.get('quantity')}: nothing was measured to show"
                                           + (f" ({row['reason']})" if row.get("reason") else ""))
            return False
        source = self._source(part.series)
        if source is None:
            self.shell.status("No volume in this case to show the engine's plane")
            return False
        self.set_part(part)
        title = PART_TITLES.get((part.part, part.side), part.part)
        go = plan_go_to(self.session, part.centre_lps, right_lps=part.right_lps, down_lps=part.down_lps,
                        series=source, prefer=part.view, field_mm=70.0, text=f"show {part.level} {title.lower()}")
        go.apply(self.session)
        for name in go.zoom:
            self.views[name].zoom_to(go.cursor_lps, go.field_mm)
        self.shell.status(f"{part.level} {title.lower()}: the engine's plane")
        return True

    def replace_by_manual(self, row: dict[str, Any]) -> None:
        """Replace ``row`` by a manual measurement: the view goes to the engine's plane, then the
        measurement tools take over (the engine's row is never changed)."""
        self.show_part(row)
        self.tools.replace_engine_value(row)

    # -- exports -----------------------------------------------------------------------------
    def export_rows(self) -> list[dict[str, Any]]:
        """The rows to export: the session's measurements of the case, and the engine's when it ran."""
        from lumbarview.services import measurement_export  # highdicom: on first use
        session = self.session
        return measurement_export.case_rows(session.measurements, session.case, self.result)

    def export_to(self, path: str | Path, rows: list[dict[str, Any]] | None = None) -> Path:
        """Export to ``path`` by its suffix (the service chooses the format and keeps the dataset
        untouched)."""
        from lumbarview.services import measurement_export
        case = self.session.case
        if case is None:
            raise ValueError("open a case first")
        dataset_path = self.session.dataset.path if self.session.dataset is not None else None
        return measurement_export.export_case(
            path, self.export_rows() if rows is None else rows, case, case.id,
            dataset_path=dataset_path, engine=self.result)

    def export_dialog(self) -> None:
        case = self.session.case
        if case is None:
            self.shell.status("Open a case first")
            return
        path = self.shell.save_path("Export measurements", f"{case.id}-measurements.csv", self.EXPORT_FILTERS)
        if not path:
            return
        try:
            written = self.export_to(path)
        except (LumbarviewError, ValueError, OSError) as exc:
            self.shell.status(f"Export failed: {exc}")
            if self.shell.interactive:
                QtWidgets.QMessageBox.warning(self.shell.widget, "lumbarview", f"Export failed: {exc}")
            return
        self.shell.status(f"Exported {written}")
