"""DICOM loading: lumbarview against bare baselines, interleaved in one process.

    python benchmarks/bench_dicom.py [--rounds N] [--files N] [--scan-files N] [--data DIR]
                                     [--skip-series] [--skip-scan] [--skip-reopen] [--json FILE]

1. Series load: 200 files of 320 x 320 16-bit pixels whose header is a real scanner's (every
   element of a Siemens file from ``../shared/data/dcm-qa-decubitus``: private CSA headers,
   sequences and all; only the pixels, the matrix, the position and the UIDs change).
   lumbarview (``open_dicom`` without cache: scan + assemble + decode) against a bare pydicom
   loop (``dcmread`` + ``pixel_array`` + ``np.stack``) and SimpleITK's ``ImageSeriesReader``
   (GDCM file listing + ``Execute``).
2. Header scan of a tree of small files (first scan, no index) against a bare
   ``dcmread(stop_before_pixels=True)`` loop over the same files.
3. Cached re-open of a 48,000-file tree (``--files`` scales it) against the floor: a bare
   ``os.walk`` + ``os.stat`` of every file. lumbarview's figure is ``open_dicom`` with a warm
   header index and assembly cache, up to a browsable collection (every series and stack
   built; pixels stay on disk).
4. Cached re-open by ``lumbarview info`` as a whole process (``--files`` tree, warm index)
   against a realistic floor process that imports numpy and pydicom, walks and stats the tree
   and reads the index files; wall and CPU time (user + system) per run.

Method: each subject is called once untimed (warm page cache, warm imports), then the subjects
are timed in turn, A B C A B C ..., for ``--rounds`` rounds; each figure is the median with its
minimum, interquartile range and maximum, and each ratio is taken per round (neighbours in
time). Page cache: warm throughout (dropping it needs root on a shared machine). Processes:
every subject runs in this one process; lumbarview reads pixels with up to 8 threads,
SimpleITK uses its own threads, the pydicom loop one thread; the scan of more than 1,000 files
(item 2) uses a process pool of one worker per core, and is also timed with one process.

Generated data is kept in ``--data`` (default ``$LUMBARVIEW_BENCH_DATA`` or the user cache
folder) and reused: writing the 48,000-file tree takes a minute or two, once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import Figure, header, interleaved, machine_note, ratios

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.io.dicom.scan import scan_paths
from lumbarview.phantom.dicom_writer import SeriesSpec, make_uid, slice_dataset
from lumbarview.services.open_study import open_dicom

#: Bump when the generated data changes, so that stale copies are not reused.
_DATA_VERSION = 3
_REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    """``../shared/data`` beside the checkout (or a worktree's parent), or
    ``$LUMBARVIEW_SHARED_DATA``."""
    if os.environ.get("LUMBARVIEW_SHARED_DATA"):
        return Path(os.environ["LUMBARVIEW_SHARED_DATA"])
    for candidate in (_REPO.parent / "shared" / "data", _REPO.parent.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    raise SystemExit("../shared/data is not beside this checkout: set LUMBARVIEW_SHARED_DATA")


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median of ``repeats`` timed calls (kept for the other benchmarks)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _data_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    if os.environ.get("LUMBARVIEW_BENCH_DATA"):
        return Path(os.environ["LUMBARVIEW_BENCH_DATA"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("lumbarview", appauthor=False)) / "bench"


def _once(target: Path, write: Callable[[Path], None]) -> Path:
    """``target``, written by ``write`` into a temporary sibling and renamed when complete, so
    that an interrupted run never leaves a half-written tree that a later run would trust."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return target


def _spec(name: str, number: int = 1) -> SeriesSpec:
    return SeriesSpec(patient_id="BENCH", study_uid=make_uid("bench", "study"),
                      series_uid=make_uid("bench", name), series_number=number, description=name,
                      frame_of_reference_uid=make_uid("bench", "for"), window=(1000, 2000),
                      rescale=(1.0, 0.0))


def _real_header_file() -> Path:
    folder = _shared_data() / "dcm-qa-decubitus"
    found = sorted(p for p in folder.rglob("*.dcm") if p.is_file())
    if not found:
        raise SystemExit(f"no real scanner file under {folder}: set LUMBARVIEW_SHARED_DATA")
    return found[0]


def write_real_header_series(folder: Path, n: int, size: int) -> None:
    """``n`` slices of ``size`` x ``size`` random 12-bit pixels, each a copy of a real
    scanner's file with its own pixels, position, instance number and UIDs."""
    template = pydicom.dcmread(_real_header_file())
    rng = np.random.default_rng(0)
    series_uid = make_uid("bench-real", "series")
    spacing = float(template.get("SpacingBetweenSlices", 0) or template.SliceThickness or 1.0)
    o = np.array([float(v) for v in template.ImageOrientationPatient])
    normal = np.cross(o[:3], o[3:])
    origin = np.array([float(v) for v in template.ImagePositionPatient])
    for k in range(n):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        sop = make_uid("bench-real", "sop", k)
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [round(float(v), 5) for v in origin + k * spacing * normal]
        ds.Rows = size
        ds.Columns = size
        ds.PixelData = rng.integers(0, 4096, size=(size, size), dtype=np.uint16).tobytes()
        ds.save_as(folder / f"IM{k + 1:05d}.dcm", enforce_file_format=True)


def write_many(folder: Path, n_files: int, per_series: int, size: int = 16) -> None:
    """``n_files`` small single-frame files (phantom headers) in series of ``per_series``.

    The first series is written with pydicom; the others are byte copies of it in which the
    series UID, which also prefixes every SOP Instance UID, is replaced by one of the same
    length: every file has its own UIDs, and 48,000 files take seconds instead of many minutes.
    """
    g = VolumeGeometry.from_directions((per_series, size, size), (0, 0, 0), (0, 1, 0), (0, 0, -1),
                                       (1.0, 1.0, 1.0))
    pixels = np.zeros((size, size), dtype=np.uint16)

    def series_uid(series: int) -> str:
        return f"1.2.826.0.1.3680043.10.1453.77.{100000 + series}"

    template: list[bytes] = []
    spec = _spec("tree")
    spec = SeriesSpec(**{**spec.__dict__, "series_uid": series_uid(0), "description": "tree"})
    scratch = folder / ".template"
    scratch.mkdir(parents=True)
    for k in range(per_series):
        ds = slice_dataset(pixels, g, k, spec, k + 1)
        sop = f"{series_uid(0)}.{100001 + k}"
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.save_as(scratch / "slice.dcm", enforce_file_format=True)
        template.append((scratch / "slice.dcm").read_bytes())
    shutil.rmtree(scratch)
    old_uid = series_uid(0).encode("ascii")
    for start in range(0, n_files, per_series):
        series = start // per_series
        sub = folder / f"{series // 100:03d}" / f"SE{series:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        new_uid = series_uid(series).encode("ascii")
        for k in range(min(per_series, n_files - start)):
            (sub / f"IM{k:05d}.ima").write_bytes(template[k].replace(old_uid, new_uid))


def _files(folder: Path) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names
                  if not f.startswith("."))


