"""DICOM loading on series written by the tests: every irregularity is found and reported."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lumbarview.core.errors import NothingToOpenError
from lumbarview.core.geometry import SlicePlane
from lumbarview.core.types import StudyCollection
from lumbarview.services.open_study import open_dicom
from tests.dicom_helpers import axial_block, ramp, sagittal, write_series


def _codes(c: StudyCollection) -> set[str]:
    return {i.code for i in c.all_issues()}


def test_shuffled_file_order_is_sorted_by_position(tmp_path: Path) -> None:
    g = sagittal(n=9)
    pix = ramp(g.shape_kji)
    rng = np.random.default_rng(3)
    order = [int(i) for i in rng.permutation(9)]
    # File names in an order unrelated to position, instance numbers scrambled too.
    write_series(tmp_path, g, "sag", pixels=pix, order=order, name_pattern="x{k:02d}_{instance}.ima")
    for p in tmp_path.iterdir():
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = int(rng.integers(1, 1000))
        ds.save_as(p)
    c = open_dicom(tmp_path, use_cache=False)
    (stack,) = c.all_stacks()
    assert stack.geometry.shape_kji == g.shape_kji
    assert np.allclose(stack.geometry.ijk_to_lps, g.ijk_to_lps, atol=1e-4)
    assert np.array_equal(stack.pixels(), pix)
    assert not any(i.severity.name != "INFO" for i in c.all_issues())


def test_angled_axial_blocks_split_into_stacks_each_regular(tmp_path: Path) -> None:
    blocks = [axial_block(-60, 18), axial_block(-20, 5), axial_block(20, -8)]
    instance = 1
    for n, b in enumerate(blocks):
        write_series(tmp_path, b, "ax", first_instance=instance, pixels=ramp(b.shape_kji, n),
                     name_pattern="AX_{instance:03d}.ima")
        instance += 4
    c = open_dicom(tmp_path, use_cache=False)
    (series,) = c.all_series()
    assert len(series.stacks) == 3
    found = sorted(series.stacks, key=lambda s: s.geometry.centre_lps()[2])
    for stack, block in zip(found, blocks, strict=True):
        assert stack.geometry.shape_kji == (4, 16, 16)
        assert np.allclose(stack.geometry.ijk_to_lps, block.ijk_to_lps, atol=1e-4)
    assert "dicom.angled-blocks" in _codes(c)
    assert series.n_slices == 12


def test_missing_slice_is_filled_black_and_reported(tmp_path: Path) -> None:
    g = sagittal(n=8)
    pix = ramp(g.shape_kji)
    write_series(tmp_path, g, "sag", pixels=pix)
    os.remove(tmp_path / "IM0004.dcm")  # k = 3
    c = open_dicom(tmp_path, use_cache=False)
    (stack,) = c.all_stacks()
    assert stack.n_slices == 8
    assert np.allclose(stack.geometry.ijk_to_lps, g.ijk_to_lps, atol=1e-4)
    data = stack.pixels()
    assert not data[3].any()
    assert np.array_equal(data[4], pix[4])
    assert "dicom.missing-slices" in _codes(c)


def test_duplicate_positions_keep_one_and_warn(tmp_path: Path) -> None:
    g = sagittal(n=6)
    write_series(tmp_path, g, "sag")
    shutil.copy(tmp_path / "IM0002.dcm", tmp_path / "copy_of_2.dcm")
    ds = pydicom.dcmread(tmp_path / "copy_of_2.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 99
    ds.save_as(tmp_path / "copy_of_2.dcm")
    c = open_dicom(tmp_path, use_cache=False)
    (stack,) = c.all_stacks()
    assert stack.n_slices == 6
    issue = next(i for i in c.all_issues() if i.code == "dicom.duplicate-position")
    assert issue.severity.name == "WARNING" and "copy_of_2" in (issue.path or "")


def test_uneven_spacing_is_reported(tmp_path: Path) -> None:
    g = sagittal(n=6)
    write_series(tmp_path, g, "sag")
    ds = pydicom.dcmread(tmp_path / "IM0004.dcm")
    pos = [float(v) for v in ds.ImagePositionPatient]
    pos[0] -= 1.0  # one slice 1 mm off the 4 mm grid
    ds.ImagePositionPatient = pos
    ds.save_as(tmp_path / "IM0004.dcm")
    c = open_dicom(tmp_path, use_cache=False)
    assert "dicom.uneven-spacing" in _codes(c)
    assert len(c.all_stacks()) == 1


def test_junk_files_are_skipped_with_an_issue_and_the_rest_opens(tmp_path: Path) -> None:
    g = sagittal(n=5)
    write_series(tmp_path / "series", g, "sag")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 junk")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "series" / "garbage.ima").write_bytes(os.urandom(4000))
    c = open_dicom(tmp_path, use_cache=False)
    assert len(c.all_stacks()) == 1 and c.all_stacks()[0].n_slices == 5
    skipped = [i for i in c.all_issues() if i.code == "dicom.not-dicom"]
    assert sum(int(i.message.split()[1]) for i in skipped) == 4
    assert all(i.severity.name == "INFO" for i in skipped)


def test_truncated_pixel_data_blacks_one_slice_and_keeps_the_rest(tmp_path: Path) -> None:
    g = sagittal(n=5)
    pix = ramp(g.shape_kji)
    write_series(tmp_path, g, "sag", pixels=pix)
    victim = tmp_path / "IM0003.dcm"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 300])
    c = open_dicom(tmp_path, use_cache=False)
    (stack,) = c.all_stacks()
    out = stack.pixels()
    assert not out[2].any()
    assert np.array_equal(out[1], pix[1]) and np.array_equal(out[3], pix[3])
    issue = next(i for i in stack.decode_issues if i.code == "dicom.truncated-pixels")
    assert issue.severity.name == "ERROR" and issue.path == str(victim)
    assert "re-copy" in issue.message


def test_prone_series_gets_different_orientation_letters(tmp_path: Path) -> None:
    supine = sagittal(n=3)
    prone = sagittal(n=3, row_dir=(0, -1, 0))
    write_series(tmp_path / "hfs", supine, "sag-hfs", patient_position="HFS")
    write_series(tmp_path / "hfp", prone, "sag-hfp", number=2, patient_position="HFP")
    c = open_dicom(tmp_path, use_cache=False)
    by_pos = {s.meta["patient_position"]: s for s in c.all_stacks()}
    hfs = by_pos["HFS"].geometry.slice_plane(0).edge_letters()
    hfp = by_pos["HFP"].geometry.slice_plane(0).edge_letters()
    assert (hfs.left, hfs.right, hfs.top, hfs.bottom) == ("A", "P", "S", "I")
    assert (hfp.left, hfp.right, hfp.top, hfp.bottom) == ("P", "A", "S", "I")


def test_twelve_bit_data_with_high_garbage_bits_and_rescale(tmp_path: Path) -> None:
    g = sagittal(n=3)
    pix = ramp(g.shape_kji)
    write_series(tmp_path, g, "sag", pixels=pix, rescale=(2.0, -100.0))
    path = tmp_path / "IM0001.dcm"
    ds = pydicom.dcmread(path)
    raw = np.frombuffer(ds.PixelData, dtype="<u2").copy()
    raw |= 0xF000  # bits above BitsStored = 12 (overlay/garbage in old files)
    ds.PixelData = raw.tobytes()
    ds.save_as(path)
    (stack,) = open_dicom(tmp_path, use_cache=False).all_stacks()
    out = stack.pixels()
    assert np.array_equal(out, pix.astype(np.int32) * 2 - 100)
    # Same as pydicom's own decoding of that file, then rescaled.
    ref = pydicom.dcmread(path).pixel_array.astype(np.int32) * 2 - 100
    assert np.array_equal(out[0], ref)


def test_mixed_matrix_sizes_in_one_study(tmp_path: Path) -> None:
    write_series(tmp_path / "a", sagittal(n=3, rows=32, cols=32), "a", number=1)
    write_series(tmp_path / "b", sagittal(n=3, rows=32, cols=31), "b", number=2)
    c = open_dicom(tmp_path, use_cache=False)
    assert "dicom.mixed-matrix" in _codes(c)
    assert sorted(s.geometry.shape_kji[2] for s in c.all_stacks()) == [31, 32]


def test_black_padding_slice_at_the_end_is_reported(tmp_path: Path) -> None:
    g = sagittal(n=6)
    pix = ramp(g.shape_kji)
    pix[-1] = 0
    write_series(tmp_path, g, "sag", pixels=pix)
    (stack,) = open_dicom(tmp_path, use_cache=False).all_stacks()
    stack.pixels()
    assert [i.code for i in stack.decode_issues] == ["dicom.padding-slice"]


def test_padding_file_without_geometry_is_left_out(tmp_path: Path) -> None:
    g = sagittal(n=4)
    write_series(tmp_path, g, "sag")
    ds = pydicom.dcmread(tmp_path / "IM0001.dcm")
    del ds.ImagePositionPatient
    del ds.ImageOrientationPatient
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.PixelData = bytes(len(ds.PixelData))
    ds.save_as(tmp_path / "pad_005.dcm")
    c = open_dicom(tmp_path, use_cache=False)
    (stack,) = c.all_stacks()
    assert stack.n_slices == 4
    assert "dicom.padding-slice" in _codes(c)


def test_enhanced_mr_multiframe_uses_per_frame_positions(tmp_path: Path) -> None:
    g = sagittal(n=5, rows=12, cols=10)
    pix = ramp(g.shape_kji)
    first = write_series(tmp_path / "tmp", g, "sag", pixels=pix)[0]
    ds = pydicom.dcmread(first)
    ds.SOPClassUID = pydicom.uid.EnhancedMRImageStorage
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.NumberOfFrames = 5
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
        delattr(ds, kw)
    shared = pydicom.Dataset()
    orient = pydicom.Dataset()
    orient.ImageOrientationPatient = [float(v) for v in (*g.row_direction_lps, *g.column_direction_lps)]
    measures = pydicom.Dataset()
    measures.PixelSpacing = [0.9, 0.8]
    measures.SliceThickness = 4.0
    shared.PlaneOrientationSequence = [orient]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in [3, 0, 4, 1, 2]:  # frames stored out of position order
        item = pydicom.Dataset()
        pos = pydicom.Dataset()
        pos.ImagePositionPatient = [float(v) for v in g.index_to_lps((0, 0, k))]
        item.PlanePositionSequence = [pos]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = pix[[3, 0, 4, 1, 2]].astype("<u2").tobytes()
    (tmp_path / "emr").mkdir()
    ds.save_as(tmp_path / "emr" / "enhanced.dcm")
    shutil.rmtree(tmp_path / "tmp")
    (stack,) = open_dicom(tmp_path, use_cache=False).all_stacks()
    assert np.allclose(stack.geometry.ijk_to_lps, g.ijk_to_lps, atol=1e-4)
    assert np.array_equal(stack.pixels(), pix)


def test_a_folder_without_dicom_is_a_typed_error_that_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(NothingToOpenError) as info:
        open_dicom(tmp_path, use_cache=False)
    text = str(info.value)
    assert "no DICOM image" in text and "Point lumbarview at" in text


def test_cross_reference_between_series_with_different_frames_of_reference(tmp_path: Path) -> None:
    sag = sagittal(n=7, rows=40, cols=40)
    ax = axial_block(40.0, 12, n=3, size=30)
    write_series(tmp_path / "sag", sag, "sag")
    write_series(tmp_path / "ax", ax, "ax", number=2)
    c = open_dicom(tmp_path, use_cache=False)
    stacks = {s.meta["description"]: s for s in c.all_stacks()}
    assert stacks["sag"].meta["frame_of_reference_uid"] != stacks["ax"].meta["frame_of_reference_uid"]
    sag_plane: SlicePlane = stacks["sag"].geometry.slice_plane(0)  # x = -14 mm, inside the axial FOV
    seg = sag_plane.intersection(stacks["ax"].geometry.slice_plane(1))
    assert seg is not None and seg.length_mm > 5
