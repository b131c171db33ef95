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
    # Pooling alone (no decimation): nets' vertices sit on the voxel grid, so a nearest-vertex
    # distance is a distance to the surface.
    fine = surfaces.build_label_surface(lm, 7, smoothing=0, voxel_mm=0.0, reduction=0.0)
    pooled = surfaces.build_label_surface(lm, 7, smoothing=0, reduction=0.0)
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


def _distance_to_surface(points: np.ndarray, mesh_vertices: np.ndarray, mesh_faces: np.ndarray) -> np.ndarray:
    """Unsigned distance (mm) of each point to the triangles (VTK's implicit distance: the
    nearest point on any triangle, not the nearest vertex)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

    poly = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(mesh_vertices, dtype=np.float64), deep=True))
    poly.SetPoints(vtk_points)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(np.arange(0, 3 * len(mesh_faces) + 1, 3, dtype=np.int64), deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(mesh_faces.ravel(), dtype=np.int64), deep=True))
    poly.SetPolys(cells)
    distance = vtkImplicitPolyDataDistance()
    distance.SetInput(poly)
    return np.abs(np.array([distance.EvaluateFunction(*p) for p in points]))


@pytest.fixture
def vertebra_like() -> tuple[np.ndarray, VolumeGeometry]:
    """A rounded body with a hole and a process on a 0.6 x 0.6 x 3.3 mm sagittal grid (pooled to
    1.2 x 1.2 x 3.3 mm), mirrored (i x j runs against k), not at the origin."""
    geometry = VolumeGeometry.from_directions((14, 90, 90), (30.0, -60.0, 40.0), (0, 1, 0), (0, 0, -1),
                                              (0.6, 0.6, 3.3), slice_direction_lps=(1, 0, 0))
    zz, yy, xx = np.mgrid[:14, :90, :90]
    body = ((zz - 7) / 5.0) ** 2 + ((yy - 40) / 28.0) ** 2 + ((xx - 45) / 22.0) ** 2 <= 1
    hole = ((yy - 40) / 8.0) ** 2 + ((xx - 45) / 8.0) ** 2 <= 1
    process = (np.abs(zz - 7) <= 1) & (yy >= 60) & (yy <= 84) & (np.abs(xx - 45) <= 5)
    labels = np.zeros((14, 90, 90), dtype=np.uint8)
    labels[(body & ~hole) | process] = 20
    return labels, geometry


def test_decimated_surface_stays_within_a_fraction_of_a_voxel_of_the_net(vertebra_like) -> None:  # type: ignore[no-untyped-def]
    labels, geometry = vertebra_like
    lm = _label_map(labels, geometry, "decimate")
    net = surfaces.build_label_surface(lm, 20, reduction=0.0)
    decimated = surfaces.build_label_surface(lm, 20)
    assert net is not None and decimated is not None
    assert net.mesh.n_triangles > 2000
    ratio = decimated.mesh.n_triangles / net.mesh.n_triangles
    assert 0.4 <= ratio <= 0.6, ratio  # about half the triangles were taken away
    # Every decimated vertex lies on the net to well within a pooled voxel's smallest side
    # (1.2 mm), and the net's vertices on the decimated surface: nothing moved, nothing was lost.
    smallest_voxel = 1.2
    out = _distance_to_surface(decimated.mesh.vertices_lps, net.mesh.vertices_lps, net.mesh.faces)
    back = _distance_to_surface(net.mesh.vertices_lps, decimated.mesh.vertices_lps, decimated.mesh.faces)
    assert float(out.max()) <= smallest_voxel / 2, float(out.max())
    assert float(back.max()) <= smallest_voxel / 2, float(back.max())
    # Still closed, wound outwards, the same volume, inside the voxels' extent in LPS.
    assert surfaces.closed_surface(decimated.mesh.faces)
    v_net = surfaces.signed_volume(net.mesh.vertices_lps, net.mesh.faces)
    v_dec = surfaces.signed_volume(decimated.mesh.vertices_lps, decimated.mesh.faces)
    assert v_net > 0 and abs(v_dec - v_net) <= 0.01 * v_net
    # A decimated vertex may fit its planes best a hair beyond a tip of the net: held inside.
    b, b_net = np.array(decimated.bounds_lps()), np.array(net.bounds_lps())
    assert np.all(b[0::2] >= b_net[0::2] - 1e-9) and np.all(b[1::2] <= b_net[1::2] + 1e-9)
    lo, hi = _voxel_extent_lps(labels, 20, geometry)
    assert np.all(b[0::2] >= lo - 1e-6) and np.all(b[1::2] <= hi + 1e-6)
    assert np.all(b[0::2] <= lo + 3.3) and np.all(b[1::2] >= hi - 3.3)


@pytest.mark.parametrize("slice_direction", [(-1, 0, 0), (1, 0, 0)], ids=["right-handed", "mirrored"])
def test_surfaces_are_wound_outwards_in_lps(slice_direction: tuple[int, int, int]) -> None:
    geometry = VolumeGeometry.from_directions((20, 30, 25), (12.0, -40.0, 85.0), (0, 1, 0), (0, 0, -1),
                                              (0.8, 0.9, 2.5), slice_direction_lps=slice_direction)
    assert (np.linalg.det(geometry.ijk_to_lps[:3, :3]) < 0) == (slice_direction == (1, 0, 0))
    labels = np.zeros((20, 30, 25), dtype=np.uint8)
    labels[4:12, 8:24, 5:20] = 41
    lm = _label_map(labels, geometry, f"wound{slice_direction[0]}")
    for reduction in (0.0, surfaces.DEFAULT_REDUCTION):
        surface = surfaces.build_label_surface(lm, 41, reduction=reduction)
        assert surface is not None
        v, f = surface.mesh.vertices_lps, surface.mesh.faces
        voxels_mm3 = 8 * 16 * 15 * float(np.prod(geometry.spacing_mm))
        assert 0.7 * voxels_mm3 < surfaces.signed_volume(v, f) <= voxels_mm3
        # A box is convex: each triangle's right-hand normal points away from the centre.
        normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        away = v[f].mean(axis=1) - v.mean(axis=0)
        assert np.all(np.einsum("ij,ij->i", normals, away) > 0)


def test_closed_surface_sees_holes_pinches_and_degenerate_triangles() -> None:
    tetra = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]], dtype=np.int64)
    assert surfaces.closed_surface(tetra)
    assert not surfaces.closed_surface(tetra[:3])  # a hole
    assert not surfaces.closed_surface(np.concatenate([tetra, tetra[:, ::-1]]))  # every edge x4
    pinched = np.concatenate([tetra, np.array([[0, 1, 4], [1, 0, 5], [0, 4, 5], [1, 5, 4]])])  # edge 0-1 x4
    assert not surfaces.closed_surface(pinched)
    assert not surfaces.closed_surface(np.array([[0, 0, 1], [0, 1, 0]], dtype=np.int64))
    assert not surfaces.closed_surface(np.zeros((0, 3), dtype=np.int64))


def test_labels_built_side_by_side_are_the_ones_built_one_by_one(oblique_grid, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    labels, geometry = oblique_grid
    labels = labels.copy()
    labels[14:18, 20:28, 2:8] = 7
    built = {}
    for threads in (1, 3):
        surfaces.clear_cache()
        monkeypatch.setattr(surfaces, "BUILD_THREADS", threads)
        lm = _label_map(labels, geometry, f"threads{threads}")
        built[threads] = surfaces.build_label_surfaces(lm, [41, 3, 7, 99])
    assert [s.value for s in built[1]] == [s.value for s in built[3]] == [3, 7, 41]
    for one, many in zip(built[1], built[3], strict=True):
        np.testing.assert_array_equal(one.mesh.vertices_lps, many.mesh.vertices_lps)
        np.testing.assert_array_equal(one.mesh.faces, many.mesh.faces)
    # A label over the triangle budget fails the call, whichever thread built it.
    surfaces.clear_cache()
    monkeypatch.setenv("LUMBARVIEW_MAX_STL_TRIANGLES", "300")
    with pytest.raises(ResourceLimitError):
        surfaces.build_label_surfaces(_label_map(labels, geometry, "threads-budget"), [3, 7, 41])


def test_surfaces_follow_an_edit_of_the_label_map(oblique_grid: tuple[np.ndarray, VolumeGeometry]) -> None:
    labels, geometry = oblique_grid
    lm = _label_map(labels, geometry, "edited")
    before = surfaces.build_label_surface(lm, 41, smoothing=0)
    assert before is not None
    grown = np.zeros_like(labels, dtype=bool)
    grown[4:9, 10:22, 17:24] = True  # the box made longer along i
    lm.stack.write_voxels(np.flatnonzero(grown), 41)
    after = surfaces.build_label_surface(lm, 41, smoothing=0)
    assert after is not None and after is not before
    _, hi = _voxel_extent_lps(lm.stack.pixels(), 41, geometry)
    _, hi_before = _voxel_extent_lps(labels, 41, geometry)
    assert not np.allclose(hi, hi_before)
    lo_mesh, hi_mesh = after.mesh.vertices_lps.min(axis=0), after.mesh.vertices_lps.max(axis=0)
    lo_old, hi_old = before.mesh.vertices_lps.min(axis=0), before.mesh.vertices_lps.max(axis=0)
    assert not (np.allclose(lo_mesh, lo_old) and np.allclose(hi_mesh, hi_old))
