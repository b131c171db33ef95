"""The viewer on a 500-case dataset against the same on 5 cases (issue: real-size datasets).

    python benchmarks/bench_open_large.py [--cases 5 500] [--rounds 3]

Writes one SPIDER-layout case with the phantom (real SPIDER size: 15 x 448 x 448 sagittal T1 and
T2 and their masks), then datasets of N cases whose files are hard links to it (identical
content: the open, browse and decode work is per file all the same), and runs
``lumbarview view ROOT --screenshot`` in a fresh process per run, interleaving the sizes round by
round. Per run: time to the first image, time to the screenshot (which waits until the work
queued at open, thumbnails and prefetch, is done), the longest event-loop gap, and the peak
resident memory of the process. Cold header index (``--no-cache`` is not a view option: each run
gets an empty cache folder) and warm page cache (the files were just written or read).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_dataset(base: Path, n_cases: int, source: Path) -> Path:
    root = base / f"spider-{n_cases}"
    if (root / ".complete").exists():
        return root
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for seq in ("t1", "t2"):
            src = source / folder / f"1_{seq}.mha"
            for case in range(1, n_cases + 1):
                dst = root / folder / f"{case}_{seq}.mha"
                if not dst.exists():
                    os.link(src, dst)
    (root / ".complete").write_text("ok")
    return root


def one_case(base: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from lumbarview.phantom.layouts import Sizes, write_spider
    from lumbarview.phantom.spine import LumbarPhantom

    source = base / "source"
    if not (source / "images" / "1_t2.mha").exists():
        write_spider(source, LumbarPhantom(), Sizes(), patient=1)
    return source


_CHILD = """
import json, resource, subprocess, sys, os
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, env=os.environ)
timing = next((json.loads(l) for l in done.stderr.splitlines() if l.startswith('{"first_image_s"')), None)
print(json.dumps({"rc": done.returncode, "timing": timing,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stderr": done.stderr[-500:]}))
"""


def run_view(root: Path, shot: Path) -> dict[str, float]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LUMBARVIEW_NO_DIALOGS": "1",
           "LUMBARVIEW_REPORT_TIMING": "1", "LUMBARVIEW_CACHE_DIR": tempfile.mkdtemp(prefix="lv-bench-cache-")}
    cmd = [sys.executable, "-c", _CHILD, sys.executable, "-m", "lumbarview", "view", str(root),
           "--screenshot", str(shot), "--size", "1600x900", "--layout", "1x3"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    doc = json.loads(out.stdout)
    if doc["rc"] != 0 or doc["timing"] is None:
        raise SystemExit(f"view failed on {root}: {doc['stderr']}")
    t = doc["timing"]
    return {"first_image_s": t["first_image_s"], "screenshot_s": t["screenshot_s"],
            "max_gap_s": t["max_event_loop_gap_s"], "peak_rss_mb": doc["peak_rss_mb"]}


def summary(values: list[float], unit: str, digits: int = 2) -> str:
    return (f"median {statistics.median(values):.{digits}f} {unit} "
            f"(min {min(values):.{digits}f}, max {max(values):.{digits}f})")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import header  # the commit and the machine, first

    print(header("bench_open_large"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, nargs="+", default=[5, 500])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "lumbarview-bench-large"))
    args = parser.parse_args()
    base = Path(args.work)
    base.mkdir(parents=True, exist_ok=True)
    source = one_case(base)
    roots = {n: write_dataset(base, n, source) for n in args.cases}
    results: dict[int, list[dict[str, float]]] = {n: [] for n in args.cases}
    for r in range(args.rounds):
        order = args.cases if r % 2 == 0 else list(reversed(args.cases))
        for n in order:
            results[n].append(run_view(roots[n], base / f"shot-{n}.png"))
            print(f"round {r + 1}, {n} cases: {results[n][-1]}", file=sys.stderr)
    print(f"viewer open, SPIDER layout (15 x 448 x 448 T1+T2+masks per case), {args.rounds} interleaved rounds, "
          "one process per run, cold header index, warm page cache, 2 cores:")
    for n in args.cases:
        runs = results[n]
        print(f"  {n:4d} cases: first image {summary([x['first_image_s'] for x in runs], 's')}; "
              f"idle screenshot {summary([x['screenshot_s'] for x in runs], 's')}; "
              f"peak memory {summary([x['peak_rss_mb'] for x in runs], 'MB', 0)}; "
              f"longest event-loop gap {summary([x['max_gap_s'] * 1000 for x in runs], 'ms', 0)}")
    if len(args.cases) == 2:
        small, large = sorted(args.cases)
        med = {n: {k: statistics.median([x[k] for x in results[n]]) for k in results[n][0]} for n in args.cases}
        print(f"  ratio {large}/{small}: first image {med[large]['first_image_s'] / med[small]['first_image_s']:.2f}x, "
              f"peak memory {med[large]['peak_rss_mb'] / med[small]['peak_rss_mb']:.2f}x (goal: each at most 1.5x)")


if __name__ == "__main__":
    main()
