"""The 3D pane: the case's meshes, label surfaces and markers, the current plane of every 2D
view as a textured slice, and the cursor, in one patient space (VTK world = LPS mm).

It is an adapter like the slice views: it reads the session (overlay layers, view states,
cursor) and writes only the cursor (picking). Label surfaces are built off the GUI thread by
``services.surfaces`` for the visible labels only, and cached there. Renders are coalesced: any
number of changes in one event-loop turn cost one render.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shiboken6
import vtkmodules.vtkRenderingFreeType
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the render window classes)
from PySide6 import QtCore, QtGui, QtWidgets
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkCommand
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import vtkCellPicker, vtkRenderer, vtkWindowToImageFilter

from lumbarview.core.dataset import LabelMap, Mesh, PointSet
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.geometry import FloatArray
from lumbarview.model.overlays import Layer
from lumbarview.model.session import Session
from lumbarview.services.surfaces import LabelSurface, build_label_surfaces, mesh_bounds
from lumbarview.slicing.cache import PlaneCache
from lumbarview.ui.scene3d import vtk_objects as vo
from lumbarview.ui.settings import Settings

#: Camera presets: (direction from the focal point to the camera, view up), in LPS. "anterior"
#: looks at the patient's front (patient right on screen left), "left" from the patient's left.
PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "anterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "posterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "right": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "superior": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "inferior": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),
    # The start and "reset": from the front, the patient's right and a little above, so that the
    # sagittal, axial and coronal slices are all seen at an angle.
    "reset": ((-0.6, -1.0, 0.35), (0.0, 0.0, 1.0)),
}
SLICE_COLOURS = {"sagittal": (0.95, 0.62, 0.25), "axial": (0.35, 0.70, 1.0), "coronal": (0.49, 0.77, 0.49),
                 "oblique": (0.82, 0.44, 0.82)}
_CLICK_PX = 3  # a press and release this close is a pick, not a rotation
BACKGROUND = (0.05, 0.05, 0.06)


#: Names in an OpenGL renderer string that say the pixels are drawn by the CPU.
_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "swiftshader", "gdi generic")


def software_opengl(window: Any) -> bool:
    """Whether ``window`` (initialized) draws with a software rasteriser: OSMesa, or Mesa's
    llvmpipe/softpipe behind GLX or EGL (a machine with no GPU, a VM, CI)."""
    if window.GetClassName() == "vtkOSOpenGLRenderWindow":
        return True
    report = str(window.ReportCapabilities() or "")
    match = re.search(r"OpenGL renderer string:\s*(.*)", report)
    return match is not None and any(name in match.group(1).lower() for name in _SOFTWARE_RENDERERS)


def apply_render_settings(window: Any, renderer: vtkRenderer) -> bool:
    """Set ``window`` (initialized) and ``renderer`` up for the OpenGL that draws them; returns
    whether that is a software rasteriser.

    Translucent surfaces (label surfaces are drawn at 90 % opacity) go through VTK's
    order-independent transparency: no depth peeling (several passes a frame) and no FXAA (a
    full-screen pass that costs a CPU about as much as the whole scene). With a GPU the
    multisampling VTK chose stays: it smooths the edges at little cost. A software rasteriser
    pays for every sample (4x multisampling was ~30 ms of an ~80 ms frame of a 600 x 600 pane on
    two cores), so there the edges are left unsmoothed.
    """
    software = software_opengl(window)
    if software:
        window.SetMultiSamples(0)
    renderer.UseDepthPeelingOff()
    renderer.UseOITOn()
    renderer.UseFXAAOff()
    return software


def _rgb(colour: tuple[int, int, int] | None, fallback: tuple[int, int, int] = (200, 200, 200)
         ) -> tuple[float, float, float]:
    r, g, b = colour or fallback
    return r / 255.0, g / 255.0, b / 255.0


@dataclass
class SceneObject:
    """One entry of the scene (what the sidecar lists): its props and where it is."""

    name: str
    kind: str  # mesh | surface | points | curve | slice
    props: list[Any]
    bounds_lps: list[float]
    layer: Layer | None = None
    value: int | None = None  # label value of a surface
    pickable: list[Any] = field(default_factory=list)
    label: tuple[str, FloatArray] | None = None  # a marker's name and where it is (ui.scene3d.vtk_objects.MarkerLabels)

    @property
    def visible(self) -> bool:
        return bool(self.props) and bool(self.props[0].GetVisibility())


class SceneView(QtWidgets.QWidget):
    """The VTK pane bound to a session (see the module docstring)."""

    rendered = QtCore.Signal()
    surfaces_ready = QtCore.Signal()
    #: At most one render per this many seconds: stepping through slices faster than the pane
    #: can draw (software OpenGL) costs the 2D views nothing; the pane shows the latest plane.
    min_frame_interval_s = 0.04

    def __init__(self, session: Session, cache: PlaneCache,
                 submit: Callable[[Callable[[], Any], Callable[[Any], None], Callable[[BaseException], None]], Any]
                 | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.cache = cache
        self._submit = submit
        self.objects: dict[tuple[Any, ...], SceneObject] = {}
        self.slices: dict[str, vo.SliceActor] = {}
        self.preset = "reset"
        self._render_pending = False
        self._shut_down = False
        self._last_render = 0.0
        self._camera_placed = False
        self._generation = 0
        self.pending_surfaces = 0
        self._building: set[tuple[Any, ...]] = set()  # surfaces asked of the worker, not back yet
        self._press: tuple[int, int] | None = None
        self.status = ""
        self.setMinimumSize(160, 160)

        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(2, 2, 2, 0)
        bar.setSpacing(2)
        title = QtWidgets.QLabel("3D")
        title.setStyleSheet("color: #c0c0c0; font-weight: bold; padding-right: 6px")
        bar.addWidget(title)
        self.buttons: dict[str, QtWidgets.QToolButton] = {}
        for key, text, tip in (("anterior", "A", "view from the front"), ("posterior", "P", "view from the back"),
                               ("left", "L", "view from the patient's left"),
                               ("right", "R", "view from the patient's right"),
                               ("superior", "S", "view from above"), ("inferior", "I", "view from below"),
                               ("reset", "Reset", "fit everything shown, three-quarter view")):
            button = QtWidgets.QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, k=key: self.set_camera(k))
            bar.addWidget(button)
            self.buttons[key] = button
        shot = QtWidgets.QToolButton()
        shot.setText("Save…")
        shot.setToolTip("save a screenshot of the 3D pane")
        shot.clicked.connect(lambda: self.save_screenshot(None))
        bar.addWidget(shot)
        bar.addStretch(1)
        self.info = QtWidgets.QLabel("")
        self.info.setStyleSheet("color: #909090")
        bar.addWidget(self.info)

        self.vtk_widget = QVTKRenderWindowInteractor(self)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.vtk_widget, 1)

        self.renderer = vtkRenderer()
        self.renderer.SetBackground(*BACKGROUND)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.render_window.AddRenderer(self.renderer)
        self.interactor = self.render_window.GetInteractor()
        style = vtkInteractorStyleTrackballCamera()
        self.interactor.SetInteractorStyle(style)
        # The press is seen before the style grabs the interactor's focus (which then keeps the
        # release from other observers); the release is the style's end of interaction.
        self.interactor.AddObserver("LeftButtonPressEvent", self._on_press, 1.0)
        style.AddObserver(vtkCommand.EndInteractionEvent, self._on_release)
        self.picker = vtkCellPicker()
        self.picker.SetTolerance(0.0005)
        self.picker.PickFromListOn()
        self._initialized = False
        self.software_opengl = False  # known once the render window is initialized

        self.cursor_actor = vo.lines_actor(vo.cursor_segments(np.zeros(3), 20.0), 2.0)
        self.cursor_actor.GetProperty().SetColor(0.94, 0.75, 0.38)
        self.cursor_actor.PickableOff()
        self.renderer.AddActor(self.cursor_actor)
        self.labels = vo.MarkerLabels()  # the markers' names, over the scene
        self.renderer.AddViewProp(self.labels.actor)

        session.overlays.layers_changed.connect(self.rebuild)  # also on every new case
        session.overlays.layer_changed.connect(self._on_layer_changed)
        session.cursor.crosshair_changed.connect(self._on_cursor)
        for view in session.views.values():
            view.plane_changed.connect(lambda _p, v=view.name: self.update_slice(v))
            view.window_changed.connect(lambda _w, v=view.name: self.update_slice(v))
        self.rebuild()

    # -- lifecycle ------------------------------------------------------------------------
    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self._initialize()
        self.refresh_slices()
        self.request_render()

    def _initialize(self) -> None:
        """Create the render window's OpenGL context (once), then set the pane up for that
        OpenGL (see :func:`apply_render_settings`)."""
        if self._initialized:
            return
        if self.render_window.GetClassName() == "vtkOSOpenGLRenderWindow":
            # Known to be software before it has a context: Initialize() renders a first frame,
            # which then already goes without multisampling.
            apply_render_settings(self.render_window, self.renderer)
        self.vtk_widget.Initialize()
        self._initialized = True
        self.software_opengl = apply_render_settings(self.render_window, self.renderer)

    def shutdown(self) -> None:
        """Release the render window (its close event finalizes it). Surfaces a worker is still
        building are dropped when they arrive."""
        self._shut_down = True
        self.vtk_widget.close()

    def _alive(self) -> bool:
        """Not shut down, and the Qt object still there: a worker's result can arrive after the
        window that asked for it was closed and deleted."""
        return not self._shut_down and shiboken6.isValid(self)

    # -- building the scene ---------------------------------------------------------------
    def _add(self, key: tuple[Any, ...], obj: SceneObject) -> None:
        old = self.objects.pop(key, None)
        if old is not None:
            for prop in old.props:
                self.renderer.RemoveViewProp(prop)
        self.objects[key] = obj
        for prop in obj.props:
            self.renderer.AddViewProp(prop)
        self._update_pick_list()
        self._update_labels()

    def _update_labels(self) -> None:
        """The names of the visible markers, in layer order."""
        self.labels.set_labels([obj.label for obj in self.objects.values() if obj.label is not None and obj.visible])

    def _update_pick_list(self) -> None:
        self.picker.InitializePickList()
        for obj in self.objects.values():
            for prop in obj.pickable:
                self.picker.AddPickList(prop)
        for sl in self.slices.values():
            self.picker.AddPickList(sl.actor)

    def rebuild(self) -> None:
        """All objects from the session's layers (a new case, or the layer list changed)."""
        self._generation += 1
        self._building = set()
        for obj in self.objects.values():
            for prop in obj.props:
                self.renderer.RemoveViewProp(prop)
        self.objects = {}
        self._update_labels()
        for layer in self.session.overlays.layers:
            if layer.kind == "mesh" and isinstance(layer.source, Mesh):
                self._add_mesh(layer, layer.source)
            elif layer.kind == "points" and isinstance(layer.source, PointSet) and len(layer.source.points_lps):
                self._add_points(layer, layer.source)
        self._camera_placed = False
        self.request_surfaces()
        self._on_cursor(self.session.cursor.crosshair)
        self.refresh_slices()

    def _style(self, obj: SceneObject) -> None:
        layer = obj.layer
        if layer is None:
            return
        if obj.kind == "surface":
            assert isinstance(layer.source, LabelMap)
            entry = layer.source.scheme.entry(int(obj.value or 0))
            colour = _rgb(entry.color_rgb)
            visible = layer.visible and obj.value not in layer.hidden_labels
            # Slices show a label map as a 45 % fill by default; its surface reads best at twice that.
            opacity = min(1.0, 2.0 * layer.opacity * layer.label_opacity.get(int(obj.value or 0), 1.0))
        else:
            colour = _rgb(layer.colour_rgb)
            visible = layer.visible
            opacity = layer.opacity
        for prop in obj.props:
            prop.SetVisibility(visible)
            if hasattr(prop, "GetProperty") and obj.kind != "slice":
                prop.GetProperty().SetColor(*colour)
                prop.GetProperty().SetOpacity(opacity)
            elif hasattr(prop, "GetTextProperty"):
                prop.GetTextProperty().SetColor(*colour)
                prop.GetTextProperty().SetOpacity(opacity)

    def _add_mesh(self, layer: Layer, mesh: Mesh) -> None:
        actor = vo.mesh_actor(mesh.vertices_lps, mesh.faces)
        obj = SceneObject(layer.name, "mesh", [actor], mesh_bounds(mesh.vertices_lps), layer, pickable=[actor])
        self._style(obj)
        self._add(("layer", id(layer)), obj)

    def _add_points(self, layer: Layer, ps: PointSet) -> None:
        pts = ps.points_lps
        if ps.kind in ("curve", "closed-curve", "line") and len(pts) > 1:
            main = vo.tube_actor(pts, ps.kind == "closed-curve", 0.6)
            kind = "curve"
        else:
            main = vo.spheres_actor(pts, 1.6)
            kind = "points"
        obj = SceneObject(layer.name, kind, [main], mesh_bounds(pts), layer, pickable=[main],
                          label=(layer.title or layer.name, np.asarray(pts[0], dtype=np.float64)))
        self._style(obj)
        self._add(("layer", id(layer)), obj)

    def request_surfaces(self) -> None:
        """Build (off the GUI thread) the surfaces of the visible labels that have none yet."""
        for layer in self.session.overlays.layers:
            if layer.kind != "labels" or not isinstance(layer.source, LabelMap) or not layer.visible:
                continue
            source = layer.source
            try:
                wanted = [v for v in layer.label_values() if v not in layer.hidden_labels
                          and ("surface", id(layer), v) not in self.objects
                          and ("surface", id(layer), v) not in self._building]
            except LumbarviewError as exc:
                self._set_status(f"{layer.name}: {exc}")
                continue
            if not wanted:
                continue
            generation = self._generation
            self.pending_surfaces += 1
            keys = {("surface", id(layer), v) for v in wanted}
            self._building |= keys

            def job(src: LabelMap = source, values: list[int] = wanted) -> list[LabelSurface]:
                return build_label_surfaces(src, values)

            def done(result: list[LabelSurface], lay: Layer = layer, gen: int = generation,
                     asked: set[tuple[Any, ...]] = keys) -> None:
                if not self._alive():
                    return
                self.pending_surfaces -= 1
                if gen == self._generation:
                    self._building -= asked
                    for surface in result:
                        self._add_surface(lay, surface)
                    self.request_render()
                if self.pending_surfaces == 0:
                    self.surfaces_ready.emit()

            def failed(error: BaseException, lay: Layer = layer, gen: int = generation,
                       asked: set[tuple[Any, ...]] = keys) -> None:
                if not self._alive():
                    return
                self.pending_surfaces -= 1
                if gen == self._generation:
                    self._building -= asked
                self._set_status(f"No surface for {lay.name}: {error}")
                if self.pending_surfaces == 0:
                    self.surfaces_ready.emit()

            if self._submit is None:
                try:
                    done(job())
                except LumbarviewError as exc:
                    failed(exc)
            else:
                self._submit(job, done, failed)
        if self.pending_surfaces == 0:
            QtCore.QTimer.singleShot(0, self, self.surfaces_ready.emit)

    def _add_surface(self, layer: Layer, surface: LabelSurface) -> None:
        actor = vo.mesh_actor(surface.mesh.vertices_lps, surface.mesh.faces, closed_outward=True)
        obj = SceneObject(f"{layer.name}: {surface.name}", "surface", [actor], surface.bounds_lps(), layer,
                          surface.value, pickable=[actor])
        self._style(obj)
        self._add(("surface", id(layer), surface.value), obj)
        if not self._camera_placed:
            self.set_camera("reset")

    def _on_layer_changed(self, layer: Layer) -> None:
        for obj in self.objects.values():
            if obj.layer is layer:
                self._style(obj)
        self._update_labels()
        if layer.kind == "labels":
            self.request_surfaces()
        self.request_render()

    def _set_status(self, text: str) -> None:
        self.status = text
        self.info.setText(text[:80])
        self.info.setToolTip(text)

    # -- slices and cursor ----------------------------------------------------------------
    def shown_views(self) -> list[str]:
        return [v.name for v in self.session.visible_views()]

    def refresh_slices(self) -> None:
        for name in self.session.views:
            self.update_slice(name)

    def update_slice(self, name: str) -> None:
        """Show view ``name``'s current plane with its pixels and window (hidden when the view
        is not on screen or shows nothing)."""
        state = self.session.views[name]
        plane, source, window = state.plane, state.source, state.window
        sl = self.slices.get(name)
        shown = name in self.shown_views() and plane is not None and source is not None
        if not shown:
            if sl is not None and sl.actor.GetVisibility():
                sl.set_visible(False)
                self.request_render()
            return
        assert plane is not None and source is not None
        if sl is None:
            sl = self.slices[name] = vo.SliceActor(SLICE_COLOURS.get(name, (0.8, 0.8, 0.8)))
            for prop in sl.props():
                self.renderer.AddViewProp(prop)
            self._update_pick_list()
        pixels = self.cache.get(source, plane).pixels
        if window is None:
            lo, hi = float(np.min(pixels)), float(np.max(pixels))
            grey = vo.windowed(pixels, (lo + hi) / 2, max(hi - lo, 1.0), False)
        else:
            grey = vo.windowed(pixels, window.center, window.width, window.invert)
        sl.set_plane(plane, grey)
        sl.set_visible(True)
        if not self._camera_placed:
            self.set_camera("reset")
        self.request_render()

    def _on_cursor(self, lps: FloatArray) -> None:
        segments = vo.cursor_segments(np.asarray(lps, dtype=np.float64), 20.0)
        poly = self.cursor_actor.GetMapper().GetInput()
        poly.GetPoints().SetData(numpy_to_vtk(segments.reshape(-1, 3), deep=True))
        poly.Modified()
        self.request_render()

    # -- camera ---------------------------------------------------------------------------
    def visible_bounds(self) -> list[float] | None:
        boxes = [o.bounds_lps for o in self.objects.values() if o.visible]
        boxes += [mesh_bounds(sl.corners(sl.plane)) for sl in self.slices.values()
                  if sl.plane is not None and sl.actor.GetVisibility()]
        if not boxes:
            return None
        b = np.array(boxes)
        return [float(b[:, 0].min()), float(b[:, 1].max()), float(b[:, 2].min()), float(b[:, 3].max()),
                float(b[:, 4].min()), float(b[:, 5].max())]

    def set_camera(self, preset: str) -> None:
        """One of :data:`PRESETS` ("reset": a three-quarter view), fitting everything shown."""
        direction, up = PRESETS[preset]
        self.preset = preset
        bounds = self.visible_bounds()
        camera = self.renderer.GetActiveCamera()
        if bounds is None:
            return
        centre = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
        camera.SetFocalPoint(*centre)
        unit = np.asarray(direction) / np.linalg.norm(direction)
        camera.SetPosition(*(centre + 500.0 * unit))
        camera.SetViewUp(*up)
        self.renderer.ResetCamera(*bounds)
        self.renderer.ResetCameraClippingRange()
        self._camera_placed = True
        self.request_render()

    # -- rendering ------------------------------------------------------------------------
    def request_render(self) -> None:
        """Render soon: changes made until then cost one render (see :attr:`min_frame_interval_s`)."""
        if not self._render_pending:
            self._render_pending = True
            wait_s = self._last_render + self.min_frame_interval_s - time.perf_counter()
            QtCore.QTimer.singleShot(max(0, round(1000 * wait_s)), self, self.render_now)

    def render_now(self) -> None:
        self._render_pending = False
        if self._shut_down or not self.isVisible() or not self._initialized:
            return
        self.renderer.ResetCameraClippingRange()
        self.render_window.Render()
        self._last_render = time.perf_counter()
        self.rendered.emit()

    def grab_rgb(self) -> npt.NDArray[np.uint8]:
        """The pane's pixels (rows top first, RGB), rendered now (QWidget.grab misses them)."""
        self._initialize()
        self.renderer.ResetCameraClippingRange()
        self.render_window.Render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.render_window)
        grab.ReadFrontBufferOff()
        grab.SetInputBufferTypeToRGB()
        grab.ShouldRerenderOff()
        grab.Update()
        image = grab.GetOutput()
        w, h, _ = image.GetDimensions()
        rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
        return np.ascontiguousarray(rgb, dtype=np.uint8)

    def to_qimage(self) -> QtGui.QImage:
        rgb = self.grab_rgb()
        h, w, _ = rgb.shape
        return QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()

    def save_screenshot(self, path: str | None) -> str | None:
        if path is None:
            dataset = self.session.dataset
            path = Settings().save_path(self, "Save the 3D pane", "lumbarview-3d.png", "PNG images (*.png)",
                                        dataset.path if dataset is not None else None)
            if not path:
                return None
        return path if self.to_qimage().save(path) else None

    def paint_into(self, target: QtGui.QPixmap, relative_to: QtWidgets.QWidget) -> None:
        """Paint the pane's VTK pixels into ``target`` (a grab of ``relative_to``) where the
        pane sits: QWidget.grab leaves that rectangle black or undefined."""
        if not self.isVisible():
            return
        corner = self.vtk_widget.mapTo(relative_to, QtCore.QPoint(0, 0))
        image = self.to_qimage()
        painter = QtGui.QPainter(target)
        try:
            painter.drawImage(QtCore.QRectF(corner.x(), corner.y(), self.vtk_widget.width(),
                                            self.vtk_widget.height()), image)
        finally:
            painter.end()

    # -- picking --------------------------------------------------------------------------
    def _on_press(self, caller: Any, _event: str) -> None:
        x, y = caller.GetEventPosition()
        self._press = (int(x), int(y))

    def _on_release(self, _caller: Any, _event: str) -> None:
        x, y = self.interactor.GetEventPosition()
        press, self._press = self._press, None
        if press is not None and abs(press[0] - x) <= _CLICK_PX and abs(press[1] - y) <= _CLICK_PX:
            self.pick_display(int(x), int(y))

    def pick_display(self, x: int, y: int) -> FloatArray | None:
        """Pick at VTK display pixel (x, y) (origin bottom-left): the point on the nearest mesh,
        surface or slice becomes the session's cursor. Returns it (None: nothing there)."""
        if not self.picker.Pick(x, y, 0, self.renderer):
            return None
        if self.picker.GetCellId() < 0:
            return None
        lps = np.array(self.picker.GetPickPosition(), dtype=np.float64)
        self.session.cursor.set_crosshair(lps)
        return lps

    def world_to_display(self, lps: FloatArray) -> tuple[float, float]:
        """Where VTK draws ``lps`` (display pixels, origin bottom-left)."""
        self.renderer.SetWorldPoint(float(lps[0]), float(lps[1]), float(lps[2]), 1.0)
        self.renderer.WorldToDisplay()
        x, y, _ = self.renderer.GetDisplayPoint()
        return float(x), float(y)

    # -- the sidecar ----------------------------------------------------------------------
    def actor_entries(self) -> list[dict[str, Any]]:
        out = [{"name": o.name, "kind": o.kind, "bounds_lps": o.bounds_lps, "visible": o.visible}
               for o in self.objects.values()]
        for name, sl in self.slices.items():
            if sl.plane is not None:
                out.append({"name": f"{name} slice", "kind": "slice",
                            "bounds_lps": mesh_bounds(sl.corners(sl.plane)), "visible": bool(sl.actor.GetVisibility())})
        return out
