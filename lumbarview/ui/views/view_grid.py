"""The grid of views: which view stands in which cell for each layout (1x2 and 1x3 in a row,
2x2 in two rows), and the 3D pane's slot (the oblique's cell in 2x2; the coronal's in 1x3 when
the View menu asks for it). It also runs what the View menu does to the focused view or to all
of them; the views themselves only ever talk to the session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.model.session import LAYOUTS, VIEW_NAMES, Session
from lumbarview.model.view_state import WindowLevel
from lumbarview.model.window_presets import default_window, preset_window
from lumbarview.services.case_browser import Submit
from lumbarview.services.view_planes import plan_go_to
from lumbarview.slicing.cache import PlaneCache
from lumbarview.ui.items.overlay_items import OverlayItems
from lumbarview.ui.views.slice_view import SliceView


def cell(layout: str, n: int) -> tuple[int, int]:
    """(row, column) of the ``n``-th view of ``layout``."""
    return divmod(n, 2) if layout == "2x2" else (0, n)


class ViewGrid(QtWidgets.QWidget):
    """The slice views of ``session`` (and the 3D pane, made when first shown) in a grid."""

    focus_changed = QtCore.Signal(str)  # the name of the view the user went into

    def __init__(self, session: Session, cache: PlaneCache, submit: Submit) -> None:
        super().__init__()
        self.session = session
        self.cache = cache
        self._submit = submit
        self.scene3d: Any = None  # the 3D pane (ui.scene3d.SceneView), made when first shown
        self.scene_in_1x3 = False  # View menu: the 3D pane in place of the coronal in 1x3
        self.views = {name: SliceView(name, session, cache) for name in VIEW_NAMES}
        for view in self.views.values():
            view.overlay = OverlayItems(view, session.overlays)
        self._focused = "sagittal"
        app = QtWidgets.QApplication.instance()
        if isinstance(app, QtWidgets.QApplication):
            app.focusChanged.connect(self._on_focus)
        self.grid_layout = QtWidgets.QGridLayout(self)
        self.grid_layout.setContentsMargins(0, 0, 0, 0)
        self.grid_layout.setSpacing(3)

    # -- layout -------------------------------------------------------------------------------
    def arrange(self, layout: str) -> None:
        """Put the views of ``layout`` (the session's) in their cells; hide the others."""
        grid = self.grid_layout
        while grid.count():  # take the views out (they stay children of the grid widget)
            grid.takeAt(0)
        for n in range(4):
            grid.setRowStretch(n, 0)
            grid.setColumnStretch(n, 0)
        names = LAYOUTS[layout]
        self.session.replaced_views = self._scene_replaces(layout)
        for view in self.views.values():
            view.setVisible(view.name in names and view.name not in self.session.replaced_views)
        for n, name in enumerate(names):
            row, col = cell(layout, n)
            grid.addWidget(self._pane(name), row, col)
            grid.setRowStretch(row, 1)
            grid.setColumnStretch(col, 1)
        for view in self.visible_views():
            view.update_reference_lines()
        if self.scene3d is not None:
            self.scene3d.setVisible(bool(self.session.replaced_views))
            self.scene3d.refresh_slices()

    def visible_views(self) -> list[SliceView]:
        return [self.views[name] for name in LAYOUTS[self.session.layout]
                if name not in self.session.replaced_views]

    def focused_view(self) -> SliceView:
        """The visible view the user last clicked or tabbed into (the sagittal before any)."""
        visible = self.visible_views()
        last = self.views.get(self._focused)
        return last if last in visible else next((v for v in visible if v.name == "sagittal"), visible[0])

    def _on_focus(self, _old: QtWidgets.QWidget | None, new: QtWidgets.QWidget | None) -> None:
        view = next((v for v in self.views.values() if new is not None and (v is new or v.isAncestorOf(new))),
                    None)
        if view is not None and view.name != self._focused:
            self._focused = view.name
            self.focus_changed.emit(view.name)

    # -- the 3D pane (ui.scene3d) ---------------------------------------------------------------
    def _scene_replaces(self, layout: str) -> set[str]:
        """The view whose pane shows the 3D scene: the oblique in 2x2, the coronal in 1x3 when
        the View menu says so."""
        if layout == "2x2":
            return {"oblique"}
        if layout == "1x3" and self.scene_in_1x3:
            return {"coronal"}
        return set()

    def _pane(self, name: str) -> QtWidgets.QWidget:
        if name not in self.session.replaced_views:
            return self.views[name]
        if self.scene3d is None:
            from lumbarview.ui.scene3d.scene_view import SceneView

            self.scene3d = SceneView(self.session, self.cache, self._submit, self)
        widget: QtWidgets.QWidget = self.scene3d
        return widget

    def when_3d_ready(self, then: Callable[[], None]) -> None:
        """Call ``then`` once the 3D pane's surfaces are built (at once without a pane)."""
        scene = self.scene3d
        if scene is None or not scene.isVisible() or scene.pending_surfaces == 0:
            then()
            return
        done = {"called": False}

        def once() -> None:
            if not done["called"]:
                done["called"] = True
                then()

        scene.surfaces_ready.connect(once)

    def paint_3d_into(self, pixmap: QtGui.QPixmap, grabbed: QtWidgets.QWidget) -> None:
        """Put the 3D pane's pixels into a grab of ``grabbed`` (QWidget.grab misses them)."""
        scene = self.scene3d
        if scene is not None and scene.isVisible() and (
                grabbed is self.window() or grabbed.isAncestorOf(scene)):
            scene.paint_into(pixmap, grabbed)

    # -- what the View menu does to the views --------------------------------------------------
    def fit_all(self) -> None:
        for view in self.visible_views():
            view.fit()

    def reset_zoom_and_windows(self) -> None:
        """Fit every visible view and give it its series' default window."""
        for view in self.visible_views():
            view.fit()
            source = view.view_state.source
            if source is not None:
                self.session.set_window(view.name, default_window(source))

    def toggle_cine(self) -> None:
        self.focused_view().toggle_cine()

    def invert(self) -> None:
        """Invert the focused view's grey scale (an undoable window change)."""
        view = self.focused_view()
        w = view.view_state.window
        if w is not None:
            self.session.set_window(view.name, WindowLevel(w.center, w.width, not w.invert))

    def apply_preset(self, name: str) -> bool:
        """The focused view's series in the window preset ``name``; False when it has none."""
        view = self.focused_view()
        source = view.view_state.source
        window = preset_window(source, name) if source is not None else None
        if window is not None:
            self.session.set_window(view.name, window)
        return window is not None

    def go_to(self, position_lps: npt.ArrayLike) -> None:
        """The crosshair to ``position_lps`` (an annotation), the visible views zoomed around it
        (``services.view_planes.plan_go_to``)."""
        go = plan_go_to(self.session, position_lps)
        go.apply(self.session)
        for name in go.zoom:
            self.views[name].zoom_to(go.cursor_lps, go.field_mm)

    def set_crosshair_visible(self, checked: bool) -> None:
        for view in self.views.values():
            view.set_crosshair_visible(checked)

    def set_mesh_projection(self, checked: bool) -> None:
        """Draw the part of each mesh within the slab projected on the slices (thin roots)."""
        for view in self.views.values():
            if view.overlay is not None:
                view.overlay.project_meshes = checked
                view.overlay.refresh()

    def show_case_label(self, label: str) -> None:
        """A new case is shown: label every view with it and fit it."""
        for view in self.views.values():
            view.case_label = label
            view.fit()
            view.refresh_text()

    def shutdown(self) -> None:
        """The window is closing: stop the cine timers and the 3D pane."""
        for view in self.views.values():
            view.cine.stop()
        if self.scene3d is not None:
            self.scene3d.shutdown()
