"""slicing.reformat: stored pixels bit for bit on acquired planes, trilinear / nearest elsewhere."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lumbarview.core.geometry import PlaneOrientation, SlicePlane, VolumeGeometry
from lumbarview.core.limits import ResourceLimitError
from lumbarview.slicing import reformat as reformat_module
from lumbarview.slicing.cut import cut_labels
from lumbarview.slicing.planes import ViewPlane, standard_plane
from lumbarview.slicing.reformat import Method, reformat


class Inline:
    """An executor that runs tasks on the calling thread."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        f: Future[Any] = Future()
        f.set_result(fn(*args))
        return f


def _rotation(ax: float, ay: float, az: float) -> npt.NDArray[np.float64]:
    rx, ry, rz = np.radians([ax, ay, az])
    mx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    my = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    mz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    return mx @ my @ mz


# (name, row direction, column direction, orientation): supine, prone and feet-first stacks, and a
# NIfTI-like axial whose rows run posterior-up.
STACKS = [
    ("sagittal supine", (0, 1, 0), (0, 0, -1), PlaneOrientation.SAGITTAL),
    ("sagittal prone", (0, -1, 0), (0, 0, -1), PlaneOrientation.SAGITTAL),
    ("axial feet-first supine", (-1, 0, 0), (0, 1, 0), PlaneOrientation.AXIAL),
    ("axial head-first prone", (-1, 0, 0), (0, -1, 0), PlaneOrientation.AXIAL),
    ("axial rows posterior-up", (1, 0, 0), (0, -1, 0), PlaneOrientation.AXIAL),
    ("coronal", (1, 0, 0), (0, 0, -1), PlaneOrientation.CORONAL),
    ("sagittal transposed", (0, 0, -1), (0, -1, 0), PlaneOrientation.SAGITTAL),
]


def _stack(row: tuple[float, ...], col: tuple[float, ...], shape: tuple[int, int, int] = (7, 24, 30),
           ) -> tuple[npt.NDArray[np.int16], VolumeGeometry]:
    g = VolumeGeometry.from_directions(shape, (-20.0, 15.0, 40.0), row, col, (0.9, 1.3, 3.5))
    volume = np.random.default_rng(1).integers(-3000, 3000, size=shape, dtype=np.int16)
    return volume, g


def _gather_nearest(volume: npt.NDArray[Any], g: VolumeGeometry, plane: SlicePlane) -> npt.NDArray[Any]:
    """Independent reference: each pixel centre through LPS to the nearest voxel."""
    rows, cols = plane.shape_rc
    cc, rr = np.meshgrid(np.arange(cols, dtype=float), np.arange(rows, dtype=float))
    ijk = np.rint(g.lps_to_index(plane.pixel_to_lps(np.stack([cc, rr], axis=-1)))).astype(int)
    return volume[ijk[..., 2], ijk[..., 1], ijk[..., 0]]


@pytest.mark.parametrize(("name", "row", "col", "orientation"), STACKS, ids=[s[0] for s in STACKS])
def test_native_plane_returns_the_stored_pixels_bit_for_bit(name: str, row: tuple[float, ...],
                                                            col: tuple[float, ...],
                                                            orientation: PlaneOrientation) -> None:
    volume, g = _stack(row, col)
    for k in (0, 3, 6):
        plane = standard_plane(g, orientation, g.index_to_lps((10.0, 11.0, k)))
        out = reformat(volume, g, plane)
        assert out.native_k == k, name
        assert out.pixels.dtype == volume.dtype and out.inside.all()
        np.testing.assert_array_equal(out.pixels, _gather_nearest(volume, g, plane))
        # Only flips and transposes: the same multiset of values as the stored slice.
        np.testing.assert_array_equal(np.sort(out.pixels, axis=None), np.sort(volume[k], axis=None))
        # As stored: exactly the stored array.
        stored = reformat(volume, g, standard_plane(g, orientation, g.index_to_lps((10.0, 11.0, k)),
                                                    native_orientation=True))
        np.testing.assert_array_equal(stored.pixels, volume[k])


