"""2D-mask measurements: the AISSLab mid-sagittal mask of the phantom against the phantom's
truth (disc heights, DHI, slip, levels counted up from the sacrum), through ``measure`` and
through measure_case; what cannot be measured says why."""

from __future__ import annotations

import dataclasses
import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from lumbarview.cli import main
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import LabelEntry, LabelScheme, Role, aisslab_scheme
from lumbarview.measure.sagittal2d import measure_sagittal_mask
from lumbarview.phantom.layouts import TRUTH_FILE, Sizes, write_aisslab
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.measure_case import measure_case
from lumbarview.services.open_dataset import open_path

LEVELS = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2")


@pytest.fixture(scope="module")
def aisslab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aisslab")
    # 1 mm pixels on the mask's slice (the real dataset has 0.94 mm); other sizes small.
    write_aisslab(root, LumbarPhantom(), dataclasses.replace(Sizes.small(), sag_matrix=280, sag_pixel_mm=1.0))
    return root


def _by(rows: list[dict[str, object]]) -> dict[tuple[object, object, object], dict[str, object]]:
    return {(r["level"], r["quantity"], r["unit"]): r for r in rows}


def test_measure_on_aisslab_matches_the_phantom_truth(aisslab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(aisslab), "--json", "--jobs", "1", "--no-cache"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    truth = json.loads((aisslab / TRUTH_FILE).read_text())["levels"]
    found = _by(rows)
    for level in LEVELS:
        t = truth[level]
        for q in ("disc_height_anterior", "disc_height_middle", "disc_height_posterior"):
            row = found[(level, q, "mm")]
            assert row["value"] == pytest.approx(t[f"{q}_mm"], abs=1.0), (level, q)  # one pixel
            assert row["confidence"] == "medium" and "one mid-sagittal slice" in str(row["confidence_reason"])
        assert found[(level, "dhi", "ratio")]["value"] == pytest.approx(t["dhi"], abs=0.04), level
        assert found[(level, "slip", "mm")]["value"] == pytest.approx(t["slip_mm"], abs=1.0), level
        canal = found[(level, "canal_ap", "mm")]
        assert canal["value"] is None and "no canal class" in str(canal["reason"])
    # Levels counted from the sacrum: the heights follow the truth's order, not a shifted one.
    qs = ("disc_height_anterior", "disc_height_posterior")
    measured = np.array([found[(lv, q, "mm")]["value"] for lv in LEVELS[:4] for q in qs])
    expected = np.array([truth[lv][f"{q}_mm"] for lv in LEVELS[:4] for q in qs])
    shifted = np.array([truth[lv][f"{q}_mm"] for lv in LEVELS[1:] for q in qs])  # one level off
    assert np.abs(measured - expected).mean() < 0.5 * np.abs(measured - shifted).mean()


def test_measure_case_gives_the_same_rows(aisslab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(aisslab), "--json", "--jobs", "1", "--no-cache"]) == 0
    cli = sorted(json.dumps(json.loads(line), sort_keys=True) for line in capsys.readouterr().out.splitlines())
    dataset = open_path(str(aisslab), use_cache=False)
    rows = measure_case(dataset.cases[0])
    assert sorted(json.dumps(r, sort_keys=True) for r in rows) == cli
    # six discs above the sacrum (T12-L1 .. L5-S1): 3 heights, DHI, slip (mm, %), canal AP each
    assert len(rows) == 6 * 7


def _sagittal_geometry(pixel_mm: float = 1.0, size: int = 120) -> VolumeGeometry:
    # Columns run anterior -> posterior, rows superior -> inferior (a sagittal slice).
    return VolumeGeometry.from_directions((1, size, size), (0.0, -60.0, 60.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0),
                                          (pixel_mm, pixel_mm, 4.0))


def _stack_of_rectangles(canal: bool) -> np.ndarray:
    """Bodies (1) 20 mm tall, discs (2) 8 mm tall and 30 mm deep, a sacrum (3), and a canal
    (6) 12 mm deep behind the discs when asked."""
    labels = np.zeros((120, 120), dtype=np.int32)
    top = 4
    for _n in range(3):
        labels[top:top + 20, 30:60] = 1
        labels[top + 20:top + 28, 30:60] = 2
        top += 28
    labels[top:top + 30, 30:60] = 3
    if canal:
        labels[:, 64:76] = 6
    return labels


def test_rectangles_give_their_sizes_and_the_canal_where_a_class_exists() -> None:
    entries = dict(aisslab_scheme().entries)
    entries[6] = LabelEntry(6, "canal", Role.CANAL, (0, 0, 255))
    scheme = LabelScheme("with canal", entries)
    values = measure_sagittal_mask(_stack_of_rectangles(True), _sagittal_geometry(), scheme)
    found = {(v.level, v.quantity): v.value for v in values}
    for level in ("L5-S1", "L4-L5", "L3-L4"):
        assert found[(level, "disc_height_middle")] == pytest.approx(8.0, abs=0.3)
        assert found[(level, "canal_ap")] == pytest.approx(12.0, abs=0.3)
        assert found[(level, "slip")] == pytest.approx(0.0, abs=0.3)
    assert found[("L4-L5", "dhi")] == pytest.approx(8.0 / 20.0, abs=0.02)


