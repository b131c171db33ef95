"""DICOM overlay planes (60xx): read from the real Siemens file and from written files whose
overlays are offset, truncated, oversized or embedded in the pixel data; bound as a layer on
their slice."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lumbarview.io.dicom.overlays import may_have_overlays, read_overlays
from lumbarview.services.case_loader import load_case
from lumbarview.services.dicom_overlays import OVERLAY_SCHEME, bind_dicom_overlays
from lumbarview.services.open_dataset import open_path
from tests.dicom_helpers import sagittal, write_series

SIEMENS = "pydicom-testfiles/pydicom-3.0.2/examples_overlay.dcm"


@pytest.mark.shared_data
def test_the_siemens_overlay_is_read_bit_for_bit(shared_data: Path) -> None:
    path = shared_data / SIEMENS
    ds = pydicom.dcmread(path)
    assert may_have_overlays(path)
    planes, issues = read_overlays(path, ds.Rows, ds.Columns)
    assert issues == []
    (plane,) = planes
    assert plane.group == 0x6000 and plane.kind == "G" and "Siemens" in plane.description
    # pydicom's own reader (independent of ours) as the reference; origin (1, 1): no shift.
    np.testing.assert_array_equal(plane.bits, ds.overlay_array(0x6000).astype(bool))
    assert plane.bits.sum() == 222


@pytest.mark.shared_data
def test_the_siemens_overlay_is_a_layer_on_its_slice(shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(shared_data / SIEMENS, tmp_path / "overlay.dcm")
    dataset = open_path(str(tmp_path), use_cache=False)
    (case,) = dataset.cases
    load_case(case)
    (overlay,) = [m for m in case.label_maps if m.scheme.name == OVERLAY_SCHEME]
    image = case.stacks()[0]
    assert overlay.bound_to == image.uid and overlay.stack.geometry.shape_kji == (1, 300, 484)
    np.testing.assert_allclose(overlay.stack.geometry.ijk_to_lps, image.geometry.ijk_to_lps)
    assert overlay.stack.pixels().sum() == 222
    assert bind_dicom_overlays(case) == 0  # once per stack
    assert len([m for m in case.label_maps if m.scheme.name == OVERLAY_SCHEME]) == 1


def _with_overlay(path: Path, rows: int, cols: int, bits: np.ndarray | None, origin: tuple[int, int] = (1, 1),
                  data: bytes | None = None, bits_allocated: int = 1) -> None:
    ds = pydicom.dcmread(path)
    ds.add_new((0x6002, 0x0010), "US", rows)
    ds.add_new((0x6002, 0x0011), "US", cols)
    ds.add_new((0x6002, 0x0040), "CS", "R")
    ds.add_new((0x6002, 0x0050), "SS", list(origin))
    ds.add_new((0x6002, 0x0100), "US", bits_allocated)
    ds.add_new((0x6002, 0x0102), "US", 0)
    ds.add_new((0x6002, 0x1500), "LO", "lesion")
    if data is None and bits is not None:
        data = np.packbits(bits.astype(np.uint8).ravel(), bitorder="little").tobytes()
    if data is not None:
        ds.add_new((0x6002, 0x3000), "OW", data + b"\0" * (len(data) % 2))
    ds.save_as(path)


def test_an_overlay_with_an_origin_lands_shifted(tmp_path: Path) -> None:
    (path, *_rest) = write_series(tmp_path, sagittal(n=2, rows=24, cols=20), "SAG")
    bits = np.zeros((4, 6), dtype=bool)
    bits[0, 0] = bits[3, 5] = True
    _with_overlay(path, 4, 6, bits, origin=(10, 5))  # 1-based row 10, column 5
    planes, issues = read_overlays(path, 24, 20)
    assert issues == []
    assert planes[0].name == "DICOM overlay 6002: lesion"
    assert sorted(map(tuple, np.argwhere(planes[0].bits))) == [(9, 4), (12, 9)]


def test_an_overlay_hanging_off_the_image_is_clipped(tmp_path: Path) -> None:
    (path, *_rest) = write_series(tmp_path, sagittal(n=2, rows=24, cols=20), "SAG")
    _with_overlay(path, 10, 10, np.ones((10, 10), dtype=bool), origin=(20, -2))
    (plane,), _ = read_overlays(path, 24, 20)
    # 0-based row 19, column -3: rows 19..23 and columns 0..6 of the 10 x 10 square are on the image.
    assert plane.bits.sum() == 5 * 7 and plane.bits[19:, :7].all()


@pytest.mark.parametrize("rows, cols, data, bits_allocated, code", [
    (24, 20, b"\xff" * 10, 1, "dicom.overlay-truncated"),  # 480 bits need 60 bytes
    (60000, 60000, b"\xff" * 64, 1, "dicom.overlay-too-large"),
    (24, 20, None, 16, "dicom.overlay-not-read"),  # bits in the pixel data (retired)
    (0, 20, b"\xff" * 64, 1, "dicom.overlay-bad-size"),
])
def test_damaged_overlays_are_issues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, cols: int,
                                     data: bytes | None, bits_allocated: int, code: str) -> None:
    monkeypatch.setenv("LUMBARVIEW_MAX_IMAGE_PIXELS", "1000000")
    (path, *_rest) = write_series(tmp_path, sagittal(n=2, rows=24, cols=20), "SAG")
    _with_overlay(path, rows, cols, None, data=data, bits_allocated=bits_allocated)
    planes, issues = read_overlays(path, 24, 20)
    assert planes == [] and [i.code for i in issues] == [code]
    assert all(str(path) == i.path for i in issues)


def test_a_damaged_overlay_does_not_stop_the_case(tmp_path: Path) -> None:
    paths = write_series(tmp_path, sagittal(n=3, rows=24, cols=20), "SAG")
    _with_overlay(paths[0], 24, 20, None, data=b"\x01" * 4)
    good = np.zeros((24, 20), dtype=bool)
    good[5:8, 5:8] = True
    _with_overlay(paths[2], 24, 20, good)
    dataset = open_path(str(tmp_path), use_cache=False)
    (case,) = dataset.cases
    load_case(case)
    (overlay,) = [m for m in case.label_maps if m.scheme.name == OVERLAY_SCHEME]
    assert overlay.stack.pixels().sum() == 9
    assert overlay.stack.meta["slice_index"] == case.stacks()[0].meta["files"].index(str(paths[2]))
    assert "dicom.overlay-truncated" in {i.code for i in case.issues}


def test_files_without_overlays_are_not_parsed(tmp_path: Path) -> None:
    (path, *_rest) = write_series(tmp_path, sagittal(n=2, rows=24, cols=20), "SAG")
    assert not may_have_overlays(path)
    assert not may_have_overlays(tmp_path / "missing.dcm")
