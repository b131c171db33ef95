"""A mesh file holding every nerve root (Liu et al. ``sub-XX_Nerveroots.stl``) becomes one mesh
per root, named after the marker set it lies along, in the same place: the phantom's roots land
on their own truth, and the parts together are the file's triangles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.dataset import Mesh, PointSet
from lumbarview.io.mesh import read_stl
from lumbarview.model.object_names import readable_name
from lumbarview.phantom.layouts import TRUTH_FILE, Sizes, tube_mesh, write_all
from lumbarview.phantom.spine import PhantomParams
from lumbarview.services.mesh_parts import connected_parts, split_by_markers
from lumbarview.services.open_dataset import open_path


@pytest.fixture(scope="module")
def bids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_all(tmp_path_factory.mktemp("roots"), PhantomParams(), Sizes.small(), layouts=("bids",))["bids"]


def _triangles(mesh: Mesh) -> set[tuple[float, ...]]:
    return {tuple(np.round(mesh.vertices_lps[f].ravel(), 5)) for f in mesh.faces}


def test_each_root_of_the_file_is_its_own_mesh_on_its_truth(bids: Path) -> None:
    case = open_path(bids, use_cache=False).cases[0]
    truth = json.loads((bids / TRUTH_FILE).read_text())["markers"]
    roots = {readable_name(m.name): m for m in case.meshes if "nerveroots_" in m.name}
    assert set(roots) == {f"L{n} {side} root" for n in range(1, 6) for side in ("left", "right")}
    for mesh in roots.values():
        line = np.asarray(truth[f"{mesh.name}.json"]["points_lps"])
        # every vertex of the root lies on the tube around its own marker line (radius < 4 mm)
        a, b = line[:-1], line[1:]
        ab = b - a
        t = np.clip(((mesh.vertices_lps[:, None] - a) * ab).sum(axis=2) / (ab * ab).sum(axis=1), 0, 1)
        d = np.sqrt(((mesh.vertices_lps[:, None] - (a + t[:, :, None] * ab)) ** 2).sum(axis=2)).min(axis=1)
        assert d.max() < 4.0, mesh.name
    whole, _ = read_stl(bids / "derivatives" / "model" / "sub-01" / "sub-01_Nerveroots.stl")
    pieces = [m for m in case.meshes if "nerveroots" in m.name.lower()]
    assert sum(m.n_triangles for m in pieces) == whole.n_triangles
    assert set().union(*(_triangles(m) for m in pieces)) == _triangles(whole)  # the same triangles
    rest = [m for m in pieces if m.name == "sub-01_Nerveroots"]
    assert len(rest) == 1  # the sacral roots, with no marker set: kept under the file's name


def test_one_part_or_no_marker_nearby_keeps_the_mesh() -> None:
    v, f = tube_mesh(np.array([[0.0, 0, 0], [0, 0, 40]]), 2.0, 8)
    tube = Mesh("sub-01_Nerveroots", v, f.astype(np.int64), "x.stl")
    assert len(connected_parts(tube)) == 1
    near = PointSet("sub-01_nerveroots_L4_L", "points", np.array([[0.0, 0, 0], [0, 0, 40]]), [], "", "LPS")
    assert split_by_markers(tube, [near]) == [tube]
    v2, f2 = tube_mesh(np.array([[50.0, 0, 0], [50, 0, 40]]), 2.0, 8)
    two = Mesh("roots", np.vstack([v, v2]), np.vstack([f, f2 + len(v)]).astype(np.int64), "x.stl")
    assert len(connected_parts(two)) == 2
    far = PointSet("sub-01_nerveroots_L4_L", "points", np.array([[200.0, 0, 0]]), [], "", "LPS")
    assert split_by_markers(two, [far]) == [two]
    split = split_by_markers(two, [near])
    assert [m.name for m in split] == ["sub-01_nerveroots_L4_L", "roots"]
    assert np.allclose(split[0].vertices_lps[:, 0], 0.0, atol=2.01) and np.all(split[1].vertices_lps[:, 0] > 40)


def test_components_match_scipy_on_random_triangle_soups() -> None:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from lumbarview.services.mesh_parts import _components

    rng = np.random.default_rng(7)
    for n, f in ((50, 10), (400, 150), (2000, 1500)):
        faces = rng.integers(0, n, size=(f, 3)).astype(np.int64)
        ours = _components(faces, n)
        rows = np.concatenate([faces[:, 0], faces[:, 1]])
        cols = np.concatenate([faces[:, 1], faces[:, 2]])
        _count, theirs = connected_components(coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)),
                                              directed=False)
        # the same partition: a one-to-one map between the two labellings
        pairs = set(zip(ours.tolist(), theirs.tolist(), strict=True))
        assert len(pairs) == len(set(ours.tolist())) == len(set(theirs.tolist()))
