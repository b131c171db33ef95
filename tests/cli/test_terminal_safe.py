"""What a file holds never reaches the user's terminal raw (issue 29, class 8): escape
sequences in a header field, in a parser's error and in a file name come out as ``\\xNN``, one
line per message. Checked byte by byte on the real command line's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

_ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[H\x9b31m\r\x08"


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "LUMBARVIEW_NO_DIALOGS": "1", "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "lumbarview", *args], capture_output=True, timeout=120, env=env)


def _assert_terminal_safe(output: bytes) -> None:
    for n, byte in enumerate(output):
        near = output[max(0, n - 60):n + 20]
        assert byte == 0x0A or 0x20 <= byte != 0x7F, f"control byte {byte:#04x} at {n}: {near!r}"
    text = output.decode("utf-8")
    assert not any(0x80 <= ord(ch) < 0xA0 for ch in text), "a C1 control character"


def _dataset(root: Path) -> None:
    root.mkdir()
    image = sitk.GetImageFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    sitk.WriteImage(image, str(root / f"scan{_ESCAPES}.mha"))
    # pynrrd's message quotes the magic line raw: escape sequences and all
    (root / "bad.nrrd").write_bytes(
        b"NRRD0004\x1b]0;owned\x07\x1b[2J\ntype: uint8\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n\n" + bytes(8))
    (root / "grades.csv").write_bytes(b"level,grade\nL4-L5,\x1b[31m2\x1b[0m\n")


def test_info_text_json_and_errors_hold_no_control_character(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _dataset(root)
    for args in (("info", str(root), "--no-cache"), ("info", str(root), "--json", "--no-cache"),
                 ("measure", str(root), "--no-cache")):
        done = _run(*args)
        assert done.returncode in (0, 2), done.stderr[-2000:]
        _assert_terminal_safe(done.stdout)
        _assert_terminal_safe(done.stderr)
    text = _run("info", str(root), "--no-cache").stdout.decode()
    assert "\\x1b]0;owned\\x07" in text  # shown escaped, not dropped
    lines = [line for line in text.splitlines() if "bad.nrrd" in line]
    assert len(lines) == 1 and "magic line: NRRD0004\\x1b]0;owned\\x07\\x1b[2J" in lines[0], lines


def test_an_unopenable_path_with_escapes_in_its_name_is_one_safe_line(tmp_path: Path) -> None:
    missing = tmp_path / f"no{_ESCAPES}such"
    done = _run("info", str(missing))
    assert done.returncode == 2
    _assert_terminal_safe(done.stderr)
    assert len(done.stderr.decode().strip().splitlines()) == 1
