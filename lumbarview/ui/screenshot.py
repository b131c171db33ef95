"""Screenshots of the window, with the 3D pane's pixels painted in (``QWidget.grab`` misses
them), and the ``view --screenshot`` sidecar: what the PNG shows, as JSON (a contract other
tools read).

The sidecar's keys:

Keys: ``case``, ``cursor_lps``, ``layout``, ``docks`` (``name``, ``visible``), ``views``
(``name``, ``rect_px`` [x, y, width, height] in the PNG's pixels, ``series``, ``mode``
(native, reformat or empty), ``plane`` (``origin_lps``, ``right_lps``, ``down_lps``,
``normal_lps``: unit vectors of screen right and screen down), ``letters`` (``left``,
``right``, ``top``, ``bottom``), ``note``), ``measurements`` (the case's: ``id``, ``kind``,
``value`` (null when it has none), ``unit``, ``level``, ``side``), ``engine`` (the rows the levels
panel shows, with the keys of ``lumbarview measure`` rows; empty until the case is measured). The
3D pane, when shown, is the view named ``3d`` with ``rect_px``, ``camera`` (``preset``,
``position_lps``, ``focal_point_lps``, ``view_up_lps``) and ``actors`` (``name``, ``kind``: mesh,
surface, points, curve or slice, ``bounds_lps`` [xmin, xmax, ymin, ymax, zmin, zmax], ``visible``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.model.session import Session
from lumbarview.slicing.planes import letters
from lumbarview.ui.settings import Settings
from lumbarview.ui.views.slice_view import SliceView
from lumbarview.ui.views.view_grid import ViewGrid

if TYPE_CHECKING:
    from lumbarview.ui.panels.levels import LevelsController


class Shown(Protocol):
    """What a screenshot and its sidecar read of the window (``MainWindow`` has it)."""

    @property
    def widget(self) -> QtWidgets.QWidget: ...

    @property
    def session(self) -> Session: ...

    @property
    def grid(self) -> ViewGrid: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def docks(self) -> Iterable[QtWidgets.QDockWidget]: ...

    @property
    def levels(self) -> LevelsController: ...

    def visible_views(self) -> list[SliceView]: ...

    def status(self, text: str) -> None: ...


def grab(window: Shown, widget: QtWidgets.QWidget | None = None) -> QtGui.QPixmap:
    """The pixels of ``widget`` (default: the whole window), the 3D pane's included."""
    grabbed = widget if widget is not None else window.widget
    pixmap = grabbed.grab()
    window.grid.paint_3d_into(pixmap, grabbed)
    return pixmap


def save_screenshot(window: Shown, widget: QtWidgets.QWidget | None = None,
                    path: str | None = None) -> str | None:
    """Save a PNG of ``widget`` (default: the window) to ``path`` (default: ask the user,
    starting in the last folder saved to or the documents folder); returns the path, or None
    when nothing was saved. The status bar says which."""
    if path is None:
        dataset = window.session.dataset
        path = window.settings.save_path(window.widget, "Save screenshot", "lumbarview.png", "PNG images (*.png)",
                                         dataset.path if dataset is not None else None)
        if not path:
            return None
    ok = grab(window, widget).save(path)
    window.status(f"Saved {path}" if ok else f"Could not save {path}")
    return path if ok else None


def sidecar(window: Shown) -> dict[str, Any]:
    session = window.session
    views = []
    for view in window.visible_views():
        state = view.view_state
        plane = state.plane
        corner = view.graphics.mapTo(window.widget, QtCore.QPoint(0, 0))
        edge = letters(plane, state.has_patient_geometry) if plane is not None else None
        views.append({
            "name": view.name,
            "rect_px": [corner.x(), corner.y(), view.graphics.width(), view.graphics.height()],
            "series": state.series.description if state.series is not None else None,
            "mode": state.mode if plane is not None else "empty",
            "plane": None if plane is None else {
                "origin_lps": plane.origin_lps.tolist(), "right_lps": plane.right_lps.tolist(),
                "down_lps": plane.down_lps.tolist(), "normal_lps": plane.normal_lps.tolist()},
            "letters": None if edge is None else {"left": edge.left, "right": edge.right, "top": edge.top,
                                                  "bottom": edge.bottom},
            "note": state.note,
        })
    scene = window.grid.scene3d
    if scene is not None and scene.isVisible():
        corner = scene.vtk_widget.mapTo(window.widget, QtCore.QPoint(0, 0))
        camera = scene.renderer.GetActiveCamera()
        views.append({
            "name": "3d",
            "rect_px": [corner.x(), corner.y(), scene.vtk_widget.width(), scene.vtk_widget.height()],
            "camera": {"preset": scene.preset, "position_lps": list(camera.GetPosition()),
                       "focal_point_lps": list(camera.GetFocalPoint()), "view_up_lps": list(camera.GetViewUp())},
            "actors": scene.actor_entries(),
        })
    return {
        "case": session.case.id if session.case is not None else None,
        "cursor_lps": session.cursor.crosshair.tolist(),
        "layout": session.layout,
        "native_orientation": session.native_orientation,
        "docks": [{"name": dock.windowTitle(), "visible": dock.isVisible()} for dock in window.docks],
        "views": views,
        "measurements": measurement_rows(window),
        "engine": window.levels.panel.shown_rows(),
    }


def measurement_rows(window: Shown) -> list[dict[str, Any]]:
    """The measurements of the case on screen, as the sidecar lists them (the export's rows,
    :mod:`lumbarview.services.measurement_export`, with the sidecar's keys)."""
    from lumbarview.services import measurement_export  # the engine and the SR: on first use, not at launch
    session = window.session
    case = session.case.id if session.case is not None else None
    rows = measurement_export.measurement_rows(session.measurements.of_case(case), session.case)
    return [{"id": row["id"], "kind": row["quantity"], "value": row["value"], "unit": row["unit"],
             "level": row["level"], "side": row["side"]} for row in rows]