def _line(name: str, figure: Figure, unit: str = "s") -> str:
    return f"  {name:<38} {figure.text(unit)}"


def bench_series(data: Path, rounds: int, out: dict[str, Any]) -> None:
    folder = _once(data / f"series200x320-real-header-v{_DATA_VERSION}",
                   lambda p: write_real_header_series(p, 200, 320))
    files = _files(folder)
    header_bytes = os.path.getsize(files[0]) - 320 * 320 * 2
    print(f"\n1. series load: {len(files)} files of 320 x 320, a real scanner's header "
          f"({header_bytes:,} bytes, from {_real_header_file().parent.name}); warm page cache")

    def bare_pydicom() -> np.ndarray:
        return np.stack([pydicom.dcmread(f).pixel_array for f in files])

    def simpleitk() -> np.ndarray:
        import SimpleITK as sitk

        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
        return sitk.GetArrayFromImage(reader.Execute())

    def lumbarview() -> np.ndarray:
        (stack,) = open_dicom(folder, use_cache=False).all_stacks()
        return stack.pixels()

    (loaded,) = open_dicom(folder, use_cache=False).all_stacks()

    def pixels_only() -> np.ndarray:
        loaded.release()
        return loaded.pixels()

    ref, got = bare_pydicom(), lumbarview()
    assert ref.shape == got.shape and np.array_equal(np.sort(ref, axis=None), np.sort(got, axis=None))
    figures = interleaved({"bare pydicom loop (1 thread)": bare_pydicom,
                           "SimpleITK ImageSeriesReader": simpleitk,
                           "lumbarview open + pixels": lumbarview,
                           "lumbarview pixels only": pixels_only}, rounds)
    for name, figure in figures.items():
        print(_line(name, figure))
    vs_pydicom = ratios(figures["bare pydicom loop (1 thread)"], figures["lumbarview open + pixels"])
    vs_sitk = ratios(figures["SimpleITK ImageSeriesReader"], figures["lumbarview open + pixels"])
    print(_line("speed-up vs pydicom (per round)", vs_pydicom, "x"))
    print(_line("speed-up vs SimpleITK (per round)", vs_sitk, "x"))
    print("  processes: one on every side (lumbarview scans 200 files in-process, reads pixels "
          "with up to 8 threads; SimpleITK/ITK uses its own threads)")
    out["series"] = {name: f.values for name, f in figures.items()}
    out["series_speedup_vs_pydicom"] = vs_pydicom.values
    out["series_speedup_vs_simpleitk"] = vs_sitk.values


