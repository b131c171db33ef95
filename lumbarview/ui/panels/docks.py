"""Dock panels: load issues, DICOM tags, layers, annotations, the case summary."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.errors import LumbarviewError
from lumbarview.core.text import safe_line
from lumbarview.core.types import LoadIssue
from lumbarview.services.case_browser import Submit
from lumbarview.services.tags import SliceFile, TagRow, read_tags


class IssuesPanel(QtWidgets.QTableWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["Severity", "Code", "Message", "File"])
        self.horizontalHeader().setStretchLastSection(True)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(False)
        self.verticalHeader().hide()

    def set_issues(self, issues: Sequence[LoadIssue]) -> None:
        ordered = sorted(issues, key=lambda i: -int(i.severity))
        self.setRowCount(len(ordered))
        colours = {"ERROR": "#ff8a80", "WARNING": "#ffd180", "INFO": "#9e9e9e"}
        for row, issue in enumerate(ordered):
            cells = [issue.severity.label, issue.code, issue.message, issue.path or ""]
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(text)
                if col == 0:
                    item.setForeground(QtGui.QColor(colours[issue.severity.name]))
                self.setItem(row, col, item)
        self.resizeColumnsToContents()


class TagPanel(QtWidgets.QWidget):
    """The DICOM tags of the slice the focused view shows, read off the GUI thread through
    ``submit``; a line above the tree says which slice (or why there are no tags)."""

    shown = QtCore.Signal(str)  # the file whose tags are listed ("" when none)

    def __init__(self, submit: Submit, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit = submit
        self.note = QtWidgets.QLabel("Click a view to see the DICOM tags of its slice.")
        self.note.setWordWrap(True)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.note)
        layout.addWidget(self.tree, 1)
        self.path: str | None = None  # the file asked for last

    def show_slice(self, wanted: SliceFile) -> None:
        """List the tags of ``wanted``'s file (read on the worker; a later call wins)."""
        self.note.setText(wanted.note)
        if wanted.path is not None and wanted.path == self.path:
            return
        self.path = wanted.path
        self.tree.clear()
        if wanted.path is None:
            self.shown.emit("")
            return
        path = wanted.path
        self.tree.addTopLevelItem(QtWidgets.QTreeWidgetItem(["", "reading…", "", ""]))
        self._submit(lambda: read_tags(path), lambda rows: self._fill(path, rows),
                     lambda error: self._failed(path, error))

    def _failed(self, path: str, error: BaseException) -> None:
        if path != self.path:
            return
        self.tree.clear()
        text = str(error) if isinstance(error, (LumbarviewError, OSError)) else f"{type(error).__name__}: {error}"
        self.tree.addTopLevelItem(QtWidgets.QTreeWidgetItem(["", f"cannot read {path}: {text}", "", ""]))
        self.shown.emit("")

    def _fill(self, path: str, rows: list[TagRow]) -> None:
        if path != self.path:
            return  # the view moved on while this file was read
        self.tree.clear()
        parents: dict[int, QtWidgets.QTreeWidgetItem] = {}
        for row in rows:
            item = QtWidgets.QTreeWidgetItem([row.tag, row.keyword, row.vr, row.value])
            parent = parents.get(row.depth - 1)
            if parent is None or row.depth == 0:
                self.tree.addTopLevelItem(item)
            else:
                parent.addChild(item)
            parents[row.depth] = item
        for col in range(3):
            self.tree.resizeColumnToContents(col)
        self.shown.emit(path)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """The top-level lines shown (tag, keyword, VR, value)."""
        out = []
        for n in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(n)
            if item is not None:
                out.append((item.text(0), item.text(1), item.text(2), item.text(3)))
        return out


