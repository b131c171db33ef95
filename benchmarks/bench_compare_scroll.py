"""Scrolling the compare pair against scrolling one study, interleaved in the same run (issue 28
goal: the pair at most 1.5x one study).

    python benchmarks/bench_compare_scroll.py --rounds 5 --steps 20

Data: the real chu2015-vb2 VB2_05 T2 (current) and a copy moved by 3 / -2 / 2 degrees and
4 / -6 / 9 mm with noise (prior), hung in the compare window (offscreen Qt, 1400 x 1000),
registered at L4-L5. A step of ``one``: the current sagittal pane shows the next slice (pixels +
``setImage``) and its view repaints synchronously (``viewport().repaint()``). A step of ``pair``:
the same, then the pane's scroll signal, so that the prior pane follows through the registration
(``StackSync.target_slice``) and shows its slice too, and both views repaint. Steps
go up then down through 2 x ``--steps`` slices around the middle; per round each subject does its
steps in turn (order flipped each round). Figures: median time per step with the spread, and
the per-round ratio pair / one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from timing import Figure, machine_note

from lumbarview.io.volume import open_volume
from lumbarview.io.volume_write import write_nifti
from lumbarview.phantom.moved import moved_copy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chu2015-vb2" / "VB2_05"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "lv-bench-compare"))
    args = ap.parse_args()
    from PySide6 import QtWidgets

    from lumbarview.services import compare
    from lumbarview.ui.app import make_app
    from lumbarview.ui.compare_window import CompareWindow
    from lumbarview.ui.threading import Worker

    prior_dir = Path(args.work) / "prior"
    if not prior_dir.exists():
        img = open_volume(DATA / "VB2_05_t2_iso1mm.nii.gz")
        px, g = img.pixels(), img.geometry
        copy = moved_copy(px, g, rotation_deg=(3, -2, 2), translation_mm=(4, -6, 9), centre_lps=g.centre_lps(),
                          noise_sd=float(np.percentile(px, 99)) * 0.03)
        prior_dir.mkdir(parents=True)
        write_nifti(prior_dir / "prior_t2.nii.gz", np.clip(copy.pixels, 0, 255).astype(np.uint8), copy.geometry)
    app = make_app()
    worker = Worker(max_workers=1)
    window = CompareWindow(compare.load_study(DATA), compare.load_study(prior_dir), worker, "L4-L5")
    window.resize(1400, 1000)
    window.show()
    done = {"ready": False}
    window.ready.connect(lambda: done.update(ready=True))
    while not done["ready"]:
        app.processEvents()
        time.sleep(0.01)
    left, right = window.panes[0]
    assert window.syncs[left.view.role].reason is None, window.syncs
    start = left.k

    def path() -> list[int]:
        return [*range(1, args.steps + 1), *range(args.steps - 1, -args.steps, -1), *range(-args.steps + 1, 1)]

    def one(offset: int) -> None:
        left.show_slice(start + offset)
        left.graphics.viewport().repaint()

    def pair(offset: int) -> None:
        left.show_slice(start + offset)
        left.scrolled.emit(left.k)  # as a wheel step does: the prior follows
        left.graphics.viewport().repaint()
        right.graphics.viewport().repaint()

    subjects = {"one": one, "pair": pair}
    for fn in subjects.values():  # warm-up
        for off in path()[:5]:
            fn(off)
    per_step: dict[str, list[float]] = {k: [] for k in subjects}
    round_medians: dict[str, list[float]] = {k: [] for k in subjects}
    for r in range(args.rounds):
        order = list(subjects) if r % 2 == 0 else list(subjects)[::-1]
        for name in order:
            times = []
            for off in path():
                t0 = time.perf_counter()
                subjects[name](off)
                times.append(time.perf_counter() - t0)
            per_step[name].extend(times)
            round_medians[name].append(statistics.median(times))
    print(f"machine: {machine_note()}; {len(path())} steps per round and subject")
    for name in subjects:
        print(f"{name:5s} per step {Figure(tuple(per_step[name])).text()}")
    ratio = Figure(tuple(p / o for p, o in zip(round_medians["pair"], round_medians["one"], strict=True)))
    print(f"pair / one (per-round medians) {ratio.text('x')}")
    worker.shutdown()
    window.close()
    QtWidgets.QApplication.processEvents()


if __name__ == "__main__":
    main()
