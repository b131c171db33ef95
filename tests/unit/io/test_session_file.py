"""The session file: the contract's keys, a round trip, a file missing optional keys, entries
that are not valid (skipped with an issue, the rest opens), files that are not sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lumbarview.core.errors import CorruptFileError, LoadError, UnsupportedFormatError
from lumbarview.core.limits import ResourceLimitError
from lumbarview.io.session_file import (
    FORMAT,
    VERSION,
    LayerRecord,
    MeasurementRecord,
    PlaneRecord,
    SessionFile,
    ViewRecord,
    WindowRecord,
    read_session,
    write_session,
)

HOSTILE = Path(__file__).resolve().parents[2] / "data" / "hostile" / "session"
PLANE = PlaneRecord((1.0, 2.0, 3.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (-1.0, 0.0, 0.0), (0.5, 1.5), (200, 300))


def _doc(dataset: Path) -> SessionFile:
    measurements = [
        MeasurementRecord("d1", "distance", ((0.0, 1.0, 2.0), (3.0, 4.0, 5.0)), PLANE, "1.2.3", "L4-L5", "left",
                          "note ü", "manual", "0001"),
        MeasurementRecord("a1", "angle", ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, 0.0)), PLANE),
        MeasurementRecord("c1", "cobb", tuple((float(i), 0.0, float(i % 2)) for i in range(4)), PLANE, source="engine"),
        MeasurementRecord("e1", "ellipse", ((0.0, 0.0, 0.0), (2.0, 0.0, 0.0), (0.0, 1.0, 0.0)), None),
        MeasurementRecord("p1", "polygon", ((0.0, 0.0, 0.0), (2.0, 0.0, 0.0), (0.0, 1.0, 0.0)), PLANE,
                          source="dataset"),
        MeasurementRecord("f1", "freehand", tuple((float(i), float(i * i), 0.0) for i in range(30)), PLANE),
        MeasurementRecord("x1", "point", ((7.0, 8.0, 9.0),), PLANE, side="midline", label="P1"),
    ]
    return SessionFile(dataset_path=str(dataset), fingerprint="sha1:abc", case="0001", layout="2x2",
                       cursor_lps=(1.0, 2.0, 3.0),
                       views=[ViewRecord("axial", PLANE, True, "1.2.3", WindowRecord(300.0, 800.0, True)),
                              ViewRecord("sagittal", None, False, None, None)],
                       layers=[LayerRecord("labels", False, 0.3, "outline")], measurements=measurements)


def test_round_trip_gives_the_same_document(tmp_path: Path) -> None:
    dataset = tmp_path / "data" / "study"
    dataset.mkdir(parents=True)
    path = tmp_path / "sessions" / "s.json"
    doc = _doc(dataset)
    write_session(path, doc)
    back = read_session(path)
    assert back.issues == []
    assert back.measurements == doc.measurements
    assert back.views == doc.views and back.layers == doc.layers
    assert (back.case, back.layout, back.cursor_lps, back.fingerprint) == ("0001", "2x2", (1.0, 2.0, 3.0), "sha1:abc")
    assert back.dataset_path == str(dataset)
    assert back.dataset_relative_path == "../data/study"  # from the session file's folder


def test_the_contract_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_session(path, _doc(tmp_path))
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["format"] == FORMAT == "lumbarview-session" and raw["version"] == VERSION == 1
    assert set(raw["dataset"]) == {"path", "relative_path", "fingerprint"}
    assert {"case", "layout", "views", "layers", "measurements"} <= set(raw)
    m = raw["measurements"][0]
    assert {"id", "kind", "points_lps", "plane", "series", "level", "side", "note", "source"} <= set(m)
    assert {"origin_lps", "right_lps", "down_lps", "normal_lps"} <= set(m["plane"])
    assert set(raw["views"][0]) >= {"plane", "series", "window"}
    assert set(raw["layers"][0]) >= {"visible", "opacity", "mode"}


def test_a_file_missing_optional_keys_opens() -> None:
    doc = read_session(HOSTILE / "minimal.json")
    assert doc.measurements == [] and doc.views == [] and doc.case is None and doc.issues == []


def test_invalid_entries_are_skipped_and_reported() -> None:
    """io checks the shape only: what the kinds, sources and sides are is not its business (the
    session store turns those records into issues: tests/unit/services/test_session_store.py)."""
    doc = read_session(HOSTILE / "bad_entries.json")
    assert [m.id for m in doc.measurements] == ["ok", "few", "kind", "src", "side"]
    assert doc.measurements[0].points_lps == ((0.0, 0.0, 0.0), (3.0, 4.0, 0.0))
    assert [(m.kind, m.source, m.side) for m in doc.measurements[2:]] == [
        ("volume", "manual", None), ("point", "oracle", None), ("point", "manual", "up")]
    assert [v.name for v in doc.views] == ["sagittal"] and doc.views[0].window == WindowRecord(100.0, 300.0)
    assert (doc.case, doc.layout, doc.dataset_relative_path, doc.dataset_path) == ("0001", "2x2", "../data", None)
    messages = " | ".join(i.message for i in doc.issues)
    assert all(i.code == "session.entry-skipped" for i in doc.issues)
    for expected in ("$.dataset.path is a number", "$.views[0].plane.right_lps is not a unit vector",
                     "$.layers is a string", "$.measurements[1].points_lps[1][0] is not a finite number",
                     "a second measurement with id 'ok'",
                     "$.measurements[7].points_lps[0][0] is not a finite number", "$.measurements[8] is a list"):
        assert expected in messages, expected


@pytest.mark.parametrize(("name", "error", "text"), [
    ("truncated.json", CorruptFileError, "malformed"),
    ("future_version.json", UnsupportedFormatError, "update lumbarview"),
    ("other_format.json", UnsupportedFormatError, "not a lumbarview session file"),
])
def test_files_that_are_not_sessions_raise_a_load_error(name: str, error: type[LoadError], text: str) -> None:
    with pytest.raises(error, match=text):
        read_session(HOSTILE / name)


def test_hostile_sizes_stay_within_the_budgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"format": "lumbarview-session", "version": 1, "note": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_JSON_DEPTH"):
        read_session(deep)
    digits = tmp_path / "digits.json"
    digits.write_text('{"format": "lumbarview-session", "version": 1' + "1" * 10_000 + "}")
    with pytest.raises(CorruptFileError):
        read_session(digits)
    big = tmp_path / "big.json"
    big.write_text('{"format": "lumbarview-session", "version": 1, "x": "' + "a" * 3_000_000 + '"}')
    monkeypatch.setenv("LUMBARVIEW_MAX_TEXT_MB", "1")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_TEXT_MB"):
        read_session(big)


def test_not_utf8_and_not_an_object(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"format": "lumbarview-session", "version": 1, "case": "\xe9"}')
    with pytest.raises(CorruptFileError, match="UTF-8"):
        read_session(bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(UnsupportedFormatError):
        read_session(listed)


def test_nan_is_never_written(tmp_path: Path) -> None:
    doc = SessionFile(cursor_lps=(float("nan"), 0.0, 0.0))
    with pytest.raises(ValueError):
        write_session(tmp_path / "s.json", doc)
    assert not (tmp_path / "s.json").exists()


def test_a_view_plane_with_its_normal_the_other_way_round_is_the_same_plane(tmp_path: Path) -> None:
    plane = {"origin_lps": [0, 0, 0], "right_lps": [0, 1, 0], "down_lps": [0, 0, -1], "shape_rc": [10, 10]}
    path = tmp_path / "s.json"
    views = [{"name": "sagittal", "plane": {**plane, "normal_lps": [1, 0, 0]}},  # -(right x down)
             {"name": "axial", "plane": {**plane, "normal_lps": [0, 1, 0]}}]  # not the plane's normal
    path.write_text(json.dumps({"format": "lumbarview-session", "version": 1, "views": views}))
    doc = read_session(path)
    assert [v.name for v in doc.views] == ["sagittal"]
    assert doc.views[0].plane is not None and doc.views[0].plane.normal_lps == (-1.0, 0.0, 0.0)  # right x down
    assert "$.views[1].plane.normal_lps is not right_lps x down_lps" in doc.issues[0].message
