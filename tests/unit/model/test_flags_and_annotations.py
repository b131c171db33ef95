"""Suspect flags: atomic sidecar in the workspace, reload, export; the annotation table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lumbarview.model.flags import FlagStore, default_flag_file


def test_flags_survive_a_restart_and_export(tmp_path: Path) -> None:
    path = default_flag_file("/data/aisslab", workspace=tmp_path)
    assert tmp_path in path.parents and "aisslab" in path.name
    store = FlagStore(path, "/data/aisslab")
    store.flag("1|box|a.xml|0", "1", "box on the wrong level?")
    store.flag("2|disc|m|L4-L5", "2", "")
    again = FlagStore(path)
    assert {f.annotation_id for f in again.flags()} == {"1|box|a.xml|0", "2|disc|m|L4-L5"}
    assert again.get("1|box|a.xml|0").note == "box on the wrong level?"
    again.unflag("2|disc|m|L4-L5")
    assert [f.case for f in FlagStore(path).flags()] == ["1"]
    n = again.export_csv(tmp_path / "flags.csv")
    with open(tmp_path / "flags.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert n == 1 and rows[0]["note"] == "box on the wrong level?" and rows[0]["case"] == "1"


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "flags.json"
    store = FlagStore(path)
    store.flag("a", "1", "first")
    before = path.read_bytes()

    def crash(*_: object) -> None:
        raise OSError("disk died between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.flag("b", "1", "second")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["flags.json"]  # no temporary file left behind


def test_a_killed_writer_never_leaves_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    code = ("import sys; from lumbarview.model.flags import FlagStore\n"
            "s = FlagStore(sys.argv[1])\n"
            "i = 0\n"
            "while True:\n"
            "    s.flag(f'id{i}', '1', 'x' * 20000); i += 1\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)])
    try:
        deadline = time.time() + 20
        while not path.exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    doc = json.loads(path.read_text())  # complete JSON: the old or the new file, never a part
    assert doc["flags"] and FlagStore(path).load_error is None


def test_annotation_table_filters_and_summary(tmp_path: Path) -> None:
    from lumbarview.phantom.layouts import Sizes, write_aisslab
    from lumbarview.phantom.spine import LumbarPhantom
    from lumbarview.services.annotations import case_annotations, case_summary, filter_annotations
    from lumbarview.services.open_dataset import open_path

    root = write_aisslab(tmp_path / "a", LumbarPhantom(), Sizes.small())
    case = open_path(root, use_cache=False).cases[0]
    rows = case_annotations(case)
    boxes = [r for r in rows if r.kind == "box"]
    # 6 boxes, each written beside its slice and again in Foramina_Detection: one row each.
    assert len(boxes) == 6
    left_l45 = filter_annotations(rows, level="L4-L5", side="left")
    assert len(left_l45) == 1 and left_l45[0].severity == 2
    assert all(r.position_lps is not None for r in boxes)
    summary = case_summary(case)
    assert summary["boxes_by_side_and_grade"]["left grade 2"] == 1
    assert summary["boxes_by_side_and_grade"]["right grade 1"] == 1
