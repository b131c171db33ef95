"""Sessions that survive: a round trip through the file gives the same document; a moved
dataset is found through the relative path; a session naming files that are gone restores what
it can and says what it could not; an unreadable session file is kept aside (nothing lost); a
SIGKILL during autosave never leaves a partial file."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
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

ROOT = Path(__file__).resolve().parents[3]


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
    child = textwrap.dedent(f"""
        import sys
        import numpy as np
        from lumbarview.model.measurements import Measurement
        from lumbarview.model.session import Session
        from lumbarview.services.session_store import SessionStore
        from lumbarview.slicing.planes import ViewPlane

        plane = ViewPlane(np.zeros(3), (0, 1, 0), (0, 0, -1), (0.7, 1.3), (256, 256))
        session = Session()
        store = SessionStore({str(path)!r})
        for i in range(100_000):
            pts = plane.pixel_to_lps(np.array([[i % 97, 3.0], [i % 89, 40.0 + i % 7], [5.0, 9.0]]))
            session.measurements.add(Measurement.create("angle", pts, plane, ident=f"m{{i:06d}}", note="x" * 300))
            store.autosave(session)
            print(i + 1, flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(1234)
    for run in range(6):
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, env=env, text=True)
        assert proc.stdout is not None
        saved = 0
        deadline = time.monotonic() + 60
        target = rng.randint(3, 40)
        while saved < target and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            saved = int(line)
        time.sleep(rng.uniform(0.0, 0.02))  # kill somewhere inside a later save
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for line in proc.stdout:  # saves acknowledged before the kill
            saved = max(saved, int(line))
        proc.stdout.close()
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
