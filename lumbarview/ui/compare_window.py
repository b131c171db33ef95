"""Compare mode: the current and the prior study side by side, the same roles facing (sagittal
with sagittal, axial with axial), scrolled in step through the alignment, with the change table.

The pairing, the alignment and the change table are the services' (:mod:`lumbarview.services.compare`)
and the slicing's (:class:`lumbarview.slicing.sync.StackSync`); this module only draws them. The
alignment across frames of reference is the per-level registration, run off the GUI thread.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lumbarview.services import compare
from lumbarview.slicing.sync import StackSync
from lumbarview.ui.threading import Worker


class StudyPane(QtWidgets.QWidget):
    """One study's stack: its native slices, scrolled with the wheel or the arrow keys."""

    scrolled = QtCore.Signal(int)

    def __init__(self, name: str, study: str, view: compare.RoleView) -> None:
        super().__init__()
        self.name, self.study, self.view = name, study, view
        self.stack = view.stack
        self.k = view.n_slices // 2
        self.title = QtWidgets.QLabel()
        self.graphics = pg.GraphicsLayoutWidget()
        self.box = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image = pg.ImageItem()
        self.box.addItem(self.image)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.graphics, 1)
        lo, hi = np.percentile(np.asarray(view.pixels[:: max(1, view.n_slices // 8)], dtype=np.float32), [1, 99.5])
        self.levels = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        self.show_slice(self.k)
        self.box.autoRange(padding=0.0)

    def show_slice(self, k: int) -> None:
        self.k = int(np.clip(k, 0, self.view.n_slices - 1))
        si, sj, _ = self.view.geometry.spacing_mm
        pixels = np.asarray(self.view.pixels[self.k], dtype=np.float32)
        self.image.setImage(pixels, levels=self.levels, autoLevels=False)  # row-major (ui.app)
        self.image.setRect(QtCore.QRectF(0.0, 0.0, pixels.shape[1] * si, pixels.shape[0] * sj))
        self.title.setText(f"{self.study}: {self.stack.meta.get('description') or self.stack.uid} "
                           f"({self.view.role}) slice {self.k + 1}/{self.view.n_slices}")

    def step(self, n: int) -> None:
        self.show_slice(self.k + n)
        self.scrolled.emit(self.k)

    def wheelEvent(self, event: Any) -> None:
        self.step(1 if event.angleDelta().y() > 0 else -1)

    def plane_doc(self) -> dict[str, Any]:
        plane = self.view.geometry.slice_plane(self.k)
        return {"origin_lps": plane.origin_lps.tolist(), "right_lps": plane.row_direction_lps.tolist(),
                "down_lps": plane.column_direction_lps.tolist(), "normal_lps": plane.normal_lps.tolist()}


class CompareWindow(QtWidgets.QWidget):
    """The compare layout: one row per role found in both studies, current left, prior right."""

    ready = QtCore.Signal()

    def __init__(self, current: compare.CompareStudy, prior: compare.CompareStudy, worker: Worker,
                 level: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("lumbarview: compare")
        self.current, self.prior = current, prior
        self.warning = compare.patients_differ(current, prior)
        self.pairs = compare.facing_pairs(current.case, prior.case)
        self.changes = compare.change_rows(current.rows, prior.rows)
        self.syncs: dict[str, StackSync] = {}
        self.alignment: dict[str, Any] = {"kind": "none", "matrix_lps": None, "message": ""}
        self.panes: list[tuple[StudyPane, StudyPane]] = []
        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        grid = QtWidgets.QGridLayout()
        if not self.pairs:
            self.banner.setText("the two studies have no series in the same plane role: nothing to hang facing")
        for row, (cur_view, pri_view) in enumerate(self.pairs):
            role = cur_view.role
            left = StudyPane(f"{role}-current", "current", cur_view)
            right = StudyPane(f"{role}-prior", "prior", pri_view)
            grid.addWidget(left, row, 0)
            grid.addWidget(right, row, 1)
            self.panes.append((left, right))
            left.scrolled.connect(lambda k, r=role: self._follow(r, k, forward=True))
            right.scrolled.connect(lambda k, r=role: self._follow(r, k, forward=False))
        self.table = QtWidgets.QTableWidget()
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(grid, 3)
        layout.addWidget(self.table, 1)
        self._fill_table()
        self._align(worker, level)

    # -- alignment -----------------------------------------------------------------------------
    def _align(self, worker: Worker, level: str | None) -> None:
        same_frame = (self.current.frame_of_reference is not None
                      and self.current.frame_of_reference == self.prior.frame_of_reference)
        if same_frame:
            self.alignment = {"kind": "patient position", "matrix_lps": np.eye(4).tolist(), "message":
                              "one frame of reference: in step by patient position"}
            self._build_syncs(None, same_frame=True)
            QtCore.QTimer.singleShot(0, self.ready.emit)
            return
        centres = compare.level_centres(self.current.label_map)
        if not centres:
            self.alignment["message"] = ("different frames of reference and no labelled level to register: "
                                         "the pair is shown unsynchronised")
            self._build_syncs(None, same_frame=False)
            QtCore.QTimer.singleShot(0, self.ready.emit)
            return
        name = level if level in centres else ("L4-L5" if "L4-L5" in centres else next(iter(centres)))
        self.banner.setText(f"registering {name} ...")

        def job() -> list[dict[str, Any]]:
            return compare.compare(self.current, self.prior, level=name)

        worker.submit(job, lambda objs: self._on_registered(name, objs), self._on_failed)

    def _on_failed(self, error: BaseException) -> None:
        self.alignment = {"kind": "none", "matrix_lps": None,
                          "message": f"the registration failed ({error}): the pair is shown unsynchronised"}
        self._build_syncs(None, same_frame=False)
        self.ready.emit()

    def _on_registered(self, level: str, objects: list[dict[str, Any]]) -> None:
        obj = objects[0] if objects else {}
        matrix = obj.get("matrix_lps") if obj.get("converged") else None
        self.alignment = {"kind": f"registration at {level}", "matrix_lps": matrix, "message": obj.get("message", "")}
        self._build_syncs(None if matrix is None else np.asarray(matrix), same_frame=False)
        self.ready.emit()

    def _build_syncs(self, matrix: np.ndarray | None, same_frame: bool) -> None:
        for cur_view, pri_view in self.pairs:
            self.syncs[cur_view.role] = StackSync.build(cur_view.geometry, pri_view.geometry, same_frame=same_frame,
                                                        alignment=matrix)
        reasons = sorted({s.reason for s in self.syncs.values() if s.reason})
        text = [self.alignment["message"], *reasons]
        if self.warning:
            text.insert(0, "WARNING: " + self.warning)
        self.banner.setText(" | ".join(t for t in text if t))
        for (cur_view, _), (left, _right) in zip(self.pairs, self.panes, strict=True):
            self._follow(cur_view.role, left.k, forward=True)

    def _follow(self, role: str, k: int, *, forward: bool) -> None:
        sync = self.syncs.get(role)
        if sync is None or sync.reason is not None:
            return
        index = [p[0].role for p in self.pairs].index(role)
        left, right = self.panes[index]
        target = (sync if forward else sync.inverse()).target_slice(k)
        if target is not None:
            (right if forward else left).show_slice(target)

    # -- change table --------------------------------------------------------------------------
    def _fill_table(self) -> None:
        keys = ("level", "quantity", "side", "prior", "current", "difference", "percent", "unit", "flagged")
        self.table.setColumnCount(len(keys))
        self.table.setHorizontalHeaderLabels(list(keys))
        self.table.setRowCount(len(self.changes))
        for r, row in enumerate(self.changes):
            for c, key in enumerate(keys):
                value = row.get(key)
                text = "" if value is None else ("CHANGED" if value is True else "" if value is False else str(value))
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def sidecar(self) -> dict[str, Any]:
        views = []
        for left, right in self.panes:
            for pane in (left, right):
                corner = pane.graphics.mapTo(self, QtCore.QPoint(0, 0))
                views.append({"name": pane.name, "study": pane.study, "rect_px": [corner.x(), corner.y(),
                              pane.graphics.width(), pane.graphics.height()],
                              "series": pane.stack.meta.get("description"), "slice": pane.k,
                              "role": pane.view.role, "plane": pane.plane_doc()})
        return {"mode": "compare", "current": self.current.path, "prior": self.prior.path,
                "patients": {"current": self.current.patient_id, "prior": self.prior.patient_id,
                             "different": self.warning is not None, "warning": self.warning},
                "alignment": self.alignment,
                "sync": {role: s.reason for role, s in self.syncs.items()},
                "views": views, "changes": self.changes}


def ask_confirm(warning: str) -> bool:
    """The different-patients warning, to confirm before the pair is shown."""
    answer = QtWidgets.QMessageBox.warning(None, "lumbarview: compare", warning + "\n\nCompare them anyway?",
                                           QtWidgets.QMessageBox.StandardButton.Yes
                                           | QtWidgets.QMessageBox.StandardButton.No)
    return answer == QtWidgets.QMessageBox.StandardButton.Yes


def run_compare(current_path: str, prior_path: str, screenshot: str | None, size: tuple[int, int] | None,
                level: str | None = None, scroll: int = 0, confirm: Callable[[str], bool] | None = None) -> int:
    """Show the compare window; with ``screenshot``, scroll the current panes ``scroll`` slices
    once aligned, save the PNG and ``OUT.json`` beside it, and exit."""
    from lumbarview.ui.app import make_app

    app = make_app()
    current = compare.load_study(current_path)
    prior = compare.load_study(prior_path)
    warning = compare.patients_differ(current, prior)
    if warning is not None and confirm is not None and not confirm(warning):
        return 2
    worker = Worker(max_workers=1)
    window = CompareWindow(current, prior, worker, level)
    window.resize(*(size or (1400, 900)))
    window.show()
    code = {"value": 0}
    if screenshot:
        def capture() -> None:
            for left, _right in window.panes:
                left.step(scroll)
            app.processEvents()
            out = Path(screenshot)
            out.parent.mkdir(parents=True, exist_ok=True)
            ok = window.grab().save(str(out))
            if ok:
                out.with_suffix(".json").write_text(json.dumps(window.sidecar(), indent=1, allow_nan=False) + "\n")
            else:
                print(f"lumbarview: could not save {out}", file=sys.stderr)
            code["value"] = 0 if ok else 2
            window.close()

        window.ready.connect(lambda: QtCore.QTimer.singleShot(200, capture))
    app.exec()
    worker.shutdown()
    return code["value"]
