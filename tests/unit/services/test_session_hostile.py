"""Session restore is total and safe (issue 29, classes 1 and 2): every value a session file
gives passes the checks a file's values pass; a bad entry is skipped with an issue while the
rest, measurements first, is restored; a session file that did not restore whole, or was never
taken in, is kept aside before the first save overwrites it (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumbarview.io.session_file import parse_session, read_session
from lumbarview.services.session_store import SessionStore, apply, restored_whole, snapshot
from tests.unit.services.test_session_store import _measure, _show, phantom  # noqa: F401  (a fixture)


def _hostile(doc: dict[str, Any], value: str) -> dict[str, Any]:
    """``doc`` with one hostile value (each a class the campaign found or a neighbour of one)."""
    doc = json.loads(json.dumps(doc))
    sag = next(v for v in doc["views"] if v["name"] == "sagittal")
    if value.startswith("plane") and value[5:].isdigit():
        rows = int(value.removeprefix("plane"))
        sag["custom"] = True
        sag["plane"] = {**sag["plane"], "shape_rc": [rows, rows], "spacing_mm": [0.01, 0.01]}
    elif value == "cursor1e308":
        doc["cursor_lps"] = [1e308, 1e308, 1e308]
    elif value == "cursor_far":
        doc["cursor_lps"] = [5e5, 0.0, 0.0]
    elif value == "plane_far":
        sag["custom"] = True
        sag["plane"] = {**sag["plane"], "origin_lps": [1e300, -1e300, 1e300]}
    elif value == "window1e308":
        sag["window"] = {"center": 1e308, "width": 1e308, "invert": False}
    elif value == "measurement1e308":
        doc["measurements"].append({"id": "far", "kind": "distance", "points_lps": [[1e308, 0, 0], [-1e308, 0, 0]]})
    else:
        raise AssertionError(value)
    return doc


HOSTILE = ["plane65536", "plane10000", "cursor1e308", "cursor_far", "plane_far", "window1e308", "measurement1e308"]


@pytest.mark.parametrize("value", HOSTILE)
def test_each_hostile_value_is_skipped_and_everything_else_restored(phantom: Path, tmp_path: Path,  # noqa: F811
                                                                   value: str) -> None:
    saved = _show(phantom)
    made = _measure(saved)
    doc = snapshot(saved).to_json()
    hostile = parse_session(_hostile(doc, value), tmp_path / "s.json")
    session = _show(phantom)
    issues = apply(session, hostile, "s.json")
    assert [m.id for m in session.measurements] == [m.id for m in made]  # every measurement
    skipped = [i for i in issues if i.code == "session.entry-skipped"]
    assert len(skipped) == 1, issues
    assert not restored_whole(issues)
    assert np.all(np.isfinite(session.cursor.crosshair))
    assert float(np.abs(session.cursor.crosshair).max()) < 1000
    for view in session.views.values():
        plane = view.plane
        if plane is not None:
            assert plane.shape_rc[0] * plane.shape_rc[1] <= 4096 * 4096
            assert np.all(np.isfinite(plane.origin_lps))
    for window in session.windows.values():
        assert abs(window.center) < 1e9 and window.width < 1e9
    # What is saved next is valid JSON (no NaN or infinity made by arithmetic).
    text = json.dumps(snapshot(session).to_json(), allow_nan=False)
    assert "1e+308" not in text


def test_a_plane_over_the_budget_names_the_variable(phantom: Path, tmp_path: Path,  # noqa: F811
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """10000 x 10000 pixels pass the pixel budget; their reformat's 2.4 GB do not pass a 1 GB
    volume budget (a machine with 4 GB, or a 4 GB address-space cap)."""
    monkeypatch.setenv("LUMBARVIEW_MAX_VOLUME_MB", "1000")
    saved = _show(phantom)
    _measure(saved)
    hostile = parse_session(_hostile(snapshot(saved).to_json(), "plane10000"), tmp_path / "s.json")
    issues = apply(_show(phantom), hostile, "s.json")
    message = next(i.message for i in issues if i.code == "session.entry-skipped")
    assert "LUMBARVIEW_MAX_VOLUME_MB" in message and "1000 MB" in message, message


def test_a_sound_session_restores_whole_and_its_plane_comes_back(phantom: Path, tmp_path: Path) -> None:  # noqa: F811
    saved = _show(phantom)
    _measure(saved)
    sag = saved.views["sagittal"]
    sag.set_custom_plane(sag.plane)
    session = _show(phantom)
    issues = apply(session, parse_session(snapshot(saved).to_json(), "s.json"), "s.json")
    assert restored_whole(issues), issues
    assert session.views["sagittal"].custom_plane is not None


def test_a_session_not_taken_in_is_kept_aside_before_the_first_save(phantom: Path, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "autosave.json"
    first = _show(phantom)
    made = _measure(first)
    SessionStore(path).save(first)
    before = path.read_bytes()
    # A new window: the session is offered and declined (or never offered), then an edit.
    store = SessionStore(path)
    store.open()
    fresh = _show(phantom)
    store.save(fresh)
    assert len(store.kept_aside) == 1
    kept = store.kept_aside[0]
    assert kept.read_bytes() == before and ".previous-" in kept.name
    assert [m.id for m in read_session(kept).measurements] == [m.id for m in made]
    assert read_session(path).measurements == []
    store.save(fresh)  # later saves overwrite only what this session wrote
    assert len(store.kept_aside) == 1


def test_a_session_restored_whole_is_overwritten_without_a_copy(phantom: Path, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "autosave.json"
    first = _show(phantom)
    _measure(first)
    SessionStore(path).save(first)
    store = SessionStore(path)
    opened = store.open()
    session = _show(phantom)
    assert opened.doc is not None
    if restored_whole(apply(session, opened.doc, str(path))):
        store.adopt()
    store.save(session)
    assert store.kept_aside == [] and sorted(p.name for p in tmp_path.iterdir()) == ["autosave.json"]
