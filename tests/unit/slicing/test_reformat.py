"""slicing.reformat: stored pixels bit for bit on acquired planes, trilinear / nearest elsewhere."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lumbarview.core.geometry import PlaneOrientation, SlicePlane, VolumeGeometry
from lumbarview.core.limits import ResourceLimitError
from lumbarview.slicing.cut import cut_labels
from lumbarview.slicing.planes import ViewPlane, standard_plane
from lumbarview.slicing.reformat import reformat


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


def test_linear_function_is_reproduced_on_oblique_planes() -> None:
    def f(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 3.0 * p[..., 0] - 2.0 * p[..., 1] + 5.0 * p[..., 2] + 100.0

    volume, g = _oblique_volume(f)
    for plane in _planes(g):
        out = reformat(volume, g, plane)
        assert out.native_k is None
        inner = _strictly_inside(g, plane)
        assert inner.sum() > 500
        assert out.inside[inner].all()
        # Trilinear interpolation is exact for a linear function (float32 rounding only).
        np.testing.assert_allclose(out.pixels[inner], _truth_on(plane, f)[inner], atol=0.05)


def test_smooth_function_within_the_trilinear_error_bound() -> None:
    def f(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 100 * np.sin(p[..., 0] / 15.0) * np.cos(p[..., 1] / 20.0) + 100 * (p[..., 2] / 30.0) ** 2

    volume, g = _oblique_volume(f)
    # |second derivative along any direction| <= Frobenius norm of the Hessian.
    h = 100 * np.sqrt((1 / 225) ** 2 + (1 / 400) ** 2 + 2 * (1 / 300) ** 2 + (2 / 900) ** 2)
    bound = sum(s * s for s in g.spacing_mm) / 8 * h + 0.01
    worst = 0.0
    for plane in _planes(g):
        out = reformat(volume, g, plane)
        inner = _strictly_inside(g, plane)
        err = np.abs(out.pixels[inner] - _truth_on(plane, f)[inner])
        assert err.max() <= bound
        worst = max(worst, float(err.max()))
    assert worst > 0.01 * bound  # really interpolated (a nearest lookup would fail the bound)


def test_labels_are_nearest_integral_and_keep_their_dtype() -> None:
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 1, 7, 202, 255], dtype=np.uint8), size=(20, 40, 36))
    rot = _rotation(0.0, 20.0, 10.0)
    g = VolumeGeometry.from_directions(labels.shape, (0, 0, 0), rot @ (1, 0, 0), rot @ (0, 1, 0), (1.0, 1.2, 2.5))
    plane = ViewPlane.centred(g.centre_lps(), _rotation(25, 5, 0) @ (1, 0, 0), _rotation(25, 5, 0) @ (0, 1, 0),
                              (0.7, 0.7), (96, 96))
    out = reformat(labels, g, plane, kind="labels")
    assert out.pixels.dtype == np.uint8
    assert set(np.unique(out.pixels)) <= {0, 1, 7, 202, 255}
    reference = cut_labels(labels, g, plane)  # the overlay cutter: float64, independent code
    agree = np.mean(out.pixels == reference)
    assert agree > 0.995
    assert out.inside.mean() > 0.3 and (~out.inside).any()
    assert (out.pixels[~out.inside] == 0).all()


def test_outside_the_volume_is_fill_and_masked() -> None:
    volume, g = _stack((0, 1, 0), (0, 0, -1))
    plane = ViewPlane.centred(g.index_to_lps((29.0, 12.0, 3.2)), (0, 1, 0), (0, 0, -1), (0.5, 0.5), (40, 40))
    out = reformat(volume, g, plane, fill=float("nan"))
    assert out.native_k is None
    assert np.isnan(out.pixels[~out.inside]).all() and (~out.inside).sum() > 100
    assert np.isfinite(out.pixels[out.inside]).all() and out.inside.sum() > 100
    # Entirely outside: all fill, nothing inside.
    far = plane.stepped(500.0)
    none = reformat(volume, g, far, fill=-1.0)
    assert not none.inside.any() and (none.pixels == -1.0).all()
    with pytest.raises(ValueError, match="NaN fill"):
        reformat(volume, g, plane, kind="labels", fill=float("nan"))


def test_threads_give_the_same_pixels_as_one_thread() -> None:
    volume = np.random.default_rng(5).integers(0, 4000, size=(60, 256, 256), dtype=np.int16)
    g = VolumeGeometry.from_directions(volume.shape, (0, 0, 0), (0, 1, 0), (0, 0, -1), (0.7, 0.7, 1.0))
    tilt = _rotation(20, 10, 0)
    plane = ViewPlane.centred(g.centre_lps(), tilt @ (1, 0, 0), tilt @ (0, 1, 0), (0.7, 0.7), (300, 300))
    pooled = reformat(volume, g, plane)
    inline = reformat(volume, g, plane, executor=Inline())  # type: ignore[arg-type]
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
