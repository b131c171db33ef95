"""Overlays land at the phantom's known positions through patient space (headless)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.geometry import SlicePlane, VolumeGeometry
from lumbarview.phantom.layouts import TRUTH_FILE, Sizes, render_labels, write_aisslab, write_bids
from lumbarview.phantom.spine import LumbarPhantom, PhantomParams
from lumbarview.services.open_dataset import open_path
from lumbarview.slicing.cut import boxes_on_plane, cut_labels, points_near_plane


@pytest.fixture(scope="module")
def phantom() -> LumbarPhantom:
    return LumbarPhantom(PhantomParams(tilt_deg=10.0))


def test_a_mask_on_another_grid_lands_on_the_anatomy(phantom: LumbarPhantom) -> None:
    truth = phantom.ground_truth()["levels"]["L4-L5"]
    centre = np.asarray(truth["disc_centre_lps"])
    # The mask: an oblique, anisotropic grid (rotated 20 degrees, 0.8 x 1.1 x 2 mm).
    a = np.radians(20)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    mask_geometry = VolumeGeometry.from_directions((30, 90, 80), centre - rot @ np.array([32.0, 49.0, 30.0]),
                                                   rot @ (1, 0, 0), rot @ (0, 1, 0), (0.8, 1.1, 2.0))
    labels = render_labels(phantom, mask_geometry)
    # The image: a mid-sagittal slice through the disc, 0.5 mm pixels.
    plane = SlicePlane(centre + np.array([0.0, -40.0, 40.0]), (0, 1, 0), (0, 0, -1), (0.5, 0.5), (160, 160))
    cut = cut_labels(labels, mask_geometry, plane)
    rows, cols = np.nonzero(cut == 202)
    assert len(rows) > 100
    centroid = plane.pixel_to_lps(np.stack([cols, rows], axis=-1).astype(float)).mean(axis=0)
    # Independent: the phantom's own disc voxels on that plane, sampled at the same pixels.
    cc, rr = np.meshgrid(np.arange(160.0), np.arange(160.0))
    pts = plane.pixel_to_lps(np.stack([cc, rr], axis=-1)).reshape(-1, 3)
    from lumbarview.phantom.spine import to_spider_labels

    direct = to_spider_labels(phantom.labels_at(pts)).reshape(160, 160)
    expected = plane.pixel_to_lps(np.argwhere(direct == 202)[:, ::-1].astype(float)).mean(axis=0)
    assert np.linalg.norm(centroid - expected) < 1.0
    agree = np.mean((cut == 202) == (direct == 202))
    assert agree > 0.98


def test_a_box_sits_on_its_dicom_slice_only(phantom: LumbarPhantom, tmp_path: Path) -> None:
    root = write_aisslab(tmp_path / "a", phantom, Sizes.small())
    ds = open_path(root, use_cache=False)
    case = ds.cases[0]
    stack = case.series[0].stacks[0]
    (box_set,) = case.box_sets
    boxes = box_set.boxes
    half = stack.geometry.slice_spacing_mm / 2
    for box in boxes:
        on = boxes_on_plane([box], stack.geometry.slice_plane(box.slice_index), half)
        assert len(on) == 1
        others = [k for k in range(stack.n_slices) if k != box.slice_index]
        assert all(not boxes_on_plane([box], stack.geometry.slice_plane(k), half) for k in others)
        # Its corners, back in pixels of that slice, are the numbers in the XML (edge coordinates).
        px = on[0][1] + 0.5
        assert px[:, 0].min() == pytest.approx(box.xmin) and px[:, 1].max() == pytest.approx(box.ymax)


def test_a_point_given_in_ras_lands_at_its_lps_position(phantom: LumbarPhantom, tmp_path: Path) -> None:
    root = write_bids(tmp_path / "b", phantom, Sizes.small())
    truth = json.loads((root / TRUTH_FILE).read_text())["markers"]
    name, info = next((n, i) for n, i in truth.items() if i.get("system") == "RAS" and "points_lps" in i)
    ds = open_path(root, use_cache=False)
    points = next(p for p in ds.cases[0].point_sets if p.name == name.removesuffix(".json"))
    assert points.coordinate_system == "RAS"
    target = np.asarray(info["points_lps"][1])
    # A sagittal plane through that point shows it; one 5 mm away does not.
    plane = SlicePlane(target + np.array([0.0, -30.0, 30.0]), (0, 1, 0), (0, 0, -1), (0.5, 0.5), (120, 120))
    near, px = points_near_plane(points.points_lps, plane, 1.0)
    assert near[1]
    assert np.allclose(plane.pixel_to_lps(px[1]), target, atol=1e-6)
    shifted = SlicePlane(plane.origin_lps + np.array([5.0, 0, 0]), (0, 1, 0), (0, 0, -1), (0.5, 0.5), (120, 120))
    assert not points_near_plane(points.points_lps, shifted, 1.0)[0][1]
