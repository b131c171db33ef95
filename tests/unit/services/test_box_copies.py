"""AISSLab ships every VOC file twice (beside the slice and in Foramina_Detection): one box, one
row, one count; copies that disagree are both kept, marked, and reported."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.dataset import Box, BoxSet
from lumbarview.phantom.layouts import TRUTH_FILE, Sizes, write_aisslab
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.annotations import case_annotations, case_summary
from lumbarview.services.box_copies import merge_box_copies
from lumbarview.services.measure_case import case_grades
from lumbarview.services.open_dataset import open_path


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_aisslab(tmp_path_factory.mktemp("aisslab") / "a", LumbarPhantom(), Sizes.small())


@pytest.fixture
def aisslab(written: Path, tmp_path: Path) -> Path:
    root = tmp_path / "a"
    shutil.copytree(written, root)
    return root


def _truth(root: Path) -> list[dict]:
    return json.loads((root / TRUTH_FILE).read_text())["aisslab_boxes"]


def test_each_box_is_one_row_and_counted_once(aisslab: Path) -> None:
    truth = _truth(aisslab)
    # The layout really holds every box twice (what the opener has to merge).
    beside = list((aisslab / "DICOM").rglob("*.xml"))
    detection = list((aisslab / "Foramina_Detection" / "Annotations").glob("*.xml"))
    written_objects = sum(len(re.findall("<object>", p.read_text())) for p in beside + detection)
    assert written_objects == 2 * len(truth) == 12
    case = open_path(aisslab, use_cache=False).cases[0]
    rows = [r for r in case_annotations(case) if r.kind == "box"]
    assert sorted((r.level, r.side, r.severity) for r in rows) == sorted(
        (t["level"], t["side"], t["severity"]) for t in truth)
    assert all("also in Annotations/1_" in r.text and r.marked is None for r in rows)
    expected = Counter(f"{t['side']} grade {t['severity']}" for t in truth)
    assert case_summary(case)["boxes_by_side_and_grade"] == dict(expected)
    assert len(case_grades(case)) == len(truth)  # the grades reported beside the measurements
    assert not [i for i in case.issues if i.code == "boxes.copies-disagree"]


def _edit_copy(root: Path, level: str, side: str, grade: int, shift_px: int) -> Path:
    """Change one box in its Foramina_Detection copy: its grade and its left edge."""
    code = "LFS" if side == "left" else "RFS"
    for path in sorted((root / "Foramina_Detection" / "Annotations").glob("*.xml")):
        text = path.read_text()
        pattern = re.compile(rf"<object><name>{code}[^<]*</name><level>{level}</level>.*?</object>")
        found = pattern.search(text)
        if found is None:
            continue
        obj = found.group(0)
        xmin = int(re.search(r"<xmin>(\d+)</xmin>", obj).group(1))  # type: ignore[union-attr]
        changed = re.sub(r"<name>[^<]*</name>", f"<name>{code}</name>", obj, count=1)
        changed = re.sub(r"<severity>\d+</severity>|<comment>[^<]*</comment>", "", changed)
        changed = changed.replace("<bndbox>", f"<severity>{grade}</severity><bndbox>")
        changed = changed.replace(f"<xmin>{xmin}</xmin>", f"<xmin>{xmin + shift_px}</xmin>")
        path.write_text(text.replace(obj, changed))
        return path
    raise AssertionError(f"no {side} {level} box written")


def test_copies_that_disagree_are_both_kept_and_marked(aisslab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _truth(aisslab)
    edited = _edit_copy(aisslab, "L4-L5", "left", grade=3, shift_px=-2)
    dataset = open_path(aisslab, use_cache=False)
    case = dataset.cases[0]
    (box_set,) = case.box_sets
    assert len(box_set.boxes) == len(truth) + 1
    at = [n for n, b in enumerate(box_set.boxes) if (b.level, b.side) == ("L4-L5", "left")]
    assert len(at) == 2 and at[1] == at[0] + 1  # listed one after the other
    pair = [box_set.boxes[n] for n in at]
    assert sorted(b.severity for b in pair) == [2, 3]  # the file beside the slice says 2
    assert all(b.disagreement and "grade" in b.disagreement and "box" in b.disagreement for b in pair)
    assert {Path(b.source).name for b in pair} == {edited.name, edited.name.split("_", 1)[1]}
    assert pair[0].xmin - 2 == pair[1].xmin
    (issue,) = [i for i in dataset.all_issues() if i.code == "boxes.copies-disagree"]
    assert "L4-L5" in issue.message and "left" in issue.message and issue.path == str(edited)
    rows = [r for r in case_annotations(case) if r.kind == "box" and r.level == "L4-L5" and r.side == "left"]
    assert len(rows) == 2 and all(r.marked and "⚠" in r.text for r in rows)
    # lumbarview info says so too.
    from lumbarview.cli import main

    assert main(["info", str(aisslab), "--no-cache"]) == 0
    assert "boxes foraminal boxes: 7 (7 placed on a slice; 2 marked: copies disagree)" in capsys.readouterr().out
    # The other boxes still agree and are one row each.
    others = [b for b in box_set.boxes if (b.level, b.side) != ("L4-L5", "left")]
    assert len(others) == len(truth) - 1 and all(b.copies and not b.disagreement for b in others)


def test_one_copy_alone_and_a_box_in_one_copy_only(aisslab: Path) -> None:
    truth = _truth(aisslab)
    shutil.rmtree(aisslab / "Foramina_Detection")
    case = open_path(aisslab, use_cache=False).cases[0]
    (box_set,) = case.box_sets
    assert len(box_set.boxes) == len(truth) and not any(b.copies for b in box_set.boxes)


def test_a_box_missing_from_one_copy_is_kept_once(aisslab: Path) -> None:
    truth = _truth(aisslab)
    beside = sorted((aisslab / "DICOM").rglob("*.xml"))[0]
    text = beside.read_text()
    first = re.search(r"<object>.*?</object>", text)
    assert first is not None
    beside.write_text(text.replace(first.group(0), ""))
    case = open_path(aisslab, use_cache=False).cases[0]
    (box_set,) = case.box_sets
    assert len(box_set.boxes) == len(truth)
    assert sum(1 for b in box_set.boxes if not b.copies) == 1


def _box(x: float, severity: int = 1, source: str = "a/IM1.xml", side: str = "left") -> Box:
    return Box("LFS", side, "L4-L5", severity, x, 10.0, x + 8, 20.0, "s", 3, np.zeros((4, 3)), source,
               slice_name="IM1")


def test_merge_tolerance_is_half_a_pixel() -> None:
    a = BoxSet("beside", "A", [_box(10.0), _box(30.0, side="right")])
    b = BoxSet("copy", "B", [_box(10.4, source="b/1_IM1.xml"), _box(30.6, source="b/1_IM1.xml", side="right")])
    merged, issues = merge_box_copies([a, b], "boxes")
    assert merged is not None
    left = [x for x in merged.boxes if x.side == "left"]
    right = [x for x in merged.boxes if x.side == "right"]
    assert len(left) == 1 and left[0].copies == ("b/1_IM1.xml",)  # 0.4 px: the same box
    assert len(right) == 2 and all(x.disagreement for x in right)  # 0.6 px: two boxes
    assert [i.code for i in issues] == ["boxes.copies-disagree"]
    assert merge_box_copies([], "boxes") == (None, [])
