"""The 3D pane's marker names: drawn over the scene (a slice plane between the camera and the
marker does not hide them, as it hid the depth-tested billboards), on a backing, and two names
at one place are not printed over each other. A rotate-drag that starts on a mesh moves no
cursor (a pick is a click)."""

from __future__ import annotations

import numpy as np
import vtkmodules.vtkInteractionStyle
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkFiltersSources import vtkPlaneSource
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkWindowToImageFilter,
)

from lumbarview.ui.app import make_app
from lumbarview.ui.scene3d.vtk_objects import MarkerLabels


def _render(labels: list[tuple[str, np.ndarray]]) -> np.ndarray:
    make_app()  # offscreen Qt renders VTK through OSMesa (set before any render window)
    renderer = vtkRenderer()
    renderer.SetBackground(0.0, 0.0, 0.0)
    # An opaque white slice at z = 10, between the camera (z = 100) and the markers (z = 0).
    plane = vtkPlaneSource()
    plane.SetOrigin(-60, -60, 10)
    plane.SetPoint1(60, -60, 10)
    plane.SetPoint2(-60, 60, 10)
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(plane.GetOutputPort())
    slab = vtkActor()
    slab.SetMapper(mapper)
    slab.GetProperty().SetColor(1.0, 1.0, 1.0)
    slab.GetProperty().LightingOff()
    renderer.AddActor(slab)
    names = MarkerLabels()
    names.set_labels(labels)
    renderer.AddViewProp(names.actor)
    camera = renderer.GetActiveCamera()
    camera.SetPosition(0, 0, 100)
    camera.SetFocalPoint(0, 0, 0)
    camera.SetViewUp(0, 1, 0)
    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(320, 240)
    window.AddRenderer(renderer)
    window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[..., :3]
    window.Finalize()
    return rgb.astype(np.int16)


def test_a_name_behind_a_slice_is_drawn_over_it_on_a_backing() -> None:
    plain = _render([])
    named = _render([("L4 left root", np.array([0.0, 0.0, 0.0]))])
    changed = np.abs(named - plain).sum(axis=2) > 60
    assert plain.mean() > 200  # the slice fills the view in front of the marker
    assert changed.sum() > 150  # the name shows through it
    # Its backing is dark on the white slice.
    assert (named[changed].sum(axis=1) < 0.7 * plain[changed].sum(axis=1)).sum() > 50


def test_two_names_at_one_place_are_not_printed_over_each_other() -> None:
    one = _render([("L4 left root", np.array([0.0, 0.0, 0.0]))])
    two = _render([("L4 left root", np.array([0.0, 0.0, 0.0])), ("L5 right ganglion", np.array([0.2, 0.1, 0.0]))])
    # The first name is as it was alone (the second is left out or placed beside it): the
    # pixels of the first label are the same.
    region = np.abs(one - _render([])).sum(axis=2) > 60
    assert region.sum() > 150
    assert np.array_equal(one[region], two[region])


def test_a_rotate_drag_starting_on_a_mesh_leaves_the_cursor(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A pick is a click: a drag that starts on the mesh rotates the camera and moves no cursor."""
    from PySide6 import QtCore

    from lumbarview.core.dataset import Mesh
    from tests.qt.test_scene3d import RED, _box, _predicted_rows_cols, _scene

    centre, half = np.array([5.0, -8.0, 12.0]), np.array([10.0, 6.0, 15.0])
    v, f = _box(centre, half)
    session, scene = _scene(qtbot, [(Mesh("box", v, f, "box.stl"), RED)])
    scene.set_camera("anterior")
    scene.grab_rgb()
    session.cursor.set_crosshair((0.0, 0.0, 0.0))
    on_mesh = centre + np.array([3.0, -half[1], -4.0])
    col, row = _predicted_rows_cols(scene, on_mesh[None])[0]
    ratio = scene.vtk_widget.devicePixelRatioF()
    start = QtCore.QPoint(round(col / ratio), round(row / ratio))
    camera = scene.renderer.GetActiveCamera()
    position = np.array(camera.GetPosition())
    widget = scene.vtk_widget
    qtbot.mousePress(widget, QtCore.Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 9):
        qtbot.mouseMove(widget, QtCore.QPoint(start.x() + 6 * step, start.y() + 2 * step))
    qtbot.mouseRelease(widget, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(start.x() + 48, start.y() + 16))
    assert np.linalg.norm(np.array(camera.GetPosition()) - position) > 1.0  # the drag rotated
    np.testing.assert_array_equal(session.cursor.crosshair, (0.0, 0.0, 0.0))
    # The same place clicked: the cursor goes there.
    scene.set_camera("anterior")
    scene.grab_rgb()
    qtbot.mouseClick(widget, QtCore.Qt.MouseButton.LeftButton, pos=start)
    np.testing.assert_allclose(session.cursor.crosshair, on_mesh, atol=1.0)
