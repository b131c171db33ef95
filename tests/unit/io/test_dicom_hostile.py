"""Hostile DICOM input: one bad file is one issue, never a stopped dataset.

Each damaged file is built here from a good synthetic slice (raw bytes where pydicom refuses
to write the damage) and put beside a good series: the series still opens, and the issue names
the bad file.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from lumbarview.core.geometry import GeometryError, VolumeGeometry
from lumbarview.core.limits import ResourceLimitError
from lumbarview.core.types import StudyCollection
from lumbarview.io.dicom.dicomdir import is_inside, read_dicomdir
from lumbarview.io.dicom.headers import inflate_bounded, read_header
from lumbarview.io.dicom.pixels import SliceSource, decode_stack
from lumbarview.io.dicom.scan import IndexCache, _index_head, scan_paths
from lumbarview.services.open_study import open_dicom
from tests.dicom_helpers import sagittal, write_series

REPO = Path(__file__).resolve().parents[3]
N_GOOD = 6


def _element(raw: bytes, tag: int, vr: bytes) -> tuple[int, int]:
    """Offset and value length of a short-form explicit VR little endian element."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    at = raw.find(head)
    assert at >= 0, f"{tag:08X} not found"
    return at, struct.unpack("<H", raw[at + 6:at + 8])[0]


def patch(raw: bytes, tag: int, vr: bytes, value: bytes, new_vr: bytes | None = None) -> bytes:
    """Replace one element's value (any length, odd allowed) and optionally its VR."""
    at, length = _element(raw, tag, vr)
    new = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + (new_vr or vr) + struct.pack("<H", len(value)) + value
    return raw[:at] + new + raw[at + 8 + length:]


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    folder = tmp_path / "good"
    write_series(folder, sagittal(n=N_GOOD), "sag")
    return folder


def _slice(good: Path) -> bytes:
    return (good / "IM0001.dcm").read_bytes()


def _deflated(good: Path) -> bytes:
    ds = pydicom.dcmread(good / "IM0001.dcm")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.SOPInstanceUID = ds.SOPInstanceUID[:60] + ".99"
    ds.InstanceNumber = 99
    target = good.parent / "deflated.tmp"
    ds.save_as(target, enforce_file_format=True)
    raw = target.read_bytes()
    target.unlink()
    return raw


def _meta_end(raw: bytes) -> int:
    assert raw[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) File Meta Information Group Length
    return 144 + int(struct.unpack("<I", raw[140:144])[0])


# -- one builder per class of damage: (name, bytes) -------------------------------------------
def odd_length_meta(raw: bytes) -> bytes:
    """(0002,0000) UL with a 5-byte value: pydicom raises BytesLengthException."""
    return raw[:138] + struct.pack("<H", 5) + raw[140:144] + b"\x00" + raw[144:]


def unknown_vr(raw: bytes) -> bytes:
    """(0002,0010) Transfer Syntax UID with VR 'ZZ': pydicom raises NotImplementedError."""
    at, _ = _element(raw, 0x00020010, b"UI")
    return raw[:at + 4] + b"ZZ" + raw[at + 6:]


def broken_deflate(raw: bytes) -> bytes:
    end = _meta_end(raw)
    return raw[:end] + bytes(b ^ 0x5A for b in raw[end:end + 40]) + raw[end + 40:]


def truncated_deflate(raw: bytes) -> bytes:
    return raw[:_meta_end(raw) + 30]


def infinite_position(raw: bytes) -> bytes:
    return patch(raw, 0x00200032, b"DS", b"inf\\-40\\60 ")


def huge_orientation(raw: bytes) -> bytes:
    return patch(raw, 0x00200037, b"DS", b"1e308\\1e308\\0\\0\\0\\-1")


def _codes(c: StudyCollection, path: Path) -> set[str]:
    return {i.code for i in c.all_issues() if i.path == str(path)}


def _open(folder: Path) -> StudyCollection:
    return open_dicom(folder, use_cache=False)


@pytest.mark.parametrize(("builder", "code"), [
    (odd_length_meta, "dicom.corrupt-header"),
    (unknown_vr, "dicom.corrupt-header"),
])
def test_a_damaged_header_is_one_issue(good: Path, builder, code: str) -> None:  # type: ignore[no-untyped-def]
    bad = good / "bad.dcm"
    bad.write_bytes(builder(_slice(good)))
    c = _open(good)
    (stack,) = c.all_stacks()
    assert stack.n_slices == N_GOOD
    assert code in _codes(c, bad)
    issue = next(i for i in c.all_issues() if i.path == str(bad))
    assert issue.severity.name == "ERROR" and "re-copy" in issue.message


