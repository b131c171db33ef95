"""The pixels of any volume on any plane.

``reformat(volume_kji, geometry, plane)`` samples a ``[k, j, i]`` array whose voxel grid is
``geometry`` at the pixel centres of ``plane``. ``Reformatted.method`` names the path taken:

* ``"native"``: when every output pixel centre falls on a stored voxel centre of one slice
  (the plane's normal parallel to the stack's, its origin on a slice centre, its right/down
  along +/- the stack's row/column directions, the same spacings; within ``tolerance_voxels``
  over the whole output), the stored pixels are returned exactly, only flipped and/or
  transposed (bit for bit, stored dtype). ``Reformatted.native_k`` names the slice.
* otherwise **linear** (trilinear) interpolation for images, computed in float32 and returned
  as float32, and **nearest** for label maps (stored dtype: labels stay integral), by the first
  of these that applies:

  - ``"slabs"``: the plane's columns and rows each step along one index axis (two different
    axes) by whole voxels, starting on voxel centres (an axial or coronal cut of a sagittal
    stack on the volume's own grid): numpy slicing of the two index slabs around the plane
    along the third axis and one lerp (labels: the nearest slab);
  - ``"vtk"``: VTK's ``vtkImageReslice`` (imported lazily; an imaging filter, no rendering),
    multithreaded, on the volume wrapped without a copy. Its input is the index grid itself
    (origin 0, spacing 1) and its reslice axes are the plane's index-space origin and steps, so
    any affine grid, sheared (gantry tilt) or not, is resampled exactly as the numpy path does.
    The wrapped volume and its filter are cached per array (at most four, dropped when the
    array dies; a lock per volume serialises the filter's use across threads);
  - ``"numpy"``: the general numpy path (the fallback when VTK cannot take the array: bool,
    float16, byte-swapped or non-contiguous pixels, or VTK missing).

  ``method="numpy"`` forces the general path and ``method="vtk"`` VTK (both skip "slabs").

The volume covers its voxels' edges: a pixel is inside when its index coordinates lie within
``[-0.5, n - 0.5]`` on each axis (the half-voxel rim takes the edge voxel's value, as a native
slice shows it). Pixels outside get ``fill`` (0 by default; NaN is allowed for images, whose
output is float, not for integer labels; the native path of an integer image pads with 0
instead) and are False in ``Reformatted.inside``. Every path computes the mask the same way
(per output row, the interval of columns inside) and writes the fill itself.

Speed (``benchmarks/bench_reformat.py`` has the numbers): the plane is mapped once to index
space (an origin and a step per output row and per column), rows and columns that miss the
volume are skipped, and the output is walked in the order that reads the volume's memory most
nearly in sequence. The numpy path computes bands of rows (float32 coordinates, eight gathers
with separable lerps) on a small thread pool (numpy releases the GIL in these loops); VTK
releases the GIL during its update. A volume that is not C-contiguous is copied once per call
on the numpy path: pass contiguous arrays.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, SlicePlane, VolumeGeometry
from lumbarview.core.limits import limits

Kind = Literal["image", "labels"]
Method = Literal["auto", "vtk", "numpy"]
_BAND_ROWS = 32  # 32 x 512 int64 indices = 128 kB: stays in cache and off mmap
_MIN_PARALLEL_PIXELS = 64 * 1024
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _default_executor() -> ThreadPoolExecutor:
    """A small pool shared by every reformat (created on first use; idle threads cost nothing
    and are joined at interpreter exit)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                       thread_name_prefix="lumbarview-reformat")
        return _pool


@dataclass(frozen=True)
class Reformatted:
    """The pixels of a volume on a plane.

    ``pixels`` is ``(rows, cols)``; ``inside`` is True where the pixel centre lies in the
    volume (elsewhere ``pixels`` holds the fill value); ``native_k`` is the stored slice when
    the stored pixels were returned (flipped/transposed only), else None.
    """

    pixels: npt.NDArray[Any]
    inside: npt.NDArray[np.bool_]
    native_k: int | None
    plane: SlicePlane
    method: str = "native"


