"""The rendering checks of ``lumbarview --self-test`` (see :mod:`lumbarview.services.selftest`).

- ``view-2d``: the main window opens the phantom's DICOM study; the sagittal view's pixels are
  an image, not a blank panel.
- ``view-3d``: the 3D pane (:mod:`lumbarview.ui.scene3d`, when this build has it) or else a VTK
  scene through the same modules (vtkRenderingOpenGL2, vtkInteractionStyle, the Qt widget) shows
  a phantom STL mesh: its pixels differ from the background and the mesh covers a fair part of
  the window.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from lumbarview.services.selftest import Check, SelfTestFailure

#: Seconds a check may wait for the viewer (small phantom; a loaded machine).
TIMEOUT_S = 90.0
BACKGROUND_RGB = (26, 26, 38)


def _qimage_rgb(image: QtGui.QImage) -> npt.NDArray[np.uint8]:
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * height)
    return data.reshape(height, -1)[:, : width * 3].reshape(height, width, 3).copy()


def _wait(condition: Any, timeout_s: float) -> bool:
    app = QtWidgets.QApplication.instance()
    assert app is not None
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if condition():
            return True
        time.sleep(0.01)
    return False


def check_2d(study: Path, screenshot: Path | None = None) -> str:
    from lumbarview.ui.app import make_app
    from lumbarview.ui.main_window import MainWindow

    make_app()
    window = MainWindow()
    try:
        window.resize(1000, 640)
        window.show()
        state: dict[str, Any] = {"ready": False, "failed": None}
        window.views_ready.connect(lambda: state.update(ready=True))
        window.load_failed.connect(lambda message: state.update(failed=message))
        window.open(str(study))
        if not _wait(lambda: state["ready"] or state["failed"] is not None, TIMEOUT_S):
            raise SelfTestFailure(f"the phantom study was not shown within {TIMEOUT_S:.0f} s")
        if state["failed"] is not None:
            raise SelfTestFailure(f"the phantom study did not open: {state['failed']}")
        _wait(lambda: bool(window.worker.idle), TIMEOUT_S)
        view = window.views["sagittal"]
        rgb = _qimage_rgb(view.grab().toImage())
        grey = rgb.astype(np.float64).mean(axis=2)
        levels = len(np.unique(grey.astype(np.uint8)))
        if grey.std() < 20 or levels < 32:
            raise SelfTestFailure(f"the sagittal view looks blank (contrast {grey.std():.1f}, {levels} grey levels)")
        if screenshot is not None:
            window.grab().save(str(screenshot))
        series = window.views["sagittal"].view_state.series
        name = series.description if series is not None else "?"
        return f"sagittal {name}: {rgb.shape[1]}x{rgb.shape[0]} px, contrast {grey.std():.0f}, {levels} grey levels"
    finally:
        window.close()
        window.deleteLater()


def _covered(rgb: npt.NDArray[np.uint8], background: npt.NDArray[np.uint8]) -> float:
    differs = np.abs(rgb.astype(np.int64) - background.astype(np.int64)).sum(axis=2) > 30
    return float(differs.mean())


def _scene_view_class() -> Any | None:
    """The 3D pane's widget class, or None in a build without :mod:`lumbarview.ui.scene3d`."""
    try:
        module = importlib.import_module("lumbarview.ui.scene3d.scene_view")
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("lumbarview.ui.scene3d"):
            return None
        raise
    return getattr(module, "SceneView", None)


def _render_with_scene3d(scene_view_class: Any, study: Path) -> tuple[npt.NDArray[np.uint8], str]:
    """The app's own 3D pane: the main window's 2x2 layout (its fourth pane is the 3D scene) on
    the phantom's BIDS folder (images, label map, STL meshes), once its surfaces are built."""
    from lumbarview.ui.app import make_app
    from lumbarview.ui.main_window import MainWindow

    make_app()
    window = MainWindow(layout="2x2")
    try:
        window.resize(1000, 700)
        window.show()
        state: dict[str, Any] = {"ready": False, "failed": None, "surfaces": False}
        window.views_ready.connect(lambda: state.update(ready=True))
        window.load_failed.connect(lambda message: state.update(failed=message))
        window.open(str(study))
        if not _wait(lambda: state["ready"] or state["failed"] is not None, TIMEOUT_S):
            raise SelfTestFailure(f"the phantom for the 3D pane was not shown within {TIMEOUT_S:.0f} s")
        if state["failed"] is not None:
            raise SelfTestFailure(f"the phantom for the 3D pane did not open: {state['failed']}")
        pane = getattr(window, "scene3d", None)
        if pane is None:  # a main window that does not place the pane itself
            pane = scene_view_class(window.session, window.cache)
            pane.resize(480, 400)
            pane.show()
        window.grid.when_3d_ready(lambda: state.update(surfaces=True))
        _wait(lambda: state["surfaces"], TIMEOUT_S)
        _wait(lambda: bool(window.worker.idle), TIMEOUT_S)
        rgb = np.asarray(pane.grab_rgb(), dtype=np.uint8)
        return rgb, f"3D pane (ui.scene3d) {rgb.shape[1]}x{rgb.shape[0]} px"
    finally:
        window.close()
        window.deleteLater()


