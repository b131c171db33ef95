"""A folder of DICOM files and volumes is listed once per open: the folder layout's listing (one
``os.scandir`` per folder) goes on to the DICOM scan, which does not walk the tree again; the
listing still keeps what the layout read before (a volume reached through a symbolic link, no
hidden files) and the scan still leaves linked files out."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lumbarview.io.dicom.scan import walk_files
from lumbarview.io.volume_write import write_nifti
from lumbarview.services.open_dataset import open_path
from tests.dicom_helpers import sagittal, write_series


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    write_series(root / "a" / "sag", sagittal(n=3), "sag")
    write_series(root / "b", sagittal(n=4), "sag2", number=2)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "junk.dcm").write_bytes(b"not dicom")
    g = sagittal(n=3)
    write_nifti(tmp_path / "outside.nii.gz", np.zeros(g.shape_kji, np.int16), g)
    (root / "linked.nii.gz").symlink_to(tmp_path / "outside.nii.gz")
    return root


def test_the_tree_is_listed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path)
    listed: list[str] = []
    real = os.scandir

    def counting(path: str | os.PathLike[str] = ".") -> object:
        listed.append(os.path.abspath(os.fspath(path)))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    dataset = open_path(root, use_cache=False)
    monkeypatch.undo()
    folders = [f for f in listed if f == str(root) or f.startswith(str(root) + os.sep)]
    assert sorted(folders) == sorted(set(folders))  # every folder once
    assert {os.path.relpath(f, root) for f in folders} == {".", "a", os.path.join("a", "sag"), "b"}
    descriptions = sorted(s.description for case in dataset.cases for s in case.series)
    assert descriptions == ["linked", "sag", "sag2"]  # the linked volume is read; DICOM series both


def test_the_listing_flags_links_and_the_scan_leaves_them_out(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    found = walk_files(root, include_links=True)
    names = [os.path.relpath(f.path, root) for f in found]
    assert "linked.nii.gz" in names and not any(n.startswith(".") for n in names)
    link = next(f for f in found if f.path.endswith("linked.nii.gz"))
    assert link.link and link.size == os.stat(tmp_path / "outside.nii.gz").st_size
    assert [f.path for f in walk_files(root)] == [f.path for f in found if not f.link]