@dataclass(frozen=True)
class IndexGrid:
    """A plane's pixel centres in the volume's index space: ``(i, j, k)`` of pixel (column c,
    row r) is ``origin + c * col_step + r * row_step``."""

    origin: FloatArray
    col_step: FloatArray
    row_step: FloatArray
    shape_rc: tuple[int, int]

    @classmethod
    def of(cls, geometry: VolumeGeometry, plane: SlicePlane) -> IndexGrid:
        m = geometry.lps_to_ijk[:3, :3]
        return cls(geometry.lps_to_index(plane.origin_lps),
                   m @ plane.row_direction_lps * plane.spacing_mm[0],
                   m @ plane.column_direction_lps * plane.spacing_mm[1],
                   plane.shape_rc)


def native_mapping(grid: IndexGrid, shape_kji: tuple[int, int, int], tolerance_voxels: float = 0.01,
                   ) -> tuple[int, tuple[int, int, int], tuple[int, int, int]] | None:
    """When the grid's pixel centres fall on the voxel centres of one slice: ``(k, (axis,
    sign, start) for columns, (axis, sign, start) for rows)`` with axis 0 = i, 1 = j;
    else None. The test bounds the position error over the whole output by
    ``tolerance_voxels``."""
    rows, cols = grid.shape_rc
    extent = max(rows, cols)
    k = round(float(grid.origin[2]))
    if abs(grid.origin[2] - k) > tolerance_voxels or not 0 <= k < shape_kji[0]:
        return None
    mapping = []
    for step in (grid.col_step, grid.row_step):
        axis = int(np.argmax(np.abs(step[:2])))
        sign = 1 if step[axis] > 0 else -1
        expected = np.zeros(3)
        expected[axis] = sign
        if float(np.max(np.abs(step - expected))) * extent > tolerance_voxels:
            return None
        start = round(float(grid.origin[axis]))
        if abs(grid.origin[axis] - start) > tolerance_voxels:
            return None
        mapping.append((axis, sign, start))
    if mapping[0][0] == mapping[1][0]:
        return None
    return k, (mapping[0][0], mapping[0][1], mapping[0][2]), (mapping[1][0], mapping[1][1], mapping[1][2])


def _axis_range(start: int, sign: int, n_out: int, n_axis: int) -> tuple[int, int]:
    """Output positions ``t`` in ``[lo, hi)`` whose index ``start + sign * t`` lies in the axis."""
    if sign > 0:
        lo, hi = -start, n_axis - start
    else:
        lo, hi = start - n_axis + 1, start + 1
    return max(lo, 0), min(hi, n_out)


def _native(volume: npt.NDArray[Any], k: int, col_map: tuple[int, int, int], row_map: tuple[int, int, int],
            shape_rc: tuple[int, int], fill: float) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    rows, cols = shape_rc
    stored = volume[k]  # (j, i)
    view = stored if row_map[0] == 1 else stored.T  # now [row axis, column axis]
    sizes = view.shape
    r_lo, r_hi = _axis_range(row_map[2], row_map[1], rows, sizes[0])
    c_lo, c_hi = _axis_range(col_map[2], col_map[1], cols, sizes[1])
    inside = np.zeros((rows, cols), dtype=bool)
    if r_lo >= r_hi or c_lo >= c_hi:
        return np.full((rows, cols), fill, dtype=volume.dtype), inside

    def src(lo: int, hi: int, start: int, sign: int) -> slice:
        a, b = start + sign * lo, start + sign * (hi - 1)
        return slice(a, b + 1) if sign > 0 else slice(a, b - 1 if b > 0 else None, -1)

    block = view[src(r_lo, r_hi, row_map[2], row_map[1]), src(c_lo, c_hi, col_map[2], col_map[1])]
    inside[r_lo:r_hi, c_lo:c_hi] = True
    if (r_lo, r_hi, c_lo, c_hi) == (0, rows, 0, cols):
        return np.ascontiguousarray(block), inside
    out = np.full((rows, cols), fill, dtype=volume.dtype)
    out[r_lo:r_hi, c_lo:c_hi] = block
    return out, inside


