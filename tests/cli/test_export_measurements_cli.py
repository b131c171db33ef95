"""``lumbarview export-measurements PATH [--case ID] --session FILE --out OUT [--engine]``: a saved
session's measurements through the same service as the menu; bad input is one clear line and
exit code 2; nothing is ever written into the dataset (a snapshot of the whole tree)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lumbarview.io.session_file import SessionFile, write_session
from lumbarview.model.measurements import Measurement
from lumbarview.services.open_dataset import open_path
from lumbarview.services.session_store import to_record
from tests.tree_snapshot import tree_snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from lumbarview.phantom.layouts import Sizes, write_all
    from lumbarview.phantom.spine import PhantomParams

    return write_all(tmp_path_factory.mktemp("demo"), PhantomParams(), Sizes.small(), layouts=("spider", "sudirman"))


def _session(dataset: Path, tmp_path: Path) -> tuple[Path, dict[str, float], str]:
    """A session with a distance (3-4-5 mm on a sagittal plane) and a 6 x 9 mm rectangle."""
    case = open_path(str(dataset)).cases[0]
    series = case.series[0]
    plane = series.stacks[0].geometry.slice_plane(series.stacks[0].n_slices // 2)
    o, r, d = plane.origin_lps, plane.row_direction_lps, plane.column_direction_lps
    centre = o + 40.0 * r + 40.0 * d
    distance = Measurement.create("distance", [centre, centre + 3.0 * r + 4.0 * d], plane, series=series.uid,
                                  case=case.id, level="L4-L5", side="left", note="ruler")
    rect = Measurement.create("rectangle", [centre, centre + 6 * r, centre + 6 * r + 9 * d, centre + 9 * d], plane,
                              series=series.uid, case=case.id)
    doc = SessionFile(dataset_path=str(dataset), case=case.id, measurements=[to_record(distance), to_record(rect)])
    path = tmp_path / "session.json"
    write_session(path, doc)
    return path, {"distance": 5.0, "rectangle": 54.0}, series.description or series.uid


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lumbarview", "export-measurements", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)


def test_a_session_exports_as_csv_json_sr_and_html(demo: dict[str, Path], tmp_path: Path) -> None:
    dataset = demo["sudirman"]
    before = tree_snapshot(dataset)
    session, truth, series = _session(dataset, tmp_path)
    for suffix in (".csv", ".json", ".dcm", ".html"):
        done = _run(str(dataset), "--session", str(session), "--out", str(tmp_path / f"out{suffix}"))
        assert done.returncode == 0, done.stderr
        assert "2 rows (2 manual)" in done.stdout
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["quantity"] for r in rows] == list(truth)
    assert [float(r["value"]) for r in rows] == pytest.approx(list(truth.values()))
    assert rows[0]["level"] == "L4-L5" and rows[0]["side"] == "left" and rows[0]["note"] == "ruler"
    assert {r["source"] for r in rows} == {"manual"} and {r["series"] for r in rows} == {series}
    assert int(rows[1]["roi_pixels"]) > 0 and rows[0]["roi_pixels"] == ""
    data = json.loads((tmp_path / "out.json").read_text())
    assert [r["value"] for r in data["rows"]] == pytest.approx(list(truth.values()))
    from lumbarview.services.sr import read_sr

    back = read_sr(tmp_path / "out.dcm")
    assert {r["quantity"]: r["value"] for r in back} == pytest.approx(truth)
    assert all(len(r["referenced_sop_instance_uids"]) == 1 for r in back)
    assert {r["graphic_type"] for r in back} == {"POLYLINE", "POLYGON"}
    page = (tmp_path / "out.html").read_text()
    assert "<td>distance</td>" in page and "<td>rectangle</td>" in page
    assert tree_snapshot(dataset) == before


def test_with_the_engine_its_rows_join(demo: dict[str, Path], tmp_path: Path) -> None:
    dataset = demo["spider"]
    session, truth, _series = _session(dataset, tmp_path)
    done = _run(str(dataset), "--session", str(session), "--out", str(tmp_path / "both.json"), "--engine")
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "both.json").read_text())["rows"]
    sources = [r["source"] for r in rows]
    assert sources[:2] == ["manual", "manual"] and sources.count("engine") > 10
    assert all(r["engine_version"] for r in rows if r["source"] == "engine")
    assert np.isclose(rows[0]["value"], truth["distance"])


@pytest.mark.parametrize(("args", "message"), [
    (["--case", "nobody"], "has no case 'nobody'; give --case with one of"),
    (["--out-inside"], "never writes into a dataset"),
    (["--out-txt"], "choose a .csv, .json, .dcm"),
])
def test_bad_input_is_one_clear_line(demo: dict[str, Path], tmp_path: Path, args: list[str], message: str) -> None:
    dataset = demo["sudirman"]
    before = tree_snapshot(dataset)
    session, _truth, _series = _session(dataset, tmp_path)
    out = tmp_path / "out.csv"
    if args == ["--out-inside"]:
        out, args = dataset / "out.csv", []
    elif args == ["--out-txt"]:
        out, args = tmp_path / "out.txt", []
    done = _run(str(dataset), "--session", str(session), "--out", str(out), *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert tree_snapshot(dataset) == before


def test_a_missing_or_broken_session_file(demo: dict[str, Path], tmp_path: Path) -> None:
    done = _run(str(demo["sudirman"]), "--session", str(tmp_path / "none.json"), "--out", str(tmp_path / "o.csv"))
    assert done.returncode == 2 and "no such file" in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = _run(str(demo["sudirman"]), "--session", str(bad), "--out", str(tmp_path / "o.csv"))
    assert done.returncode == 2 and "malformed" in done.stderr and "Traceback" not in done.stderr