def bench_scan(data: Path, n_files: int, rounds: int, out: dict[str, Any]) -> None:
    folder = _once(data / f"tree{n_files}-v{_DATA_VERSION}",
                   lambda p: write_many(p, n_files, per_series=20))
    files = _files(folder)
    print(f"\n2. header scan, no index: {len(files)} small files (phantom headers); warm page "
          "cache")

    def bare_loop() -> int:
        return len([pydicom.dcmread(f, stop_before_pixels=True) for f in files])

    def lumbarview_pool() -> int:
        return len(scan_paths(folder).headers)

    def lumbarview_one() -> int:
        return len(scan_paths(folder, workers=1).headers)

    assert bare_loop() == lumbarview_one() == len(files)
    figures = interleaved({"bare dcmread loop (1 process)": bare_loop,
                           "lumbarview scan (1 process)": lumbarview_one,
                           f"lumbarview scan ({os.cpu_count()} processes)": lumbarview_pool}, rounds)
    for name, figure in figures.items():
        print(_line(name, figure))
    same = ratios(figures["bare dcmread loop (1 process)"], figures["lumbarview scan (1 process)"])
    print(_line("speed-up, 1 process vs 1 process", same, "x"))
    out["scan"] = {name: f.values for name, f in figures.items()}
    out["scan_speedup_same_processes"] = same.values


def walk_stat(folder: Path) -> int:
    """The floor of a re-open: ``os.walk`` + ``os.stat`` of every file; the number of files."""
    n = 0
    for d, _, names in os.walk(folder):
        for name in names:
            os.stat(os.path.join(d, name))
            n += 1
    return n


