"""``lumbarview export`` (issue 26): the contract on the command line, a measurement on the exported
copy equal to the original's, the RSNA and SPIDER layouts read back to the same points and labels,
and every refusal an exit 2 with a message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lumbarview.cli import main
from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.rsna import write_rsna
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.open_dataset import open_path

SIZES = Sizes(spider_matrix=150, spider_pixel_mm=1.0, spider_slices=15, spider_spacing_mm=3.3)


@pytest.fixture(scope="module")
def spider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spider")
    write_spider(root, LumbarPhantom(), SIZES, patient=1)
    return root


@pytest.fixture(scope="module")
def rsna_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rsna")
    write_rsna(root, LumbarPhantom(), Sizes.small())
    return root


def _measure(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[tuple[str, str, str, str | None], float]:
    assert main(["measure", str(path), "--json", "--jobs", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return {(r["series"].split("_", 1)[1], r["level"], r["quantity"], r["side"]): r["value"] for r in rows}


def test_measurement_on_the_exported_spider_copy_equals_the_original(
        spider_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["export", str(spider_root), "--out", str(out), "--deidentify", "--layout", "spider",
                 "--key-file", str(tmp_path / "project.key")]) == 0
    capsys.readouterr()
    original, exported = _measure(spider_root, capsys), _measure(out, capsys)
    assert len(original) > 50 and original.keys() == exported.keys()
    differences = [k for k in original if original[k] != exported[k]]
    assert differences == []  # 0 difference, value for value
    before, after = open_path(spider_root), open_path(out)
    assert [c.id for c in after.cases] != [c.id for c in before.cases]  # the case is renamed
    for a, b in zip(before.cases[0].label_maps, after.cases[0].label_maps, strict=True):
        assert np.array_equal(a.stack.pixels(), b.stack.pixels())
        assert np.array_equal(a.stack.geometry.ijk_to_lps, b.stack.geometry.ijk_to_lps)
    grades = [t for t in after.cases[0].tables if t.kind == "spider-gradings"]
    assert grades and len(grades[0].rows) == len(next(t for t in before.cases[0].tables
                                                      if t.kind == "spider-gradings").rows)


def test_rsna_layout_reads_back_to_the_same_points_and_grades(
        rsna_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["export", str(rsna_root), "--out", str(out), "--deidentify", "--layout", "rsna"]) == 0
    before, after = open_path(rsna_root), open_path(out)
    assert len(before.cases) == len(after.cases) >= 1

    def points(dataset):  # type: ignore[no-untyped-def]
        return sorted((label, tuple(np.round(p, 9))) for case in dataset.cases for s in case.point_sets
                      for label, p in zip(s.labels, s.points_lps, strict=True))

    def grades(dataset):  # type: ignore[no-untyped-def]
        return sorted((r["column"], r["grade"], r["instance_number"], r["x"], r["y"]) for case in dataset.cases
                      for t in case.tables if t.kind == "rsna-grades" for r in t.rows)

    assert points(before) and points(after) == points(before)  # the same points in LPS
    assert grades(after) == grades(before)  # instance numbers and pixel x, y: +-0 px
    assert not [i for i in after.all_issues() if i.severity.name == "ERROR"]


def test_refusals_exit_2_with_a_message(spider_root: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine").write_text("x")
    cases = [
        (["export", str(spider_root), "--out", str(tmp_path / "full"), "--deidentify"], "not empty"),
        (["export", str(spider_root), "--out", str(tmp_path / "o1"), "--retain-dates-shifted"], "--deidentify"),
        (["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")], "no such file"),
        (["export", str(spider_root), "--out", str(tmp_path / "o3"), "--case", "nobody"], "no case nobody"),
        (["export", str(spider_root), "--out", str(spider_root / "images" / "x")], "inside the source"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert (tmp_path / "full" / "mine").read_text() == "x"
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()


def test_the_key_never_appears_in_output_or_log(spider_root: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "project.key"
    assert main(["export", str(spider_root), "--out", str(tmp_path / "a"), "--deidentify", "--json",
                 "--key-file", str(key_file)]) == 0
    printed = capsys.readouterr()
    key = key_file.read_text().splitlines()[-1].encode()
    assert main(["export", str(spider_root), "--out", str(tmp_path / "b"), "--deidentify",
                 "--key-file", str(key_file)]) == 0
    printed_again = capsys.readouterr()
    for text in (printed.out, printed.err, printed_again.out, printed_again.err):
        assert key.decode() not in text
    for path in [*(tmp_path / "a").rglob("*"), *(tmp_path / "b").rglob("*")]:
        if path.is_file():
            assert key not in path.read_bytes()
    report = json.loads(printed.out)
    assert report["profile"]["project_key"] is True and report["profile"]["table_version"] == "2024b"
    names_a = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*.mha"))
    names_b = sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*.mha"))
    assert names_a == names_b  # the same pseudonyms under one key