@pytest.mark.parametrize("builder", [broken_deflate, truncated_deflate])
def test_a_broken_deflate_stream_is_one_issue(good: Path, builder) -> None:  # type: ignore[no-untyped-def]
    bad = good / "bad.dcm"
    bad.write_bytes(builder(_deflated(good)))
    c = _open(good)
    assert [s.n_slices for s in c.all_stacks()] == [N_GOOD]
    assert "dicom.corrupt-deflate" in _codes(c, bad)


def test_a_good_deflated_file_decodes_like_its_source(good: Path, tmp_path: Path) -> None:
    folder = tmp_path / "deflated"
    folder.mkdir()
    (folder / "one.dcm").write_bytes(_deflated(good))
    (stack,) = _open(folder).all_stacks()
    expected = pydicom.dcmread(good / "IM0001.dcm").pixel_array
    assert np.array_equal(stack.pixels()[0], expected)


def test_inflation_stops_at_its_bound() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = bomb.compress(bytes(64 << 20)) + bomb.flush()
    assert len(data) < 100_000
    t0 = time.perf_counter()
    with pytest.raises(ResourceLimitError, match="inflates to more than"):
        inflate_bounded(data, 2 << 20, "bomb.dcm")
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(("builder", "code"), [
    (infinite_position, "dicom.missing-geometry"),
    (huge_orientation, "dicom.invalid-geometry"),
])
def test_a_slice_with_non_finite_geometry_is_left_out(good: Path, builder, code: str) -> None:  # type: ignore[no-untyped-def]
    bad = good / "bad.dcm"
    ds = pydicom.dcmread(good / "IM0003.dcm")
    ds.SOPInstanceUID = ds.SOPInstanceUID[:60] + ".98"
    ds.ImagePositionPatient = [-14.0, -40.0, 60.0]  # same file name order, a fresh position
    ds.save_as(bad)
    bad.write_bytes(builder(bad.read_bytes()))
    c = _open(good)
    (stack,) = c.all_stacks()
    assert stack.n_slices == N_GOOD
    assert np.all(np.isfinite(stack.geometry.ijk_to_lps))
    assert code in _codes(c, bad)


@pytest.mark.parametrize("builder", [infinite_position, huge_orientation])
def test_a_series_of_only_bad_geometry_opens_without_patient_geometry(good: Path, tmp_path: Path,
                                                                     builder) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "alone"
    folder.mkdir()
    (folder / "bad.dcm").write_bytes(builder(_slice(good)))
    c = _open(folder)
    (stack,) = c.all_stacks()
    assert stack.meta["has_patient_geometry"] is False
    assert "dicom.no-geometry" in {i.code for i in c.all_issues()}


@pytest.mark.parametrize("value", [b"nan\\0.9 ", b"0\\0 ", b"-0.8\\-0.9 ", b"inf\\0.9 ", b"1e308\\1 "])
def test_bad_pixel_spacing_falls_back_to_1mm_with_a_warning(good: Path, tmp_path: Path, value: bytes) -> None:
    folder = tmp_path / "spacing"
    folder.mkdir()
    for p in sorted(good.iterdir()):
        (folder / p.name).write_bytes(patch(p.read_bytes(), 0x00280030, b"DS", value))
    c = _open(folder)
    (stack,) = c.all_stacks()
    di, dj, _ = stack.geometry.spacing_mm
    assert (di, dj) == pytest.approx((1.0, 1.0))
    assert "dicom.no-pixel-spacing" in {i.code for i in c.all_issues()}


def test_geometry_refuses_non_finite_input_with_a_typed_error() -> None:
    with pytest.raises(GeometryError):
        VolumeGeometry((1, 2, 2), np.diag([1.0, 1.0, np.inf, 1.0]))
    with pytest.raises(GeometryError):  # the determinant overflows
        VolumeGeometry((1, 2, 2), np.diag([1e200, 1e200, 1e200, 1.0]))
    with pytest.raises(GeometryError):
        VolumeGeometry.from_directions((1, 2, 2), (0, 0, 0), (1, 0, 0), (0, 1, 0), (0.0, 1.0, 1.0))
    with pytest.raises(GeometryError):
        VolumeGeometry.from_directions((1, 2, 2), (np.nan, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 1))
    # A direction of huge but finite components is still a direction (no overflow to NaN).
    g = VolumeGeometry.from_directions((1, 2, 2), (0, 0, 0), (1e308, 0, 0), (0, 1e308, 0), (1, 1, 1))
    assert np.allclose(g.row_direction_lps, (1, 0, 0))


