"""DICOM loading: lumbarview against bare baselines, measured in the same process.

    python benchmarks/bench_dicom.py [--quick] [--files-48k]

1. Series load: a 200-slice 320x320 12-bit series, written here. lumbarview (scan + assemble +
   decode) against a bare pydicom loop (dcmread + pixel_array + np.stack) and SimpleITK's
   ImageSeriesReader (GDCM file listing + Execute).
2. Header scan of a 10,000-file tree (first scan, no cache) against a bare
   ``dcmread(stop_before_pixels=True)`` loop over the same files.
3. Re-open from the index cache of a 48,000-file tree (only with --files-48k: writing it takes
   about a minute and 80 MB).

Every figure is the median of several repeats with a warm page cache; ratios are what matter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.io.dicom.scan import IndexCache, scan_paths
from lumbarview.phantom.dicom_writer import SeriesSpec, make_uid, slice_dataset, write_block
from lumbarview.services.open_study import open_dicom


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _spec(name: str, number: int = 1) -> SeriesSpec:
    return SeriesSpec(patient_id="BENCH", study_uid=make_uid("bench", "study"),
                      series_uid=make_uid("bench", name), series_number=number, description=name,
                      frame_of_reference_uid=make_uid("bench", "for"), window=(1000, 2000),
                      rescale=(1.0, 0.0))


def write_series(folder: Path, n: int, size: int) -> list[Path]:
    g = VolumeGeometry.from_directions((n, size, size), (0, -150, 150), (0, 1, 0), (0, 0, -1),
                                       (0.9375, 0.9375, 1.0))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, size=(n, size, size), dtype=np.uint16)
    return write_block(folder, pixels, g, _spec(folder.name))


def write_many(folder: Path, n_files: int, per_series: int, size: int = 16) -> None:
    """``n_files`` small single-frame files in series of ``per_series`` slices."""
    g = VolumeGeometry.from_directions((per_series, size, size), (0, 0, 0), (0, 1, 0), (0, 0, -1),
                                       (1.0, 1.0, 1.0))
    pixels = np.zeros((size, size), dtype=np.uint16)
    for start in range(0, n_files, per_series):
        series = start // per_series
        spec = _spec(f"s{series}", series + 1)
        sub = folder / f"{series // 100:03d}" / f"SE{series:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        for k in range(min(per_series, n_files - start)):
            ds = slice_dataset(pixels, g, k, spec, k + 1)
            ds.save_as(sub / f"IM{k:05d}.ima", enforce_file_format=True)


def bench_series(tmp: Path, repeats: int) -> dict[str, float]:
    folder = tmp / "series200"
    files = sorted(str(p) for p in write_series(folder, 200, 320))

    def bare_pydicom() -> np.ndarray:
        return np.stack([pydicom.dcmread(f).pixel_array for f in files])

    def sitk_series() -> np.ndarray:
        import SimpleITK as sitk

        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
        return sitk.GetArrayFromImage(reader.Execute())

    def lumbarview_load() -> np.ndarray:
        (stack,) = open_dicom(folder, use_cache=False).all_stacks()
        return stack.pixels()

    def lumbarview_pixels_only() -> np.ndarray:
        (stack,) = collection.all_stacks()
        stack.release()
        return stack.pixels()

    collection = open_dicom(folder, use_cache=False)
    ref = bare_pydicom()
    got = lumbarview_load()
    assert np.array_equal(np.sort(ref.ravel()[:1000]), np.sort(got.ravel()[:1000])) and ref.shape == got.shape
    out = {
        "series_bare_pydicom_s": median_seconds(bare_pydicom, repeats),
        "series_simpleitk_s": median_seconds(sitk_series, repeats),
        "series_lumbarview_s": median_seconds(lumbarview_load, repeats),
        "series_lumbarview_pixels_only_s": median_seconds(lumbarview_pixels_only, repeats),
    }
    out["series_speedup_vs_pydicom"] = out["series_bare_pydicom_s"] / out["series_lumbarview_s"]
    out["series_speedup_vs_simpleitk"] = out["series_simpleitk_s"] / out["series_lumbarview_s"]
    return out


def bench_scan(tmp: Path, n_files: int, repeats: int) -> dict[str, float]:
    folder = tmp / f"tree{n_files}"
    write_many(folder, n_files, per_series=20)
    files = [os.path.join(d, f) for d, _, names in os.walk(folder) for f in sorted(names)]

    def bare_loop() -> int:
        return len([pydicom.dcmread(f, stop_before_pixels=True) for f in files])

    def lumbarview_scan() -> int:
        return len(scan_paths(folder).headers)

    assert bare_loop() == lumbarview_scan() == n_files
    out = {
        f"scan{n_files}_bare_loop_s": median_seconds(bare_loop, repeats),
        f"scan{n_files}_lumbarview_s": median_seconds(lumbarview_scan, repeats),
    }
    out[f"scan{n_files}_speedup_vs_bare"] = (out[f"scan{n_files}_bare_loop_s"]
                                             / out[f"scan{n_files}_lumbarview_s"])
    return out


def bench_cached_reopen(tmp: Path, n_files: int, repeats: int) -> dict[str, float]:
    folder = tmp / f"cached{n_files}"
    t0 = time.perf_counter()
    write_many(folder, n_files, per_series=160)
    write_s = time.perf_counter() - t0
    cache_dir = tmp / "cache"
    t0 = time.perf_counter()
    first = open_dicom(folder, cache_dir=cache_dir)
    first_s = time.perf_counter() - t0
    assert sum(s.n_slices for s in first.all_series()) == n_files

    def reopen() -> int:
        return len(open_dicom(folder, cache_dir=cache_dir).all_series())

    def scan_only() -> int:
        return len(scan_paths(folder, cache=IndexCache(cache_dir)).headers)

    return {
        f"reopen{n_files}_write_tree_s": write_s,
        f"reopen{n_files}_first_open_s": first_s,
        f"reopen{n_files}_cached_open_s": median_seconds(reopen, repeats),
        f"reopen{n_files}_cached_scan_only_s": median_seconds(scan_only, repeats),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 2,000-file scan")
    parser.add_argument("--files-48k", action="store_true", help="also the 48,000-file re-open")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    results: dict[str, float] = {"cores": float(os.cpu_count() or 1)}
    with tempfile.TemporaryDirectory(prefix="lv-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["LUMBARVIEW_CACHE_DIR"] = str(tmp / "user-cache")
        results.update(bench_series(tmp, repeats))
        results.update(bench_scan(tmp, 2000 if args.quick else 10000, 3))
        if args.files_48k:
            results.update(bench_cached_reopen(tmp, 48000, 5))
    width = max(len(k) for k in results)
    for key, value in results.items():
        unit = "x" if "speedup" in key else ("" if key == "cores" else " s")
        print(f"{key:<{width}}  {value:10.4f}{unit}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
