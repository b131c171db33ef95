"""Autosave off the GUI thread: snapshots are written on one background thread, in order, the
newest of a file winning; a failure is reported, not raised; a SIGKILL at any moment leaves a
complete file holding every save that was reported written."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np

from lumbarview.io.session_file import read_session
from lumbarview.model.measurements import Measurement
from lumbarview.model.session import Session
from lumbarview.services.session_store import SessionStore
from lumbarview.services.session_writer import SessionWriter, open_autosave
from lumbarview.slicing.planes import ViewPlane
from tests.kill_helpers import kill_during_saves, measuring_child

PLANE = ViewPlane(np.zeros(3), (0, 1, 0), (0, 0, -1), (0.7, 1.3), (256, 256))


def _add(session: Session, i: int) -> None:
    pts = PLANE.pixel_to_lps(np.array([[i % 97, 3.0], [i % 89, 40.0 + i % 7], [5.0, 9.0]]))
    session.measurements.add(Measurement.create("angle", pts, PLANE, ident=f"m{i:06d}"))


def test_writes_happen_on_the_writer_thread_in_order_and_the_newest_wins(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = SessionStore(tmp_path / "s.json")
    threads: list[str] = []
    counts: list[int] = []
    gate = threading.Event()
    real_write = SessionStore.write

    def slow_write(self: SessionStore, doc):  # type: ignore[no-untyped-def]
        gate.wait(10)  # hold the first write until every save was asked for
        threads.append(threading.current_thread().name)
        counts.append(len(doc.measurements))
        return real_write(self, doc)

    monkeypatch.setattr(SessionStore, "write", slow_write)
    writer = SessionWriter()
    session = Session()
    for i in range(5):
        _add(session, i)
        assert writer.save(store, session)
    assert not writer.idle
    gate.set()
    assert writer.flush(10)
    # The first snapshot was being written when the others came: of those, only the newest.
    assert counts == [1, 5]
    assert all(name.startswith("lumbarview-autosave") for name in threads)
    assert threading.main_thread().name not in threads
    assert [m.id for m in read_session(store.path).measurements] == [f"m{i:06d}" for i in range(5)]
    assert writer.close(10)
    assert not writer.save(store, session)  # closed: nothing more is written


def test_a_failed_write_is_reported_and_the_next_save_tries_again(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the session's folder should be")
    failures: list[tuple[Path, OSError]] = []
    written: list[int] = []
    writer = SessionWriter(failed=lambda path, exc: failures.append((path, exc)),
                           written=lambda _path, count: written.append(count))
    session = Session()
    _add(session, 0)
    bad = SessionStore(blocker / "s.json")
    writer.save(bad, session)
    assert writer.flush(10)
    assert len(failures) == 1 and failures[0][0] == bad.path and written == []
    good = SessionStore(tmp_path / "s.json")
    writer.save(good, session)
    assert writer.flush(10) and written == [1] and good.path.is_file()
    writer.close()


def test_open_autosave_reads_only_when_asked(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    store, opened = open_autosave(str(dataset))
    assert opened.doc is None and not store.path.exists()
    session = Session()
    _add(session, 0)
    store.save(session)
    again, opened = open_autosave(str(dataset))
    assert again.path == store.path and opened.doc is not None and len(opened.doc.measurements) == 1
    _store, skipped = open_autosave(str(dataset), read=False)
    assert skipped.doc is None and skipped.issues == []


def test_a_sigkill_during_background_autosave_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "autosave.json"
    child = measuring_child(path, "writer.save(store, session)",
                            setup="from lumbarview.services.session_writer import SessionWriter\n"
                                  "writer = SessionWriter(written=lambda _path, count: print(count, flush=True))")
    rng = random.Random(4321)
    for run in range(5):
        saved = kill_during_saves(child, rng, at_most=30)
        assert saved >= 3, f"run {run}: the child wrote nothing before the kill"
        doc = read_session(path)  # always parses: the old file or the new one, never a part
        ids = [m.id for m in doc.measurements]
        # Every reported write is in it, in order (a later snapshot may have landed unreported).
        assert len(ids) >= saved, (run, saved, len(ids))
        assert ids == [f"m{i:06d}" for i in range(len(ids))]
    # Each run is a new store that never read the file: its first write kept the previous run's
    # session aside (a complete document too) instead of overwriting it.
    aside = sorted(p for p in tmp_path.iterdir() if ".previous-" in p.name)
    assert len(aside) >= 4, aside
    assert all(read_session(p).measurements for p in aside)
    leftovers = [p for p in tmp_path.iterdir() if p.name != path.name and p not in aside]
    assert all(p.name.endswith(".lvtmp") for p in leftovers), leftovers
