"""Nothing of the user's is lost to a session that did not take it in (issue 21, "Holding
still and losing nothing"): a declined session, a session of another case that was never
offered, the dataset's own session when another session file is opened, each kept aside
(timestamped) on the first save and the window says where; a copied dataset is offered its
session by content; an unreadable session is announced in the status bar and the issues dock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lumbarview.io.session_file import read_session
from lumbarview.services.session_store import default_session_file
from tests.qt.conftest import open_and_wait
from tests.qt.test_tools import _drag, _in_plane, _latest, _widget
from tests.spider_helpers import spider_cases

pytestmark = pytest.mark.qt


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LUMBARVIEW_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def _nine(dataset: Path, case: str) -> dict:
    """A saved session of 9 measurements on ``case``."""
    ms = [{"id": f"kept{n}", "kind": "distance", "points_lps": [[0.0, -40.0 + n, 60.0], [0.0, -20.0 + n, 60.0]],
           "case": case, "source": "manual"} for n in range(9)]
    return {"format": "lumbarview-session", "version": 1, "dataset": {"path": str(dataset)}, "case": case,
            "measurements": ms}


def _edit(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    view = window.views["sagittal"]
    window.measure.tools.set_tool("distance")
    a, b = (_widget(view, p) for p in _in_plane(view, [(-10.0, 3.0), (12.0, 3.0)]))
    _drag(qtbot, view, a, b)
    new = _latest(window)
    path = window.measure.store.path
    qtbot.waitUntil(lambda: path.exists() and new.id in path.read_text(), timeout=10_000)


def _kept(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".previous-*"))


def _assert_said(window, backup: Path) -> None:  # type: ignore[no-untyped-def]
    assert str(backup) in window.statusBar().currentMessage()
    assert window.docks.issues_dock.isVisible()
    panel = window.docks.issues_panel
    codes = [panel.item(r, 1).text() for r in range(panel.rowCount())]
    assert "session.kept-aside" in codes


def test_a_declined_session_is_kept_aside_by_the_first_edit(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    root = demo_small["sudirman"]
    path = default_session_file(str(root))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nine(root, "0001")))
    before = path.read_bytes()
    open_and_wait(qtbot, window, root)
    assert window.measure.offered is not None  # offered; not restored (the "No")
    _edit(qtbot, window)
    (backup,) = _kept(path)
    assert backup.read_bytes() == before and len(read_session(backup).measurements) == 9
    assert [m.id for m in read_session(path).measurements] == [_latest(window).id]
    _assert_said(window, backup)


def test_a_session_of_another_case_is_never_overwritten(qtbot, window, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The session is of case 2, not the first case: the dataset opens on case 2, where it is
    offered (before, case 1 showed, nothing was offered and the first edit overwrote it: the
    9-measurement loss); the user goes to case 1 and edits: the session is kept aside."""
    root = spider_cases(tmp_path / "source", tmp_path / "spider", 2)
    path = default_session_file(str(root))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nine(root, "2")))
    before = path.read_bytes()
    open_and_wait(qtbot, window, root)
    assert window.session.case is not None and window.session.case.id == "2"
    assert window.measure.offered is not None and "Restore last session" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.views_ready, timeout=60_000):
        window.show_case(window.dataset.case("1"))
    _edit(qtbot, window)
    (backup,) = _kept(path)
    assert backup.read_bytes() == before
    _assert_said(window, backup)


def test_opening_another_session_file_keeps_the_datasets_own(qtbot, window, demo_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = demo_small["sudirman"]
    own = default_session_file(str(root))
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text(json.dumps(_nine(root, "0001")))
    before = own.read_bytes()
    other = tmp_path / "other.json"
    doc = _nine(root, "0001")
    doc["measurements"] = doc["measurements"][:2]
    other.write_text(json.dumps(doc))
    with qtbot.waitSignal(window.measure.restored, timeout=60_000):
        assert window.measure.open_session(str(other))
    qtbot.waitUntil(lambda: len(_kept(own)) == 1, timeout=10_000)
    assert _kept(own)[0].read_bytes() == before
    assert len(read_session(own).measurements) == 2


def test_a_restored_session_is_saved_over_without_a_copy(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    root = demo_small["sudirman"]
    path = default_session_file(str(root))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nine(root, "0001")))
    open_and_wait(qtbot, window, root)
    window.measure.restore_last()
    assert len(window.session.measurements) == 9
    _edit(qtbot, window)
    assert _kept(path) == [] and len(read_session(path).measurements) == 10


def test_a_copied_dataset_is_offered_its_session(qtbot, window, demo_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lumbarview.services.open_dataset import open_path
    from lumbarview.services.session_store import fingerprint

    root = demo_small["sudirman"]
    path = default_session_file(str(root))
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _nine(root, "0001")
    doc["dataset"]["fingerprint"] = fingerprint(open_path(str(root)))
    path.write_text(json.dumps(doc))
    copy = tmp_path / "copy-of-sudirman"
    shutil.copytree(root, copy)
    open_and_wait(qtbot, window, copy)
    assert window.measure.store.path == default_session_file(str(copy)) != path
    assert window.measure.offered is not None and window.measure.offered_from == str(path)
    window.measure.restore_last()
    assert len(window.session.measurements) == 9
    qtbot.waitUntil(lambda: window.measure.store.path.exists(), timeout=10_000)
    assert path.read_text() == json.dumps(doc)  # the original dataset's session untouched


def test_an_unreadable_session_is_announced_in_the_status_bar_and_the_dock(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    root = demo_small["sudirman"]
    path = default_session_file(str(root))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    open_and_wait(qtbot, window, root)
    qtbot.waitUntil(lambda: "could not be read" in window.statusBar().currentMessage(), timeout=5000)
    backup = next(path.parent.glob(path.name + ".unreadable-*"))
    assert str(backup) in window.statusBar().currentMessage()
    assert window.docks.issues_dock.isVisible()
    panel = window.docks.issues_panel
    assert "session.unreadable" in [panel.item(r, 1).text() for r in range(panel.rowCount())]