class LayerPanel(QtWidgets.QTreeWidget):
    """Layers of the case: visibility, opacity, fill/outline, order, and a legend per label map
    (each label can be hidden)."""

    def __init__(self, layer_model: Any, edit: Any = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer_model = layer_model
        # Edits go through the session (undoable) when the window gives ``edit``.
        self._edit = edit if edit is not None else (
            lambda layer, merge=False, **changes: layer_model.update(layer, **changes))
        self.setHeaderLabels(["Layer", "Opacity", "Mode"])
        self.setColumnWidth(0, 230)
        self._updating = False
        #: ``(layers, text, **changes)``: one undoable edit of several layers (Session.set_layers).
        self.bulk_edit: Any = None
        self._widgets: dict[int, tuple[QtWidgets.QTreeWidgetItem, QtWidgets.QSpinBox, Any]] = {}
        #: ``(label_map)``: show a volume taken for labels by its values as an image (the window's).
        self.show_as_image: Any = None
        layer_model.layers_changed.connect(self.rebuild)
        layer_model.layer_changed.connect(self._sync)
        self.itemChanged.connect(self._on_item_changed)
        self.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_context_menu)
        self.rebuild()

    def layer_actions(self, layer: Any) -> list[tuple[str, Any]]:
        """What a layer's context menu offers: a label map taken for one by its values (its name
        does not say so) can be shown as the image it may be instead."""
        if layer.kind == "labels" and getattr(layer.source, "as_image", None) is not None \
                and self.show_as_image is not None:
            return [("Show as an image", lambda: self.show_as_image(layer.source))]
        return []

    def _on_context_menu(self, position: QtCore.QPoint) -> None:
        item = self.itemAt(position)
        data = item.data(0, QtCore.Qt.ItemDataRole.UserRole) if item is not None else None
        layer = self._layer(data[1]) if data else None
        actions = self.layer_actions(layer) if layer is not None else []
        if not actions:
            return
        menu = QtWidgets.QMenu(self)
        for text, slot in actions:
            menu.addAction(text, slot)
        menu.exec(self.viewport().mapToGlobal(position))

    def rebuild(self) -> None:
        from lumbarview.ui.items.overlay_items import colour_icon

        self._updating = True
        self.clear()
        self._widgets = {}
        for layer in self.layer_model.layers:
            kind_text = getattr(layer.source, "kind", layer.kind) if layer.kind == "points" else layer.kind
            item = QtWidgets.QTreeWidgetItem([f"{layer.title or layer.name}  [{kind_text}]", "", ""])
            if layer.kind in ("points", "boxes"):
                colour = QtGui.QColor(layer.colour)
                item.setIcon(0, colour_icon((colour.red(), colour.green(), colour.blue())))
                tip = f"{layer.name}\nkind: {layer.group or layer.kind}"
                if layer.duplicates:
                    tip += "\nthe same boxes are also in: " + ", ".join(layer.duplicates) + " (drawn once)"
                item.setToolTip(0, tip)
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(0, QtCore.Qt.CheckState.Checked if layer.visible else QtCore.Qt.CheckState.Unchecked)
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, ("layer", id(layer)))
            guessed = getattr(layer.source, "guessed", None) if layer.kind == "labels" else None
            if guessed:
                item.setToolTip(0, f"{guessed} (right-click)")
            self.addTopLevelItem(item)
            spin = QtWidgets.QSpinBox()
            spin.setRange(0, 100)
            spin.setSuffix(" %")
            spin.setValue(round(layer.opacity * 100))
            spin.valueChanged.connect(lambda v, lay=layer: self._edit(lay, merge=True, opacity=v / 100))
            self.setItemWidget(item, 1, spin)
            if layer.kind == "labels":
                mode = QtWidgets.QComboBox()
                mode.addItems(["fill", "outline"])
                mode.setCurrentIndex(1 if layer.outline else 0)
                mode.currentIndexChanged.connect(lambda i, lay=layer: self._edit(lay, outline=i == 1))
                self.setItemWidget(item, 2, mode)
                for value in layer.label_values():
                    entry = layer.source.scheme.entry(value)
                    child = QtWidgets.QTreeWidgetItem([f"{entry.name} ({value})", "", entry.role.value])
                    child.setIcon(0, colour_icon(entry.color_rgb))
                    child.setFlags(child.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                    child.setCheckState(0, QtCore.Qt.CheckState.Unchecked if value in layer.hidden_labels
                                        else QtCore.Qt.CheckState.Checked)
                    child.setData(0, QtCore.Qt.ItemDataRole.UserRole, ("label", id(layer), value))
                    item.addChild(child)
            buttons = QtWidgets.QWidget()
            row = QtWidgets.QHBoxLayout(buttons)
            row.setContentsMargins(0, 0, 0, 0)
            for text, delta in (("▲", -1), ("▼", 1)):
                b = QtWidgets.QToolButton()
                b.setText(text)
                b.setToolTip("draw earlier" if delta < 0 else "draw later (on top)")
                b.clicked.connect(lambda _=False, lay=layer, d=delta: self.layer_model.move(lay, d))
                row.addWidget(b)
            if layer.colour_rgb is not None:  # points and meshes (3D pane and slices): a colour
                item.setIcon(0, colour_icon(layer.colour_rgb))
                pick = QtWidgets.QToolButton()
                pick.setText("■")
                pick.setToolTip("colour")
                pick.clicked.connect(lambda _=False, lay=layer: self.choose_colour(lay))
                row.addWidget(pick)
            if layer.kind != "labels":
                self.setItemWidget(item, 2, buttons)
            self._widgets[id(layer)] = (item, spin, mode if layer.kind == "labels" else None)
        self._updating = False

    def choose_colour(self, layer: Any, colour: QtGui.QColor | None = None) -> None:
        """The colour of a mesh or marker layer (asked for when ``colour`` is None); undoable."""
        if colour is None:
            colour = QtWidgets.QColorDialog.getColor(QtGui.QColor(*layer.colour_rgb), self, f"Colour of {layer.name}")
        if colour.isValid():
            self._edit(layer, colour_rgb=(colour.red(), colour.green(), colour.blue()))

    def widget_with_buttons(self) -> QtWidgets.QWidget:
        """The panel under a row of buttons: show all and hide all markers (boxes and points).
        Each set keeps its own check box."""
        box = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        self.show_all_button = QtWidgets.QPushButton("Show all markers")
        self.hide_all_button = QtWidgets.QPushButton("Hide all markers")
        self.show_all_button.clicked.connect(lambda: self.set_markers_visible(True))
        self.hide_all_button.clicked.connect(lambda: self.set_markers_visible(False))
        row.addWidget(self.show_all_button)
        row.addWidget(self.hide_all_button)
        column.addLayout(row)
        column.addWidget(self)
        return box

    def set_markers_visible(self, visible: bool) -> None:
        """Show or hide every box and point set (one undo step when the window gives
        ``bulk_edit``)."""
        layers = self.layer_model.marker_layers()
        if self.bulk_edit is not None:
            self.bulk_edit(layers, "show all markers" if visible else "hide all markers", visible=visible)
        else:
            for layer in layers:
                self._edit(layer, visible=visible)

    def _sync(self, layer: Any) -> None:
        """Show a change made elsewhere (a menu, a script) without rebuilding the tree."""
        from lumbarview.ui.items.overlay_items import colour_icon

        found = self._widgets.get(id(layer))
        if found is None:
            return
        item, spin, mode = found
        self._updating = True
        if getattr(layer, "colour_rgb", None) is not None:
            item.setIcon(0, colour_icon(layer.colour_rgb))
        item.setCheckState(0, QtCore.Qt.CheckState.Checked if layer.visible else QtCore.Qt.CheckState.Unchecked)
        for widget, value in ((spin, round(layer.opacity * 100)), (mode, 1 if layer.outline else 0)):
            if widget is None:
                continue
            widget.blockSignals(True)
            if isinstance(widget, QtWidgets.QSpinBox):
                widget.setValue(value)
            else:
                widget.setCurrentIndex(value)
            widget.blockSignals(False)
        self._updating = False

    def _layer(self, key: int) -> Any:
        return next((lay for lay in self.layer_model.layers if id(lay) == key), None)

    def _on_item_changed(self, item: QtWidgets.QTreeWidgetItem, column: int) -> None:
        if self._updating or column != 0:
            return
        data = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
        if not data:
            return
        checked = item.checkState(0) == QtCore.Qt.CheckState.Checked
        layer = self._layer(data[1])
        if layer is None:
            return
        if data[0] == "layer":
            self._edit(layer, visible=checked)
        else:
            hidden = set(layer.hidden_labels)
            (hidden.discard if checked else hidden.add)(data[2])
            self._edit(layer, hidden_labels=hidden)


class AnnotationPanel(QtWidgets.QWidget):
    """The case's annotations: filter by level, side and severity; jump to one (sets the
    crosshair and so the slices); previous/next annotated slice; flag as suspect with a note;
    export the flags."""

    jump = QtCore.Signal(object)  # Annotation

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Any] = []
        self.shown: list[Any] = []
        self.store: Any = None
        layout = QtWidgets.QVBoxLayout(self)
        filters = QtWidgets.QHBoxLayout()
        self.level = QtWidgets.QComboBox()
        self.side = QtWidgets.QComboBox()
        self.severity = QtWidgets.QComboBox()  # the grades the rows carry (0-3, or RSNA's words)
        self.condition = QtWidgets.QComboBox()  # shown when the rows name conditions (RSNA)
        self.level.addItems(["all levels", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"])
        self.side.addItems(["both sides", "left", "right"])
        self.severity.addItems(["any grade", "0", "1", "2", "3"])
        self.condition.addItem("any condition")
        self.condition.hide()
        for box in (self.level, self.side, self.severity, self.condition):
            box.currentIndexChanged.connect(self.refresh)
            filters.addWidget(box)
        layout.addLayout(filters)
        self.table = QtWidgets.QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["Kind", "Level", "Side", "Condition", "Grade", "Annotation"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.itemSelectionChanged.connect(self._on_selected)
        layout.addWidget(self.table)
        buttons = QtWidgets.QHBoxLayout()
        for text, slot in (("◀ Previous", lambda: self.step(-1)), ("Next ▶", lambda: self.step(1)),
                           ("Flag as suspect…", self.flag_selected), ("Export flags…", self.export_flags)):
            b = QtWidgets.QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        layout.addLayout(buttons)

    def set_rows(self, rows: list[Any], store: Any) -> None:
        from lumbarview.services.annotations import annotation_grades

        self.rows = rows
        self.store = store
        # The grade and condition choices are the ones these rows carry (kept when still there).
        for box, first, values in (
                (self.severity, "any grade", annotation_grades(rows) or ["0", "1", "2", "3"]),
                (self.condition, "any condition", sorted({r.condition for r in rows if r.condition}))):
            chosen = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems([first, *values])
            box.setCurrentIndex(max(0, box.findText(chosen)))
            box.blockSignals(False)
        self.condition.setVisible(self.condition.count() > 1)
        self.table.setColumnHidden(3, self.condition.count() <= 1)  # the Condition column
        self.table.clearSelection()  # a row picked in the previous case is not this case's
        self.refresh()

    def refresh(self) -> None:
        from lumbarview.services.annotations import filter_annotations

        level = None if self.level.currentIndex() == 0 else self.level.currentText()
        side = None if self.side.currentIndex() == 0 else self.side.currentText()
        grade = None if self.severity.currentIndex() <= 0 else self.severity.currentText()
        condition = None if self.condition.currentIndex() <= 0 else self.condition.currentText()
        self.shown = filter_annotations(self.rows, level, side, condition=condition, grade=grade)
        self.table.setRowCount(len(self.shown))
        for r, a in enumerate(self.shown):
            flagged = self.store.get(a.id) if self.store is not None else None
            cells = [a.kind, a.level or "", a.side or "", a.condition or "", a.grade or "",
                     a.text + (f"   ⚑ {flagged.note}" if flagged else "")]
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(text)
                if flagged or a.marked:
                    item.setForeground(QtGui.QColor("#ffb74d"))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    def _on_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            annotation = self.shown[rows[0].row()]
            if annotation.position_lps is not None:
                self.jump.emit(annotation)

    def step(self, delta: int) -> None:
        if not self.shown:
            return
        rows = self.table.selectionModel().selectedRows()
        current = rows[0].row() if rows else (-1 if delta > 0 else len(self.shown))
        target = (current + delta) % len(self.shown)
        self.table.selectRow(target)

    def flag_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.store is None:
            return
        annotation = self.shown[rows[0].row()]
        note, ok = QtWidgets.QInputDialog.getText(self, "Flag as suspect", f"Note for: {annotation.text}")
        if ok:
            self.store.flag(annotation.id, annotation.case, note)
            self.refresh()

    def export_flags(self) -> None:
        if self.store is None:
            return
        from lumbarview.ui.settings import Settings

        path = Settings().save_path(self, "Export flags", "lumbarview-flags.csv", "CSV (*.csv)",
                                    str(self.store.dataset_path))
        if not path:
            return
        try:
            count = self.store.export_csv(path)
        except (OSError, ValueError, OverflowError) as exc:  # nothing is lost: the flags stay in their file
            message = safe_line(f"The flags could not be exported to {path} ({type(exc).__name__}: {exc}). No flag "
                                f"was lost: they stay in {self.store.path}.")
            self._tell(message)
            if not os.environ.get("LUMBARVIEW_NO_DIALOGS"):
                QtWidgets.QMessageBox.warning(self, "Export flags", message)
            return
        self._tell(f"{count} flag(s) exported to {path}")

    def _tell(self, message: str) -> None:
        window = self.window()
        if isinstance(window, QtWidgets.QMainWindow):
            window.statusBar().showMessage(message)


class SummaryPanel(QtWidgets.QTextBrowser):
    def show_summary(self, case_id: str, summary: dict[str, Any]) -> None:
        parts = [f"<b>Case {case_id}</b><br>"]
        boxes = summary["boxes_by_side_and_grade"]
        parts.append("Boxes: " + (", ".join(f"{k}: {v}" for k, v in boxes.items()) or "none") + "<br>")
        parts.append("Discs with gradings: " + (", ".join(summary["levels_with_gradings"]) or "none") + "<br>")
        graded = summary.get("graded_points_by_grade") or {}
        if graded:
            parts.append(f"Graded points: {sum(graded.values())} ("
                         + ", ".join(f"{k}: {v}" for k, v in graded.items()) + ")<br>")
        parts.append("Disc levels labelled: " + (", ".join(summary["levels_labelled"]) or "none") + "<br>")
        missing = summary["levels_missing_labels"]
        if missing:
            parts.append(f"<span style='color:#ffb74d'>Levels without a disc label: {', '.join(missing)}</span>")
        self.setHtml("".join(parts))
