"""Sessions that survive: a round trip through the file gives the same document; a moved
dataset is found through the relative path; a session naming files that are gone restores what
it can and says what it could not; an unreadable session file is kept aside (nothing lost); a
SIGKILL during autosave never leaves a partial file."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from lumbarview.io.session_file import read_session
from lumbarview.model.measurements import Measurement
from lumbarview.model.session import Session
from lumbarview.services.case_loader import load_case
from lumbarview.services.open_dataset import open_path
from lumbarview.services.session_store import (
    SessionStore,
    apply,
    default_session_file,
    locate_dataset,
    snapshot,
)
from tests.kill_helpers import kill_during_saves, measuring_child


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lumbarview.phantom.layouts import Sizes, write_all
    from lumbarview.phantom.spine import PhantomParams

    return write_all(tmp_path_factory.mktemp("phantom"), PhantomParams(), Sizes.small(), layouts=("sudirman",))[
        "sudirman"]


def _show(path: Path) -> Session:
    dataset = open_path(str(path))
    session = Session()
    session.set_dataset(dataset)
    view = load_case(dataset.cases[0])
    session.show_case(view.case, view.series, view.cursor_lps, view.disc_planes, view.shown_stacks)
    return session


def _measure(session: Session) -> list[Measurement]:
    """One measurement of each kind on the views' planes, tagged like the tools tag them."""
    made = []
    case = session.case.id if session.case is not None else None
    for n, (kind, view_name, px) in enumerate([
            ("distance", "sagittal", [(10, 10), (40, 30)]), ("angle", "sagittal", [(5, 5), (20, 20), (40, 5)]),
            ("cobb", "sagittal", [(5, 5), (30, 8), (5, 30), (30, 40)]),
            ("ellipse", "axial", [(30, 30), (40, 30), (30, 36)]),
            ("polygon", "axial", [(5, 5), (30, 5), (20, 25)]), ("freehand", "axial", [(5, 5), (8, 5), (9, 9), (4, 8)]),
            ("point", "coronal", [(12, 12)])]):
        view = session.views[view_name]
        plane = view.plane
        assert plane is not None, view_name
        m = Measurement.create(kind, plane.pixel_to_lps(np.asarray(px, dtype=float)), plane,
                               series=view.series.uid if view.series else None, case=case, ident=f"m{n}",
                               level="L4-L5" if n % 2 else None, side="left" if n % 3 == 0 else None,
                               note=f"note {n}")
        session.measurements.add(m)
        made.append(m)
    return made


def test_round_trip_gives_the_same_document(phantom: Path, tmp_path: Path) -> None:
    session = _show(phantom)
    made = _measure(session)
    session.layout = "2x2"
    store = SessionStore(tmp_path / "s.json")
    store.save(session)
    other = _show(phantom)
    opened = SessionStore(tmp_path / "s.json").open()
    assert opened.doc is not None and opened.issues == []
    issues = apply(other, opened.doc)
    assert issues == []
    assert list(other.measurements) == made
    assert [m.value().value for m in other.measurements if m.kind != "point"] == [
        m.value().value for m in made if m.kind != "point"]
    assert other.layout == "2x2"
    np.testing.assert_allclose(other.cursor.crosshair, session.cursor.crosshair)
    assert snapshot(other).measurements == snapshot(session).measurements
    assert not other.undo.can_undo  # a restored session starts a new history


