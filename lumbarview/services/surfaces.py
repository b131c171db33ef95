"""Smooth surfaces of a label map's labels, in LPS mm, built on demand and cached.

Each label is cut out of the label volume (its bounding box plus one voxel of background), turned
into a closed surface by VTK's SurfaceNets3D (with its own constrained smoothing) in voxel index
space, and the vertices are then placed in LPS through the grid's ``ijk_to_lps`` (so any
direction, flip or shear of the grid is honoured; VTK's image filters ignore directions). Only the
labels asked for are built (the viewer asks for the visible ones); results are cached by label
map, label and smoothing, so showing a label again costs nothing.

Call from a worker thread: nothing here touches Qt or renders. VTK is imported lazily and only
its filter modules (the import contract names this module as the one exception next to
``io.mesh``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
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
_CACHE_ENTRIES = 512


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


_cache: OrderedDict[tuple[int, str, int, int, float], LabelSurface | None] = OrderedDict()
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
                        voxel_mm: float = DEFAULT_VOXEL_MM) -> LabelSurface | None:
    """The surface of ``value`` in ``label_map`` (None when the label has no voxel); cached.

    Raises
    ------
    ResourceLimitError
        The surface would hold more triangles than the triangle budget allows.
    CorruptFileError
        The label map's pixels cannot be decoded.
    """
    stack = label_map.stack
    key = (id(label_map), stack.uid, int(value), int(smoothing), float(voxel_mm))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    labels = stack.pixels()
    if labels.ndim != 3:
        raise CorruptFileError(label_map.source, f"a label map must be a volume, got {labels.ndim} dimensions",
                               "open a 3D label volume")
    found = np.nonzero(labels == value)
    surface: LabelSurface | None = None
    if len(found[0]):
        lo = np.array([int(a.min()) for a in found])  # (k, j, i)
        hi = np.array([int(a.max()) for a in found])
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
        # Coarse index c (after the one-voxel padding) is the centre of fine voxels
        # stride * (c - 1) .. stride * (c - 1) + stride - 1 of the box.
        points_ijk = (points_coarse - 1.0) * stride_ijk + (stride_ijk - 1.0) / 2.0
        vertices = stack.geometry.index_to_lps(points_ijk + np.array([lo[2], lo[1], lo[0]], dtype=np.float64))
        entry = label_map.scheme.entry(int(value))
        surface = LabelSurface(int(value), entry.name, entry.color_rgb,
                               Mesh(f"{label_map.name}: {entry.name}", vertices, faces, label_map.source))
    with _lock:
        _cache[key] = surface
        while len(_cache) > _CACHE_ENTRIES:
            _cache.popitem(last=False)
    return surface


def build_label_surfaces(label_map: LabelMap, values: Iterable[int], smoothing: int = DEFAULT_SMOOTHING,
                         voxel_mm: float = DEFAULT_VOXEL_MM) -> list[LabelSurface]:
    """Surfaces of ``values`` (the visible labels) of ``label_map``, in value order."""
    out = []
    for value in sorted({int(v) for v in values if int(v) != 0}):
        surface = build_label_surface(label_map, value, smoothing, voxel_mm)
        if surface is not None:
            out.append(surface)
    return out


def cached_count() -> int:
    """How many (label map, label) surfaces are cached (for tests and the benchmark)."""
    with _lock:
        return len(_cache)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