def test_native_plane_larger_than_the_slice_pads_with_fill() -> None:
    volume, g = _stack((0, -1, 0), (0, 0, -1))
    base = ViewPlane.from_slice_plane(g.slice_plane(2))
    # Flipped left-right (output column c shows stored column 34 - c), 8 pixels larger each way.
    plane = ViewPlane(base.pixel_to_lps(np.array([34.0, -3.0])), -base.right_lps, base.down_lps,
                      base.spacing_mm, (32, 38))
    out = reformat(volume, g, plane, fill=-7)
    assert out.native_k == 2
    expected = np.full((32, 38), -7, dtype=np.int16)
    expected[3:27, 5:35] = volume[2][:, ::-1]
    np.testing.assert_array_equal(out.pixels, expected)
    assert out.inside.sum() == 24 * 30


def test_a_plane_half_a_voxel_off_is_not_native() -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    plane = g.slice_plane(3)
    shifted = SlicePlane(plane.origin_lps + 0.5 * g.spacing_mm[0] * plane.row_direction_lps,
                         plane.row_direction_lps, plane.column_direction_lps, plane.spacing_mm, plane.shape_rc)
    out = reformat(volume, g, shifted)
    assert out.native_k is None and out.pixels.dtype == np.float32
    # Halfway between two columns: the mean of the neighbours.
    expected = (volume[3][:, :-1].astype(np.float32) + volume[3][:, 1:]) / 2
    np.testing.assert_allclose(out.pixels[:, :-1], expected, atol=1e-3)


def _oblique_volume(f: Any) -> tuple[npt.NDArray[np.float32], VolumeGeometry]:
    rot = _rotation(12.0, -25.0, 7.0)
    g = VolumeGeometry.from_directions((40, 70, 60), (-30.0, -40.0, -35.0), rot @ (1, 0, 0), rot @ (0, 1, 0),
                                       (0.8, 1.1, 2.0))
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in g.shape_kji), indexing="ij")
    lps = g.index_to_lps(np.stack([i, j, k], axis=-1))
    return f(lps).astype(np.float32), g


def _planes(g: VolumeGeometry) -> list[ViewPlane]:
    centre = g.centre_lps()
    tilt = _rotation(31.0, 17.0, -9.0)
    return [
        ViewPlane.centred(centre, tilt @ (1, 0, 0), tilt @ (0, 1, 0), (0.6, 0.6), (90, 110)),
        # Along the slice direction across the rows (sampled transposed in memory order).
        ViewPlane.centred(centre + 1.3, g.ijk_to_lps[:3, 2] / 2.0, g.ijk_to_lps[:3, 0] / 0.8, (0.7, 0.5), (80, 100)),
        standard_plane(g, PlaneOrientation.CORONAL, centre + 0.4),
    ]


def _truth_on(plane: SlicePlane, f: Any) -> npt.NDArray[np.float64]:
    rows, cols = plane.shape_rc
    cc, rr = np.meshgrid(np.arange(cols, dtype=float), np.arange(rows, dtype=float))
    return np.asarray(f(plane.pixel_to_lps(np.stack([cc, rr], axis=-1))))


def _strictly_inside(g: VolumeGeometry, plane: SlicePlane) -> npt.NDArray[np.bool_]:
    rows, cols = plane.shape_rc
    cc, rr = np.meshgrid(np.arange(cols, dtype=float), np.arange(rows, dtype=float))
    ijk = g.lps_to_index(plane.pixel_to_lps(np.stack([cc, rr], axis=-1)))
    n = np.array(g.shape_kji[::-1]) - 1
    return np.all((ijk >= 0) & (ijk <= n), axis=-1)