def bench_reopen(data: Path, n_files: int, rounds: int, out: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    folder = _once(data / f"tree{n_files}-per160-v{_DATA_VERSION}",
                   lambda p: write_many(p, n_files, per_series=160))
    write_s = time.perf_counter() - t0
    print(f"\n3. cached re-open: {n_files} files in {n_files // 160} series (phantom headers, "
          f"tree {'written in ' + format(write_s, '.0f') + ' s' if write_s > 1 else 'reused'}); "
          "warm page cache")
    with tempfile.TemporaryDirectory(prefix="lv-bench-cache-") as cache_dir:
        t0 = time.perf_counter()
        first = open_dicom(folder, cache_dir=cache_dir)
        first_s = time.perf_counter() - t0
        assert sum(s.n_slices for s in first.all_series()) == n_files
        print(f"  first open (no index, {os.cpu_count()} processes): {first_s:.1f} s")
        del first

        def reopen() -> int:
            return len(open_dicom(folder, cache_dir=cache_dir).all_series())

        figures = interleaved({"floor: os.walk + os.stat": lambda: walk_stat(folder),
                               "lumbarview cached re-open": reopen}, rounds)
    for name, figure in figures.items():
        print(_line(name, figure))
    times_floor = Figure(tuple(r / f for f, r in zip(figures["floor: os.walk + os.stat"].values,
                                                        figures["lumbarview cached re-open"].values,
                                                        strict=True)))
    print(_line("re-open / floor (per round; goal <= 4)", times_floor, "x"))
    out["reopen_first_open_s"] = first_s
    out["reopen"] = {name: f.values for name, f in figures.items()}
    out["reopen_over_floor"] = times_floor.values


_FLOOR = """
import os, sys
import numpy, pydicom
n = 0
for folder, _, names in os.walk(sys.argv[1]):
    for name in names:
        os.stat(os.path.join(folder, name))
        n += 1
for name in os.listdir(sys.argv[2]):
    with open(os.path.join(sys.argv[2], name), "rb") as fh:
        fh.read()
print(n)
"""


def _process(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one child process run to its end."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_info(data: Path, n_files: int, rounds: int, out: dict[str, Any]) -> None:
    """``lumbarview info TREE`` with a warm index, as a whole process, against a realistic floor
    process: one that imports numpy and pydicom, walks and stats the tree and reads the index
    files (what any cached re-open must do at the least)."""
    folder = _once(data / f"tree{n_files}-per160-v{_DATA_VERSION}",
                   lambda p: write_many(p, n_files, per_series=160))
    print(f"\n4. cached re-open by `lumbarview info` (whole processes): {n_files} files; warm page cache")
    with tempfile.TemporaryDirectory(prefix="lv-bench-info-") as cache_dir:
        env = {**os.environ, "LUMBARVIEW_CACHE_DIR": cache_dir}
        info = [sys.executable, "-m", "lumbarview", "info", str(folder)]
        floor = [sys.executable, "-c", _FLOOR, str(folder), cache_dir]
        subprocess.run(info, env=env, check=True, stdout=subprocess.DEVNULL)  # builds the index
        index_mb = sum(f.stat().st_size for f in Path(cache_dir).iterdir()) / 2**20
        runs: dict[str, list[tuple[float, float]]] = {"floor": [], "info": []}
        for r in range(rounds + 1):
            for name, cmd in (("floor", floor), ("info", info)):
                figure = _process(cmd, env)
                if r > 0:  # round 0 warms both
                    runs[name].append(figure)
    for name, title in (("floor", "floor: import numpy+pydicom, walk, stat, read index"),
                        ("info", "lumbarview info (warm index)")):
        wall = Figure(tuple(w for w, _ in runs[name]))
        cpu = Figure(tuple(c for _, c in runs[name]))
        print(_line(title, wall) + f"; CPU {cpu.median:.2f} s")
    for i, what in ((0, "wall"), (1, "CPU")):
        ratio = Figure(tuple(b[i] / a[i] for a, b in zip(runs["floor"], runs["info"], strict=True)))
        print(_line(f"info / floor, {what} (per round; goal <= 2)", ratio, "x"))
    print(f"  (index and assembly files: {index_mb:.1f} MB)")
    out["info_reopen"] = runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--files", type=int, default=48000, help="files in the re-open tree")
    parser.add_argument("--scan-files", type=int, default=2000, help="files in the scan tree")
    parser.add_argument("--data", help="folder for the generated data (kept and reused)")
    parser.add_argument("--skip-series", action="store_true")
    parser.add_argument("--skip-scan", action="store_true")
    parser.add_argument("--skip-reopen", action="store_true")
    parser.add_argument("--skip-info", action="store_true")
    parser.add_argument("--prepare", action="store_true", help="only write the data")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    data = _data_dir(args.data)
    if args.prepare:
        _once(data / f"series200x320-real-header-v{_DATA_VERSION}",
              lambda p: write_real_header_series(p, 200, 320))
        _once(data / f"tree{args.scan_files}-v{_DATA_VERSION}",
              lambda p: write_many(p, args.scan_files, per_series=20))
        _once(data / f"tree{args.files}-per160-v{_DATA_VERSION}",
              lambda p: write_many(p, args.files, per_series=160))
        return 0
    out: dict[str, Any] = {"machine_before": machine_note()}
    print(f"{header('bench_dicom')} (a shared machine: other jobs may run), "
          f"{args.rounds} interleaved rounds, data in {data}")
    with tempfile.TemporaryDirectory(prefix="lv-bench-") as tmp:
        os.environ["LUMBARVIEW_CACHE_DIR"] = str(Path(tmp) / "user-cache")
        if not args.skip_series:
            bench_series(data, args.rounds, out)
        if not args.skip_scan:
            bench_scan(data, args.scan_files, max(3, args.rounds // 2), out)
        if not args.skip_reopen:
            bench_reopen(data, args.files, args.rounds, out)
        if not args.skip_info:
            bench_info(data, args.files, args.rounds, out)
    out["machine_after"] = machine_note()
    print(f"\nafter: {out['machine_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
