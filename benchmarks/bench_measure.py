"""`lumbarview measure` throughput over a 50-case SPIDER-layout phantom dataset, on one and on
two processes, in the same run.

    python benchmarks/bench_measure.py [--cases 50]

One case is written at SPIDER's realistic size (448 x 448 x 15, 0.6 x 0.6 x 3.3 mm, t1 + t2 with
their masks) and copied under 50 patient ids: every case costs the same to measure.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lv-bench-measure-") as tmp:
        root = Path(tmp) / "spider"
        write_spider(root, LumbarPhantom(), Sizes(), patient=1)
        for n in range(2, args.cases + 1):
            for folder in ("images", "masks"):
                for seq in ("t1", "t2"):
                    shutil.copy(root / folder / f"1_{seq}.mha", root / folder / f"{n}_{seq}.mha")
        n_maps = 2 * args.cases
        for jobs in (1, 2):
            out = Path(tmp) / f"out{jobs}.csv"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lumbarview", "measure", str(root), "--csv", str(out),
                            "--jobs", str(jobs), "--no-cache"], check=True, capture_output=True)
            dt = time.perf_counter() - t0
            with open(out) as fh:
                rows = sum(1 for _ in fh) - 1
            print(f"{jobs} process(es): {args.cases} cases ({n_maps} label maps, {rows} rows) in {dt:.1f} s = "
                  f"{args.cases / dt:.2f} cases/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
