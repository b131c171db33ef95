"""The fast header pass reads what pydicom reads, on real scanners' files and on damaged copies
of them, and a series with a real scanner's header loads in one process with the right pixels."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from lumbarview.io.dicom import headers as headers_module
from lumbarview.io.dicom import scan as scan_module
from lumbarview.io.dicom.headers import read_header
from lumbarview.services.open_study import open_dicom


def _outcome(path: Path, fast: bool) -> Any:
    try:
        return read_header(path, fast=fast)
    except Exception as exc:  # the outcome under test, whatever it is
        return type(exc).__name__


def _takes_fast_pass(path: Path) -> bool:
    return headers_module._read_plain(str(path), path.stat().st_size) is not None


def _real_scanner_file(shared_data: Path) -> Path:
    found = sorted((shared_data / "dcm-qa-decubitus").rglob("*.dcm"))
    if not found:
        pytest.fail("dcm-qa-decubitus holds no .dcm file")
    return found[0]


def test_the_fast_pass_reads_every_shared_file_as_pydicom_does(shared_data: Path) -> None:
    paths = sorted(p for p in shared_data.rglob("*") if p.is_file())
    fast = [p for p in paths if _takes_fast_pass(p)]
    # The real scanners' files (Siemens, with CSA headers and sequences) take the fast pass.
    assert len([p for p in fast if "dcm-qa-decubitus" in p.parts]) >= 30
    assert len(fast) >= 100
    different = [p for p in paths if _outcome(p, fast=True) != _outcome(p, fast=False)]
    assert different == []


def _series_with_real_header(template: Path, folder: Path, n: int, size: int) -> np.ndarray:
    """``n`` slices of random pixels, each a copy of a real scanner's file (private tags and
    sequences kept) with its own pixels, matrix, position and UIDs."""
    folder.mkdir(parents=True)
    ds0 = pydicom.dcmread(template)
    o = np.array([float(v) for v in ds0.ImageOrientationPatient])
    normal = np.cross(o[:3], o[3:])
    origin = np.array([float(v) for v in ds0.ImagePositionPatient])
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 4096, size=(n, size, size), dtype=np.uint16)
    order = list(range(n))
    random.Random(4).shuffle(order)  # file names do not follow the slice order
    for name_index, k in enumerate(order):
        ds = ds0.copy()
        ds.file_meta = ds0.file_meta.copy()
        uid = pydicom.uid.generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [round(float(v), 4) for v in origin + 3.3 * k * normal]
        ds.Rows = ds.Columns = size
        ds.PixelData = pixels[k].tobytes()
        ds.save_as(folder / f"f{name_index:03d}.dcm", enforce_file_format=True)
    return pixels


def test_a_series_with_a_real_header_loads_in_one_process_with_its_pixels(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "series"
    pixels = _series_with_real_header(_real_scanner_file(shared_data), folder, 120, 32)
    files = sorted(folder.iterdir())
    assert all(_takes_fast_pass(p) for p in files)
    assert all(read_header(p) == read_header(p, fast=False) for p in files[:10])

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a 120-file series must load without a process pool")

    monkeypatch.setattr(scan_module, "ProcessPoolExecutor", no_pool)
    (stack,) = open_dicom(folder, use_cache=False).all_stacks()
    loaded = stack.pixels()
    # Slices in position order whatever the file names; values as pydicom decodes them.
    ds0 = pydicom.dcmread(files[0])
    mask = (1 << int(ds0.BitsStored)) - 1
    assert np.array_equal(loaded, pixels & mask)
    reference = np.stack([pydicom.dcmread(f).pixel_array for f in files])
    assert np.array_equal(np.sort(loaded, axis=None), np.sort(reference, axis=None))
    assert np.isclose(stack.geometry.slice_spacing_mm, 3.3, atol=1e-3)


def _damaged_copies(raw: bytes) -> list[tuple[str, bytes]]:
    """Truncations all along the header, and single-byte changes at random places in it
    (element tags, VRs, lengths, values)."""
    rng = random.Random(11)
    pixel_at = raw.rfind(b"\xe0\x7f\x10\x00")
    cuts = sorted({*range(0, 1200, 37), *rng.sample(range(1200, pixel_at + 16), 60)})
    out = [(f"cut at {c}", raw[:c]) for c in cuts]
    for spot in rng.sample(range(128, pixel_at + 12), 120):
        value = rng.choice([0x00, 0xFF, raw[spot] ^ 0x01, raw[spot] ^ 0x80, ord("Q")])
        out.append((f"byte {spot} set to {value}", raw[:spot] + bytes([value]) + raw[spot + 1:]))
    return out


def test_damaged_real_headers_read_as_pydicom_reads_them_or_as_the_intact_file(
        shared_data: Path, tmp_path: Path) -> None:
    """Whatever the damage, the fast pass raises nothing pydicom would not, and a header it
    returns is pydicom's, or (damage inside what both skip) the intact file's."""
    source = _real_scanner_file(shared_data)
    raw = source.read_bytes()
    target = tmp_path / "damaged.dcm"
    target.write_bytes(raw)
    intact = read_header(target)
    st = target.stat()
    failures = []
    for name, data in _damaged_copies(raw):
        target.write_bytes(data)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        fast, slow = _outcome(target, fast=True), _outcome(target, fast=False)
        if fast == slow:
            continue
        if isinstance(fast, str):
            failures.append((name, f"fast pass raised {fast}, pydicom gave {slow!r:.80}"))
            continue
        as_intact = fast.__class__(**{**{f: getattr(fast, f) for f in fast.__dataclass_fields__},
                                      "size": intact.size})
        if as_intact != intact:
            failures.append((name, f"fast pass read a different header; pydicom: {slow!r:.80}"))
    assert failures == []


def test_the_fast_pass_stops_at_a_header_that_never_ends(tmp_path: Path,
                                                         shared_data: Path) -> None:
    """A private element claiming 4 GB, and a sequence that never closes: no hang, no
    exhaustion; pydicom decides what the file is."""
    raw = _real_scanner_file(shared_data).read_bytes()
    pixel_at = raw.rfind(b"\xe0\x7f\x10\x00")
    # An OB element of (almost) 4 GB just before the pixel data.
    huge = raw[:pixel_at] + b"\x29\x00\x10\x10OB\x00\x00" + b"\xfe\xff\xff\xfe" + raw[pixel_at:]
    # A sequence of undefined length whose items never close.
    endless = raw[:pixel_at] + b"\x29\x00\x20\x10SQ\x00\x00\xff\xff\xff\xff" + (
        b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + b"\x10\x00\x20\x00LO\x02\x00AB") * 2000
    for name, data in (("huge", huge), ("endless", endless)):
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(data)
        assert not _takes_fast_pass(path)
        assert _outcome(path, fast=True) == _outcome(path, fast=False)