@pytest.mark.parametrize("method", ["auto", "numpy"])
def test_linear_function_is_reproduced_on_oblique_planes(method: Method) -> None:
    def f(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 3.0 * p[..., 0] - 2.0 * p[..., 1] + 5.0 * p[..., 2] + 100.0

    volume, g = _oblique_volume(f)
    for plane in _planes(g):
        out = reformat(volume, g, plane, method=method)
        assert out.native_k is None
        assert out.method == ("vtk" if method == "auto" else "numpy")
        inner = _strictly_inside(g, plane)
        assert inner.sum() > 500
        assert out.inside[inner].all()
        # Trilinear interpolation is exact for a linear function (float32 rounding only).
        np.testing.assert_allclose(out.pixels[inner], _truth_on(plane, f)[inner], atol=0.05)


@pytest.mark.parametrize("method", ["auto", "numpy"])
def test_smooth_function_within_the_trilinear_error_bound(method: Method) -> None:
    def f(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 100 * np.sin(p[..., 0] / 15.0) * np.cos(p[..., 1] / 20.0) + 100 * (p[..., 2] / 30.0) ** 2

    volume, g = _oblique_volume(f)
    # |second derivative along any direction| <= Frobenius norm of the Hessian.
    h = 100 * np.sqrt((1 / 225) ** 2 + (1 / 400) ** 2 + 2 * (1 / 300) ** 2 + (2 / 900) ** 2)
    bound = sum(s * s for s in g.spacing_mm) / 8 * h + 0.01
    worst = 0.0
    for plane in _planes(g):
        out = reformat(volume, g, plane, method=method)
        inner = _strictly_inside(g, plane)
        err = np.abs(out.pixels[inner] - _truth_on(plane, f)[inner])
        assert err.max() <= bound
        worst = max(worst, float(err.max()))
    assert worst > 0.01 * bound  # really interpolated (a nearest lookup would fail the bound)


@pytest.mark.parametrize("method", ["auto", "numpy"])
def test_labels_are_nearest_integral_and_keep_their_dtype(method: Method) -> None:
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 1, 7, 202, 255], dtype=np.uint8), size=(20, 40, 36))
    rot = _rotation(0.0, 20.0, 10.0)
    g = VolumeGeometry.from_directions(labels.shape, (0, 0, 0), rot @ (1, 0, 0), rot @ (0, 1, 0), (1.0, 1.2, 2.5))
    plane = ViewPlane.centred(g.centre_lps(), _rotation(25, 5, 0) @ (1, 0, 0), _rotation(25, 5, 0) @ (0, 1, 0),
                              (0.7, 0.7), (96, 96))
    out = reformat(labels, g, plane, kind="labels", method=method)
    assert out.pixels.dtype == np.uint8
    assert set(np.unique(out.pixels)) <= {0, 1, 7, 202, 255}
    reference = cut_labels(labels, g, plane)  # the overlay cutter: float64, independent code
    agree = np.mean(out.pixels == reference)
    assert agree > 0.995
    assert out.inside.mean() > 0.3 and (~out.inside).any()
    assert (out.pixels[~out.inside] == 0).all()


@pytest.mark.parametrize("method", ["auto", "numpy"])
def test_outside_the_volume_is_fill_and_masked(method: Method) -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    plane = ViewPlane.centred(g.index_to_lps((29.0, 12.0, 3.2)), (0, 1, 0), (0, 0, -1), (0.5, 0.5), (40, 40))
    out = reformat(volume, g, plane, fill=float("nan"), method=method)
    assert out.native_k is None
    assert np.isnan(out.pixels[~out.inside]).all() and (~out.inside).sum() > 100
    assert np.isfinite(out.pixels[out.inside]).all() and out.inside.sum() > 100
    # Entirely outside: all fill, nothing inside.
    far = plane.stepped(500.0)
    none = reformat(volume, g, far, fill=-1.0, method=method)
    assert not none.inside.any() and (none.pixels == -1.0).all()
    with pytest.raises(ValueError, match="NaN fill"):
        reformat(volume, g, plane, kind="labels", fill=float("nan"))


def test_threads_give_the_same_pixels_as_one_thread() -> None:
    volume = np.random.default_rng(5).integers(0, 4000, size=(60, 256, 256), dtype=np.int16)
    g = VolumeGeometry.from_directions(volume.shape, (0, 0, 0), (0, 1, 0), (0, 0, -1), (0.7, 0.7, 1.0))
    tilt = _rotation(20, 10, 0)
    plane = ViewPlane.centred(g.centre_lps(), tilt @ (1, 0, 0), tilt @ (0, 1, 0), (0.7, 0.7), (300, 300))
    pooled = reformat(volume, g, plane, method="numpy")
    inline = reformat(volume, g, plane, executor=Inline(), method="numpy")  # type: ignore[arg-type]
    np.testing.assert_array_equal(pooled.pixels, inline.pixels)
    np.testing.assert_array_equal(pooled.inside, inline.inside)


def test_single_slice_volume_and_bad_requests() -> None:
    image = np.arange(12 * 10, dtype=np.uint16).reshape(1, 12, 10)
    g = VolumeGeometry.from_directions(image.shape, (0, 0, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0, 1.0))
    # A plane within the slab's thickness, off the pixel grid: a 2D (bilinear) resample.
    plane = ViewPlane(g.index_to_lps((0.5, 0.0, 0.3)), (1, 0, 0), (0, 1, 0), (1.0, 1.0), (12, 9))
    out = reformat(image, g, plane)
    assert out.inside.all()
    np.testing.assert_allclose(out.pixels, (image[0, :, :-1] + image[0, :, 1:]) / 2.0)
    with pytest.raises(ValueError, match="does not match"):
        reformat(image[:, :5], g, plane)


