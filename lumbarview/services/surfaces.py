"""Smooth surfaces of a label map's labels, in LPS mm, built on demand and cached.

Each label is cut out of the label volume (its bounding box plus one voxel of background), turned
into a closed surface by VTK's SurfaceNets3D (with its own constrained smoothing) in voxel index
space, decimated (quadric, in mm: half the triangles for a tenth of a millimetre), and the
vertices are then placed in LPS through the grid's ``ijk_to_lps`` (so any direction, flip or
shear of the grid is honoured; VTK's image filters ignore directions), the triangles wound
outwards there. Only the labels asked for are built (the viewer asks for the visible ones);
results are cached by label map, label, smoothing and decimation, so showing a label again costs
nothing.

Call from a worker thread: nothing here touches Qt or renders. VTK is imported lazily and only
its filter modules (the import contract names this module as the one exception next to
``io.mesh``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import LabelMap, Mesh
from lumbarview.core.errors import CorruptFileError
from lumbarview.core.geometry import FloatArray
from lumbarview.core.limits import limits

#: Smoothing iterations of SurfaceNets3D (0: the raw, blocky net).
DEFAULT_SMOOTHING = 16
#: Voxels finer than this (along an axis) are merged by majority, up to about this size, before
#: the surface is built: a 0.6 mm in-plane label grid would otherwise give ~4x the triangles (and
#: the build and every frame ~4x the time) for detail the pane cannot show.
DEFAULT_VOXEL_MM = 1.2
#: Fraction of a label surface's triangles taken away after the net is built and smoothed
#: (quadric decimation, in mm): every frame of the 3D pane draws half as many, and the surface
#: moves by about a tenth of a millimetre (on the phantom's 1.2 x 1.2 x 3.3 mm pooled voxels;
#: the tests hold it within a voxel). 0: the whole net.
DEFAULT_REDUCTION = 0.5
_CACHE_ENTRIES = 512
#: Threads that build the labels of one call side by side.
BUILD_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class LabelSurface:
    """The surface of one label value: its mesh in LPS and its name and colour from the scheme."""

    value: int
    name: str
    colour_rgb: tuple[int, int, int]
    mesh: Mesh

    def bounds_lps(self) -> list[float]:
        return mesh_bounds(self.mesh.vertices_lps)


def mesh_bounds(vertices_lps: FloatArray) -> list[float]:
    """[xmin, xmax, ymin, ymax, zmin, zmax] of vertices (LPS mm)."""
    if len(vertices_lps) == 0:
        return [0.0] * 6
    lo, hi = vertices_lps.min(axis=0), vertices_lps.max(axis=0)
    return [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])]


#: Keyed by the map's stack revision too: an edited label map (``ImageStack.write_voxels``) gets
#: new surfaces, never the ones of its pixels before the edit.
_cache: OrderedDict[tuple[int, str, int, int, int, float, float], LabelSurface | None] = OrderedDict()
_lock = threading.Lock()


def _surface_nets(mask_kji: npt.NDArray[np.uint8], smoothing: int) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Vertices (in (i, j, k) index units of ``mask_kji``) and triangles of the boundary of the
    ones in ``mask_kji``."""
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D

    k, j, i = mask_kji.shape
    image = vtkImageData()
    image.SetDimensions(i, j, k)
    image.SetOrigin(0.0, 0.0, 0.0)
    image.SetSpacing(1.0, 1.0, 1.0)
    scalars = numpy_to_vtk(np.ascontiguousarray(mask_kji).ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    nets = vtkSurfaceNets3D()
    nets.SetInputData(image)
    nets.SetLabel(0, 1.0)
    nets.SetBackgroundLabel(0.0)
    nets.SetOutputMeshTypeToTriangles()
    if smoothing > 0:
        nets.SmoothingOn()
        nets.SetNumberOfIterations(int(smoothing))
    else:
        nets.SmoothingOff()
    nets.Update()
    poly = nets.GetOutput()
    if poly is None or poly.GetNumberOfPoints() == 0 or poly.GetNumberOfPolys() == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    points = vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    polys = poly.GetPolys()
    cells = vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64)
    offsets = vtk_to_numpy(polys.GetOffsetsArray()).astype(np.int64)
    if not np.all(np.diff(offsets) == 3):  # asked for triangles; anything else is VTK's bug, not ours
        raise RuntimeError("SurfaceNets3D returned faces that are not triangles")
    return points, cells.reshape(-1, 3)


