"""A session file with each hostile value (issue 29, classes 1 and 2) restores its
measurements and ``view --session --screenshot`` exits 0: no traceback, no hang (the timeout is
a hang guard, not a timing assert), a sidecar that is valid JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lumbarview.io.session_file import SessionFile
from lumbarview.services.session_store import snapshot
from tests.unit.services.test_session_hostile import HOSTILE, _hostile
from tests.unit.services.test_session_store import _measure, _show, phantom  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def saved(phantom: Path) -> tuple[dict, list[str]]:  # noqa: F811
    session = _show(phantom)
    made = _measure(session)
    doc: SessionFile = snapshot(session)
    return doc.to_json(), [m.id for m in made]


@pytest.mark.parametrize("value", HOSTILE)
def test_the_screenshot_restores_the_measurements_and_exits_0(saved: tuple[dict, list[str]], tmp_path: Path,
                                                               value: str) -> None:
    doc, ids = saved
    session_file = tmp_path / "hostile.json"
    session_file.write_text(json.dumps(_hostile(doc, value)))
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LUMBARVIEW_WORKSPACE": str(tmp_path / "ws"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "LUMBARVIEW_MAX_VOLUME_MB": "1000"}
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "lumbarview", "view", "--session",
                           str(session_file), "--screenshot", str(out), "--size", "1400x860"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sorted(r["id"] for r in sidecar["measurements"]) == sorted(ids)
    assert all(abs(v) < 1e4 for v in sidecar["cursor_lps"])