def test_huge_output_is_refused_before_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    monkeypatch.setenv("LUMBARVIEW_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_IMAGE_PIXELS"):
        reformat(volume, g, SlicePlane((0, 0, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0), (100, 100)))


# --- the slab path: planes spanned by two index axes --------------------------------------------


def _index_plane(g: VolumeGeometry, origin_ijk: tuple[float, float, float], col: tuple[int, int],
                 row: tuple[int, int], shape_rc: tuple[int, int]) -> ViewPlane:
    """The plane whose pixel (c, r) is at index ``origin + c * col_step + r * row_step``, where a
    step is (index axis 0..2, whole voxels)."""
    m = g.ijk_to_lps[:3, :3]
    steps = []
    for axis, n in (col, row):
        v = np.zeros(3)
        v[axis] = n
        steps.append(m @ v)
    return ViewPlane(g.index_to_lps(origin_ijk), steps[0], steps[1],
                     (float(np.linalg.norm(steps[0])), float(np.linalg.norm(steps[1]))), shape_rc)


# (origin in index space, column step, row step, output shape): each slab axis, flips, steps of
# two voxels, and planes hanging over the volume's edges.
SLAB_CASES = [
    ((0.0, 0.0, 2.3), (0, 1), (1, 1), (24, 30)),  # between two stored slices
    ((29.0, 3.6, 0.0), (2, 1), (0, -1), (30, 7)),  # an axial-like cut of the stack, flipped rows
    ((4.0, 23.0, 6.0), (1, -1), (2, -1), (9, 26)),  # the slab axis is i, both flipped
    ((-3.0, 5.0, 0.25), (0, 2), (1, 1), (30, 20)),  # two voxels per pixel, starting outside
    ((10.0, -0.4, 0.0), (0, 1), (2, 1), (12, 40)),  # in the half-voxel rim along j, too wide
]


@pytest.mark.parametrize(("origin", "col", "row", "shape"), SLAB_CASES)
def test_slab_path_equals_the_general_path(origin: tuple[float, float, float], col: tuple[int, int],
                                           row: tuple[int, int], shape: tuple[int, int]) -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    plane = _index_plane(g, origin, col, row, shape)
    fast = reformat(volume, g, plane, fill=-5.0)
    general = reformat(volume, g, plane, fill=-5.0, method="numpy")
    assert fast.method == "slabs" and general.method == "numpy"
    assert fast.pixels.dtype == np.float32 and fast.pixels.shape == shape
    np.testing.assert_array_equal(fast.inside, general.inside)
    assert fast.inside.any()
    np.testing.assert_allclose(fast.pixels, general.pixels, rtol=1e-6, atol=1e-3)
    # Independent check of one pixel inside: a lerp of the two stored voxels around it.
    r, c = (int(x[0]) for x in np.nonzero(fast.inside))
    ijk = np.array(origin) + c * np.eye(3)[col[0]] * col[1] + r * np.eye(3)[row[0]] * row[1]
    slab_axis = 3 - col[0] - row[0]
    n_ijk = np.array(g.shape_kji[::-1])
    z = min(max(ijk[slab_axis], 0.0), n_ijk[slab_axis] - 1.0)
    z0 = min(int(np.floor(z)), n_ijk[slab_axis] - 2)
    a, b = ijk.round().astype(int), ijk.round().astype(int)
    a[slab_axis], b[slab_axis] = z0, z0 + 1
    va, vb = float(volume[a[2], a[1], a[0]]), float(volume[b[2], b[1], b[0]])
    assert fast.pixels[r, c] == pytest.approx(va + (vb - va) * (z - z0), abs=1e-2)


@pytest.mark.parametrize(("origin", "col", "row", "shape"), SLAB_CASES)
def test_slab_path_labels_take_the_nearest_slab(origin: tuple[float, float, float], col: tuple[int, int],
                                                row: tuple[int, int], shape: tuple[int, int]) -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    labels = (volume % 5).astype(np.uint8)
    plane = _index_plane(g, origin, col, row, shape)
    fast = reformat(labels, g, plane, kind="labels")
    assert fast.method == "slabs" and fast.pixels.dtype == np.uint8
    np.testing.assert_array_equal(fast.pixels, reformat(labels, g, plane, kind="labels", method="numpy").pixels)
    rr, cc = np.nonzero(fast.inside)
    ijk = np.rint(g.lps_to_index(plane.pixel_to_lps(np.stack([cc, rr], axis=-1).astype(float)))).astype(int)
    np.testing.assert_array_equal(fast.pixels[rr, cc], labels[ijk[:, 2], ijk[:, 1], ijk[:, 0]])
    assert (fast.pixels[~fast.inside] == 0).all()


