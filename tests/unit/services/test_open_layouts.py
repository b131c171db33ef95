"""Every layout written by the phantom opens back with open_path, and every element lands where
the phantom put it in LPS (a box corner, a marker, a mesh vertex, a mask centroid...)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.dataset import Dataset
from lumbarview.core.labels import Role
from lumbarview.phantom.layouts import TRUTH_FILE, Sizes, write_all
from lumbarview.phantom.spine import LumbarPhantom, PhantomParams
from lumbarview.services.open_dataset import open_path


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layouts")
    return write_all(root, PhantomParams(tilt_deg=8.0), Sizes.small())


@pytest.fixture(scope="module")
def phantom() -> LumbarPhantom:
    return LumbarPhantom(PhantomParams(tilt_deg=8.0))


def _truth(root: Path) -> dict:
    return json.loads((root / TRUTH_FILE).read_text())


def _open(root: Path) -> Dataset:
    return open_path(root, use_cache=False)


def test_sudirman_axial_blocks_are_parallel_to_their_discs(layouts: dict[str, Path]) -> None:
    ds = _open(layouts["sudirman"])
    assert ds.layout == "sudirman" and [c.id for c in ds.cases] == ["0001"]
    case = ds.cases[0]
    series = {s.description: s for s in case.series}
    assert set(series) == {"LOCALIZER", "T2_TSE_SAG_384", "T1_TSE_SAG_320", "T2_TSE_TRA_384", "T1_TSE_TRA"}
    assert len({s.frame_of_reference_uid for s in case.series}) == 5  # one FoR per series
    truth = _truth(layouts["sudirman"])["levels"]
    blocks = series["T2_TSE_TRA_384"].stacks
    assert len(blocks) == 3
    for level in ("L3-L4", "L4-L5", "L5-S1"):
        disc_centre = np.asarray(truth[level]["disc_centre_lps"])
        normal = np.asarray(truth[level]["disc_normal_lps"])
        block = min(blocks, key=lambda b: np.linalg.norm(b.geometry.centre_lps() - disc_centre))
        assert abs(block.geometry.slice_normal @ normal) == pytest.approx(1.0, abs=1e-6)
        # The block's middle lies on the disc plane.
        assert abs((block.geometry.centre_lps() - disc_centre) @ normal) < 0.01
        assert block.geometry.slice_spacing_mm == pytest.approx(4.4, abs=1e-3)
        assert block.meta["slice_gap_mm"] == pytest.approx(0.4, abs=1e-3)


def test_unidata_dicomdir_export_opens_with_its_report(layouts: dict[str, Path]) -> None:
    ds = _open(layouts["unidata"])
    assert ds.layout == "dicomdir"
    assert [s.description for s in ds.cases[0].series] == ["T2 SAG", "T1 SAG", "T2 AX"]
    assert any(a.endswith(".pdf") for a in ds.attachments)
    assert [t.name for t in ds.tables] == ["lumbar_spine_mri.csv"]


def test_spider_mask_lands_on_the_anatomy(layouts: dict[str, Path], phantom: LumbarPhantom) -> None:
    ds = _open(layouts["spider"])
    assert ds.layout == "spider" and [c.id for c in ds.cases] == ["1"]
    case = ds.cases[0]
    assert {s.description for s in case.series} == {"t1", "t2"}
    mask = next(m for m in case.label_maps if m.name == "1_t2")
    image = case.stack(mask.bound_to or "")
    assert image is not None and mask.resampled_from is None
    assert mask.scheme.entry(202).level == "L4-L5" and mask.scheme.entry(100).role is Role.CANAL
    # The image direction is not the identity: rows run head to feet.
    assert np.allclose(image.geometry.column_direction_lps, (0, 0, -1))
    labels = mask.stack.pixels()
    g = mask.stack.geometry
    for value in (201, 202, 203):  # compact structures: the sampling box holds them whole
        kji = np.argwhere(labels == value)
        assert len(kji) > 0, value
        centroid = g.index_to_lps(kji[:, ::-1].astype(float)).mean(axis=0)
        # Same centroid from the phantom itself, sampled finely in LPS (independent of the
        # .mha geometry path): a flipped or transposed axis would be tens of mm off.
        lo, hi = centroid - 30, centroid + 30
        axes = [np.arange(lo[i], hi[i], 0.5) for i in range(3)]
        axes[0] = np.arange(g.index_to_lps((0, 0, 0))[0], g.index_to_lps((0, 0, g.shape_kji[0] - 1))[0],
                            np.sign(g.slice_normal[0]) * 0.5) if g.slice_normal[0] else axes[0]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        from lumbarview.phantom.spine import to_spider_labels

        fine = to_spider_labels(phantom.labels_at(grid))
        expected = grid[fine == value].mean(axis=0)
        assert np.linalg.norm(centroid - expected) < 2.0, (value, centroid, expected)
    # The canal centre on each disc plane falls in a canal voxel of the opened mask.
    truth = _truth(layouts["spider"])["levels"]
    for level in truth:
        idx = np.rint(g.lps_to_index(np.asarray(truth[level]["canal_centre_lps"]))).astype(int)
        k = int(np.clip(idx[2], 0, g.shape_kji[0] - 1))
        assert labels[k, idx[1], idx[0]] == 100, level


def test_spider_gradings_join_to_levels(layouts: dict[str, Path]) -> None:
    ds = _open(layouts["spider"])
    table = next(t for t in ds.cases[0].tables if t.kind == "spider-gradings")
    levels = {r["level"] for r in table.rows}
    assert levels == {"L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"}
    row = next(r for r in table.rows if r["level"] == "L4-L5")
    assert row["disc_label"] == 202 and row["Disc herniation"] == 1  # canal AP 7.5 mm there


def test_aisslab_boxes_sit_on_the_foramina(layouts: dict[str, Path], phantom: LumbarPhantom) -> None:
    ds = _open(layouts["aisslab"])
    assert ds.layout == "aisslab" and [c.id for c in ds.cases] == ["1"]
    case = ds.cases[0]
    (series,) = case.series
    assert series.stacks[0].n_slices == 11  # padding slices left out
    truth = _truth(layouts["aisslab"])
    (beside,) = case.box_sets  # the two copies of each VOC file are one set: one box each
    assert len(beside.boxes) == len(truth["aisslab_boxes"]) == 6
    found = {(b.level, b.side): b for b in beside.boxes}
    for expected in truth["aisslab_boxes"]:
        box = found[(expected["level"], expected["side"])]
        assert box.severity == expected["severity"]  # both encodings (name and field)
        assert box.corners_lps is not None and box.slice_index == expected["k"]
        f = truth["levels"][expected["level"]]["foramen"][expected["side"]]
        plane = series.stacks[0].geometry.slice_plane(box.slice_index)
        # The foramen's centre (projected on the box's slice) is inside the box, and the box
        # is the foramen's size to within a pixel on each edge.
        c = plane.lps_to_pixel(np.asarray(f["centre_lps"])) + 0.5
        assert box.xmin <= c[0] <= box.xmax and box.ymin <= c[1] <= box.ymax
        # The foramen rectangle's corners, built here from the truth (centre, disc normal,
        # width, height) and projected on the slice, give the box to within a pixel.
        normal = np.asarray(truth["levels"][expected["level"]]["disc_normal_lps"])
        ap = np.cross(normal, (1.0, 0.0, 0.0))
        centre = np.asarray(f["centre_lps"])
        corners = [centre + sa * f["width_mm"] / 2 * ap + su * f["height_mm"] / 2 * normal
                   for sa in (-1, 1) for su in (-1, 1)]
        px = plane.lps_to_pixel(np.array(corners)) + 0.5
        assert box.xmin == pytest.approx(px[:, 0].min(), abs=1.0)
        assert box.xmax == pytest.approx(px[:, 0].max(), abs=1.0)
        assert box.ymin == pytest.approx(px[:, 1].min(), abs=1.0)
        assert box.ymax == pytest.approx(px[:, 1].max(), abs=1.0)
        assert np.allclose(plane.signed_distance_mm(box.corners_lps), 0.0, atol=1e-6)
    for box in beside.boxes:  # each box names its other copy, in Foramina_Detection
        assert box.disagreement is None and len(box.copies) == 1
        assert Path(box.copies[0]).parent.name == "Annotations" and Path(box.source).parent.name == "Sagittal"


def test_aisslab_png_mask_is_bound_to_its_slice(layouts: dict[str, Path]) -> None:
    ds = _open(layouts["aisslab"])
    case = ds.cases[0]
    (mask,) = case.label_maps
    image = case.stack(mask.bound_to or "")
    assert image is not None
    truth = _truth(layouts["aisslab"])
    k = mask.stack.meta["slice_index"]
    assert Path(image.meta["files"][k]).name == truth["aisslab_mask_slice"]
    assert np.allclose(mask.stack.geometry.index_to_lps((0, 0, 0)), image.geometry.index_to_lps((0, 0, k)))
    classes = mask.stack.pixels()[0]
    canal = np.asarray(truth["levels"]["L3-L4"]["canal_centre_lps"])
    plane = image.geometry.slice_plane(k)
    col, row = np.rint(plane.lps_to_pixel(canal)).astype(int)
    assert classes[row, col] == 4  # "posterior A": the canal region
    assert set(np.unique(classes)) <= {0, 1, 2, 3, 4, 5}


def test_bids_markers_meshes_and_sidecars(layouts: dict[str, Path]) -> None:
    ds = _open(layouts["bids"])
    assert ds.layout == "bids" and [c.id for c in ds.cases] == ["sub-01"]
    case = ds.cases[0]
    truth = _truth(layouts["bids"])
    assert {s.description for s in case.series} == {"T2TSE", "CISS"}
    t2 = next(s for s in case.series if s.description == "T2TSE").stacks[0]
    assert np.allclose(t2.geometry.row_direction_lps, (0, 1, 0))
    assert np.allclose(t2.geometry.column_direction_lps, (0, 0, -1))
    assert case.sidecars[t2.uid]["ProtocolName"] == "IV_t2_tse_sag_384_L2-S"
    assert any(i.code == "bids.composed" for i in case.issues)
    by_name = {p.name: p for p in case.point_sets}
    checked_ras = checked_lps = False
    for name, info in truth["markers"].items():
        stem = name.removesuffix(".json")
        ps = by_name[stem]
        if "points_lps" in info:
            assert np.allclose(ps.points_lps, info["points_lps"], atol=1e-3)
        else:
            assert np.allclose(ps.points_lps[0], info["first_point_lps"], atol=1e-3)
        checked_ras |= info["system"] == "RAS"
        checked_lps |= info["system"] == "LPS"
    assert checked_ras and checked_lps
    meshes = {m.name: m for m in case.meshes}
    assert np.allclose(meshes["sub-01_Dura"].vertices_lps[0], truth["meshes"]["Dura"]["first_vertex_lps"], atol=1e-3)
    # The cord was written in RAS, as ASCII STL: it comes back in LPS.
    assert np.allclose(meshes["sub-01_Cord"].vertices_lps[0], truth["meshes"]["Cord"]["first_vertex_lps"], atol=1e-3)
    assert {t.kind for t in case.tables} == {"mriqc"}