def _row_intervals(grid: IndexGrid, shape_kji: tuple[int, int, int], margin: float,
                   ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per output row, the columns ``[lo, hi]`` whose index coordinates lie within
    ``[-margin, n - 1 + margin]`` on every axis (empty rows have lo > hi)."""
    rows, cols = grid.shape_rc
    r = np.arange(rows, dtype=np.float64)
    lo = np.zeros(rows)
    hi = np.full(rows, cols - 1.0)
    eps = 1e-7
    n_ijk = (shape_kji[2], shape_kji[1], shape_kji[0])
    for axis in range(3):
        a_min, a_max = -margin - eps, n_ijk[axis] - 1 + margin + eps
        base = grid.origin[axis] + r * grid.row_step[axis]
        step = grid.col_step[axis]
        if abs(step) < 1e-12:
            bad = (base < a_min) | (base > a_max)
            lo[bad] = cols
            continue
        t1 = (a_min - base) / step
        t2 = (a_max - base) / step
        lo = np.maximum(lo, np.minimum(t1, t2))
        hi = np.minimum(hi, np.maximum(t1, t2))
    return np.ceil(lo).astype(np.int64), np.floor(hi).astype(np.int64)


def reformat(volume_kji: npt.NDArray[Any], geometry: VolumeGeometry, plane: SlicePlane, *,
             kind: Kind = "image", fill: float = 0.0, tolerance_voxels: float = 0.01,
             executor: Executor | None = None, method: Method = "auto") -> Reformatted:
    """The pixels of ``volume_kji`` (grid ``geometry``) on ``plane``; see the module docstring.

    ``method`` picks the resampler off the native path: ``"auto"`` (slabs, then VTK, then
    numpy: the first that applies), ``"vtk"`` (vtkImageReslice; ValueError when it cannot
    take this volume) or ``"numpy"`` (the general numpy path only). ``executor`` runs the numpy
    path's row bands (default: a small shared thread pool); pass one that runs tasks inline to
    stay on the calling thread.
    """
    volume = np.asarray(volume_kji)
    if volume.ndim != 3 or volume.shape != geometry.shape_kji:
        raise ValueError(f"volume of shape {volume.shape} does not match its geometry {geometry.shape_kji}")
    if kind not in ("image", "labels"):
        raise ValueError(f"kind must be 'image' or 'labels', not {kind!r}")
    if method not in ("auto", "vtk", "numpy"):
        raise ValueError(f"method must be 'auto', 'vtk' or 'numpy', not {method!r}")
    rows, cols = plane.shape_rc
    limits().check_image(None, rows * cols, "reformatted view")
    integral = np.issubdtype(volume.dtype, np.integer) or volume.dtype == np.bool_
    if math.isnan(fill) and kind == "labels" and integral:
        raise ValueError("a NaN fill needs float output: label maps keep their integer dtype")
    grid = IndexGrid.of(geometry, plane)
    native = native_mapping(grid, geometry.shape_kji, tolerance_voxels)
    if native is not None:
        k, col_map, row_map = native
        native_fill = 0 if (math.isnan(fill) and integral) else fill
        pixels, inside = _native(volume, k, col_map, row_map, plane.shape_rc, native_fill)
        return Reformatted(pixels, inside, k, plane, "native")
    out_dtype = volume.dtype if kind == "labels" else np.dtype(np.float32)
    if method == "auto":
        slabs = slab_mapping(grid, geometry.shape_kji, tolerance_voxels)
        if slabs is not None:
            pixels, inside = _slabs(volume, slabs, kind, plane.shape_rc, fill, out_dtype)
            return Reformatted(pixels, inside, None, plane, "slabs")
    if method != "numpy":
        why_not = _vtk_unavailable(volume)
        if why_not is None:
            pixels, inside = _vtk_reformat(volume, grid, kind, fill, out_dtype)
            return Reformatted(pixels, inside, None, plane, "vtk")
        if method == "vtk":
            raise ValueError(f"vtkImageReslice cannot resample this volume: {why_not}")
    if not volume.flags.c_contiguous:
        volume = np.ascontiguousarray(volume)
    out: npt.NDArray[Any] = np.full((rows, cols), fill, dtype=out_dtype)
    inside = np.zeros((rows, cols), dtype=bool)
    result = Reformatted(out, inside, None, plane, "numpy")
    # Walk the output so that consecutive pixels are close in memory: when a step down a
    # column moves less far in the volume's memory than a step along a row (an axial cut
    # across sagittal slices, say), sample the transposed grid into the transposed arrays.
    if _walk_transposed(grid, geometry.shape_kji):
        grid = IndexGrid(grid.origin, grid.row_step, grid.col_step, (cols, rows))
        out, inside = out.T, inside.T
        rows, cols = cols, rows
    lo, hi = _row_intervals(grid, geometry.shape_kji, 0.5)
    hit = np.nonzero(lo <= hi)[0]
    if hit.size == 0:
        return result
    r0, r1 = int(hit[0]), int(hit[-1]) + 1
    c0, c1 = int(lo[hit].min()), int(hi[hit].max()) + 1
    sampler = _Sampler(volume, grid, kind, out, inside, lo, hi, c0, c1)
    bands = [(r, min(r + _BAND_ROWS, r1)) for r in range(r0, r1, _BAND_ROWS)]
    if len(bands) == 1 or (r1 - r0) * (c1 - c0) < _MIN_PARALLEL_PIXELS:
        for band in bands:
            sampler.band(band)
    else:
        pool = executor if executor is not None else _default_executor()
        for future in [pool.submit(sampler.band, band) for band in bands]:
            future.result()
    return result


def _walk_transposed(grid: IndexGrid, shape_kji: tuple[int, int, int]) -> bool:
    """True when a step down a column moves less far in the volume's memory than a step along
    a row: walking the output column by column then reads memory in order."""
    _n_k, n_j, n_i = shape_kji
    strides = np.array([1.0, n_i, n_i * n_j])
    return float(np.abs(grid.row_step) @ strides) < float(np.abs(grid.col_step) @ strides)


# --- slabs: planes spanned by two index axes ------------------------------------------------


@dataclass(frozen=True)
class SlabMapping:
    """A plane spanned by two index axes at whole-voxel steps: output column ``c`` is index
    ``col_start + col_step * c`` along ``col_axis`` (0 = i, 1 = j, 2 = k), row ``r`` is
    ``row_start + row_step * r`` along ``row_axis``, and every pixel lies at ``position``
    (fractional) along the third axis ``slab_axis``."""

    col_axis: int
    col_step: int
    col_start: int
    row_axis: int
    row_step: int
    row_start: int
    slab_axis: int
    position: float


def slab_mapping(grid: IndexGrid, shape_kji: tuple[int, int, int], tolerance_voxels: float = 0.01,
                 ) -> SlabMapping | None:
    """When the grid's columns and rows each step along one index axis (two different axes) by a
    whole, non-zero number of voxels and start on voxel centres: the plane lies between two
    neighbouring index slabs along the third axis. The position error over the whole output is
    bounded by ``tolerance_voxels``; else None."""
    rows, cols = grid.shape_rc
    extent = max(rows, cols)
    found: list[tuple[int, int, int]] = []
    for step in (grid.col_step, grid.row_step):
        axis = int(np.argmax(np.abs(step)))
        whole = round(float(step[axis]))
        if whole == 0:
            return None
        expected = np.zeros(3)
        expected[axis] = whole
        if float(np.max(np.abs(step - expected))) * extent > tolerance_voxels:
            return None
        start = round(float(grid.origin[axis]))
        if abs(grid.origin[axis] - start) > tolerance_voxels:
            return None
        found.append((axis, whole, start))
    (ca, cs, c0), (ra, rs, r0) = found
    if ca == ra:
        return None
    slab_axis = 3 - ca - ra
    del shape_kji  # the mapping does not depend on the volume's size
    return SlabMapping(ca, cs, c0, ra, rs, r0, slab_axis, float(grid.origin[slab_axis]))


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _whole_range(start: int, step: int, n_out: int, n_axis: int) -> tuple[int, int]:
    """Output positions ``t`` in ``[lo, hi)`` whose index ``start + step * t`` lies in
    ``[0, n_axis - 1]`` (``step`` a non-zero integer)."""
    if step > 0:
        lo, hi = _ceil_div(-start, step), (n_axis - 1 - start) // step + 1
    else:
        lo, hi = _ceil_div(n_axis - 1 - start, step), (-start) // step + 1
    return max(lo, 0), min(hi, n_out)


def _source_slice(start: int, step: int, lo: int, hi: int) -> slice:
    first, last = start + step * lo, start + step * (hi - 1)
    stop = last + (1 if step > 0 else -1)
    return slice(first, stop if stop >= 0 else None, step)


def _slabs(volume: npt.NDArray[Any], m: SlabMapping, kind: Kind, shape_rc: tuple[int, int], fill: float,
           out_dtype: np.dtype[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Pure slicing and one lerp between the two slabs around ``m.position`` (nearest slab for
    labels), with the general path's conventions: the half-voxel rim along the slab axis takes
    the edge slab, the lerp is computed in float32 as ``a + (b - a) * w``."""
    rows, cols = shape_rc
    n_ijk = (volume.shape[2], volume.shape[1], volume.shape[0])
    n_slab = n_ijk[m.slab_axis]
    inside = np.zeros((rows, cols), dtype=bool)
    out: npt.NDArray[Any] = np.full((rows, cols), fill, dtype=out_dtype)
    eps = 1e-7
    c_lo, c_hi = _whole_range(m.col_start, m.col_step, cols, n_ijk[m.col_axis])
    r_lo, r_hi = _whole_range(m.row_start, m.row_step, rows, n_ijk[m.row_axis])
    if (c_lo >= c_hi or r_lo >= r_hi or not -0.5 - eps <= m.position <= n_slab - 0.5 + eps):
        return out, inside
    # Index along each numpy axis (k, j, i) = index axis 2, 1, 0.
    index: list[Any] = [None, None, None]
    index[2 - m.col_axis] = _source_slice(m.col_start, m.col_step, c_lo, c_hi)
    index[2 - m.row_axis] = _source_slice(m.row_start, m.row_step, r_lo, r_hi)
    # The remaining two numpy axes keep their order: rows come first when the row axis has the
    # smaller numpy axis, else the slab is transposed.
    transposed = (2 - m.row_axis) > (2 - m.col_axis)
    z = np.float32(min(max(m.position, 0.0), n_slab - 1.0))

    def slab(at: int) -> npt.NDArray[Any]:
        index[2 - m.slab_axis] = at
        cut: npt.NDArray[Any] = volume[tuple(index)]
        return cut.T if transposed else cut

    target = out[r_lo:r_hi, c_lo:c_hi]
    if kind == "labels":
        target[...] = slab(int(np.rint(z)))
    elif n_slab == 1:
        target[...] = slab(0)
    else:
        z0 = min(math.floor(z), n_slab - 2)
        w = np.float32(z - np.float32(z0))
        a, b = slab(z0), slab(z0 + 1)
        if transposed:  # lerp in the slabs' memory order, then one transposing copy
            a, b = a.T, b.T
        mixed = np.subtract(b, a, dtype=np.float32)
        mixed *= w
        mixed += a
        target[...] = mixed.T if transposed else mixed
    inside[r_lo:r_hi, c_lo:c_hi] = True
    return out, inside


# --- VTK: vtkImageReslice used as an imaging filter -------------------------------------------

# Volumes wrapped for VTK, by id: (weak reference to the array, its data address, shape and
# strides, the vtkImageData, the filter, a lock). The vtkImageData borrows the array's memory
# without holding a reference: an entry is dropped when its array dies (weakref callback, run
# before numpy frees the memory), so the cache never keeps a closed volume alive.
_VTK_MAX_ENTRIES = 4
_vtk_entries: OrderedDict[int, _VtkEntry] = OrderedDict()
_vtk_lock = threading.Lock()
_vtk_import_error: str | None = None


@dataclass
class _VtkEntry:
    array_ref: weakref.ref[npt.NDArray[Any]]
    signature: tuple[Any, ...]
    image: Any  # vtkImageData
    reslice: Any  # vtkImageReslice
    lock: threading.Lock


def _signature(volume: npt.NDArray[Any]) -> tuple[Any, ...]:
    return (volume.__array_interface__["data"][0], volume.shape, volume.strides, volume.dtype.str)


def _vtk_modules() -> Any:
    """``(vtkImageData, vtkImageReslice, numpy_support)``, imported on first use."""
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkImagingCore import vtkImageReslice

    return vtkImageData, vtkImageReslice, numpy_support


def needs_resampler(geometry: VolumeGeometry, plane: SlicePlane, tolerance_voxels: float = 0.01) -> bool:
    """True when :func:`reformat` of a volume on ``geometry`` takes the compiled resampler (VTK)
    for ``plane``: neither the native path nor the slabs apply."""
    grid = IndexGrid.of(geometry, plane)
    return (native_mapping(grid, geometry.shape_kji, tolerance_voxels) is None
            and slab_mapping(grid, geometry.shape_kji, tolerance_voxels) is None)


def warm_resampler() -> None:
    """Import the compiled resampler now (call off the GUI thread: the first import takes about
    half a second), so the first reformat on screen does not pay for it."""
    with contextlib.suppress(ImportError):
        _vtk_modules()


def _vtk_unavailable(volume: npt.NDArray[Any]) -> str | None:
    """Why vtkImageReslice cannot take ``volume`` (None when it can)."""
    global _vtk_import_error
    supported = (volume.dtype.kind in "iu" and volume.dtype.itemsize in (1, 2, 4, 8)) or (
        volume.dtype.kind == "f" and volume.dtype.itemsize in (4, 8))
    if not supported:
        return f"pixel type {volume.dtype} is not one VTK resamples"
    if not volume.dtype.isnative:
        return f"pixel type {volume.dtype} is not in the machine's byte order"
    if not volume.flags.c_contiguous:
        return "the array is not C-contiguous"
    if _vtk_import_error is None:
        try:
            _vtk_modules()
        except ImportError as exc:  # a broken VTK install: the numpy path still works
            _vtk_import_error = f"VTK's imaging module does not import ({exc})"
        else:
            _vtk_import_error = ""
    return _vtk_import_error or None


def _vtk_entry(volume: npt.NDArray[Any]) -> _VtkEntry:
    signature = _signature(volume)
    key = id(volume)
    with _vtk_lock:
        entry = _vtk_entries.get(key)
        if entry is not None and entry.array_ref() is volume and entry.signature == signature:
            _vtk_entries.move_to_end(key)
            return entry
        vtk_image_data, vtk_image_reslice, numpy_support = _vtk_modules()
        flat = volume.reshape(-1)
        scalars = numpy_support.create_vtk_array(numpy_support.get_vtk_array_type(volume.dtype))
        scalars.SetNumberOfComponents(1)
        scalars.SetVoidArray(flat, flat.size, 1)  # borrowed: VTK never frees or copies it
        image = vtk_image_data()
        n_k, n_j, n_i = volume.shape
        image.SetDimensions(n_i, n_j, n_k)  # VTK's x runs fastest: x = i, y = j, z = k
        image.SetSpacing(1.0, 1.0, 1.0)  # VTK coordinates are our index coordinates
        image.SetOrigin(0.0, 0.0, 0.0)
        image.GetPointData().SetScalars(scalars)
        reslice = vtk_image_reslice()
        reslice.SetInputData(image)
        reslice.SetNumberOfThreads(_vtk_threads())
        reslice.SetOutputSpacing(1.0, 1.0, 1.0)
        reslice.SetOutputOrigin(0.0, 0.0, 0.0)
        # The half-voxel rim is inside (as in the numpy path), a hair more so that VTK never
        # drops a pixel our own mask keeps; pixels outside our mask are overwritten anyway.
        reslice.SetBorder(True)
        reslice.SetBorderThickness(0.5 + 1e-4)
        entry = _VtkEntry(weakref.ref(volume, functools.partial(_drop_entry, key)), signature, image, reslice,
                          threading.Lock())
        _vtk_entries[key] = entry
        while len(_vtk_entries) > _VTK_MAX_ENTRIES:
            _vtk_entries.popitem(last=False)
        return entry


def _drop_entry(key: int, ref: weakref.ref[Any]) -> None:
    with _vtk_lock:
        entry = _vtk_entries.get(key)
        if entry is not None and entry.array_ref is ref:
            del _vtk_entries[key]


def clear_vtk_cache() -> None:
    """Forget every wrapped volume (tests; memory is never held by the cache itself)."""
    with _vtk_lock:
        _vtk_entries.clear()


def _vtk_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _vtk_reformat(volume: npt.NDArray[Any], grid: IndexGrid, kind: Kind, fill: float, out_dtype: np.dtype[Any],
                  ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Trilinear (images, float32) or nearest (labels, stored dtype) through vtkImageReslice,
    over the bounding box of the pixels inside; the mask and the fill are ours."""
    rows, cols = grid.shape_rc
    out: npt.NDArray[Any] = np.full((rows, cols), fill, dtype=out_dtype)
    inside = np.zeros((rows, cols), dtype=bool)
    result_out, result_inside = out, inside
    # VTK fills its output x fastest: let x follow the output axis that moves least in memory.
    if _walk_transposed(grid, volume.shape):
        grid = IndexGrid(grid.origin, grid.row_step, grid.col_step, (cols, rows))
        out, inside = out.T, inside.T
        rows, cols = cols, rows
    lo, hi = _row_intervals(grid, volume.shape, 0.5)
    hit = np.nonzero(lo <= hi)[0]
    if hit.size == 0:
        return result_out, result_inside
    r0, r1 = int(hit[0]), int(hit[-1]) + 1
    c0, c1 = int(lo[hit].min()), int(hi[hit].max()) + 1
    # Output voxel (x, y, 0) of the reslice is our pixel (column x, row y); the reslice axes map
    # it to index coordinates: origin + x * col_step + y * row_step. The third axis is any
    # direction off the plane (the output has one slice at z = 0).
    normal = np.cross(grid.col_step, grid.row_step)
    axes = np.eye(4)
    axes[:3, 0], axes[:3, 1], axes[:3, 2], axes[:3, 3] = grid.col_step, grid.row_step, normal, grid.origin
    entry = _vtk_entry(volume)
    with entry.lock:
        reslice = entry.reslice
        reslice.SetResliceAxes(_vtk_matrix(axes))
        reslice.SetOutputExtent(c0, c1 - 1, r0, r1 - 1, 0, 0)
        if kind == "labels":
            reslice.SetInterpolationModeToNearestNeighbor()
            reslice.SetOutputScalarType(-1)  # the input's type
        else:
            reslice.SetInterpolationModeToLinear()
            reslice.SetOutputScalarType(_VTK_FLOAT)
        reslice.Modified()  # the volume's pixels may have changed in place
        reslice.Update()
        _, _, numpy_support = _vtk_modules()
        values = numpy_support.vtk_to_numpy(reslice.GetOutput().GetPointData().GetScalars())
        values = values.reshape(r1 - r0, c1 - c0)
        target = out[r0:r1, c0:c1]
        cols_index = np.arange(c0, c1)
        band_lo, band_hi = lo[r0:r1], hi[r0:r1]
        mask = (cols_index[None, :] >= band_lo[:, None]) & (cols_index[None, :] <= band_hi[:, None])
        if bool(np.all(band_lo <= c0) and np.all(band_hi >= c1 - 1)):
            target[...] = values
        else:
            np.copyto(target, values, where=mask, casting="unsafe")
        inside[r0:r1, c0:c1] = mask
    return result_out, result_inside


_VTK_FLOAT = 10  # vtkType.h: VTK_FLOAT


def _vtk_matrix(m: npt.NDArray[np.float64]) -> Any:
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = vtkMatrix4x4()
    matrix.DeepCopy(m.ravel().tolist())
    return matrix


class _Sampler:
    """Fills ``out[r0:r1, c0:c1]`` band by band (bands never overlap: safe across threads)."""

    def __init__(self, volume: npt.NDArray[Any], grid: IndexGrid, kind: Kind, out: npt.NDArray[Any],
                 inside: npt.NDArray[np.bool_], lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64],
                 c0: int, c1: int) -> None:
        self.flat = volume.reshape(-1)
        self.n_kji = volume.shape
        self.kind = kind
        self.out = out
        self.inside = inside
        self.lo, self.hi = lo, hi
        self.c0, self.c1 = c0, c1
        cols = np.arange(c0, c1, dtype=np.float64)
        # Per axis (i, j, k): the column term (1D, float32) and the row term's origin and step.
        self.col_terms = [(cols * grid.col_step[a]).astype(np.float32) for a in range(3)]
        self.origin = grid.origin
        self.row_step = grid.row_step
        self.col_index = np.arange(c0, c1)
        self.handlers: dict[Kind, Callable[[tuple[int, int]], None]] = {
            "image": self._linear, "labels": self._nearest}

    def band(self, band: tuple[int, int]) -> None:
        self.handlers[self.kind](band)

    def _coords(self, band: tuple[int, int]) -> tuple[list[npt.NDArray[np.float32]], npt.NDArray[np.bool_], bool]:
        r = np.arange(band[0], band[1], dtype=np.float64)
        coords = [(self.origin[a] + r * self.row_step[a]).astype(np.float32)[:, None] + self.col_terms[a][None, :]
                  for a in range(3)]
        lo, hi = self.lo[band[0]:band[1]], self.hi[band[0]:band[1]]
        whole = bool(np.all(lo <= self.c0) and np.all(hi >= self.c1 - 1))
        mask = (self.col_index[None, :] >= lo[:, None]) & (self.col_index[None, :] <= hi[:, None])
        return coords, mask, whole

    def _finish(self, band: tuple[int, int], values: npt.NDArray[Any], mask: npt.NDArray[np.bool_],
                whole: bool) -> None:
        target = self.out[band[0]:band[1], self.c0:self.c1]
        if whole:
            target[...] = values
        else:
            np.copyto(target, values, where=mask, casting="unsafe")
        self.inside[band[0]:band[1], self.c0:self.c1] = mask

    def _linear(self, band: tuple[int, int]) -> None:
        coords, mask, whole = self._coords(band)
        n_k, n_j, n_i = self.n_kji
        sizes = (n_i, n_j, n_k)
        strides = (1, n_i, n_i * n_j)
        base: npt.NDArray[np.intp] | None = None
        fracs: list[npt.NDArray[np.float32]] = []
        steps: list[int] = []
        for a in range(3):
            x = coords[a]
            np.clip(x, 0.0, sizes[a] - 1.0, out=x)  # the half-voxel rim takes the edge value
            if sizes[a] > 1:
                x0 = np.minimum(np.floor(x), np.float32(sizes[a] - 2))
                fracs.append(x - x0)
                steps.append(strides[a])
            else:
                x0 = np.zeros_like(x)
                fracs.append(x0)
                steps.append(0)
            term = x0.astype(np.intp)
            if strides[a] != 1:
                term *= strides[a]
            base = term if base is None else base + term
        assert base is not None
        # One index array for all eight corners: each corner reads a view of the flat volume
        # that starts at the corner's offset (no index additions).
        views = self._views(steps)
        fi, fj, fk = fracs

        def lerp(a: npt.NDArray[Any], b: npt.NDArray[Any], w: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            d: npt.NDArray[np.float32] = np.subtract(b, a, dtype=np.float32)
            d *= w
            d += a
            return d

        c = [lerp(views[2 * q].take(base), views[2 * q + 1].take(base), fi) for q in range(4)]
        values = lerp(lerp(c[0], c[1], fj), lerp(c[2], c[3], fj), fk)
        self._finish(band, values, mask, whole)

    def _views(self, steps: list[int]) -> list[npt.NDArray[Any]]:
        si, sj, sk = steps
        offsets = [dk + dj + di for dk in (0, sk) for dj in (0, sj) for di in (0, si)]
        return [self.flat[o:] for o in offsets]

    def _nearest(self, band: tuple[int, int]) -> None:
        coords, mask, whole = self._coords(band)
        n_k, n_j, n_i = self.n_kji
        sizes = (n_i, n_j, n_k)
        strides = (1, n_i, n_i * n_j)
        index: npt.NDArray[np.intp] | None = None
        for a in range(3):
            x = np.rint(coords[a])
            np.clip(x, 0.0, sizes[a] - 1.0, out=x)
            term = x.astype(np.intp)
            if strides[a] != 1:
                term *= strides[a]
            index = term if index is None else index + term
        assert index is not None
        self._finish(band, self.flat.take(index), mask, whole)
