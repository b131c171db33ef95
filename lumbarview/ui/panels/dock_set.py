"""The main window's docks: the panels around the views, where each docks, and which of them
show for the dataset and the case on screen (a dock with nothing to say stays hidden and gives
its room to the images). Iterating a :class:`DockSet` gives its docks in the order the View
menu and the screenshot sidecar list them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.core.dataset import Dataset
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.model.flags import FlagStore
from lumbarview.model.session import Session
from lumbarview.services.case_browser import Submit
from lumbarview.services.case_loader import CaseView
from lumbarview.ui.panels.browser import SeriesTree
from lumbarview.ui.panels.docks import AnnotationPanel, IssuesPanel, LayerPanel, SummaryPanel, TagPanel

_A = QtCore.Qt.DockWidgetArea
LEFT, RIGHT, BOTTOM = _A.LeftDockWidgetArea, _A.RightDockWidgetArea, _A.BottomDockWidgetArea
#: The docks that show when they have something to show (and the user has not closed them).
FOLLOWING = ("issues", "layers", "annotations", "measurements", "levels", "report", "tables")
#: The default width of the left and right dock areas and the height of the bottom one, px.
SIDE_WIDTH_PX = 250
BOTTOM_HEIGHT_PX = 170


class _Dock(QtWidgets.QDockWidget):
    """A dock that says when the user closed it with its title bar's button."""

    closed_by_user = QtCore.Signal()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.closed_by_user.emit()
        super().closeEvent(event)


