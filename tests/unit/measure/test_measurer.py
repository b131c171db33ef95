"""The engine's masks, built on their labels' boxes, and its foramen search, planes at once: the
same as the whole grid and one plane at a time."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import spider_scheme
from lumbarview.measure.measurer import LabelMapMeasurer
from lumbarview.measure.sampling import SoftMask


def _labels(dtype: type[np.generic], seed: int) -> npt.NDArray[np.generic]:
    """Labels in blobs away from the edges, one on the grid's corner, one on the far faces."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((12, 20, 18), dtype=dtype)
    labels[3:8, 4:11, 5:12] = rng.choice(np.array([1, 2, 100, 201], dtype=dtype), (5, 7, 7))
    labels[0:2, 0:3, 0:2] = 3
    labels[10:, 17:, 15:] = 202
    return labels


def _geometry(shape: tuple[int, ...]) -> VolumeGeometry:
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = (-5.0, 3.0, 10.0)
    return VolumeGeometry(shape_kji=(int(shape[0]), int(shape[1]), int(shape[2])), ijk_to_lps=affine)


def _same_samples(a: SoftMask, b: SoftMask, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(9)
    size = np.asarray(shape, dtype=np.float64)[:, None]
    starts = rng.uniform(-0.2, 1.2, (3, 80)) * size
    steps = rng.normal(size=(3, 80))
    t = np.arange(-20.0, 20.0 + 0.05, 0.1)
    assert np.array_equal(a.sample_lines(starts, steps, t), b.sample_lines(starts, steps, t))
    assert np.array_equal(a.voxels_kji(), b.voxels_kji())


@pytest.mark.parametrize("shift", [0, -7])
@pytest.mark.parametrize("complement", [False, True])
@pytest.mark.parametrize("values", [{1}, {2, 100}, {3}, {202}, {1, 2, 3, 201, 202}, {150}])
def test_masks_on_label_boxes_match_masks_on_the_whole_grid(values: set[int], complement: bool,
                                                            shift: int) -> None:
    # shift -7: a negative label (label_min < 0, at index 0 of the label tables).
    labels = _labels(np.int16, 1)
    if shift:
        labels = np.where(labels == 3, shift, labels).astype(np.int16)
        values = {shift if v == 3 else v for v in values}
    m = LabelMapMeasurer(labels, _geometry(labels.shape), spider_scheme())
    assert m.label_index is not None
    whole = SoftMask(np.isin(labels, list(values)), complement)
    got = m.soft(values, complement)
    _same_samples(got, whole, labels.shape)
    if values != {150}:
        assert got.voxels_kji().size  # the structure is there
    if shift and shift in values:
        assert got.data.shape == whole.data.shape


@pytest.mark.parametrize("complement", [False, True])
def test_a_mask_built_within_a_box_samples_as_the_whole_mask(complement: bool) -> None:
    labels = _labels(np.int16, 4)
    g = _geometry(labels.shape)
    m = LabelMapMeasurer(labels, g, spider_scheme())
    values = {1, 3, 201}
    box_lps = g.index_to_lps(np.array([[4.0, 3.0, 2.0], [11.0, 9.0, 7.0]]))  # (i, j, k) corners
    near = m.soft_within(values, box_lps, complement)
    assert (complement, (1, 3, 201)) not in m._soft  # the whole mask is not built for it
    whole = SoftMask(np.isin(labels, list(values)), complement)
    # Lines inside the box: sampled on the box alone, as on the whole mask.
    starts = np.array([[3.5, 4.0, 5.2], [5.0, 6.5, 7.1], [6.0, 8.0, 9.5]])  # (k, j, i) x 3 lines
    steps = np.array([[0.2, -0.1, 0.0], [0.5, 0.3, -0.4], [0.1, 0.6, 0.2]])
    t = np.arange(-2.0, 2.0 + 0.025, 0.05)
    assert np.array_equal(near.sample_lines(starts, steps, t), whole.sample_lines(starts, steps, t))
    assert (complement, (1, 3, 201)) not in m._soft
    # A line that leaves the box: the whole mask is built and answers.
    far, along = np.array([[1.0, 1.0, 1.0]]).T, np.array([[0.0, 0.5, 0.5]]).T
    long_t = np.arange(0.0, 30.0, 0.1)
    expected = whole.sample_lines(far, along, long_t)
    assert np.array_equal(near.sample_lines(far, along, long_t), expected)
    assert (complement, (1, 3, 201)) in m._soft
    assert 0.0 < float(expected.mean()) < 1.0


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int32, np.float32])
def test_present_labels_by_role(dtype: type[np.generic]) -> None:
    labels = _labels(dtype, 2)
    m = LabelMapMeasurer(labels, _geometry(labels.shape), spider_scheme())
    expected: dict[object, set[int]] = {}
    scheme = spider_scheme()
    for v in np.unique(labels):
        if v != 0:
            expected.setdefault(scheme.entry(int(v)).role, set()).add(int(v))
    assert m.values_by_role == expected
    assert (m.label_index is None) == (dtype is np.float32)
    _same_samples(m.soft({2, 202}), SoftMask(np.isin(labels, [2, 202])), labels.shape)


def test_a_negative_smallest_label_is_present() -> None:
    labels = _labels(np.int16, 3)
    labels[5, 5, 5] = -4
    m = LabelMapMeasurer(labels, _geometry(labels.shape), spider_scheme())
    assert -4 in set().union(*m.values_by_role.values())
    assert 0 not in set().union(*m.values_by_role.values())


