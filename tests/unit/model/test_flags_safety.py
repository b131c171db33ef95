"""The user's flags are never lost: an unreadable flags file is moved aside to a timestamped
backup before anything is written, the user is told where it is, and leftovers of killed saves
are swept at the next start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lumbarview.core.types import Severity
from lumbarview.model import flags as flags_module
from lumbarview.model.flags import FlagStore

GOOD = {"version": 1, "dataset": "/d", "flags": [
    {"annotation_id": "1|box|a.xml|0", "case": "1", "note": "kept", "created": 1.0}]}


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".unreadable-*"))


def test_a_10000_deep_flags_file_is_kept_aside_and_new_flags_are_saved(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    original = ('{"flags": ' + "[" * 10_000 + "]" * 10_000 + "}").encode()
    path.write_bytes(original)
    started = time.perf_counter()
    store = FlagStore(path, "/d")
    assert time.perf_counter() - started < 2.0
    (backup,) = _backups(path)
    assert backup.read_bytes() == original and not path.exists()  # moved before anything is written
    assert store.notice is not None and str(backup) in store.notice and "64 levels" in store.notice
    assert store.issue is not None and store.issue.code == "flags.unreadable"
    assert store.issue.severity is Severity.ERROR and store.flags() == []
    store.flag("x", "2", "new")
    assert [f.annotation_id for f in FlagStore(path).flags()] == ["x"]
    assert backup.read_bytes() == original and FlagStore(path).notice is None


@pytest.mark.parametrize("content", [
    b"\x00\xff garbage \x89PNG", json.dumps(GOOD).encode()[:40], b'{"flags": 5}', b"[]", b"",
    b'{"flags": [1, 2]}' .replace(b"1, 2", b"1" + b"0" * 5000),
])
def test_unreadable_flags_files_are_moved_aside_with_a_notice(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "flags.json"
    path.write_bytes(content)
    store = FlagStore(path)
    (backup,) = _backups(path)
    assert backup.read_bytes() == content and store.notice and str(backup) in store.notice
    store.flag("a", "1", "")
    assert backup.read_bytes() == content
    assert [f.annotation_id for f in FlagStore(path).flags()] == ["a"]


def test_partly_valid_flags_keep_the_valid_ones_and_a_backup_of_all(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    doc = {"flags": [*GOOD["flags"], {"annotation_id": None, "case": "1"},  # type: ignore[list-item]
                     {"annotation_id": "n", "case": "1", "created": "soon"}]}
    path.write_text(json.dumps(doc))
    store = FlagStore(path)
    (backup,) = _backups(path)
    assert json.loads(backup.read_text()) == doc
    assert store.issue is not None and store.issue.severity is Severity.WARNING
    assert "2 of its 3 entries" in (store.notice or "") and "$.flags[1]" in (store.notice or "")
    again = FlagStore(path)  # the valid flag was saved again at once
    assert [f.note for f in again.flags()] == ["kept"] and again.notice is None


def test_when_the_backup_cannot_be_made_the_file_is_never_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "flags.json"
    path.write_bytes(b"{not json")

    def refuse(*_: object, **__: object) -> Path:
        raise OSError("read-only folder")

    monkeypatch.setattr(flags_module, "move_aside", refuse)
    store = FlagStore(path)
    assert store.saving_disabled and "not saved" in (store.notice or "")
    store.flag("a", "1", "")
    assert path.read_bytes() == b"{not json" and [f.annotation_id for f in store.flags()] == ["a"]


def test_leftover_temporaries_of_killed_saves_are_swept_at_start(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(GOOD))
    old = [tmp_path / ".flags.json.abc123.lvtmp", tmp_path / ".flags.json.x9.tmp"]
    fresh = tmp_path / ".flags.json.now.lvtmp"  # maybe another instance saving right now
    for leftover in [*old, fresh]:
        leftover.write_text("{")
    an_hour_ago = time.time() - 3600
    for leftover in old:
        os.utime(leftover, (an_hour_ago, an_hour_ago))
    store = FlagStore(path)
    assert sorted(store.removed_temporaries) == sorted(old)
    assert not any(p.exists() for p in old) and fresh.exists()
    assert [f.note for f in store.flags()] == ["kept"]


def test_saves_are_atomic_through_core_fs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[Path] = []
    real = flags_module.atomic_write_text

    def spy(target: str | Path, text: str) -> None:
        written.append(Path(target))
        real(target, text)

    monkeypatch.setattr(flags_module, "atomic_write_text", spy)
    store = FlagStore(tmp_path / "flags.json")
    store.flag("a", "1", "")
    store.export_csv(tmp_path / "out.csv")
    assert written == [tmp_path / "flags.json", tmp_path / "out.csv"]


def test_no_traceback_and_no_hang_on_a_deep_flags_file(tmp_path: Path) -> None:
    """The `view` failure: a deep flags file printed a traceback and hung. In a child process,
    the store opens at once, prints nothing and saves."""
    path = tmp_path / "flags.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code = ("import sys; from lumbarview.model.flags import FlagStore\n"
            "s = FlagStore(sys.argv[1]); s.flag('a', '1', 'x')\n")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and done.stderr == "" and done.stdout == ""
    assert time.perf_counter() - started < 30
    assert json.loads(path.read_text())["flags"][0]["annotation_id"] == "a" and len(_backups(path)) == 1
