"""The study database: re-opening a 48,000-file imported tree, against a bare walk + stat.

    python benchmarks/bench_study_db.py [--rounds N] [--files N] [--data DIR] [--json FILE]

The tree is bench_dicom.py's (``write_many``: small phantom files in series of 160, in 300
series for 48,000 files), imported once, in place, into a fresh database. The figure is
lumbarview's re-open from the database: every instance's stored header read back, every file
stat'ed (a file gone or changed is noticed), and all series assembled into a browsable
collection (pixels stay on disk). The floor is ``os.walk`` + ``os.stat`` of the same tree.
Goals (issue 25): at most 2 s, and at most 3x the floor.

Method: one untimed call each (warm page cache and imports), then floor and subject in turn,
for ``--rounds`` rounds; each figure is the median with its minimum, interquartile range and
maximum, the ratio per round. One process, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dicom import _DATA_VERSION, _data_dir, _line, _once, walk_stat, write_many
from timing import interleaved, machine_note, ratios

from lumbarview.services.study_db import StudyDatabase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=48000)
    parser.add_argument("--data", help="folder for the generated tree (kept and reused)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    data = _data_dir(args.data)
    print(f"bench_study_db: {machine_note()} (a shared machine), {args.rounds} interleaved rounds")
    t0 = time.perf_counter()
    folder = _once(data / f"tree{args.files}-per160-v{_DATA_VERSION}",
                   lambda p: write_many(p, args.files, per_series=160))
    print(f"  tree of {args.files} files: {'written' if time.perf_counter() - t0 > 1 else 'reused'} ({folder})")
    out: dict[str, Any] = {"machine_before": machine_note(), "files": args.files}
    with tempfile.TemporaryDirectory(prefix="lv-bench-db-") as tmp:
        os.environ["LUMBARVIEW_CACHE_DIR"] = str(Path(tmp) / "cache")
        db = StudyDatabase(Path(tmp) / "db")
        t0 = time.perf_counter()
        report = db.import_path(folder)
        import_s = time.perf_counter() - t0
        assert report.added == args.files, report
        print(f"  import (in place, first read of every header): {import_s:.1f} s")

        def reopen() -> int:
            dataset = db.open_studies()
            return sum(len(case.series) for case in dataset.cases)

        assert reopen() == args.files // 160
        subjects = {"floor: os.walk + os.stat": lambda: walk_stat(folder), "database re-open": reopen}
        figures = interleaved(subjects, args.rounds)
        db.close()
    for name, figure in figures.items():
        print(_line(name, figure))
    over = ratios(figures["database re-open"], figures["floor: os.walk + os.stat"])
    print(_line("re-open / floor (per round; goal <= 3)", over, "x"))
    out.update({"import_s": import_s, "times": {k: f.values for k, f in figures.items()}, "over_floor": over.values,
                "machine_after": machine_note()})
    print(f"after: {out['machine_after']}" + (f"; figures in {args.json}" if args.json else ""))
    return _save(out, args.json)


def _save(out: dict[str, Any], path: str | None) -> int:
    if path:
        Path(path).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
