"""The main window's docks: the panels around the views, where each docks, and which of them
show for the dataset and the case on screen (a dock with nothing to say stays hidden and gives
its room to the images). Iterating a :class:`DockSet` gives its docks in the order the View
menu and the screenshot sidecar list them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy.typing as npt
from PySide6 import QtCore, QtWidgets

from lumbarview.core.dataset import Dataset
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.model.flags import FlagStore
from lumbarview.model.session import Session
from lumbarview.services.case_browser import Submit
from lumbarview.services.case_loader import CaseView
from lumbarview.ui.panels.browser import SeriesTree
from lumbarview.ui.panels.docks import AnnotationPanel, IssuesPanel, LayerPanel, SummaryPanel, TagPanel

if TYPE_CHECKING:
    from lumbarview.ui.measure_binding import MeasureBinding
    from lumbarview.ui.panels.levels import LevelsController

_A = QtCore.Qt.DockWidgetArea
LEFT, RIGHT, BOTTOM = _A.LeftDockWidgetArea, _A.RightDockWidgetArea, _A.BottomDockWidgetArea


class DockSet:
    """Builds the panels and docks them in ``window`` (see the module). ``go_to(lps)`` takes
    the views to an annotation picked in the Annotations dock."""

    def __init__(self, window: QtWidgets.QMainWindow, session: Session, submit: Submit,
                 measure: MeasureBinding, levels: LevelsController,
                 go_to: Callable[[npt.ArrayLike], None]) -> None:
        from lumbarview.ui.panels.report import ReportPanel
        from lumbarview.ui.panels.tables import TablesPanel

        self._window = window
        self._session = session
        self._measure = measure
        self._go_to = go_to
        self._own_issues: list[LoadIssue] = []  # the window's own (flags, session), per dataset
        self.tree = SeriesTree(submit)
        self.issues_panel = IssuesPanel()
        self.tag_panel = TagPanel()
        self.layer_panel = LayerPanel(session.overlays, session.set_layer)
        self.layer_panel.bulk_edit = session.set_layers
        self.annotation_panel = AnnotationPanel()
        self.annotation_panel.jump.connect(self._on_jump)
        self.summary_panel = SummaryPanel()
        self.report_panel = ReportPanel(submit)
        self.tables_panel = TablesPanel()
        self._docks: list[QtWidgets.QDockWidget] = []
        self.browser_dock = self._dock("Browser", self.tree, LEFT)
        self.issues_dock = self._dock("Load issues", self.issues_panel, BOTTOM, hidden=True)
        self.tag_dock = self._dock("DICOM tags", self.tag_panel, RIGHT, hidden=True)
        self.layer_dock = self._dock("Layers", self.layer_panel.widget_with_buttons(), RIGHT)
        self.annotation_dock = self._dock("Annotations", self.annotation_panel, RIGHT)
        self.summary_dock = self._dock("Case summary", self.summary_panel, LEFT)
        self.measurement_dock = self._dock("Measurements", measure.panel, BOTTOM, hidden=True)
        self.levels_dock = self._dock("Levels", levels.panel, RIGHT, hidden=True)
        self.report_dock = self._dock("Report", self.report_panel, RIGHT, hidden=True)
        self.tables_dock = self._dock("Tables", self.tables_panel, BOTTOM, hidden=True)
        # The Measurements dock waits until there is something to list (or a tool is picked).
        session.measurements.changed.connect(self._show_measurements_when_used)
        measure.tools.tool_changed.connect(lambda _tool: self._show_measurements_when_used())

    def __iter__(self) -> Iterator[QtWidgets.QDockWidget]:
        return iter(self._docks)

    def _dock(self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea,
              hidden: bool = False) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self._window)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        self._window.addDockWidget(area, dock)
        if hidden:
            dock.hide()
        self._docks.append(dock)
        return dock

    def show_issues(self, dataset: Dataset, own: list[LoadIssue] | None = None) -> None:
        """The dataset's load issues, as far as its cases have been read, and the window's own
        (``own``, given when a dataset opens and kept until the next). The dock shows when one
        is more than a note; a newly opened dataset without any hides it."""
        if own is not None:
            self._own_issues = list(own)
        issues = [*dataset.all_issues(), *self._own_issues]
        self.issues_panel.set_issues(issues)
        serious = any(i.severity is not Severity.INFO for i in issues)
        if serious or own is not None:
            self.issues_dock.setVisible(serious)

    def add_issues(self, dataset: Dataset | None, issues: list[LoadIssue]) -> None:
        """Issues of the window's own (a session's restore, a file kept aside), kept in the panel
        until the next dataset opens (a later refresh of the dataset's issues keeps them), and the
        dock shown."""
        self._own_issues.extend(issues)
        if dataset is not None:
            self.show_issues(dataset)
        else:
            self.issues_panel.set_issues(self._own_issues)
        self.issues_dock.show()

    def show_case(self, view: CaseView, dataset: Dataset | None, flags: FlagStore | None) -> None:
        """The panels follow the case ``view`` shows."""
        case = view.case
        if case.issues and dataset is not None:
            self.show_issues(dataset)
        self.annotation_panel.set_rows(view.annotations, flags)
        self.layer_dock.setVisible(bool(self._session.overlays.layers))
        self.annotation_dock.setVisible(bool(view.annotations))
        self.summary_panel.show_summary(case.id, view.summary)
        self.report_panel.show_case(dataset, case)
        self.tables_panel.show_case(dataset, case)
        self.report_dock.setVisible(bool(self.report_panel.paths))
        self.tables_dock.setVisible(bool(self.tables_panel.tables))
        if not any(view.series.values()):
            self.issues_dock.show()

    def _on_jump(self, annotation: Any) -> None:
        if annotation.position_lps is not None:
            self._go_to(annotation.position_lps)

    def _show_measurements_when_used(self) -> None:
        if len(self._session.measurements) or self._measure.tools.tool != "navigate":
            self.measurement_dock.show()