def test_the_autosave_lives_in_the_workspace_never_in_the_dataset(phantom: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_WORKSPACE", str(tmp_path / "ws"))
    path = default_session_file(str(phantom))
    assert path.is_relative_to(tmp_path / "ws") and not path.is_relative_to(phantom)
    assert default_session_file(str(phantom)) == path and default_session_file(str(tmp_path)) != path


def test_a_moved_dataset_is_found_through_the_relative_path(phantom: Path, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(phantom, root / "data" / "study")
    session = _show(root / "data" / "study")
    made = _measure(session)
    SessionStore(root / "sessions" / "s.json").save(session)
    moved = tmp_path / "elsewhere"
    shutil.move(str(root), str(moved))
    doc = read_session(moved / "sessions" / "s.json")
    found, issues = locate_dataset(doc, moved / "sessions" / "s.json")
    assert found is not None and Path(found) == moved / "data" / "study"
    assert [i.code for i in issues] == ["session.dataset-moved"]
    restored = _show(Path(found))
    assert apply(restored, doc) == []  # same content: same fingerprint
    assert list(restored.measurements) == made
    shutil.rmtree(moved / "data")
    gone, issues = locate_dataset(doc, moved / "sessions" / "s.json")
    assert gone is None and issues[0].code == "session.dataset-missing" and "move the dataset back" in issues[0].message


def test_a_session_naming_files_that_are_gone_restores_what_it_can(phantom: Path, tmp_path: Path) -> None:
    data = tmp_path / "study"
    shutil.copytree(phantom, data)
    session = _show(data)
    made = _measure(session)
    axial = session.views["axial"].series
    assert axial is not None
    SessionStore(tmp_path / "s.json").save(session)
    # The axial series' files are deleted.
    folder = Path(axial.stacks[0].meta["files"][0]).parent
    shutil.rmtree(folder)
    restored = _show(data)
    issues = apply(restored, read_session(tmp_path / "s.json"), "s.json")
    codes = [i.code for i in issues]
    assert "session.dataset-changed" in codes
    missing = [i for i in issues if i.code == "session.series-missing"]
    # The axial view's series and the three measurements drawn on it are named.
    assert len(missing) == 1 + sum(1 for m in made if m.series == axial.uid)
    assert all(axial.uid in i.message for i in missing)
    assert list(restored.measurements) == made  # every measurement is kept, at its position


def test_an_unreadable_session_file_is_kept_aside(tmp_path: Path, phantom: Path) -> None:
    path = tmp_path / "s.json"
    garbage = b'{"format": "lumbarview-session", "version": 1, "measurements": [{"id": "a", "kin'
    path.write_bytes(garbage)
    store = SessionStore(path)
    opened = store.open()
    assert opened.doc is None and opened.backup is not None
    assert opened.issues[0].code == "session.unreadable"
    assert str(opened.backup) in opened.issues[0].message and "malformed" in opened.issues[0].message
    assert opened.backup.read_bytes() == garbage  # nothing lost
    assert not path.exists()
    session = _show(phantom)
    _measure(session)
    store.save(session)  # the next save writes a new file, the backup stays
    assert len(read_session(path).measurements) == 7 and opened.backup.read_bytes() == garbage


def test_a_sigkill_during_autosave_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "autosave.json"
    child = measuring_child(path, "store.autosave(session); print(i + 1, flush=True)")
    rng = random.Random(1234)
    for run in range(6):
        saved = kill_during_saves(child, rng)
        assert saved >= 3, f"run {run}: the child saved nothing before the kill"
        doc = read_session(path)  # always parses
        ids = [m.id for m in doc.measurements]
        # A complete document: every acknowledged save is in it, at most one more, in order.
        assert saved <= len(ids) <= saved + 1, (run, saved, len(ids))
        assert ids == [f"m{i:06d}" for i in range(len(ids))]
        assert all(m.kind == "angle" and len(m.points_lps) == 3 for m in doc.measurements)
    # Each run is a new session that never read the file: its first save kept the last run's
    # session aside (a complete document too) instead of overwriting it.
    aside = sorted(p for p in tmp_path.iterdir() if ".previous-" in p.name)
    assert len(aside) == 5
    assert all(read_session(p).measurements for p in aside)
    leftovers = [p for p in tmp_path.iterdir() if p.name != path.name and p not in aside]
    assert all(p.name.endswith(".lvtmp") for p in leftovers)
    for p in leftovers:  # a stale temporary of a killed save is swept by the next store
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    SessionStore(path)
    assert sorted(p.name for p in tmp_path.iterdir() if p not in aside) == [path.name]


# -- records -> measurements (issue 20 part 1, issue 21 "planes the other way round") ----------
def test_records_of_unknown_kinds_sources_sides_and_counts_become_issues() -> None:
    from lumbarview.services.session_store import to_measurement
    from tests.unit.io.test_session_file import HOSTILE

    doc = read_session(HOSTILE / "bad_entries.json")
    made = {record.id: to_measurement(record, "f.json") for record in doc.measurements}
    assert made["ok"][0] is not None and made["ok"][1] == []
    assert made["ok"][0].value().value == pytest.approx(5.0)
    for ident, words in (("few", "a angle needs 3 points, not 2"), ("kind", "unknown measurement kind 'volume'"),
                         ("src", "unknown source 'oracle'"), ("side", "unknown side 'up'")):
        m, issues = made[ident]
        assert m is None and len(issues) == 1, ident
        assert issues[0].code == "session.entry-skipped" and words in issues[0].message and ident in issues[0].message


def _plane_json(right: list[float], down: list[float], normal: list[float]) -> dict[str, object]:
    return {"origin_lps": [0.0, 0.0, 10.0], "right_lps": right, "down_lps": down, "normal_lps": normal,
            "spacing_mm": [0.5, 0.5], "shape_rc": [100, 100]}


def test_a_plane_with_its_normal_the_other_way_round_loads_without_a_warning(tmp_path: Path) -> None:
    """normal = -(right x down) is the same plane: the measurement loads, nothing is said."""
    from lumbarview.services.session_store import to_measurement

    triangle = [[0.0, 0.0, 10.0], [30.0, 0.0, 10.0], [0.0, 40.0, 10.0]]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"format": "lumbarview-session", "version": 1, "measurements": [
        {"id": "flipped", "kind": "polygon", "points_lps": triangle,
         "plane": _plane_json([1, 0, 0], [0, 1, 0], [0, 0, -1])}]}))
    doc = read_session(path)
    assert doc.issues == []
    m, issues = to_measurement(doc.measurements[0])
    assert issues == [] and m is not None
    assert m.plane is not None and m.plane.normal_lps == (0.0, 0.0, 1.0)  # stored as right x down
    assert m.value().value == pytest.approx(0.5 * 30 * 40)