class DockSet:
    """Builds the panels and docks them in ``window`` (see the module), the measurement table
    and the levels panel given. ``go_to(lps)`` takes the views to an annotation picked in the
    Annotations dock."""

    def __init__(self, window: QtWidgets.QMainWindow, session: Session, submit: Submit,
                 measurement_panel: QtWidgets.QWidget, levels_panel: QtWidgets.QWidget,
                 go_to: Callable[[npt.ArrayLike], None]) -> None:
        from lumbarview.ui.panels.grading import GradingPanel
        from lumbarview.ui.panels.report import ReportPanel
        from lumbarview.ui.panels.tables import TablesPanel

        self._window = window
        self._session = session
        self._go_to = go_to
        self._own_issues: list[LoadIssue] = []  # the window's own (flags, session), per dataset
        self.tree = SeriesTree(submit)
        self.issues_panel = IssuesPanel()
        self.tag_panel = TagPanel(submit)
        self.layer_panel = LayerPanel(session.overlays, session.set_layer)
        self.layer_panel.bulk_edit = session.set_layers
        self.annotation_panel = AnnotationPanel()
        self.annotation_panel.jump.connect(self._on_jump)
        self.summary_panel = SummaryPanel()
        self.report_panel = ReportPanel(submit)
        self.grading_panel = GradingPanel(session)
        self.tables_panel = TablesPanel()
        self.tables_panel.jump.connect(self._go_to)
        self._docks: list[QtWidgets.QDockWidget] = []
        self.by_name: dict[str, QtWidgets.QDockWidget] = {}
        #: Docks the user closed: the case's content does not open them again (remembered by
        #: the window across runs); opening one from the View menu takes it off.
        self.closed_by_user: set[str] = set()
        self.browser_dock = self._dock("browser", "Browser", self.tree, LEFT)
        self.issues_dock = self._dock("issues", "Load issues", self.issues_panel, BOTTOM, hidden=True)
        self.tag_dock = self._dock("tags", "DICOM tags", self.tag_panel, RIGHT, hidden=True)
        self.layer_dock = self._dock("layers", "Layers", self.layer_panel.widget_with_buttons(), RIGHT, hidden=True)
        self.annotation_dock = self._dock("annotations", "Annotations", self.annotation_panel, RIGHT, hidden=True)
        self.summary_dock = self._dock("summary", "Case summary", self.summary_panel, LEFT)
        self.measurement_dock = self._dock("measurements", "Measurements", measurement_panel, BOTTOM, hidden=True)
        self.levels_dock = self._dock("levels", "Levels", levels_panel, RIGHT, hidden=True)
        self.report_dock = self._dock("report", "Report", self.report_panel, RIGHT, hidden=True)
        self.grading_dock = self._dock("grading", "Grading", self.grading_panel, RIGHT, hidden=True)
        self.tables_dock = self._dock("tables", "Tables", self.tables_panel, BOTTOM, hidden=True)
        # The default arrangement gives the images most of the window: the docks of one side
        # share it as tabs (the browser and the layers in front), each side narrow.
        for first, *others in ((self.browser_dock, self.summary_dock),
                               (self.layer_dock, self.annotation_dock, self.levels_dock, self.report_dock,
                                self.grading_dock, self.tag_dock),
                               (self.measurement_dock, self.issues_dock, self.tables_dock)):
            for other in others:
                window.tabifyDockWidget(first, other)
            first.raise_()
        #: Docks given their default size when they first show in this run (none once the
        #: window restored the user's own arrangement: see :meth:`keep_user_sizes`).
        self._unsized: set[QtWidgets.QDockWidget] | None = set(self._docks)

    def __iter__(self) -> Iterator[QtWidgets.QDockWidget]:
        return iter(self._docks)

    def _dock(self, name: str, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea,
              hidden: bool = False) -> QtWidgets.QDockWidget:
        dock = _Dock(title, self._window)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        self._window.addDockWidget(area, dock)
        if hidden:
            dock.hide()
        dock.closed_by_user.connect(lambda: self.closed_by_user.add(name))
        dock.toggleViewAction().triggered.connect(lambda checked: self._user_toggled(name, checked))
        self._docks.append(dock)
        self.by_name[name] = dock
        return dock

    def _user_toggled(self, name: str, checked: bool) -> None:
        if checked:
            self.closed_by_user.discard(name)
        else:
            self.closed_by_user.add(name)

    def show(self, name: str) -> None:
        """Show and raise the dock ``name`` (one of ``ui.shell.DOCK_NAMES``), as the user asked."""
        dock = self.by_name.get(name)
        if dock is None:
            raise ValueError(f"no dock named {name!r}; one of {', '.join(self.by_name)}")
        self.closed_by_user.discard(name)
        dock.show()
        dock.raise_()
        self.size_shown()

    def _follow(self, dock: QtWidgets.QDockWidget, has_content: bool) -> None:
        """A dock follows its content: hidden when empty, shown when not (unless the user closed it)."""
        name = next(n for n, d in self.by_name.items() if d is dock)
        if not has_content:
            dock.hide()
        elif name not in self.closed_by_user and not dock.isVisible():
            dock.show()
            self.size_shown()

    def hide_empty(self) -> None:
        """The docks that follow their content close until it comes (the window's restored state
        may have them open from the last run, empty now)."""
        for name in FOLLOWING:
            self.by_name[name].hide()

    def keep_user_sizes(self) -> None:
        """The window restored the user's arrangement: docks keep the sizes it gave them."""
        self._unsized = None

    def size_shown(self) -> None:
        """Docks that show for the first time in this run get the default width (left and right)
        or height (bottom): narrow, so the images keep most of the window."""
        if not self._unsized:
            return
        window = self._window
        for dock in [d for d in self._docks if d in self._unsized and d.isVisible()]:
            self._unsized.discard(dock)
            area = window.dockWidgetArea(dock)
            if area == BOTTOM:
                window.resizeDocks([dock], [BOTTOM_HEIGHT_PX], QtCore.Qt.Orientation.Vertical)
            elif area in (LEFT, RIGHT):
                window.resizeDocks([dock], [SIDE_WIDTH_PX], QtCore.Qt.Orientation.Horizontal)

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
        self.size_shown()

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
        self._follow(self.layer_dock, bool(self._session.overlays.layers))
        self._follow(self.annotation_dock, bool(view.annotations))
        self.summary_panel.show_summary(case.id, view.summary)
        self.report_panel.show_case(dataset, case)
        self.tables_panel.show_case(dataset, case)
        self._follow(self.report_dock, bool(self.report_panel.paths))
        self._follow(self.tables_dock, bool(self.tables_panel.tables))
        if not any(view.series.values()):
            self.issues_dock.show()
        self.size_shown()

    def _on_jump(self, annotation: Any) -> None:
        if annotation.position_lps is not None:
            self._go_to(annotation.position_lps)

    def follow_measurements(self) -> None:
        """Measurements came from a session (restored, or shown with the case): the Measurements
        dock opens when there are some. Drawing never opens it: a dock that opens re-arranges the
        window and moves the image between aiming and clicking (View > Measurements does)."""
        if len(self._session.measurements):
            self._follow(self.measurement_dock, True)
