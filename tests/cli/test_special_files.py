"""Only regular files are ever opened (issue 29, classes 3 and 7): a FIFO, a device or a
socket inside a dataset is skipped with one issue each and never opened (opening a FIFO for
reading waits for a writer forever); a PATH that is neither a folder nor a regular file is exit 2
and one line. Through the real command line in a child process: a hang fails on the timeout."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lumbarview.core.errors import SpecialFileError
from lumbarview.core.fs import open_regular, read_regular_bytes
from lumbarview.services.layouts.context import SPECIAL_FILE_CODE
from tests.spider_helpers import spider_cases

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX feature")

#: One FIFO per suffix a reader of lumbarview opens (each reader met one in the campaign).
SUFFIXES = ("a.mha", "b.mhd", "c.nrrd", "d.nhdr", "e.nii", "f.nii.gz", "g.json", "h.mrk.json", "i.stl",
            "j.dcm", "k.csv", "l.tsv", "m.xml", "n.png", "o.pdf", "p.ima", "noext")
HANG_GUARD_S = 60  # not a timing assert: a reader that blocks in open() never returns at all


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "LUMBARVIEW_NO_DIALOGS": "1", "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "lumbarview", *args], capture_output=True,
                          timeout=HANG_GUARD_S, env=env)


def _good_volume(path: Path) -> None:
    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    image.SetSpacing((0.8, 0.8, 3.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _special_issues(doc: dict) -> dict[str, dict]:
    issues = list(doc["issues"]) + [i for p in doc["patients"] for i in p.get("issues", [])]
    return {Path(i["path"]).name: i for i in issues if i["code"] == SPECIAL_FILE_CODE}


def test_info_skips_a_fifo_of_each_suffix_with_one_issue_each(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    _good_volume(root / "good_vol.mha")
    (root / "pipes").mkdir()
    for name in SUFFIXES:
        os.mkfifo(root / "pipes" / name)
    os.mkfifo(root / "DICOMDIR")
    done = _run("info", str(root), "--json", "--no-cache")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    named = _special_issues(doc)
    assert sorted(named) == sorted([*SUFFIXES, "DICOMDIR"])
    assert all("FIFO" in i["message"] and i["severity"] == "warning" for i in named.values())
    descriptions = {s["description"] for p in doc["patients"] for st in p["studies"] for s in st["series"]}
    assert "good_vol" in descriptions


def test_measure_and_a_spider_dataset_with_fifos_for_image_and_mask(tmp_path: Path) -> None:
    root = spider_cases(tmp_path / "source", tmp_path / "spider", 1)
    os.mkfifo(root / "images" / "2_t2.mha")   # a case whose image is a FIFO
    os.mkfifo(root / "masks" / "1_t1.nrrd")   # a mask beside a real image
    done = _run("info", str(root), "--json", "--no-cache")
    assert done.returncode == 0, done.stderr[-2000:]
    named = _special_issues(json.loads(done.stdout))
    assert {"2_t2.mha", "1_t1.nrrd"} <= set(named), named
    measured = _run("measure", str(root), "--json", "--no-cache", "--jobs", "1")
    assert measured.returncode == 0, measured.stderr[-2000:]
    assert b"Traceback" not in measured.stderr


def test_a_socket_in_a_dataset_is_skipped_too(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _good_volume(root / "good_vol.mha")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(root / "sock.nrrd"))
        done = _run("info", str(root), "--json", "--no-cache")
    finally:
        server.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "socket" in _special_issues(json.loads(done.stdout))["sock.nrrd"]["message"]


@pytest.mark.parametrize("command", ["info", "measure", "view"])
@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_path_that_is_neither_folder_nor_file_is_exit_2_and_one_line(tmp_path: Path, command: str,
                                                                      kind: str) -> None:
    if kind == "device":
        target = Path(os.devnull)
    else:
        target = tmp_path / "pipe.mha"
        os.mkfifo(target)
    extra = ["--screenshot", str(tmp_path / "s.png")] if command == "view" else []
    done = _run(command, str(target), *extra)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "neither a folder nor a regular file" in lines[0] and "internal error" not in lines[0]
    assert not (tmp_path / "s.png").exists()


def test_open_regular_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "p.mha"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            read_regular_bytes(fifo)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(HANG_GUARD_S)
    if worker.is_alive():  # release the blocked open so the test run can end, then fail
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("open_regular blocked on a FIFO")
    assert isinstance(outcome[0], SpecialFileError), outcome


def test_the_descriptor_is_checked_not_the_name(tmp_path: Path) -> None:
    """A link whose name looks like a volume and which points at a FIFO (what a swap between a
    check and an open would give) is refused on the opened descriptor."""
    fifo = tmp_path / "real_pipe"
    os.mkfifo(fifo)
    link = tmp_path / "v.nii.gz"
    link.symlink_to(fifo)
    with pytest.raises(SpecialFileError, match="FIFO"):
        open_regular(link)
    regular = tmp_path / "r.bin"
    regular.write_bytes(b"abc")
    with open_regular(regular) as fh:
        assert fh.read() == b"abc"
        assert stat.S_ISREG(os.fstat(fh.fileno()).st_mode)
        assert os.get_blocking(fh.fileno())  # handed back in blocking mode
