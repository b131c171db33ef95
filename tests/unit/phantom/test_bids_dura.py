"""The BIDS demo's dura curves tell the phantom's story: each is the outline of the phantom's
thecal sac on its CISS slice (checked against the phantom's own labels, point by point), so the
curve on the L4-L5 disc plane is as narrow as the canal there (7.5 x 18 mm), not a 12 mm circle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lumbarview.phantom.layouts import TRUTH_FILE, Sizes, write_all
from lumbarview.phantom.spine import LABEL_CANAL, LABEL_CORD, LABEL_ROOT, LumbarPhantom, PhantomParams
from lumbarview.services.open_dataset import open_path


@pytest.fixture(scope="module")
def bids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_all(tmp_path_factory.mktemp("bids"), PhantomParams(), Sizes.small(), layouts=("bids",))["bids"]


def _dura_sets(root: Path) -> dict[str, np.ndarray]:
    case = open_path(root, use_cache=False).cases[0]
    return {Path(ps.source).name: ps.points_lps for ps in case.point_sets if "dura" in ps.source}


def test_every_dura_point_is_on_the_edge_of_the_phantoms_sac(bids: Path) -> None:
    phantom = LumbarPhantom(PhantomParams())
    rings = _dura_sets(bids)
    assert len(rings) == 4
    inside_sac = (LABEL_CANAL, LABEL_CORD, LABEL_ROOT)
    for name, ring in rings.items():
        centre = ring.mean(axis=0)
        inner = centre + 0.95 * (ring - centre)
        outer = centre + 1.05 * (ring - centre)
        assert np.isin(phantom.labels_at(inner), inside_sac).all(), name
        assert (phantom.labels_at(outer) != LABEL_CANAL).all(), name
        assert (phantom.labels_at(centre[None]) == LABEL_CANAL).all(), name


def test_the_ring_at_the_disc_is_the_canal_the_truth_gives(bids: Path) -> None:
    truth = json.loads((bids / TRUTH_FILE).read_text())
    level = truth["levels"]["L4-L5"]
    rings = _dura_sets(bids)
    offsets = {name: truth["markers"][name]["offset_from_disc_mm"] for name in rings}
    nearest = min(offsets, key=lambda n: abs(offsets[n]))
    assert abs(offsets[nearest]) < 1.0
    ring = rings[nearest]
    normal = np.asarray(level["disc_normal_lps"])
    ap_axis = np.cross(normal, (1.0, 0.0, 0.0))
    across = float(np.ptp(ring[:, 0]))
    front_to_back = float(np.ptp(ring @ ap_axis))
    assert across == pytest.approx(level["canal_transverse_mm"], abs=0.2)  # 18 mm
    assert front_to_back == pytest.approx(level["canal_ap_mm"], abs=0.2)  # 7.5 mm
    # Away from the disc the sac widens back toward its normal size: the demo's rings differ.
    farthest = max(offsets, key=lambda n: abs(offsets[n]))
    assert float(np.ptp(rings[farthest] @ ap_axis)) > front_to_back + 3.0


def test_the_dura_model_is_the_sacs_surface(bids: Path) -> None:
    """Each vertex of the Dura STL (as opened) nudged 0.3 mm inward along the surface normal is
    inside the phantom's sac, nudged outward it is not; the model narrows at L4-L5 as the canal."""
    phantom = LumbarPhantom(PhantomParams())
    case = open_path(bids, use_cache=False).cases[0]
    mesh = next(m for m in case.meshes if m.name.endswith("Dura"))
    v, f = mesh.vertices_lps, mesh.faces
    normals = np.zeros_like(v)
    face_normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    for corner in range(3):
        np.add.at(normals, f[:, corner], face_normals)
    side = np.linalg.norm(normals, axis=1) > 0
    normals[side] /= np.linalg.norm(normals[side], axis=1, keepdims=True)
    # The wall: vertices whose normal is across the canal (not the two caps' centres and rims).
    wall = side & (np.abs(normals @ np.array([0.0, 0.0, 1.0])) < 0.5)
    assert wall.sum() > 0.7 * len(v)
    inside_sac = (LABEL_CANAL, LABEL_CORD, LABEL_ROOT)
    for sign in (1.0, -1.0):  # the winding decides which way the normals point
        inner = phantom.labels_at(v[wall] - sign * 0.3 * normals[wall])
        outer = phantom.labels_at(v[wall] + sign * 0.3 * normals[wall])
        if np.isin(inner, inside_sac).mean() > 0.5:
            break
    assert np.isin(inner, inside_sac).all()
    assert (outer != LABEL_CANAL).all()
    truth = json.loads((bids / TRUTH_FILE).read_text())["levels"]["L4-L5"]
    near_disc = np.abs((v - np.asarray(truth["disc_centre_lps"])) @ np.asarray(truth["disc_normal_lps"])) < 0.5
    near_disc &= np.linalg.norm(v - np.asarray(truth["canal_centre_lps"]), axis=1) < 15.0
    assert float(np.ptp(v[near_disc][:, 0])) == pytest.approx(truth["canal_transverse_mm"], abs=0.2)