def closed_surface(faces: npt.NDArray[np.int64]) -> bool:
    """Whether the triangles form a closed surface with no pinch along an edge: every edge is
    shared by exactly two triangles, and no triangle repeats a vertex."""
    if len(faces) == 0:
        return False
    if np.any((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])):
        return False
    a = faces.ravel()
    b = np.roll(faces, -1, axis=1).ravel()  # each triangle's edges (0, 1), (1, 2), (2, 0)
    n = int(faces.max()) + 1
    _, counts = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_counts=True)
    return bool(np.all(counts == 2))


def _decimate(points: FloatArray, faces: npt.NDArray[np.int64], reduction: float, scale: FloatArray
              ) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """About ``reduction`` of the triangles taken away by quadric decimation (with volume
    preservation), done on ``points * scale`` (mm along the grid's axes, so the error measured is
    in mm whatever the voxels' shape); points come back in ``points``' units.

    A decimated vertex sits where it best fits the planes of the triangles it replaces, which on a
    convex tip can be a hair beyond the net: vertices are held inside the net's bounding box. A
    closed net stays closed: when a collapse pinches it (an edge shared by more than two
    triangles), half the reduction is tried, then none.
    """
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkFiltersCore import vtkQuadricDecimation

    if reduction <= 0 or len(faces) < 64 or not closed_surface(faces):
        return points, faces
    poly = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points * scale), deep=True))
    poly.SetPoints(vtk_points)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64), deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(faces.ravel()), deep=True))
    poly.SetPolys(cells)
    lo, hi = points.min(axis=0), points.max(axis=0)
    for target in (reduction, reduction / 2):
        decimation = vtkQuadricDecimation()
        decimation.SetInputData(poly)
        decimation.SetTargetReduction(float(target))
        decimation.VolumePreservationOn()
        decimation.Update()
        out = decimation.GetOutput()
        if out.GetNumberOfPolys() == 0:
            continue
        out_polys = out.GetPolys()
        if not np.all(np.diff(vtk_to_numpy(out_polys.GetOffsetsArray())) == 3):
            continue
        out_faces = vtk_to_numpy(out_polys.GetConnectivityArray()).astype(np.int64).reshape(-1, 3)
        if closed_surface(out_faces):
            out_points = vtk_to_numpy(out.GetPoints().GetData()).astype(np.float64) / scale
            return np.clip(out_points, lo, hi), out_faces
    return points, faces


def signed_volume(vertices: FloatArray, faces: npt.NDArray[np.int64]) -> float:
    """Volume enclosed by closed triangles (mm^3): positive when they are wound outwards (counter-
    clockwise seen from outside, so their right-hand normals point out)."""
    if len(faces) == 0:
        return 0.0
    v = vertices - vertices.mean(axis=0)  # the volume does not move with the origin; precision does
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return float(np.einsum("ij,ij->", a, np.cross(b, c))) / 6.0


