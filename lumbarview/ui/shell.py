"""The narrow shell the window's helpers talk to, instead of the whole main window.

The measurement binding, the levels controller, the docks, the screenshot and the menus are
given what they use (the session, the views, their panels) and a :class:`Shell` for the rest:
the status bar, the docks by name, the long-job runner, whether modal dialogs may open,
opening a dataset, the visible views and the layout. :class:`~lumbarview.ui.main_window.MainWindow`
implements it; a helper never imports the window, so the helpers and the window form no circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from lumbarview.core.types import LoadIssue

if TYPE_CHECKING:
    from PySide6 import QtWidgets

    from lumbarview.ui.tasks import ProgressRunner
    from lumbarview.ui.views.slice_view import SliceView

#: The docks :meth:`Shell.show_dock` knows, by name.
DOCK_NAMES = ("browser", "issues", "tags", "layers", "annotations", "summary", "measurements", "levels",
              "report", "grading", "tables")


class Shell(Protocol):
    """What the window offers its helpers (see the module)."""

    @property
    def interactive(self) -> bool:
        """Whether modal dialogs may open (False for screenshots, scripts and tests)."""
        ...

    @property
    def tasks(self) -> ProgressRunner:
        """Runs long jobs off the GUI thread behind a progress dialog that can cancel."""
        ...

    @property
    def widget(self) -> QtWidgets.QWidget:
        """The parent for dialogs the helpers open."""
        ...

    def status(self, text: str) -> None:
        """Say ``text`` in the status bar."""
        ...

    def show_dock(self, name: str) -> None:
        """Show (and raise) the dock ``name``, one of :data:`DOCK_NAMES`."""
        ...

    def show_issues(self, issues: Sequence[LoadIssue]) -> None:
        """List ``issues`` beside the dataset's in the issues dock and show it."""
        ...

    def fail(self, message: str) -> None:
        """Something the user asked for could not be done: say so (and end a scripted run)."""
        ...

    def save_path(self, title: str, name: str, filters: str) -> str | None:
        """Ask where to save ``name``, starting in the last folder saved to or the documents
        folder (never the dataset); None when the user cancels."""
        ...

    def open(self, path: str) -> None:
        """Open the dataset at ``path`` (off the GUI thread)."""
        ...

    def set_layout(self, layout: str) -> None:
        """Arrange the views in ``layout`` (one of ``model.session.LAYOUTS``)."""
        ...

    def visible_views(self) -> list[SliceView]:
        """The slice views on screen, in layout order."""
        ...