def test_the_disc_frame_is_the_disc_plane() -> None:
    from lumbarview.measure.measurer import disc_plane

    labels = np.zeros((30, 40, 40), dtype=np.int16)
    labels[10:20, 12:30, 8:34] = 203
    labels[14:16] = np.where(labels[14:16] == 203, 0, labels[14:16])  # not a plain box
    g = _geometry(labels.shape)
    m = LabelMapMeasurer(labels, g, spider_scheme())
    frame = m.disc_frame(203)
    assert not isinstance(frame, str)
    centre, normal = disc_plane(labels, g, 203)
    assert np.array_equal(frame[0], centre) and np.array_equal(frame[1], normal)
    assert isinstance(m.disc_frame(204), str)  # absent: the reason


def test_foramen_planes_searched_together_are_each_as_alone() -> None:
    from lumbarview.measure.foramen import _foramen_planes
    from lumbarview.measure.measurer import BONE as _BONE
    from lumbarview.phantom.layouts import level_roi_geometry, render_labels
    from lumbarview.phantom.spine import LumbarPhantom

    phantom = LumbarPhantom()
    g = level_roi_geometry(phantom, "L4-L5", 1.0, 1.0)
    labels = render_labels(phantom, g)
    scheme = spider_scheme()
    m = LabelMapMeasurer(labels, g, scheme)
    disc = scheme.disc_value("L4-L5")
    assert disc is not None
    frame = m.disc_frame(disc)
    assert not isinstance(frame, str)
    centre, normal, e_lr, e_ap = frame
    walls = set().union(*(m.values_by_role.get(r, set()) for r in _BONE)) | {disc}
    origins = [centre + offset * e_lr for offset in np.arange(6.0, 30.0, 1.5)]
    together = _foramen_planes(m, origins, e_ap, normal, walls, disc, 0.5)
    assert together.closed.any() and not together.closed.all()  # some planes cut the foramen
    for p, origin in enumerate(origins):
        alone = _foramen_planes(m, [origin], e_ap, normal, walls, disc, 0.5)
        assert alone.closed[0] == together.closed[p]
        assert np.array_equal(alone.is_disc[0], together.is_disc[p])
        if alone.closed[0]:
            assert np.array_equal(alone.comps[0] == alone.seeds[0], together.comps[p] == together.seeds[p])


def _exit_one_line(w: npt.NDArray[np.float32], t: npt.NDArray[np.float64], step: float) -> float:
    """Where one line's samples ``w`` first fall below 0.5, interpolated (NaN: never, or they
    start below it)."""
    if w[0] < 0.5:
        return float("nan")
    for n in range(1, len(w)):
        if w[n] < 0.5:
            return float(t[n - 1] + (w[n - 1] - np.float32(0.5)) / (w[n - 1] - w[n]) * step)
    return float("nan")


def test_exits_searched_a_stretch_at_a_time_are_those_of_whole_lines() -> None:
    labels = np.zeros((40, 50, 60), dtype=np.int16)
    labels[5:35, 8:44, 10:52] = 1
    labels[18:22, 20:30, 25:35] = 0  # a hole some lines meet first
    g = _geometry(labels.shape)
    m = LabelMapMeasurer(labels, g, spider_scheme())
    mask = m.soft({1})
    rng = np.random.default_rng(11)
    starts = g.index_to_lps(rng.uniform((12, 10, 7), (48, 42, 33), (200, 3)))
    directions = rng.normal(size=(200, 3))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    limit = 60.0
    got = m.exits(mask, starts, directions, limit)
    step = m.fine / 2
    t = np.arange(0.0, limit + step / 2, step)
    w = mask.sample_lines(*m.line_index(starts, directions), t)
    expected = np.array([_exit_one_line(row, t, step) for row in w])
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.array_equal(got[~np.isnan(got)], expected[~np.isnan(expected)])
    # Lines leave after the first stretch and in later ones; some start outside (NaN).
    assert np.isnan(got).any() and (got < 10.0).any() and (got > 30.0).any()


def test_the_disc_plane_from_index_sums_is_that_of_the_voxel_centres() -> None:
    from lumbarview.measure.measurer import disc_plane

    rng = np.random.default_rng(12)
    labels = np.zeros((30, 40, 50), dtype=np.int16)
    k, j, i = np.meshgrid(np.arange(30), np.arange(40), np.arange(50), indexing="ij")
    labels[(np.abs(0.3 * i + 0.2 * j - k - 2.0) < 2.5) & (rng.random(labels.shape) > 0.2)] = 203  # a tilted slab
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.9, 3.0])  # oblique, anisotropic
    affine[:3, 3] = (-120.0, 35.0, 410.0)
    g = VolumeGeometry(shape_kji=(30, 40, 50), ijk_to_lps=affine)
    centre, normal = disc_plane(labels, g, 203)
    pts = g.index_to_lps(np.argwhere(labels == 203)[:, ::-1].astype(np.float64))
    expected_normal = np.linalg.eigh(np.cov((pts - pts.mean(axis=0)).T))[1][:, 0]
    assert np.allclose(centre, pts.mean(axis=0), rtol=0, atol=1e-9)
    assert np.allclose(normal, expected_normal * np.sign(expected_normal[2]), rtol=0, atol=1e-9)
    m = LabelMapMeasurer(labels, g, spider_scheme())
    assert np.allclose(m.voxels_lps({203}), pts, rtol=0, atol=1e-9)
