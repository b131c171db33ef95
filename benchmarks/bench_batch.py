"""Batch measurement throughput: one and two local processes and a two-worker LocalCluster.

    python benchmarks/bench_batch.py [--cases 50] [--rounds 3]

Writes ``--cases`` SPIDER phantom cases (Sizes.small(): 120x120 pixels of 2 mm, 11 sagittal
slices; two label maps per case, t1 and t2) to a temporary folder and measures all of them with
each runner in interleaved rounds (1 proc, 2 procs, cluster, 1 proc, ...), so that a machine
shared with other work slows every runner alike. Prints per runner the median wall time, the
spread (min-max) and label maps per second. The cluster's start-up is not timed (it is started
once); the local pools start inside each timed run, as in `lumbarview measure`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.batch.runners import DaskRunner, LocalProcessRunner, Runner
from lumbarview.services.measure_all import jobs_for
from lumbarview.services.open_dataset import open_path


def _dataset(root: Path, n_cases: int) -> None:
    write_spider(root, LumbarPhantom(), Sizes.small(), patient=1)
    for n in range(2, n_cases + 1):
        for folder in ("images", "masks"):
            for seq in ("t1", "t2"):
                shutil.copy(root / folder / f"1_{seq}.mha", root / folder / f"{n}_{seq}.mha")


def _time(runner: Runner, jobs: list) -> float:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    n = sum(1 for _ in runner.run(jobs))
    assert n == len(jobs)
    return time.perf_counter() - t0


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import header  # the commit and the machine, first

    print(header("bench_batch"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import distributed

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        _dataset(root, args.cases)
        jobs, _ = jobs_for(open_path(str(root), use_cache=False))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            runners: dict[str, Runner] = {"1 local process": LocalProcessRunner(1),
                                          "2 local processes": LocalProcessRunner(2),
                                          "LocalCluster 2 workers": DaskRunner(cluster.scheduler_address, str(root))}
            times: dict[str, list[float]] = {name: [] for name in runners}
            for _ in range(args.rounds):
                for name, runner in runners.items():
                    times[name].append(_time(runner, jobs))
    print(f"{args.cases} cases, {len(jobs)} label maps (Sizes.small), {args.rounds} interleaved rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<24} median {median:7.1f} s  spread {min(values):.1f}-{max(values):.1f} s  "
              f"{len(jobs) / median:.2f} label maps/s")


if __name__ == "__main__":
    main()