def test_a_plane_that_is_not_orthonormal_gives_way_to_the_plane_of_the_points(tmp_path: Path) -> None:
    """Never drop a measurement whose points are valid: its plane is derived from them, with a
    warning; a two-point distance (no plane through it) is measured in 3D."""
    from lumbarview.services.session_store import to_measurement

    # A triangle on the oblique plane x + z = 10, legs 20 mm (along (1, 0, -1)/sqrt 2) and 15 mm (along y).
    a = np.array([0.0, 0.0, 10.0])
    u, v = np.array([1.0, 0.0, -1.0]) / np.sqrt(2), np.array([0.0, 1.0, 0.0])
    triangle = [a.tolist(), (a + 20 * u).tolist(), (a + 15 * v).tolist()]
    skewed = _plane_json([1, 0, 0], [0.6, 0.9, 0], [0, 0, 1])
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"format": "lumbarview-session", "version": 1, "measurements": [
        {"id": "tri", "kind": "polygon", "points_lps": triangle, "plane": skewed},
        {"id": "line", "kind": "distance", "points_lps": [[0, 0, 0], [3, 4, 12]], "plane": skewed}]}))
    doc = read_session(path)
    assert [r.id for r in doc.measurements] == ["tri", "line"] and doc.issues == []
    tri, tri_issues = to_measurement(doc.measurements[0], "s.json")
    line, line_issues = to_measurement(doc.measurements[1], "s.json")
    assert tri is not None and line is not None
    assert [i.code for i in tri_issues + line_issues] == ["session.plane-derived"] * 2
    assert "plane through its points" in tri_issues[0].message and "measured in 3D" in line_issues[0].message
    assert tri.plane is not None
    assert abs(float(np.dot(tri.plane.normal_lps, np.array([1.0, 0.0, 1.0]) / np.sqrt(2)))) == pytest.approx(1.0)
    assert tri.value().value == pytest.approx(0.5 * 20 * 15, rel=1e-9)
    assert line.plane is None and line.value().value == pytest.approx(13.0)
