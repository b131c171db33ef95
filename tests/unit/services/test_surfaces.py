"""Label surfaces: placed in LPS through the label grid's own geometry, only the labels asked for,
cached, and within the triangle budget."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarview.core.dataset import LabelMap
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import sct_scheme
from lumbarview.core.limits import ResourceLimitError
from lumbarview.core.types import ImageStack
from lumbarview.services import surfaces


def _label_map(labels: np.ndarray, geometry: VolumeGeometry, uid: str = "lab") -> LabelMap:
    stack = ImageStack(uid, "sag", geometry, {"kind": "labels"}, lambda: (labels.copy(), []))
    return LabelMap("mask", stack, sct_scheme(), "mask.nii", None)


def _voxel_extent_lps(labels: np.ndarray, value: int, geometry: VolumeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Outer extent of the label's voxels (centres +/- half a voxel) in LPS, from the 8 corners of
    its index bounding box."""
    k, j, i = np.nonzero(labels == value)
    lo = np.array([i.min(), j.min(), k.min()]) - 0.5
    hi = np.array([i.max(), j.max(), k.max()]) + 0.5
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    lps = geometry.index_to_lps(corners)
    return lps.min(axis=0), lps.max(axis=0)


@pytest.fixture
def oblique_grid() -> tuple[np.ndarray, VolumeGeometry]:
    """A sagittal-like grid with flipped and anisotropic axes, not at the origin."""
    geometry = VolumeGeometry.from_directions((20, 30, 25), (12.0, -40.0, 85.0), (0, 1, 0), (0, 0, -1),
                                              (0.8, 0.9, 2.5), slice_direction_lps=(-1, 0, 0))
    labels = np.zeros((20, 30, 25), dtype=np.uint8)
    labels[4:9, 10:22, 3:17] = 41  # a box
    zz, yy, xx = np.mgrid[:20, :30, :25]
    labels[((zz - 14) ** 2 + (yy - 8) ** 2 / 4 + (xx - 18) ** 2 / 4) <= 6] = 3  # an ellipsoid
    return labels, geometry


def test_unsmoothed_surface_bounds_are_the_voxel_extent(oblique_grid) -> None:  # type: ignore[no-untyped-def]
    labels, geometry = oblique_grid
    lm = _label_map(labels, geometry)
    for value in (41, 3):
        surface = surfaces.build_label_surface(lm, value, smoothing=0)
        assert surface is not None
        lo, hi = _voxel_extent_lps(labels, value, geometry)
        b = np.array(surface.bounds_lps())
        np.testing.assert_allclose(b[0::2], lo, atol=1e-6)
        np.testing.assert_allclose(b[1::2], hi, atol=1e-6)


def test_smoothed_surface_stays_within_a_voxel_of_the_extent(oblique_grid) -> None:  # type: ignore[no-untyped-def]
    labels, geometry = oblique_grid
    surface = surfaces.build_label_surface(_label_map(labels, geometry), 41)
    assert surface is not None and surface.mesh.n_triangles > 100
    lo, hi = _voxel_extent_lps(labels, 41, geometry)
    b = np.array(surface.bounds_lps())
    voxel = max(geometry.spacing_mm)
    assert np.all(b[0::2] >= lo - 1e-6) and np.all(b[1::2] <= hi + 1e-6)  # never outside the voxels
    assert np.all(b[0::2] <= lo + voxel) and np.all(b[1::2] >= hi - voxel)  # and not shrunk by more than one
    # The surface is closed: every edge is shared by exactly two triangles.
    f = surface.mesh.faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert set(counts.tolist()) == {2}


def test_only_asked_labels_are_built_and_cached(oblique_grid) -> None:  # type: ignore[no-untyped-def]
    labels, geometry = oblique_grid
    surfaces.clear_cache()
    lm = _label_map(labels, geometry, "only")
    built = surfaces.build_label_surfaces(lm, [3, 0, 99])  # 99 has no voxel
    assert [s.value for s in built] == [3]
    assert built[0].name == sct_scheme().entry(3).name
    assert surfaces.cached_count() == 2  # 3 and the empty 99
    again = surfaces.build_label_surfaces(lm, [3])
    assert again[0] is built[0]


def test_triangle_budget_refuses_before_building(oblique_grid, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    labels, geometry = oblique_grid
    surfaces.clear_cache()
    monkeypatch.setenv("LUMBARVIEW_MAX_STL_TRIANGLES", "100")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_STL_TRIANGLES"):
        surfaces.build_label_surface(_label_map(labels, geometry, "budget"), 41)


def test_fine_grids_are_pooled_to_fewer_triangles_in_the_same_place() -> None:
    # 0.4 mm in-plane: pooled 3 x 3 in-plane (1.2 mm), the slices (3 mm) kept.
    geometry = VolumeGeometry.from_directions((12, 90, 80), (-20.0, 5.0, 40.0), (0, 1, 0), (0, 0, -1),
                                              (0.4, 0.4, 3.0), slice_direction_lps=(1, 0, 0))
    labels = np.zeros((12, 90, 80), dtype=np.uint8)
    zz, yy, xx = np.mgrid[:12, :90, :80]
    labels[((zz - 6) / 4.0) ** 2 + ((yy - 45) / 30.0) ** 2 + ((xx - 38) / 25.0) ** 2 <= 1] = 7
    lm = _label_map(labels, geometry, "fine")
    fine = surfaces.build_label_surface(lm, 7, smoothing=0, voxel_mm=0.0)
    pooled = surfaces.build_label_surface(lm, 7, smoothing=0)
    assert fine is not None and pooled is not None
    assert pooled.mesh.n_triangles < fine.mesh.n_triangles / 3
    # Within one pooled voxel (1.2 x 1.2 x 3 mm; slices run along x here) of the fine surface:
    # majority pooling may drop a tip slice whose section is under half a pooled voxel.
    pooled_voxel_lps = np.array([3.0, 1.2, 1.2])
    diff = np.abs(np.array(pooled.bounds_lps()) - np.array(fine.bounds_lps())).reshape(3, 2)
    assert np.all(diff <= pooled_voxel_lps[:, None] + 1e-6)
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(fine.mesh.vertices_lps).query(pooled.mesh.vertices_lps)
    assert float(distance.max()) <= 1.2 + 1e-6
