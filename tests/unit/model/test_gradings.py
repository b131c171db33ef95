"""The reader's gradings: checked, undoable in the one history, and cut-off disagreements pointed out."""

from __future__ import annotations

import pytest

from lumbarview.model.commands import UndoStack
from lumbarview.model.gradings import (
    GRADINGS,
    LEVELS,
    Grade,
    GradingDocument,
    Measured,
    disagreements,
    meyerding_of,
    slots,
)


def test_every_grading_has_values_a_definition_and_a_source() -> None:
    for g in GRADINGS:
        assert g.values and g.definition and g.source
        assert all(meaning for _, meaning in g.values)
    keys = {g.key for g in GRADINGS}
    assert {"schizas", "lee_central", "lee_foraminal", "pfirrmann", "modic", "meyerding", "disc_contour"} <= keys
    schizas = next(g for g in GRADINGS if g.key == "schizas")
    assert schizas.value_names == ("A1", "A2", "A3", "A4", "B", "C", "D")


def test_every_slot_is_set_undone_and_redone_in_one_history() -> None:
    undo = UndoStack()
    doc = GradingDocument(undo)
    all_slots = list(slots())
    assert len({s[0] for s in all_slots}) == len(LEVELS)
    for level, key, side in all_slots:
        value = next(g for g in GRADINGS if g.key == key).value_names[-1]
        doc.set("7", key, level, value, side)
    assert len(doc) == len(all_slots) == len(undo)
    assert doc.get("7", "L4-L5", "lee_foraminal", "left") == Grade("lee_foraminal", "L4-L5", "3", "left", case="7")
    while undo.undo():
        pass
    assert len(doc) == 0
    undo.redo()
    assert [g.slot for g in doc] == [("7", *all_slots[0])]


def test_a_change_and_a_clear_undo_to_the_value_before() -> None:
    undo = UndoStack()
    doc = GradingDocument(undo)
    doc.reset([Grade.create("pfirrmann", "L5-S1", "3", source="dataset", note="SPIDER", case="1")])
    doc.set("1", "pfirrmann", "L5-S1", "4")
    grade = doc.get("1", "L5-S1", "pfirrmann")
    assert grade is not None and (grade.value, grade.source) == ("4", "reader")
    doc.set("1", "pfirrmann", "L5-S1", None)
    assert doc.get("1", "L5-S1", "pfirrmann") is None
    undo.undo()
    undo.undo()
    back = doc.get("1", "L5-S1", "pfirrmann")
    assert back is not None and (back.value, back.source, back.note) == ("3", "dataset", "SPIDER")


@pytest.mark.parametrize(("args", "words"), [
    (("schizas", "L4-L5", "E"), "not a Schizas"),
    (("schizas", "L6-S1", "A1"), "unknown level"),
    (("lee_foraminal", "L4-L5", "2"), "per side"),
    (("pfirrmann", "L4-L5", "2", "left"), "has no side"),
    (("nothing", "L4-L5", "2"), "unknown grading"),
])
def test_a_wrong_grade_says_what_is_wrong(args: tuple[str, ...], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Grade.create(*args)


def test_meyerding_bands() -> None:
    assert [meyerding_of(p) for p in (3, 25, 25.5, 50, 60, 75, 99, 100, 130, -30)] == \
        ["I", "I", "II", "II", "III", "III", "IV", "IV", "V", "II"]


def test_a_schizas_a_over_a_small_dural_sac_is_pointed_out_and_left_as_it_is() -> None:
    undo = UndoStack()
    doc = GradingDocument(undo)
    doc.set(None, "schizas", "L4-L5", "A2")
    doc.set(None, "schizas", "L3-L4", "A2")
    doc.set(None, "schizas", "L2-L3", "C")
    measured = [Measured("L4-L5", "canal_area", 61.0, "mm2"), Measured("L3-L4", "canal_area", 120.0, "mm2"),
                Measured("L2-L3", "canal_area", 50.0, "mm2")]
    found = disagreements(doc, measured)
    assert [(d.grade.level, d.measured.value) for d in found] == [("L4-L5", 61.0)]
    assert "75 mm²" in found[0].why and "61 mm²" in found[0].why
    still = doc.get(None, "L4-L5", "schizas")
    assert still is not None and still.value == "A2"


def test_a_meyerding_grade_against_the_measured_slip() -> None:
    grades = [Grade.create("meyerding", "L4-L5", "I"), Grade.create("meyerding", "L5-S1", "0"),
              Grade.create("meyerding", "L3-L4", "0")]
    measured = [Measured("L4-L5", "slip", 38.0, "%"), Measured("L5-S1", "slip", 30.0, "%"),
                Measured("L3-L4", "slip", 10.0, "%"), Measured("L4-L5", "slip", 4.0, "mm")]
    found = disagreements(grades, measured)
    assert sorted((d.grade.level, d.measured.value) for d in found) == [("L4-L5", 38.0), ("L5-S1", 30.0)]
    assert any("Meyerding II" in d.why for d in found)
