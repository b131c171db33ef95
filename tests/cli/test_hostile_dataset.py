"""A dataset with one bad file of each kind beside good data: every good file opens, the
commands exit 0, and the issues name each bad file. Run through the real command line in a
child process, so that a native crash, a traceback or a hang fails the test instead of pytest."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tests.dicom_helpers import sagittal, write_series

_MHA_HEAD = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
             "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\n"
             "ElementSpacing = 1 1 1\nDimSize = 4 4 4\nElementType = MET_UCHAR\n")


def _bad_files(root: Path) -> dict[str, bytes]:
    """name -> content of one hostile file per kind (each a class the issue lists)."""
    deep = b'{"markups": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    stl = bytearray(80) + struct.pack("<I", 4_000_000_000) + bytes(50)
    return {
        "ndims_huge.mha": _MHA_HEAD.replace("NDims = 3", "NDims = 100000").encode()
        + b"ElementDataFile = LOCAL\n" + bytes(64),
        "digits.mha": _MHA_HEAD.replace("DimSize = 4 4 4", "DimSize = " + "9" * 200 + " 4 4").encode()
        + b"ElementDataFile = LOCAL\n" + bytes(64),
        "outside.mha": _MHA_HEAD.encode() + b"ElementDataFile = /etc/passwd\n",
        "claim.mha": _MHA_HEAD.replace("DimSize = 4 4 4", "DimSize = 1000 1000 1800").encode()
        + b"ElementDataFile = LOCAL\n" + bytes(64),
        "outside.nhdr": b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
        b"space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
        b"space origin: (0,0,0)\ndata file: ../../../../../../etc/passwd\n\n",
        "huge_cell.csv": b"a,b\n1," + b"x" * 200_000 + b"\n",
        "deep_markups.mrk.json": deep,
        "bomb.stl": bytes(stl),
    }


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "dataset"
    write_series(root / "good_sag", sagittal(n=6), "T2 SAG", number=2)
    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    image.SetSpacing((0.8, 0.8, 3.0))
    sitk.WriteImage(image, str(root / "good_vol.mha"), useCompression=True)
    (root / "good_table.csv").write_text("level,grade\nL4-L5,2\n")
    bad = _bad_files(root)
    for name, content in bad.items():
        (root / "bad" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "bad" / name).write_bytes(content)
    return root, bad


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LUMBARVIEW_NO_DIALOGS": "1", "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "lumbarview", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_info_opens_the_good_files_and_names_each_bad_one(hostile: tuple[Path, dict[str, bytes]]) -> None:
    root, bad = hostile
    done = _run("info", str(root), "--json", "--no-cache")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    doc = json.loads(done.stdout)
    descriptions = {s["description"] for p in doc["patients"] for st in p["studies"] for s in st["series"]}
    assert "T2 SAG" in descriptions and "good_vol" in descriptions, descriptions
    named = {Path(i["path"]).name for i in doc["issues"] if i["path"] and i["severity"] == "error"}
    for p in doc["patients"]:
        named |= {Path(i["path"]).name for i in p.get("issues", []) if i.get("path")}
    missing = sorted(set(bad) - named)
    assert not missing, f"bad files not named in the issues: {missing}"
    for issue in doc["issues"]:
        if issue["path"] and Path(issue["path"]).name in bad:
            assert len(issue["message"]) > 20  # says what is wrong (and what to do)


def test_the_viewer_opens_it_without_a_traceback(hostile: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    root, _bad = hostile
    shot = tmp_path / "shot.png"
    done = _run("view", str(root), "--screenshot", str(shot), "--size", "900x600")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert shot.is_file() and shot.stat().st_size > 1000