def test_without_a_sacrum_the_discs_are_numbered_not_named() -> None:
    labels = _stack_of_rectangles(False)
    labels[labels == 3] = 0
    values = measure_sagittal_mask(labels, _sagittal_geometry(), aisslab_scheme())
    levels = {v.level for v in values}
    assert levels == {"disc 1 from the bottom", "disc 2 from the bottom", "disc 3 from the bottom"}
    assert all("no sacrum" in v.confidence_reason for v in values if v.quantity == "disc_height_middle")


def test_a_slip_is_measured_and_flagged() -> None:
    labels = _stack_of_rectangles(False)
    upper = labels[4:24].copy()  # the top body moves 6 mm forward (anterior: lower column)
    labels[4:24] = 0
    labels[4:24, 24:54] = upper[:, 30:60]
    values = {(v.level, v.quantity): v for v in measure_sagittal_mask(labels, _sagittal_geometry(), aisslab_scheme())}
    slip = values[("L3-L4", "slip")]
    assert slip.value == pytest.approx(6.0, abs=0.3) and slip.flag and "Meyerding grade I" in slip.flag
    assert values[("L4-L5", "slip")].value == pytest.approx(0.0, abs=0.3)


def test_an_axial_mask_or_one_without_discs_says_why() -> None:
    axial = VolumeGeometry.from_directions((1, 50, 50), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0),
                                           (1.0, 1.0, 4.0))
    (value,) = measure_sagittal_mask(np.zeros((50, 50), dtype=np.int32), axial, aisslab_scheme())
    assert np.isnan(value.value) and "not on a sagittal slice" in str(value.reason)
    (value,) = measure_sagittal_mask(np.ones((120, 120), dtype=np.int32), _sagittal_geometry(), aisslab_scheme())
    assert "no disc class" in str(value.reason)


def _ring_lps(root: Path, name: str) -> np.ndarray:
    """A dura markup's points in LPS, read with the json module (RAS files flip x and y)."""
    (path,) = (root / "derivatives" / "markers").rglob(name)
    markup = json.loads(path.read_text())["markups"][0]
    points = np.array([p["position"] for p in markup["controlPoints"]], dtype=float)
    return points * (np.array([-1.0, -1.0, 1.0]) if markup["coordinateSystem"] == "RAS" else 1.0)


@pytest.fixture(scope="module")
def bids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lumbarview.phantom.layouts import write_all

    return write_all(tmp_path_factory.mktemp("bids"), sizes=Sizes.small(), layouts=("bids",))["bids"]


def test_bids_dura_curves_give_area_diameters_and_level(bids: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(bids), "--json", "--jobs", "1", "--no-cache"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    truth = json.loads((bids / TRUTH_FILE).read_text())["markers"]
    dura_files = sorted(name for name in truth if "dura" in name)
    assert sorted({r["series"] for r in rows if r["quantity"] == "canal_area"}) == dura_files
    # Root exits from the truth (the point of each root nearest the midline), mean over sides.
    exits: dict[str, list[float]] = {}
    for name, marker in truth.items():
        if "nerveroots" in name:
            points = np.asarray(marker["points_lps"])
            exits.setdefault(name.split("_")[2], []).append(points[np.argmin(np.abs(points[:, 0]))][2])
    ordered = sorted(((lv, float(np.mean(z))) for lv, z in exits.items()), key=lambda e: -e[1])
    for name in dura_files:
        z = truth[name]["first_point_lps"][2]  # the ring's first point is level with its centre
        expected = next(f"{a}-{b}" for (a, za), (b, zb) in pairwise(ordered) if zb <= z <= za)
        mine = {r["quantity"]: r for r in rows if r["series"] == name}
        assert {r["level"] for r in mine.values()} == {expected}
        # The ring's own polygon, read here from the file: area by the shoelace formula in
        # its plane, extents across (x) and front to back (in the plane, across x).
        ring = _ring_lps(bids, name)
        centre = ring.mean(axis=0)
        normal = np.cross(ring[1] - centre, ring[2] - centre)
        normal /= np.linalg.norm(normal)
        ap_axis = np.cross(normal, (1.0, 0.0, 0.0))
        ap_axis /= np.linalg.norm(ap_axis)
        xy = np.stack([(ring - centre) @ np.array([1.0, 0.0, 0.0]), (ring - centre) @ ap_axis], axis=1)
        area = 0.5 * abs(float(np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1])))
        assert mine["canal_area"]["value"] == pytest.approx(area, abs=0.1)
        assert mine["canal_transverse"]["value"] == pytest.approx(float(np.ptp(xy[:, 0])), abs=0.05)
        assert mine["canal_ap"]["value"] == pytest.approx(float(np.ptp(xy[:, 1])), abs=0.05)
        assert "nerve-root exits" in mine["canal_area"]["confidence_reason"]
    dataset = open_path(str(bids), use_cache=False)
    in_memory = sorted(json.dumps(r, sort_keys=True) for r in measure_case(dataset.cases[0]))
    assert in_memory == sorted(json.dumps(r, sort_keys=True) for r in rows)