def _render_plain_vtk(study: Path) -> tuple[npt.NDArray[np.uint8], str]:
    """A VTK scene in VTK's Qt widget with the phantom's STL mesh (the dura, read when the app's
    services open the phantom's BIDS folder), rendered and read back with vtkWindowToImageFilter."""
    import vtkmodules.qt

    vtkmodules.qt.PyQtImpl = "PySide6"
    import vtkmodules.vtkInteractionStyle  # the interactor styles' factory
    import vtkmodules.vtkRenderingOpenGL2  # the render windows' factory
    from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer, vtkWindowToImageFilter

    from lumbarview.services.open_dataset import open_path
    from lumbarview.ui.app import make_app

    dataset = open_path(str(study), use_cache=False)
    meshes = sorted((m for case in dataset.cases for m in case.meshes), key=lambda m: "dura" not in m.name.lower())
    if not meshes:
        raise SelfTestFailure(f"no STL mesh was read from {study}")
    mesh = meshes[0]
    vertices = np.ascontiguousarray(mesh.vertices_lps, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    points = vtkPoints()
    points.SetData(numpy_to_vtk(vertices, deep=True))
    cells = vtkCellArray()
    offsets = np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64)
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(faces.ravel(), deep=True))
    poly = vtkPolyData()
    poly.SetPoints(points)
    poly.SetPolys(cells)

    make_app()
    widget = QVTKRenderWindowInteractor()
    try:
        widget.resize(480, 400)
        widget.show()
        window = widget.GetRenderWindow()
        renderer = vtkRenderer()
        renderer.SetBackground(*(c / 255 for c in BACKGROUND_RGB))
        window.AddRenderer(renderer)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(poly)
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.9, 0.8, 0.5)
        renderer.AddActor(actor)
        # From the patient's front (LPS: anterior is -y), head up: the tube's full length shows.
        camera = renderer.GetActiveCamera()
        centre = vertices.mean(axis=0)
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre - np.array([0.0, 500.0, 0.0])))
        camera.SetViewUp(0.0, 0.0, 1.0)
        renderer.ResetCamera()
        widget.Initialize()
        window.Render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(window)
        grab.ReadFrontBufferOff()
        grab.SetInputBufferTypeToRGB()
        grab.Update()
        image = grab.GetOutput()
        w, h, _ = image.GetDimensions()
        rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
        return (np.ascontiguousarray(rgb, dtype=np.uint8),
                f"VTK scene ({type(window).__name__}) {w}x{h} px, mesh {mesh.name} {len(faces)} triangles")
    finally:
        widget.Finalize()
        widget.close()


def check_3d(study: Path) -> str:
    scene_view_class = _scene_view_class()
    if scene_view_class is not None:
        rgb, detail = _render_with_scene3d(scene_view_class, study)
    else:
        rgb, detail = _render_plain_vtk(study)
    corner = rgb[2, 2]
    covered = _covered(rgb, corner)
    if covered < 0.03:
        raise SelfTestFailure(f"{detail}: the scene is blank ({100 * covered:.1f} % of the pixels differ "
                              "from the background)")
    return f"{detail}, {100 * covered:.0f} % covered"


def checks(phantom: dict[str, Path], work: Path) -> list[Check]:
    """The rendering checks on the phantom written by :func:`lumbarview.services.selftest.write_phantom`."""
    return [
        Check("view-2d", lambda: check_2d(phantom["sudirman"])),
        Check("view-3d", lambda: check_3d(phantom["bids"])),
    ]