def outward(vertices: FloatArray, faces: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``faces`` wound outwards. The nets are wound one way in index space; a grid whose
    index-to-LPS map mirrors (a negative determinant, as many NIfTI and DICOM grids have) turns
    them inside out in LPS, and the pane, which culls back faces, would show the far side."""
    if signed_volume(vertices, faces) < 0:
        return np.ascontiguousarray(faces[:, ::-1])
    return faces


def _pooled(mask: npt.NDArray[np.bool_], strides_kji: tuple[int, int, int]) -> npt.NDArray[np.bool_]:
    """``mask`` on a grid ``strides`` times coarser: a coarse voxel is set when at least half of
    its fine voxels are (the grid is padded with background to a multiple of the strides)."""
    if strides_kji == (1, 1, 1):
        return mask
    pad = [(0, (-n) % s) for n, s in zip(mask.shape, strides_kji, strict=True)]
    m = np.pad(mask, pad)
    (k, j, i), (sk, sj, si) = m.shape, strides_kji
    counts = m.reshape(k // sk, sk, j // sj, sj, i // si, si).sum(axis=(1, 3, 5))
    out: npt.NDArray[np.bool_] = counts * 2 >= sk * sj * si
    return out


def build_label_surface(label_map: LabelMap, value: int, smoothing: int = DEFAULT_SMOOTHING,
                        voxel_mm: float = DEFAULT_VOXEL_MM, reduction: float = DEFAULT_REDUCTION
                        ) -> LabelSurface | None:
    """The surface of ``value`` in ``label_map`` (None when the label has no voxel), decimated by
    ``reduction`` (see :data:`DEFAULT_REDUCTION`), wound outwards; cached.

    Raises
    ------
    ResourceLimitError
        The surface would hold more triangles than the triangle budget allows.
    CorruptFileError
        The label map's pixels cannot be decoded.
    """
    stack = label_map.stack
    revision, labels = stack.versioned_pixels()
    key = (id(label_map), stack.uid, revision, int(value), int(smoothing), float(voxel_mm), float(reduction))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if labels.ndim != 3:
        raise CorruptFileError(label_map.source, f"a label map must be a volume, got {labels.ndim} dimensions",
                               "open a 3D label volume")
    where = labels == value
    # The label's bounding box from its projections on the three axes (no index array of every
    # voxel, as np.nonzero would make).
    found = [np.flatnonzero(where.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
    surface: LabelSurface | None = None
    if len(found[0]):
        lo = np.array([int(a[0]) for a in found])  # (k, j, i)
        hi = np.array([int(a[-1]) for a in found])
        box = labels[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] == value
        di, dj, dk = stack.geometry.spacing_mm
        strides = (max(1, int(voxel_mm // dk)), max(1, int(voxel_mm // dj)), max(1, int(voxel_mm // di)))
        pooled = _pooled(box, strides)
        if not pooled.any():  # a label thinner than half a coarse voxel everywhere: keep its voxels
            strides, pooled = (1, 1, 1), box
        mask = np.pad(pooled.astype(np.uint8), 1)  # background all round: the surface closes
        # A surface net has one quad (two triangles) per face between a label voxel and a
        # background voxel: count them before VTK allocates anything.
        faces_between = sum(int(np.count_nonzero(np.diff(mask, axis=a))) for a in range(3))
        limits().check_triangles(label_map.source, 2 * faces_between)
        points_coarse, faces = _surface_nets(mask, smoothing)
        stride_ijk = np.array(strides[::-1], dtype=np.float64)
        points_coarse, faces = _decimate(points_coarse, faces, reduction,
                                         stride_ijk * np.array(stack.geometry.spacing_mm, dtype=np.float64))
        # Coarse index c (after the one-voxel padding) is the centre of fine voxels
        # stride * (c - 1) .. stride * (c - 1) + stride - 1 of the box.
        points_ijk = (points_coarse - 1.0) * stride_ijk + (stride_ijk - 1.0) / 2.0
        vertices = stack.geometry.index_to_lps(points_ijk + np.array([lo[2], lo[1], lo[0]], dtype=np.float64))
        faces = outward(vertices, faces)
        entry = label_map.scheme.entry(int(value))
        surface = LabelSurface(int(value), entry.name, entry.color_rgb,
                               Mesh(f"{label_map.name}: {entry.name}", vertices, faces, label_map.source))
    with _lock:
        _cache[key] = surface
        while len(_cache) > _CACHE_ENTRIES:
            _cache.popitem(last=False)
    return surface


def build_label_surfaces(label_map: LabelMap, values: Iterable[int], smoothing: int = DEFAULT_SMOOTHING,
                         voxel_mm: float = DEFAULT_VOXEL_MM, reduction: float = DEFAULT_REDUCTION
                         ) -> list[LabelSurface]:
    """Surfaces of ``values`` (the visible labels) of ``label_map``, in value order.

    The labels are built side by side on up to :data:`BUILD_THREADS` threads (VTK's filters and
    numpy's array work let go of the GIL: 13 phantom labels take ~0.2 s on two cores instead of
    ~0.35 s); the first error, in value order, is raised.
    """
    wanted = sorted({int(v) for v in values if int(v) != 0})
    if not wanted:
        return []
    label_map.stack.pixels()  # decoded once, before the threads share it

    def build(value: int) -> LabelSurface | None:
        return build_label_surface(label_map, value, smoothing, voxel_mm, reduction)

    threads = min(BUILD_THREADS, len(wanted))
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="label-surface") as pool:
            built = list(pool.map(build, wanted))
    else:
        built = [build(value) for value in wanted]
    return [surface for surface in built if surface is not None]


def cached_count() -> int:
    """How many (label map, label) surfaces are cached (for tests and the benchmark)."""
    with _lock:
        return len(_cache)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
