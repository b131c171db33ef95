"""What loads, exports (issue 29, class 9): a flag the loader accepts can always be saved and
exported; a value that cannot round-trip (a ``created`` of 1e25, a lone surrogate in a note) is
refused on loading with an issue, the rest kept and nothing lost (the file is kept aside)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lumbarview.model.flags import FlagStore

GOOD = {"annotation_id": "1|box|voc|a", "case": "1", "note": "narrow", "created": 1_700_000_000.0}


@pytest.mark.parametrize("bad", [
    {"created": 1e25}, {"created": -5.0}, {"created": 10**20}, {"note": "\ud800 lone"},
    {"annotation_id": "x\udfffy"}, {"case": "\udc80"},
])
def test_a_value_that_cannot_round_trip_is_refused_with_an_issue(tmp_path: Path, bad: dict) -> None:
    path = tmp_path / "flags.json"
    text = json.dumps({"version": 1, "flags": [GOOD, {**GOOD, "annotation_id": "2|box|voc|b", **bad}]})
    path.write_text(text, encoding="utf-8")  # json.dumps escapes surrogates: the file itself is UTF-8
    store = FlagStore(path)
    assert [f.annotation_id for f in store.flags()] == [GOOD["annotation_id"]]
    assert store.issue is not None and "1 of its 2 entries are not valid flags" in store.issue.message
    assert store.backup_path is not None and store.backup_path.read_text(encoding="utf-8") == text  # nothing lost
    out = tmp_path / "export.csv"
    assert store.export_csv(out) == 1  # and what loaded exports
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[1][:3] == ["1", GOOD["annotation_id"], "narrow"] and rows[1][3].startswith("2023-")


def test_the_last_valid_time_and_text_export(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"version": 1, "flags": [{**GOOD, "created": 253_402_300_799, "note": "ü 脊 \u2028"}]}))
    store = FlagStore(path)
    assert store.issue is None and len(store.flags()) == 1
    store.export_csv(tmp_path / "e.csv")
    assert "9999-12-31T23:59:59Z" in (tmp_path / "e.csv").read_text(encoding="utf-8")