def test_slab_beyond_the_half_voxel_rim_is_all_fill() -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    rim = reformat(volume, g, _index_plane(g, (0.0, 0.0, 6.45), (0, 1), (1, 1), (24, 30)))
    assert rim.method == "slabs" and rim.inside.all()
    np.testing.assert_array_equal(rim.pixels, volume[6].astype(np.float32))  # the edge slab
    beyond = reformat(volume, g, _index_plane(g, (0.0, 0.0, 6.55), (0, 1), (1, 1), (24, 30)), fill=float("nan"))
    assert beyond.method == "slabs" and not beyond.inside.any() and np.isnan(beyond.pixels).all()


def test_a_fractional_in_plane_position_is_not_a_slab() -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    out = reformat(volume, g, _index_plane(g, (0.5, 0.0, 2.3), (0, 1), (1, 1), (24, 30)))
    assert out.method == "vtk"


# --- vtkImageReslice against the numpy path ----------------------------------------------------


def test_vtk_path_matches_the_numpy_path_on_analytic_volumes() -> None:
    def f(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 100 * np.sin(p[..., 0] / 15.0) * np.cos(p[..., 1] / 20.0) + 100 * (p[..., 2] / 30.0) ** 2 + 300

    volume, g = _oblique_volume(f)
    outside = 0
    for plane in _planes(g):
        fast = reformat(volume, g, plane, fill=float("nan"), method="vtk")
        general = reformat(volume, g, plane, fill=float("nan"), method="numpy")
        assert fast.method == "vtk" and fast.pixels.dtype == np.float32
        np.testing.assert_array_equal(fast.inside, general.inside)
        assert fast.inside.sum() > 500
        outside += int((~fast.inside).sum())
        assert np.isnan(fast.pixels[~fast.inside]).all()
        np.testing.assert_allclose(fast.pixels[fast.inside], general.pixels[general.inside], rtol=1e-5)
    assert outside > 100


def test_vtk_path_labels_are_the_numpy_nearest() -> None:
    rng = np.random.default_rng(11)
    labels = rng.choice(np.array([0, 3, 9, 1000], dtype=np.int32), size=(20, 40, 36))
    rot = _rotation(0.0, 20.0, 10.0)
    g = VolumeGeometry.from_directions(labels.shape, (0, 0, 0), rot @ (1, 0, 0), rot @ (0, 1, 0), (1.0, 1.2, 2.5))
    plane = ViewPlane.centred(g.centre_lps(), _rotation(25, 5, 0) @ (1, 0, 0), _rotation(25, 5, 0) @ (0, 1, 0),
                              (0.7, 0.7), (96, 96))
    fast = reformat(labels, g, plane, kind="labels", fill=-1)
    assert fast.method == "vtk" and fast.pixels.dtype == np.int32
    general = reformat(labels, g, plane, kind="labels", fill=-1, method="numpy")
    np.testing.assert_array_equal(fast.inside, general.inside)
    assert (fast.pixels[~fast.inside] == -1).all()
    # Only exact ties between two voxels may round differently (VTK rounds half up, numpy to even).
    assert np.mean(fast.pixels == general.pixels) > 0.999


def test_sheared_grid_is_resampled_in_index_space() -> None:
    """A gantry-tilted stack (k axis not normal to the slices): both resamplers work in index
    coordinates, so they agree with each other and reproduce a linear function exactly."""
    def f(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 2.0 * p[..., 0] + 1.5 * p[..., 1] - 4.0 * p[..., 2] + 50.0

    shape = (30, 40, 36)
    g = VolumeGeometry.from_directions(shape, (-10.0, -20.0, -30.0), (1, 0, 0), (0, 1, 0), (0.9, 0.9, 2.0),
                                       slice_direction_lps=(0.0, np.sin(np.radians(15)), np.cos(np.radians(15))))
    sheared = g.ijk_to_lps[:3, :3]
    assert abs(float(sheared[:, 1] @ sheared[:, 2])) > 0.1
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    volume = f(g.index_to_lps(np.stack([i, j, k], axis=-1))).astype(np.float32)
    tilt = _rotation(30, 10, 5)
    plane = ViewPlane.centred(g.centre_lps(), tilt @ (1, 0, 0), tilt @ (0, 1, 0), (0.8, 0.8), (70, 70))
    fast = reformat(volume, g, plane)
    general = reformat(volume, g, plane, method="numpy")
    assert fast.method == "vtk"
    np.testing.assert_array_equal(fast.inside, general.inside)
    np.testing.assert_allclose(fast.pixels, general.pixels, rtol=1e-5, atol=1e-3)
    inner = _strictly_inside(g, plane)
    assert inner.sum() > 500
    np.testing.assert_allclose(fast.pixels[inner], _truth_on(plane, f)[inner], atol=0.01)


def test_volumes_vtk_cannot_take_fall_back_to_numpy() -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    plane = ViewPlane.centred(g.centre_lps(), _rotation(20, 0, 0) @ (0, 1, 0), _rotation(20, 0, 0) @ (0, 0, -1),
                              (0.6, 0.6), (40, 40))
    expected = reformat(volume, g, plane, method="numpy").pixels
    for odd in (volume.astype(">i2"), volume.astype(np.float16), np.asfortranarray(volume)):
        out = reformat(odd, g, plane)
        assert out.method == "numpy", odd.dtype
        np.testing.assert_allclose(out.pixels, expected, atol=1.5)  # float16 keeps 11 bits
    mask = volume > 0
    out = reformat(mask, g, plane, kind="labels")
    assert out.method == "numpy" and out.pixels.dtype == np.bool_
    with pytest.raises(ValueError, match="vtkImageReslice cannot"):
        reformat(mask, g, plane, kind="labels", method="vtk")
    with pytest.raises(ValueError, match="method must be"):
        reformat(volume, g, plane, method="scipy")  # type: ignore[arg-type]


def test_the_wrapped_volume_is_cached_sees_edits_and_is_dropped_with_the_volume() -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    volume = volume.copy()
    plane = ViewPlane.centred(g.centre_lps(), _rotation(20, 0, 0) @ (0, 1, 0), _rotation(20, 0, 0) @ (0, 0, -1),
                              (0.6, 0.6), (40, 40))
    first = reformat(volume, g, plane)
    entry = reformat_module._vtk_entries[id(volume)]
    again = reformat(volume, g, plane)
    assert reformat_module._vtk_entries[id(volume)] is entry  # not wrapped again
    np.testing.assert_array_equal(first.pixels, again.pixels)
    volume += 100  # in place: the same memory, new values
    edited = reformat(volume, g, plane)
    np.testing.assert_allclose(edited.pixels[edited.inside], first.pixels[first.inside] + 100, atol=1e-2)
    key = id(volume)
    del volume, first, again, edited
    gc.collect()
    assert key not in reformat_module._vtk_entries


_CONCURRENT = """
import sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.slicing.planes import ViewPlane
from lumbarview.slicing.reformat import reformat

volume = np.random.default_rng(2).integers(0, 4000, size=(40, 96, 96), dtype=np.int16)
labels = (volume % 7).astype(np.uint8)
g = VolumeGeometry.from_directions(volume.shape, (0, 0, 0), (0, 1, 0), (0, 0, -1), (0.7, 0.7, 1.0))
planes = [ViewPlane.centred(g.centre_lps() + (0, 0, 0.3 * n), (np.cos(0.1 * n), 0.3, np.sin(0.1 * n)),
                            np.cross((np.cos(0.1 * n), 0.3, np.sin(0.1 * n)), (0, 1, 0)), (0.6, 0.6), (80, 90))
          for n in range(12)]
serial = [(reformat(volume, g, p).pixels, reformat(labels, g, p, kind="labels").pixels) for p in planes]
with ThreadPoolExecutor(6) as pool:
    for _ in range(5):
        got = list(pool.map(lambda p: (reformat(volume, g, p).pixels, reformat(labels, g, p, kind="labels").pixels),
                            planes))
        for (a, b), (c, d) in zip(serial, got):
            assert np.array_equal(a, c) and np.array_equal(b, d)
print("ok", reformat(volume, g, planes[0]).method)
"""


def test_concurrent_reformats_of_one_volume_agree_with_serial_ones() -> None:
    """Threads share the cached VTK filter of a volume; run in a child so that a crash fails
    the test instead of killing pytest."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    done = subprocess.run([sys.executable, "-c", _CONCURRENT], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "vtk"]
