"""Bundled sampling gives exactly what ``scipy.ndimage.map_coordinates`` gives on the full grid."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from lumbarview.measure.sampling import SoftMask, nearest_labels


def _blob(shape: tuple[int, int, int], seed: int) -> npt.NDArray[np.bool_]:
    """An irregular structure away from the grid's edges plus one touching two faces."""
    rng = np.random.default_rng(seed)
    inside = np.zeros(shape, dtype=bool)
    inside[3:7, 5:12, 4:10] = rng.random((4, 7, 6)) > 0.3
    inside[0:2, -3:, 0:3] = True  # on the grid's edges
    return inside


def _lines(shape: tuple[int, int, int], n: int, seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Lines from anywhere in and around the grid, in any direction, some parallel to an axis."""
    rng = np.random.default_rng(seed)
    size = np.asarray(shape, dtype=np.float64)[:, None]
    starts = rng.uniform(-0.2, 1.2, (3, n)) * size
    steps = rng.normal(size=(3, n))
    steps[:, : n // 4] = 0.0
    steps[rng.integers(0, 3, n // 4), np.arange(n // 4)] = 1.0  # parallel to one axis
    starts[:, : n // 8] = np.round(starts[:, : n // 8])  # on voxel centres and faces
    return starts, steps


def _reference(values: npt.NDArray[np.float32], starts: npt.NDArray[np.float64], steps: npt.NDArray[np.float64],
               t: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    coords = starts[:, :, None] + t[None, None, :] * steps[:, :, None]
    out: npt.NDArray[np.float32] = ndimage.map_coordinates(values, coords, order=1, mode="constant", cval=0)
    return out


@pytest.mark.parametrize("complement", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lines_match_map_coordinates_on_the_full_grid(complement: bool, seed: int) -> None:
    shape = (11, 17, 14)
    inside = _blob(shape, seed)
    values = (~inside if complement else inside).astype(np.float32)
    starts, steps = _lines(shape, 64, seed)
    t = np.arange(-12.0, 12.0 + 0.05, 0.1)
    got = SoftMask(inside, complement).sample_lines(starts, steps, t)
    expected = _reference(values, starts, steps, t)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert 0.0 < float(expected.mean()) < 1.0  # the lines do cross the structure and leave it


@pytest.mark.parametrize("complement", [False, True])
def test_solid_interiors_are_exactly_one_without_interpolating(complement: bool) -> None:
    # A solid block (most samples inside it have all eight neighbours in the structure), one
    # touching the grid's far faces, and lines through them at every phase.
    shape = (12, 16, 15)
    inside = np.zeros(shape, dtype=bool)
    inside[2:9, 3:12, 4:11] = True
    inside[9:, 12:, 12:] = True
    values = (~inside if complement else inside).astype(np.float32)
    starts, steps = _lines(shape, 96, 7)
    t = np.arange(-15.0, 15.0 + 0.05, 0.07)
    expected = _reference(values, starts, steps, t)
    assert np.array_equal(SoftMask(inside, complement).sample_lines(starts, steps, t), expected)
    inner = 1.0 if not complement else 0.0
    assert int((expected == inner).sum()) > 500  # many samples in the solid part


def test_a_mask_restricted_to_a_box_samples_the_same_and_falls_back_outside_it() -> None:
    shape = (11, 17, 14)
    inside = _blob(shape, 3)
    mask = SoftMask(inside)
    near = mask.restricted((2, 3, 2), (8, 13, 11))
    values = inside.astype(np.float32)
    # Short lines inside the box: sampled on the restricted crop.
    starts = np.array([[4.2, 5.0, 5.5], [7.3, 8.0, 9.1], [6.0, 7.5, 6.25]])  # (k, j, i) x 3 lines
    steps = np.array([[0.3, 0.4, -0.2], [0.0, 1.0, 0.0], [0.1, 0.1, 0.4]])
    t = np.arange(-2.0, 2.0 + 0.025, 0.05)
    assert np.array_equal(near.sample_lines(starts, steps, t), _reference(values, starts, steps, t))

    class NoFallback:
        def sample_lines(self, *_args: object) -> None:
            raise AssertionError("lines inside the box must not fall back to the whole mask")

    parent, near._parent = near._parent, NoFallback()  # type: ignore[assignment]
    near.sample_lines(starts, steps, t)
    near._parent = parent
    # Long lines leave the box: the whole mask answers (the restriction would have dropped the
    # structure on the grid's corner).
    long_t = np.arange(-20.0, 20.0 + 0.05, 0.1)
    far = np.array([[1.0, 15.0, 1.0]]).T
    along = np.array([[0.0, 0.0, 1.0]]).T
    expected = _reference(values, far, along, long_t)
    assert expected.max() > 0
    assert np.array_equal(near.sample_lines(far, along, long_t), expected)


def test_structure_voxels_in_the_full_grid() -> None:
    inside = _blob((11, 17, 14), 4)
    assert np.array_equal(SoftMask(inside).voxels_kji(), np.argwhere(inside))
    empty = SoftMask(np.zeros((4, 5, 6), dtype=bool))
    assert empty.voxels_kji().shape == (0, 3)
    assert not empty.sample_lines(np.zeros((3, 2)), np.ones((3, 2)), np.arange(0.0, 3.0, 0.5)).any()


def test_nearest_labels_match_map_coordinates_order_0_with_ties_and_outside() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(1, 300, (5, 6, 7)).astype(np.int16)
    axis_values = np.arange(-2.0, 9.0, 0.25)  # includes every .5 tie and points outside
    axis_values = np.concatenate([axis_values, np.nextafter(axis_values, 100), np.nextafter(axis_values, -100)])
    coords = rng.choice(axis_values, (3, 4000))
    expected = ndimage.map_coordinates(labels, coords, order=0, mode="constant", cval=0)
    got = nearest_labels(labels, coords.reshape(3, 40, 100))
    assert got.dtype == labels.dtype
    assert np.array_equal(got.reshape(-1), expected)
    assert (expected == 0).any() and (expected != 0).any()


def test_nearest_labels_outside_value() -> None:
    labels = np.arange(60, dtype=np.uint16).reshape(3, 4, 5)
    coords = np.array([[-0.6, 0.0, 1.4, 2.6], [0.0, 3.0, 2.49, 0.0], [4.0, 4.2, 0.0, 1.0]])
    expected = ndimage.map_coordinates(labels, coords, order=0, mode="constant", cval=7)
    got = nearest_labels(labels, coords, outside=7)
    assert np.array_equal(got, expected) and got.tolist() == [7, 7, 30, 7]
