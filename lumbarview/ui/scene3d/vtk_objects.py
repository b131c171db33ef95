"""VTK objects of the 3D pane built from numpy: meshes, marker spheres, curve tubes, textured
slices and the cursor. Everything is placed in LPS mm as given (world coordinates = LPS), so
nothing here converts coordinates."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkIntArray, vtkPoints, vtkStringArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkTubeFilter
from vtkmodules.vtkFiltersSources import vtkPlaneSource, vtkSphereSource
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkActor2D,
    vtkGlyph3DMapper,
    vtkPolyDataMapper,
    vtkTexture,
)
from vtkmodules.vtkRenderingLabel import vtkLabelPlacementMapper, vtkPointSetToLabelHierarchy

from lumbarview.core.geometry import FloatArray
from lumbarview.slicing.planes import ViewPlane


def _points(xyz: FloatArray) -> vtkPoints:
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(xyz, dtype=np.float64), deep=True))
    return points


def _cells(connectivity: npt.NDArray[np.int64], size: int) -> vtkCellArray:
    """Cells of ``size`` points each from a flat connectivity array."""
    n = len(connectivity) // size
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int64)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(connectivity, dtype=np.int64), deep=True))
    return cells


def triangles_polydata(vertices_lps: FloatArray, faces: npt.NDArray[np.int64], smooth: bool = True,
                       consistent: bool = False) -> vtkPolyData:
    """Triangles as polydata, with smooth point normals unless ``smooth`` is off. The triangles'
    winding is made consistent first unless the caller vouches for it (``consistent``: a label
    surface from ``services.surfaces``, wound outwards); an STL file's may be anything."""
    poly = vtkPolyData()
    poly.SetPoints(_points(vertices_lps))
    poly.SetPolys(_cells(faces.reshape(-1), 3))
    if not smooth or len(faces) == 0:
        return poly
    normals = vtkPolyDataNormals()
    normals.SetInputData(poly)
    normals.SplittingOff()
    normals.SetConsistency(not consistent)
    normals.AutoOrientNormalsOff()
    normals.Update()
    out: vtkPolyData = normals.GetOutput()
    return out


def mesh_actor(vertices_lps: FloatArray, faces: npt.NDArray[np.int64], closed_outward: bool = False) -> vtkActor:
    """A lit, smooth-shaded triangle mesh. ``closed_outward``: the mesh is closed and every
    triangle is wound outwards (a label surface), so the back faces are never the ones in front
    and are culled: software OpenGL then shades half the fragments (a translucent surface also
    stops showing its own far side through itself)."""
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(triangles_polydata(vertices_lps, faces, consistent=closed_outward))
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetSpecular(0.25)
    prop.SetSpecularPower(20)
    if closed_outward:
        prop.BackfaceCullingOn()
    return actor


def spheres_actor(points_lps: FloatArray, radius_mm: float) -> vtkActor:
    poly = vtkPolyData()
    poly.SetPoints(_points(points_lps))
    sphere = vtkSphereSource()
    sphere.SetRadius(radius_mm)
    sphere.SetThetaResolution(14)
    sphere.SetPhiResolution(10)
    mapper = vtkGlyph3DMapper()
    mapper.SetInputData(poly)
    mapper.SetSourceConnection(sphere.GetOutputPort())
    mapper.ScalingOff()
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    return actor


def tube_actor(points_lps: FloatArray, closed: bool, radius_mm: float) -> vtkActor:
    n = len(points_lps)
    order = np.arange(n, dtype=np.int64)
    if closed and n > 2:
        order = np.append(order, 0)
    lines = vtkCellArray()
    lines.SetData(numpy_to_vtkIdTypeArray(np.array([0, len(order)], dtype=np.int64), deep=True),
                  numpy_to_vtkIdTypeArray(order, deep=True))
    poly = vtkPolyData()
    poly.SetPoints(_points(points_lps))
    poly.SetLines(lines)
    tube = vtkTubeFilter()
    tube.SetInputData(poly)
    tube.SetRadius(radius_mm)
    tube.SetNumberOfSides(10)
    tube.CappingOn()
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(tube.GetOutputPort())
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    return actor


def lines_actor(segments_lps: FloatArray, width: float = 2.0) -> vtkActor:
    """Line segments ``(n, 2, 3)`` as one actor (no lighting)."""
    poly = vtkPolyData()
    poly.SetPoints(_points(segments_lps.reshape(-1, 3)))
    poly.SetLines(_cells(np.arange(2 * len(segments_lps), dtype=np.int64), 2))
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(poly)
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetLineWidth(width)
    prop.LightingOff()
    return actor


