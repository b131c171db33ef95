"""Killing a child process in the middle of its saves (SIGKILL: no clean-up runs)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def kill_during_saves(child: str, rng: random.Random, at_least: int = 3, at_most: int = 40) -> int:
    """Run the Python code ``child`` (it prints a growing count after each save it made) and
    SIGKILL it a random moment after it reported between ``at_least`` and ``at_most`` saves.
    Returns the highest count it reported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    saved = 0
    deadline = time.monotonic() + 60
    target = rng.randint(at_least, at_most)
    while saved < target and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        saved = int(line)
    time.sleep(rng.uniform(0.0, 0.02))  # kill somewhere inside a later save
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for line in proc.stdout:  # saves reported before the kill
        saved = max(saved, int(line))
    proc.stdout.close()
    return saved


def measuring_child(path: Path, save: str, setup: str = "") -> str:
    """The code of a child that adds angle measurements ``m000000``, ``m000001``... to a session
    one at a time and saves it to the session file ``path`` after each: ``setup`` runs once
    (``store`` is the file's SessionStore), ``save`` after each addition (``i`` is its index);
    between them they print a growing count of measurements saved."""
    return "\n".join([
        "import numpy as np",
        "from lumbarview.model.measurements import Measurement",
        "from lumbarview.model.session import Session",
        "from lumbarview.services.session_store import SessionStore",
        "from lumbarview.slicing.planes import ViewPlane",
        "plane = ViewPlane(np.zeros(3), (0, 1, 0), (0, 0, -1), (0.7, 1.3), (256, 256))",
        "session = Session()",
        f"store = SessionStore({str(path)!r})",
        setup,
        "for i in range(100_000):",
        "    pts = plane.pixel_to_lps(np.array([[i % 97, 3.0], [i % 89, 40.0 + i % 7], [5.0, 9.0]]))",
        "    session.measurements.add(Measurement.create('angle', pts, plane, ident=f'm{i:06d}', note='x' * 300))",
        f"    {save}",
    ])
