from __future__ import annotations

import os
import time
from pathlib import Path

import pydicom

from lumbarview.io.dicom.scan import IndexCache, scan_paths
from lumbarview.services.open_study import open_dicom
from tests.dicom_helpers import sagittal, write_series


def test_reopen_uses_the_cache_and_notices_changes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_series(data, sagittal(n=6), "sag")
    (data / "notes.txt").write_text("not dicom")
    cache = IndexCache(tmp_path / "cache")
    first = scan_paths(data, cache=cache)
    assert first.n_from_cache == 0 and len(first.headers) == 6
    second = scan_paths(data, cache=cache)
    assert second.n_from_cache == 7  # the text file's verdict is remembered too
    assert sorted(h.path for h in second.headers) == sorted(h.path for h in first.headers)
    assert [i.code for i in second.issues] == [i.code for i in first.issues]

    # A changed file is read again: new description, same size.
    target = data / "IM0003.dcm"
    ds = pydicom.dcmread(target)
    ds.SeriesDescription = "sbg"  # same length as "sag"
    stat = target.stat()
    ds.save_as(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000))
    third = scan_paths(data, cache=cache)
    assert third.n_from_cache == 6
    assert {h.series_description for h in third.headers} == {"sag", "sbg"}

    # A removed file disappears from the result and from the index.
    (data / "IM0001.dcm").unlink()
    fourth = scan_paths(data, cache=cache)
    assert len(fourth.headers) == 5
    assert str(data / "IM0001.dcm") not in cache.load(str(data))


def test_a_damaged_index_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_series(data, sagittal(n=3), "sag")
    cache = IndexCache(tmp_path / "cache")
    scan_paths(data, cache=cache)
    (index_file,) = (tmp_path / "cache").glob("index-*.json")
    index_file.write_text('{"version": 3, "root": "x", "entr')
    again = scan_paths(data, cache=cache)
    assert len(again.headers) == 3 and again.n_from_cache == 0
    assert len(cache.load(str(data))) == 3


def test_the_cache_never_writes_into_the_dataset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_series(data, sagittal(n=3), "sag")
    before = sorted(p.name for p in data.iterdir())
    mtimes = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
    time.sleep(0.01)
    open_dicom(data, cache_dir=tmp_path / "cache")
    open_dicom(data, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in data.iterdir()) == before
    assert {p.name: p.stat().st_mtime_ns for p in data.iterdir()} == mtimes


def test_parallel_scan_matches_the_serial_scan(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for n in range(3):
        write_series(data / f"s{n}", sagittal(n=150, rows=8, cols=8), f"sag{n}", number=n + 1)
    serial = scan_paths(data, workers=1)
    parallel = scan_paths(data, workers=2)
    assert len(serial.headers) == 450
    assert sorted(h.to_row() for h in serial.headers) == sorted(h.to_row() for h in parallel.headers)
