"""Start time of the standalone app against the virtual environment: the first screenshot of the
demo (``view --demo --screenshot``), interleaved rounds, medians and their ratio.

    PYTHONPATH=. .venv/bin/python packaging/bench_start.py [--rounds 5] [--app dist/lumbarview/lumbarview]

Both commands share one cache folder; a warm-up run of each writes the demo dataset and its
header index first (the demo itself is written by `lumbarview demo` before), so every timed
round opens the same files. Exit 1 when the app's median is
more than ``--max-ratio`` (1.3) times the virtual environment's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(command: list[str], out: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([*command, "view", "--demo", "--screenshot", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or not out.is_file():
        raise SystemExit(f"bench_start: {' '.join(command)} failed (exit {proc.returncode}): {proc.stderr[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--app", default="dist/lumbarview/lumbarview")
    parser.add_argument("--max-ratio", type=float, default=1.3)
    parser.add_argument("--keep", metavar="DIR", help="keep the screenshots in DIR")
    args = parser.parse_args()
    commands = {"venv": [sys.executable, "-m", "lumbarview"], "app": [str(Path(args.app).resolve())]}
    with tempfile.TemporaryDirectory(prefix="lumbarview-bench-start-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CACHE_HOME=str(Path(tmp) / "cache"),
                   XDG_CONFIG_HOME=str(Path(tmp) / "config"))
        env.pop("LUMBARVIEW_CACHE_DIR", None)
        # The demo dataset is written once, outside the timing (the screenshot's own time limit
        # would not cover writing it on a loaded machine).
        subprocess.run([*commands["venv"], "demo"], env=env, capture_output=True, check=True, timeout=900)
        for name, command in commands.items():
            print(f"warm-up {name}: {_run(command, work / f'warmup-{name}.png', env):.2f} s", flush=True)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for k in range(args.rounds):
            order = list(commands) if k % 2 == 0 else list(reversed(commands))
            for name in order:
                times[name].append(_run(commands[name], work / f"{name}-{k}.png", env))
            print(f"round {k + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in commands), flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["app"] / medians["venv"]
    print(f"median: venv {medians['venv']:.2f} s, app {medians['app']:.2f} s, ratio {ratio:.2f} "
          f"(limit {args.max_ratio})")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