def test_a_huge_pixel_claim_is_refused_at_once(good: Path) -> None:
    ds = pydicom.dcmread(good / "IM0001.dcm")
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
    ds.SeriesInstanceUID = ds.SeriesInstanceUID[:60] + ".97"
    bad = good / "huge.dcm"
    ds.save_as(bad)
    t0 = time.perf_counter()
    c = _open(good)
    assert time.perf_counter() - t0 < 5.0
    assert [s.n_slices for s in c.all_stacks()] == [N_GOOD]
    issue = next(i for i in c.all_issues() if i.path == str(bad))
    assert issue.code == "dicom.too-large" and "LUMBARVIEW_MAX_IMAGE_PIXELS" in issue.message
    # The decoder checks too, before allocating (a header from an older index, say).
    header = read_header(good / "IM0001.dcm")
    claimed = replace(header, rows=65535, cols=65535)
    with pytest.raises(ResourceLimitError):
        decode_stack([SliceSource(claimed)] * 1000, (65535, 65535))


def test_a_budget_refusal_is_not_remembered(good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = IndexCache(tmp_path / "cache")
    monkeypatch.setenv("LUMBARVIEW_MAX_IMAGE_PIXELS", "100")
    refused = scan_paths(good, cache=cache)
    assert not refused.headers and {i.code for i in refused.issues} == {"dicom.too-large"}
    monkeypatch.delenv("LUMBARVIEW_MAX_IMAGE_PIXELS")
    assert len(scan_paths(good, cache=cache).headers) == N_GOOD


# -- DICOMDIR ----------------------------------------------------------------------------------
def test_a_dicomdir_with_an_odd_length_value_falls_back_to_the_folder(good: Path, shared_data: Path) -> None:
    raw = (shared_data / "pydicom-testfiles/pydicom-3.0.2/dicomdirtests/DICOMDIR").read_bytes()
    target = good / "DICOMDIR"
    target.write_bytes(odd_length_meta(raw))
    listing = read_dicomdir(target)
    assert not listing.files and [i.code for i in listing.issues] == ["dicomdir.unreadable"]
    c = open_dicom(target, use_cache=False)
    assert [s.n_slices for s in c.all_stacks()] == [N_GOOD]
    assert "dicomdir.unreadable" in {i.code for i in c.all_issues()}


@pytest.mark.parametrize("reference", [b"..\\..\\..\\etc\\pass", b"/etc/passwd      "])
def test_a_dicomdir_reference_outside_its_folder_is_not_read(tmp_path: Path, shared_data: Path,
                                                             reference: bytes) -> None:
    raw = (shared_data / "pydicom-testfiles/pydicom-3.0.2/dicomdirtests/DICOMDIR").read_bytes()
    original = b"77654033\\CR1\\6154"  # the first image's (0004,1500) Referenced File ID
    assert raw.count(original) == 1 and len(reference) == len(original)  # offsets stay valid
    folder = tmp_path / "export"
    folder.mkdir()
    target = folder / "DICOMDIR"
    target.write_bytes(raw.replace(original, reference))
    listing = read_dicomdir(target)
    # pydicom's FileSet itself refuses such a DICOMDIR (PermissionError) and our own check
    # refuses the reference where it does not: either way an issue, and nothing outside listed.
    codes = {i.code for i in listing.issues}
    assert codes & {"dicomdir.outside-reference", "dicomdir.unreadable"}, listing.issues
    assert all(os.path.realpath(f).startswith(str(folder.resolve()) + os.sep) for f in listing.files)
    assert not any("passwd" in f or "pass" in os.path.basename(f) for f in listing.files)


def test_the_containment_check_follows_dots_and_links(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "link").symlink_to("/etc")
    real = os.path.realpath(folder)
    assert is_inside(str(folder / "sub" / "IM1"), real)
    assert not is_inside(str(folder / "sub" / ".." / ".." / "x"), real)
    assert not is_inside("/etc/passwd", real)
    assert not is_inside(str(folder / "link" / "passwd"), real)


# -- index cache -------------------------------------------------------------------------------
def _rewrite(index_file: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Apply ``change`` to the parsed index and write it back with a valid checksum, so that
    the record checks (not the checksum) must find the damage."""
    body = index_file.read_bytes().partition(b"\n")[2]
    doc = orjson.loads(body)
    change(doc)
    body = orjson.dumps(doc)
    index_file.write_bytes(_index_head(body) + body)


def _payload(doc: dict, i: int = 0) -> list:  # type: ignore[type-arg]
    return orjson.loads(doc["payloads"][i])  # type: ignore[no-any-return]


def _set_payload(doc: dict, row: list, i: int = 0) -> None:  # type: ignore[type-arg]
    doc["payloads"][i] = orjson.dumps(row).decode()


def _wrong_type(doc: dict) -> None:  # type: ignore[type-arg]
    row = _payload(doc)
    row[12] = "24"  # rows as text
    _set_payload(doc, row)


def _short_row(doc: dict) -> None:  # type: ignore[type-arg]
    _set_payload(doc, _payload(doc)[:-3])


def _string_out_of_range(doc: dict) -> None:  # type: ignore[type-arg]
    row = _payload(doc)
    row[0] = 10_000
    _set_payload(doc, row)


def _short_frame(doc: dict) -> None:  # type: ignore[type-arg]
    row = _payload(doc)
    row[-1][0][0] = [1.0, 2.0]
    _set_payload(doc, row)


def _negative_offset(doc: dict) -> None:  # type: ignore[type-arg]
    row = _payload(doc)
    row[-5] = -100  # pixel_offset
    _set_payload(doc, row)


DAMAGE = {
    "truncated": lambda f: f.write_bytes(f.read_bytes()[:200]),
    "garbage": lambda f: f.write_bytes(os.urandom(3000)),
    "flipped byte": lambda f: f.write_bytes(f.read_bytes()[:-50] + b"X" + f.read_bytes()[-49:]),
    "json list": lambda f: _rewrite(f, lambda d: d.clear()),
    "column wrong type": lambda f: _rewrite(f, lambda d: d.update(sizes="many")),
    "columns of different lengths": lambda f: _rewrite(f, lambda d: d["mtimes"].pop()),
    "negative size": lambda f: _rewrite(f, lambda d: d["sizes"].__setitem__(0, -5)),
    "strings not text": lambda f: _rewrite(f, lambda d: d["strings"].__setitem__(0, 7)),
    "field wrong type": lambda f: _rewrite(f, _wrong_type),
    "row too short": lambda f: _rewrite(f, _short_row),
    "string number out of range": lambda f: _rewrite(f, _string_out_of_range),
    "frame of wrong length": lambda f: _rewrite(f, _short_frame),
    "negative pixel offset": lambda f: _rewrite(f, _negative_offset),
    "damaged issue record": lambda f: _rewrite(f, lambda d: d["payloads"].__setitem__(-1, '{"severity": 3}')),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_any_damage_to_the_index_is_rebuilt_and_gives_the_cold_answer(good: Path, tmp_path: Path,
                                                                      damage: str) -> None:
    (good / "notes.txt").write_text("not dicom")  # an issue record in the index too
    cold = scan_paths(good)
    cold_rows = sorted(h.to_row() for h in cold.headers)
    cache = IndexCache(tmp_path / "cache")
    scan_paths(good, cache=cache)
    (index_file,) = (tmp_path / "cache").glob("index-*.json")
    DAMAGE[damage](index_file)
    again = scan_paths(good, cache=cache)
    assert sorted(h.to_row() for h in again.headers) == cold_rows
    assert "index.rebuilt" in {i.code for i in again.issues}
    assert {i.code for i in again.issues} - {"index.rebuilt"} == {i.code for i in cold.issues}
    # The damage is gone: the next scans give the same answer, without an issue, and then
    # come from the rebuilt index.
    for _ in range(2):
        later = scan_paths(good, cache=cache)
        assert sorted(h.to_row() for h in later.headers) == cold_rows
        assert "index.rebuilt" not in {i.code for i in later.issues}
    assert later.n_from_cache == len(cold_rows) + 1


# -- a dataset with one bad file of each kind ----------------------------------------------------
def _mixed_dataset(root: Path, shared_data: Path) -> dict[str, Path]:
    source = shared_data / "dcm-qa-decubitus/In/HFS/3_t1_fl2d_sag"
    series = root / "sag"
    shutil.copytree(source, series)
    template = root.parent / "template"
    write_series(template, sagittal(n=2), "other")
    raw = (template / "IM0001.dcm").read_bytes()
    deflated = _deflated(template)
    bad = {
        "odd-length": odd_length_meta(raw),
        "unknown-vr": unknown_vr(raw),
        "broken-deflate": broken_deflate(deflated),
        "infinite-position": infinite_position(raw),
        "huge-orientation": huge_orientation(raw),
        "zero-spacing": patch(raw, 0x00280030, b"DS", b"0\\0 "),
    }
    out = {}
    for name, data in bad.items():
        folder = root / name
        folder.mkdir()
        out[name] = folder / f"{name}.dcm"
        out[name].write_bytes(data)
    return out


def test_a_dataset_with_one_bad_file_of_each_kind_opens_everything_good(tmp_path: Path,
                                                                         shared_data: Path) -> None:
    root = tmp_path / "dataset"
    bad = _mixed_dataset(root, shared_data)
    c = open_dicom(root, use_cache=False)
    sag = [s for s in c.all_stacks() if s.n_slices == 35]
    assert len(sag) == 1 and sag[0].pixels().shape == (35, 256, 256)
    named = {i.path for i in c.all_issues()}
    for name, path in bad.items():
        assert str(path) in named, f"no issue names the {name} file"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUMBARVIEW_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "lumbarview", "info", str(root), "--json"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=str(REPO))
    assert done.returncode == 0, done.stderr[-2000:]
    issues_text = done.stdout
    for path in bad.values():
        assert str(path) in issues_text
