"""The 3D pane's marker names: drawn over the scene (a slice plane between the camera and the
marker does not hide them, as it hid the depth-tested billboards), on a backing, and two names
at one place are not printed over each other."""

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
