"""The measurement engine before and after bundled sampling, interleaved in one run.

    python benchmarks/bench_measure.py [--rounds 5] [--cases 10] [--cli-rounds 2] [--skip-cli]

1. In-process: ``measure_label_map`` of today's engine (``lumbarview.measure.engine``) against
   the engine before bundled sampling (``benchmarks/_engine_before.py``, a verbatim copy of it),
   on the same label maps in the same process, alternating A B A B ... for ``--rounds`` rounds
   after one warm-up call of each (warm: imports done, label maps in memory; each call builds
   its own masks, nothing is cached between calls). CPU seconds per label map (process time,
   one thread) and wall seconds, median and min-max. The two engines' values are compared too.
   Label maps: the phantom at SPIDER's size (15 x 448 x 448, 0.6 x 0.6 x 3.3 mm) and an
   isotropic 1 mm sagittal stack (90 x 200 x 200).
2. ``python -m lumbarview measure DIR --jobs 1 --no-cache --csv OUT`` on a SPIDER-layout
   dataset of ``--cases`` identical cases (one written by the phantom, copied; 2 label maps
   each): the program at the base commit (``git archive`` into a temporary folder) against the
   working tree, alternating, ``--cli-rounds`` rounds, one worker process on each side; wall
   time per case including interpreter start-up and reading the files (the OS file cache is
   warm after the first run).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lumbarview.core.labels import spider_scheme  # noqa: E402
from lumbarview.measure import engine as lumbar  # noqa: E402
from lumbarview.phantom.layouts import Sizes, render_labels, sagittal_geometry, write_spider  # noqa: E402
from lumbarview.phantom.spine import LumbarPhantom  # noqa: E402

BASE = "3607dbd"  # the commit that froze the engine's output, before the engine changed


def _load_before() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_engine_before", ROOT / "benchmarks" / "_engine_before.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_engine_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):7.3f} ({min(values):.3f}-{max(values):.3f})"


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def _compare(a: list[Any], b: list[Any]) -> str:
    if len(a) != len(b):
        return f"DIFFERENT: {len(a)} vs {len(b)} values"
    worst, texts = 0.0, 0
    for x, y in zip(a, b, strict=True):
        if math.isnan(x.value) != math.isnan(y.value):
            texts += 1
        elif not math.isnan(x.value):
            worst = max(worst, abs(x.value - y.value))
        if (x.confidence, x.flag, x.reason, x.method, x.side, x.quantity) != (
                y.confidence, y.flag, y.reason, y.method, y.side, y.quantity):
            texts += 1
    return f"{len(a)} values, max |difference| {worst:.1e}, {texts} differing texts/NaNs"


def in_process(rounds: int) -> None:
    before = _load_before()
    phantom = LumbarPhantom()
    cases = {"SPIDER 15x448x448, 0.6x0.6x3.3 mm": sagittal_geometry(phantom, 448, 0.6, 15, 3.3),
             "isotropic 90x200x200, 1 mm": sagittal_geometry(phantom, 200, 1.0, 90, 1.0)}
    scheme = spider_scheme()
    print(f"## measure_label_map, one process, {rounds} interleaved rounds after a warm-up (warm: imports, "
          "label maps in memory)")
    print("| label map | engine | CPU s median (min-max) | wall s median (min-max) | speed-up (CPU, median) |")
    print("| --- | --- | --- | --- | --- |")
    for name, g in cases.items():
        labels = render_labels(phantom, g)
        engines = {"before": before.measure_label_map, "after": lumbar.measure_label_map}
        results = {k: fn(labels, g, scheme) for k, fn in engines.items()}  # warm-up
        cpu: dict[str, list[float]] = {k: [] for k in engines}
        wall: dict[str, list[float]] = {k: [] for k in engines}
        for _ in range(rounds):
            for k, fn in engines.items():
                c, w, _out = _timed(functools.partial(fn, labels, g, scheme))
                cpu[k].append(c)
                wall[k].append(w)
        ratio = statistics.median(cpu["before"]) / statistics.median(cpu["after"])
        for k in engines:
            print(f"| {name} | {k} | {_stats(cpu[k])} | {_stats(wall[k])} | "
                  f"{f'{ratio:.2f}x' if k == 'after' else ''} |")
        print(f"<!-- {name}: {_compare(results['before'], results['after'])} -->")
    print()


def cli(cases: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="lv-bench-measure-") as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASE, "lumbarview"], check=True,
                                 capture_output=True).stdout
        (tmp / "base.tar").write_bytes(archive)
        with tarfile.open(tmp / "base.tar") as tar:
            tar.extractall(base, filter="data")
        data = tmp / "spider"
        write_spider(data, LumbarPhantom(), Sizes(), patient=1)
        for n in range(2, cases + 1):
            for folder in ("images", "masks"):
                for seq in ("t1", "t2"):
                    shutil.copy(data / folder / f"1_{seq}.mha", data / folder / f"{n}_{seq}.mha")
        trees = {"before": base, "after": ROOT}
        times: dict[str, list[float]] = {k: [] for k in trees}
        rows: dict[str, int] = {}
        for r in range(rounds):
            for k, tree in trees.items():
                out = tmp / f"{k}-{r}.csv"
                env = {**os.environ, "PYTHONPATH": str(tree)}
                t0 = time.perf_counter()
                # cwd: `python -m` puts the working folder first on sys.path, before PYTHONPATH; run
                # from the repository, both sides would import the working tree.
                subprocess.run([sys.executable, "-m", "lumbarview", "measure", str(data), "--jobs", "1",
                                "--no-cache", "--csv", str(out)], check=True, capture_output=True, env=env,
                               timeout=3600, cwd=tmp)
                times[k].append((time.perf_counter() - t0) / cases)
                with open(out, encoding="utf-8") as fh:
                    rows[k] = sum(1 for _ in fh) - 1
        print(f"## `lumbarview measure --jobs 1` on {cases} SPIDER-layout cases (2 label maps each, "
              f"15x448x448), {rounds} interleaved rounds, one worker process each side")
        print("| program | wall s per case, median (min-max) | rows |")
        print("| --- | --- | --- |")
        for k in trees:
            print(f"| {k} ({BASE if k == 'before' else 'working tree'}) | {_stats(times[k])} | {rows[k]} |")
        ratio = statistics.median(times["before"]) / statistics.median(times["after"])
        print(f"\nspeed-up per case (median): {ratio:.2f}x")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import header  # the commit and the machine, first

    print(header("bench_measure"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--cli-rounds", type=int, default=2)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    print()
    in_process(args.rounds)
    if not args.skip_cli:
        cli(args.cases, args.cli_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