class MarkerLabels:
    """The names of the markers, drawn over the scene as a 2D overlay (a slice plane or a surface
    never hides or cuts them) on a dark backing, placed by VTK's label placement so that no label
    overprints another: where two would overlap, the one listed first is shown and the other
    waits until the camera separates them."""

    def __init__(self) -> None:
        self.polydata = vtkPolyData()
        self.hierarchy = vtkPointSetToLabelHierarchy()
        self.hierarchy.SetInputData(self.polydata)
        self.hierarchy.SetLabelArrayName("labels")
        self.hierarchy.SetPriorityArrayName("priority")
        prop = self.hierarchy.GetTextProperty()
        prop.SetFontSize(12)
        prop.SetBold(True)
        prop.SetColor(0.95, 0.95, 0.95)
        prop.SetShadow(False)
        prop.SetJustificationToLeft()
        prop.SetVerticalJustificationToBottom()
        self.mapper = vtkLabelPlacementMapper()
        self.mapper.SetInputConnection(self.hierarchy.GetOutputPort())
        self.mapper.SetShapeToRoundedRect()
        self.mapper.SetStyleToFilled()
        self.mapper.SetBackgroundColor(0.05, 0.05, 0.07)
        self.mapper.SetBackgroundOpacity(0.8)
        self.mapper.SetMargin(3)
        self.mapper.SetPlaceAllLabels(False)
        self.mapper.SetMaximumLabelFraction(1.0)
        self.actor = vtkActor2D()
        self.actor.SetMapper(self.mapper)
        self.actor.PickableOff()
        self.texts: list[str] = []
        self.set_labels([])

    def set_labels(self, labels: list[tuple[str, FloatArray]]) -> None:
        """Show ``(text, anchor_lps)`` labels, the first ones first when space is short."""
        self.texts = [text for text, _ in labels]
        anchors = np.array([anchor for _, anchor in labels], dtype=np.float64).reshape(-1, 3)
        self.polydata.SetPoints(_points(anchors))
        names = vtkStringArray()
        names.SetName("labels")
        priority = vtkIntArray()
        priority.SetName("priority")
        for n, text in enumerate(self.texts):
            names.InsertNextValue(text)
            priority.InsertNextValue(len(self.texts) - n)
        data = self.polydata.GetPointData()
        data.AddArray(names)
        data.AddArray(priority)
        self.polydata.Modified()
        self.actor.SetVisibility(bool(self.texts))


class SliceActor:
    """One 2D view's current plane in the scene: a quad at the plane's pixel edges carrying the
    view's pixels (after its window/level) as a texture, and a coloured frame."""

    def __init__(self, rgb: tuple[float, float, float]) -> None:
        self.source = vtkPlaneSource()
        self.image = vtkImageData()
        self.texture = vtkTexture()
        self.texture.SetInputData(self.image)
        self.texture.InterpolateOn()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(self.source.GetOutputPort())
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.SetTexture(self.texture)
        prop = self.actor.GetProperty()
        prop.LightingOff()
        prop.BackfaceCullingOff()
        self.frame = lines_actor(np.zeros((4, 2, 3)), 2.0)
        self.frame.GetProperty().SetColor(*rgb)
        self.frame.PickableOff()
        self.plane: ViewPlane | None = None
        self._shape: tuple[int, int] | None = None
        self._grey: npt.NDArray[np.uint8] | None = None

    def corners(self, plane: ViewPlane) -> FloatArray:
        """Outer corners (pixel edges): top-left, top-right, bottom-left, bottom-right."""
        rows, cols = plane.shape_rc
        sx, sy = plane.spacing_mm
        tl = plane.origin_lps - 0.5 * sx * plane.right_lps - 0.5 * sy * plane.down_lps
        tr = tl + cols * sx * plane.right_lps
        bl = tl + rows * sy * plane.down_lps
        return np.array([tl, tr, bl, bl + (tr - tl)])

    def set_plane(self, plane: ViewPlane, grey: npt.NDArray[np.uint8]) -> None:
        """Place the quad on ``plane`` and show ``grey`` (rows x columns, 0..255): texture s runs
        along screen right (columns), t along screen down (rows), so pixel (r, c) of the view is
        texel (c, r) with no flip."""
        tl, tr, bl, br = self.corners(plane)
        self.source.SetOrigin(*tl)
        self.source.SetPoint1(*tr)
        self.source.SetPoint2(*bl)
        self.source.Modified()
        rows, cols = grey.shape
        if self._shape != (rows, cols):
            self.image.SetDimensions(cols, rows, 1)
            self._shape = (rows, cols)
        self._grey = np.ascontiguousarray(grey, dtype=np.uint8)
        self.image.GetPointData().SetScalars(numpy_to_vtk(self._grey.reshape(-1), deep=False))
        self.image.Modified()
        segments = np.array([[tl, tr], [tr, br], [br, bl], [bl, tl]])
        poly = self.frame.GetMapper().GetInput()
        poly.GetPoints().SetData(numpy_to_vtk(segments.reshape(-1, 3), deep=True))
        poly.Modified()
        self.plane = plane

    def set_visible(self, visible: bool) -> None:
        self.actor.SetVisibility(visible)
        self.frame.SetVisibility(visible)

    def props(self) -> list[Any]:
        return [self.actor, self.frame]


def windowed(pixels: npt.NDArray[Any], centre: float, width: float, invert: bool) -> npt.NDArray[np.uint8]:
    """Pixels through a window/level as 0..255 grey."""
    lo = centre - width / 2.0
    scaled = (np.asarray(pixels, dtype=np.float32) - lo) * (255.0 / max(width, 1e-6))
    out: npt.NDArray[np.uint8] = np.clip(scaled, 0, 255).astype(np.uint8)
    if invert:
        out = 255 - out
    return out


def cursor_segments(centre_lps: FloatArray, half_mm: float) -> FloatArray:
    """Three segments along L, P and S through the cursor."""
    c = np.asarray(centre_lps, dtype=np.float64)
    axes = np.eye(3) * half_mm
    return np.array([[c - a, c + a] for a in axes])
