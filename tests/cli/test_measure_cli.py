"""`lumbarview measure` through main(argv): the row contract, streaming and resuming."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import pytest

from lumbarview.cli import main
from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.measure_all import ROW_KEYS

QUANTITIES = {"canal_ap", "canal_transverse", "canal_area", "canal_area_min", "foramen_height", "foramen_width",
              "foramen_area", "posterior_disc_height", "disc_height_anterior", "disc_height_middle",
              "disc_height_posterior", "dhi", "slip"}


@pytest.fixture(scope="module")
def spider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spider")
    sizes = Sizes(spider_matrix=150, spider_pixel_mm=1.0, spider_slices=15, spider_spacing_mm=3.3)
    write_spider(root, LumbarPhantom(), sizes, patient=1)
    for n in (2, 3):  # the same case under other ids: enough to test parallel runs and resuming
        for folder in ("images", "masks"):
            for seq in ("t1", "t2"):
                shutil.copy(root / folder / f"1_{seq}.mha", root / folder / f"{n}_{seq}.mha")
    (root / "images" / "3_t1.mha").unlink()  # an orphan mask: reported, the rest measured
    return root


def test_json_rows_carry_the_contract(spider_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(spider_root), "--json", "--jobs", "2", "--no-cache"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(set(ROW_KEYS) <= set(r) for r in rows)
    assert {r["case"] for r in rows} == {"1", "2", "3"}
    assert {r["quantity"] for r in rows} == QUANTITIES
    assert {r["level"] for r in rows} == {"L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"}
    assert {r["side"] for r in rows if r["quantity"].startswith("foramen")} == {"left", "right"}
    assert all(r["side"] is None for r in rows if r["quantity"].startswith("canal"))
    l45 = [r for r in rows if r["level"] == "L4-L5" and r["case"] == "1" and r["series"] == "1_t2"]
    area = next(r for r in l45 if r["quantity"] == "canal_area")
    assert area["label"] == 202 and area["unit"] == "mm2" and area["confidence"] == "low"
    assert "3.3 mm" in area["confidence_reason"]
    ap = next(r for r in l45 if r["quantity"] == "canal_ap")
    assert ap["value"] == pytest.approx(7.5, abs=0.6) and "< 10 mm" in ap["flag"]
    assert "SPIDER gradings" in (ap["dataset_grade"] or "")
    assert {r["unit"] for r in rows if r["quantity"] == "slip"} == {"mm", "%"}


def _shoelace(points: list[list[float]], normal: list[float]) -> float:
    """The area of a closed 3D polygon (first point repeated last) in its plane."""
    pts = [tuple(p) for p in points]
    cross = [0.0, 0.0, 0.0]
    for (ax, ay, az), (bx, by, bz) in itertools.pairwise(pts):
        cross[0] += ay * bz - az * by
        cross[1] += az * bx - ax * bz
        cross[2] += ax * by - ay * bx
    return abs(sum(c * n for c, n in zip(cross, normal, strict=True))) / 2


def test_geometry_adds_the_lines_each_value_was_measured_on(spider_root: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(spider_root), "--json", "--geometry", "--jobs", "2", "--no-cache"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all("geometry" in r for r in rows)
    rows = [r for r in rows if r["case"] == "1" and r["series"] == "1_t2"]
    # Not measured: no lines. Measured: polylines of [x, y, z] points.
    assert all(r["geometry"] is None for r in rows if r["value"] is None)
    measured = [r for r in rows if r["value"] is not None]
    assert measured and all(r["geometry"] is not None for r in measured)
    for r in measured:
        lines = r["geometry"]["polylines_lps"]
        assert lines and all(len(p) == 3 and all(isinstance(c, float) for c in p) for line in lines for p in line)
    by = {(r["level"], r["quantity"], r["side"], r["unit"]): r for r in measured}
    for level in ("L3-L4", "L4-L5"):
        area = by[(level, "canal_area", None, "mm2")]
        outline = area["geometry"]["polylines_lps"][0]
        assert outline[0] == outline[-1] and len(outline) > 20  # an area: its closed outline first
        # The outline encloses the value (3-decimal points: within 0.5 %). The plane's normal is
        # that of the outline itself (any three spread points).
        a, b, c = (outline[i * len(outline) // 3] for i in range(3))
        u = [b[k] - a[k] for k in range(3)]
        v = [c[k] - a[k] for k in range(3)]
        n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
        norm = sum(x * x for x in n) ** 0.5
        assert _shoelace(outline, [x / norm for x in n]) == pytest.approx(area["value"], rel=0.005)
        ap = by[(level, "canal_ap", None, "mm")]["geometry"]["polylines_lps"]
        assert len(ap[0]) == 2  # a length: its end points first
        assert ap[1] == area["geometry"]["polylines_lps"][0]  # then the outline and the other chord
        heights = by[(level, "disc_height_middle", None, "mm")]["geometry"]["polylines_lps"]
        assert len(heights) == 3 and all(len(line) == 2 for line in heights)
    # --geometry needs --json.
    assert main(["measure", str(spider_root), "--geometry", "--no-cache"]) == 2
    assert "use it with --json" in capsys.readouterr().err


def test_csv_streams_and_resumes(spider_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.csv"
    # Pretend an earlier run finished case 2's t1 map and was killed.
    first = spider_root / "masks" / "2_t1.mha"
    (tmp_path / "m.csv.done").write_text(f"2\t{first}\n")
    assert main(["measure", str(spider_root), "--csv", str(out), "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "resuming: 1 case(s)" in err
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(ROW_KEYS) <= set(rows[0])
    done = (tmp_path / "m.csv.done").read_text().splitlines()
    assert len(done) == 5  # 1 pretended + 4 measured (case 3 has only t2)
    assert not any(r["case"] == "2" and r["series"] == "2_t1" for r in rows)
    n_rows = len(rows)
    # A rerun finds everything done and appends nothing.
    assert main(["measure", str(spider_root), "--csv", str(out)]) == 0
    with open(out, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == n_rows


def test_nothing_to_measure_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.dicom_helpers import sagittal, write_series

    write_series(tmp_path, sagittal(n=3), "sag")
    assert main(["measure", str(tmp_path)]) == 2
    assert "no 3D label map" in capsys.readouterr().err
