"""`lumbarview info` through main(argv): the JSON contract, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lumbarview.cli import main
from tests.dicom_helpers import axial_block, sagittal, write_series


@pytest.fixture
def study(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    write_series(root / "sag", sagittal(n=6), "T2 SAG", number=2)
    for n, (z, tilt) in enumerate([(-40, 15), (0, 0)]):
        write_series(root / "ax", axial_block(z, tilt), "T2 AX", number=4, first_instance=1 + 4 * n)
    (root / "readme.pdf").write_bytes(b"%PDF-1.4")
    return root


def test_json_has_the_contract_keys(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(study), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"path", "patients", "issues"}
    (patient,) = doc["patients"]
    assert set(patient) >= {"id", "studies"}
    (st,) = patient["studies"]
    assert "uid" in st
    series = {s["description"]: s for s in st["series"]}
    for s in series.values():
        assert set(s) >= {"uid", "description", "modality", "orientation", "rows", "cols",
                          "n_slices", "stacks"}
        for stack in s["stacks"]:
            assert set(stack) >= {"n_slices", "spacing_mm", "normal_lps", "patient_position"}
            assert len(stack["spacing_mm"]) == 3 and len(stack["normal_lps"]) == 3
    sag = series["T2 SAG"]
    assert sag["orientation"] == "sagittal" and sag["n_slices"] == 6
    assert sag["stacks"][0]["spacing_mm"] == [0.8, 0.9, 4.0]  # [col, row, slice]
    ax = series["T2 AX"]
    assert len(ax["stacks"]) == 2 and ax["n_slices"] == 8 and ax["orientation"] == "axial"
    for issue in doc["issues"]:
        assert set(issue) == {"severity", "code", "message", "path"}
    assert any(i["code"] == "dicom.not-dicom" for i in doc["issues"])


def test_text_output_lists_stacks_and_issues(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(study)]) == 0
    out = capsys.readouterr().out
    assert "series #2 T2 SAG" in out and "stack 2: axial" in out
    assert "dicom.angled-blocks" in out


def test_nothing_to_open_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.txt").write_text("hi")
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumbarview: ") and len(err.strip().splitlines()) == 1
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_console_script_never_prints_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f" + b"garbage" * 10)
    done = subprocess.run([sys.executable, "-m", "lumbarview", "info", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert str(bad) in done.stderr
    assert "damaged" in done.stderr or "not an image" in done.stderr


def test_demo_writes_six_layouts_that_info_describes(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--small", "--out", str(tmp_path / "demo")]) == 0
    roots = capsys.readouterr().out.split()
    assert [Path(r).name for r in roots] == ["sudirman", "unidata", "spider", "aisslab", "bids", "rsna"]
    layouts = {}
    for root in roots:
        assert main(["info", root, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        layouts[Path(root).name] = doc
    assert {k: v["layout"] for k, v in layouts.items()} == {
        "sudirman": "sudirman", "unidata": "dicomdir", "spider": "spider", "aisslab": "aisslab",
        "bids": "bids", "rsna": "rsna"}
    series = layouts["sudirman"]["patients"][0]["studies"][0]["series"]
    assert [s["description"] for s in series] == ["LOCALIZER", "T2_TSE_SAG_384", "T1_TSE_SAG_320",
                                                  "T2_TSE_TRA_384", "T1_TSE_TRA"]
    assert [len(s["stacks"]) for s in series] == [3, 1, 1, 3, 3]
    assert len(list((tmp_path / "demo" / "sudirman").rglob("*.ima"))) == 3 + 2 * 11 + 2 * 12
    # A second call reuses the finished demo instead of writing it again.
    stamp = (tmp_path / "demo" / ".lumbarview-demo-complete").stat().st_mtime_ns
    assert main(["demo", "--small", "--out", str(tmp_path / "demo")]) == 0
    assert (tmp_path / "demo" / ".lumbarview-demo-complete").stat().st_mtime_ns == stamp
