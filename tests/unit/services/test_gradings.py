"""Dataset grades into the grading document, the session file and back out (SPIDER CSV)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lumbarview.core.errors import LumbarviewError
from lumbarview.model.gradings import GRADINGS, Grade, slots
from lumbarview.model.session import Session
from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.rsna import write_rsna
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services import session_store
from lumbarview.services.gradings import (
    dataset_grades,
    prefill,
    spider_csv_grades,
    write_spider_gradings,
)
from lumbarview.services.open_dataset import open_path

# The SPIDER CSV's columns and what lumbar level its IVD label names, written out here (not taken
# from the module under test): IVD 1 is L5-S1, counting upward.
IVD_LEVEL = {"1": "L5-S1", "2": "L4-L5", "3": "L3-L4", "4": "L2-L3", "5": "L1-L2"}
COLUMN_KEY = {"Modic": "modic", "UP endplate": "endplate_upper", "LOW endplate": "endplate_lower",
              "Spondylolisthesis": "spondylolisthesis", "Disc herniation": "disc_herniation",
              "Disc narrowing": "disc_narrowing", "Disc bulging": "disc_bulging", "Pfirrman grade": "pfirrmann"}


@pytest.fixture(scope="module")
def spider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spider")
    write_spider(root, LumbarPhantom(), Sizes.small(), patient=1)
    return root


def test_spider_grades_prefill_the_document_marked_dataset(spider_root: Path) -> None:
    dataset = open_path(spider_root, use_cache=False)
    case = dataset.cases[0]
    case.ensure_open()
    with open(spider_root / "radiological_gradings.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    expected = {(IVD_LEVEL[r["IVD label"]], COLUMN_KEY[c], r[c]) for r in rows for c in COLUMN_KEY}
    session = Session()
    session.set_dataset(dataset)
    skipped = prefill(session, case)
    assert skipped == []
    assert {(g.level, g.grading, g.value) for g in session.gradings} == expected
    assert all(g.source == "dataset" and "SPIDER" in g.note and g.case == case.id for g in session.gradings)
    assert len(session.undo) == 0  # prefilling is not an edit


def test_the_reader_keeps_his_grade_when_the_dataset_prefills(spider_root: Path) -> None:
    dataset = open_path(spider_root, use_cache=False)
    case = dataset.cases[0]
    case.ensure_open()
    session = Session()
    session.set_dataset(dataset)
    session.gradings.set(case.id, "pfirrmann", "L4-L5", "5")
    prefill(session, case)
    mine = session.gradings.get(case.id, "L4-L5", "pfirrmann")
    assert mine is not None and (mine.value, mine.source) == ("5", "reader")


def test_rsna_grades_prefill_per_side(tmp_path: Path) -> None:
    root = write_rsna(tmp_path / "rsna", LumbarPhantom(), Sizes.small())
    with open(root / "train.csv", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    dataset = open_path(root, use_cache=False)
    case = dataset.cases[0]
    case.ensure_open()
    grades, skipped = dataset_grades(case)
    assert skipped == []
    got = {(g.grading, g.level, g.side): g.value for g in grades}
    assert got[("rsna_canal", "L4-L5", None)] == row["spinal_canal_stenosis_l4_l5"]
    assert got[("rsna_foraminal", "L5-S1", "left")] == row["left_neural_foraminal_narrowing_l5_s1"]
    assert got[("rsna_subarticular", "L3-L4", "right")] == row["right_subarticular_stenosis_l3_l4"]
    assert len(got) == sum(1 for v in row.values() if v in ("Normal/Mild", "Moderate", "Severe"))


def test_every_grade_survives_the_session_file(tmp_path: Path) -> None:
    session = Session()
    values = {}
    for n, (level, key, side) in enumerate(slots()):
        names = next(g for g in GRADINGS if g.key == key).value_names
        values[(level, key, side)] = names[n % len(names)]
        session.gradings.set("c1", key, level, names[n % len(names)], side)
    store = session_store.SessionStore(tmp_path / "s.json")
    store.save(session)
    again = Session()
    opened = store.open()
    assert opened.doc is not None
    assert session_store.apply(again, opened.doc) == []
    assert {g.slot[1:]: g.value for g in again.gradings} == values
    assert all(g.case == "c1" and g.source == "reader" for g in again.gradings)


def test_a_bad_stored_grade_is_skipped_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"format": "lumbarview-session", "version": 1, "gradings": ['
                    '{"grading": "schizas", "level": "L4-L5", "value": "Z"},'
                    '{"grading": "pfirrmann", "level": "L4-L5", "value": "2"},'
                    '{"grading": "pfirrmann", "level": 3, "value": "2"}]}', encoding="utf-8")
    opened = session_store.open_session_file(path)
    assert opened.doc is not None
    session = Session()
    issues = [*opened.issues, *session_store.apply(session, opened.doc)]
    assert [g.slot for g in session.gradings] == [(None, "L4-L5", "pfirrmann", None)]
    text = " ".join(i.message for i in issues)
    assert "'Z' is not a Schizas" in text and "$.gradings[2].level" in text


def test_the_real_spider_csv_read_and_written_back_is_identical(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "spider-gradings" / "radiological_gradings.csv"
    grades, skipped = spider_csv_grades(source)
    with open(source, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lumbar = [r for r in rows if r["IVD label"] in IVD_LEVEL]
    assert len(grades) == len(lumbar) * len(COLUMN_KEY)
    assert len(skipped) == len(rows) - len(lumbar)
    out = tmp_path / "back.csv"
    assert write_spider_gradings(source, grades, out) == []
    assert out.read_bytes() == source.read_bytes()


def test_a_changed_grade_is_written_into_its_cell_only(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "spider-gradings" / "radiological_gradings.csv"
    grades, _ = spider_csv_grades(source)
    target = next(g for g in grades if g.grading == "pfirrmann" and g.level == "L4-L5")
    new_value = "5" if target.value != "5" else "1"
    changed = [Grade(g.grading, g.level, new_value, None, "reader", "", g.case) if g is target else g for g in grades]
    out = tmp_path / "changed.csv"
    write_spider_gradings(source, changed, out)
    before = source.read_text(encoding="utf-8").splitlines()
    after = out.read_text(encoding="utf-8").splitlines()
    diff = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(diff) == 1
    old_cells, new_cells = diff[0][0].split(","), diff[0][1].split(",")
    assert old_cells[0] == target.case and old_cells[1] == "2"
    assert new_cells[:-1] == old_cells[:-1] and new_cells[-1] == new_value


def test_the_source_csv_is_never_written_over(shared_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "g.csv"
    copy.write_bytes((shared_data / "spider-gradings" / "radiological_gradings.csv").read_bytes())
    with pytest.raises(LumbarviewError, match="never writes over"):
        write_spider_gradings(copy, [], copy)


def test_the_report_text_is_undone_as_one_run_and_survives_the_session_file(tmp_path: Path) -> None:
    session = Session()
    for text in ("N", "No", "No slip"):
        session.report_fields.set("c1", "impression", text)
    session.report_fields.set("c1", "level L4-L5", "broad bulge")
    assert len(session.undo) == 2
    store = session_store.SessionStore(tmp_path / "s.json")
    store.save(session)
    again = Session()
    opened = store.open()
    assert opened.doc is not None and session_store.apply(again, opened.doc) == []
    assert again.report_fields.get("c1", "impression") == "No slip"
    assert again.report_fields.get("c1", "level L4-L5") == "broad bulge"
    session.undo.undo()
    session.undo.undo()
    assert session.report_fields.items() == []
    with pytest.raises(ValueError, match="unknown report field"):
        session.report_fields.set("c1", "diagnosis", "x")


def test_every_grade_is_exported_to_csv_and_read_back(tmp_path: Path) -> None:
    from lumbarview.services.gradings import read_grades_csv, write_grades_csv

    grades = []
    for n, (level, key, side) in enumerate(slots()):
        names = next(g for g in GRADINGS if g.key == key).value_names
        grades.append(Grade.create(key, level, names[n % len(names)], side, ("reader", "dataset")[n % 2],
                                   "a note, with a comma" if n == 3 else "", "case 7"))
    path = write_grades_csv(tmp_path / "grades.csv", grades)
    back, skipped = read_grades_csv(path)
    assert skipped == [] and back == grades
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(grades) and rows[0]["case"] == "case 7"
    rows[1]["value"] = "Z"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    back, skipped = read_grades_csv(path)
    assert len(back) == len(grades) - 1 and len(skipped) == 1 and "line 3" in skipped[0] and "'Z'" in skipped[0]
