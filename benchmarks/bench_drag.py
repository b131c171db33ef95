"""A handle drag with many measurements on screen, per mouse move, this tree beside a baseline
tree (issue 20 "live versus finished"), headless (offscreen Qt).

    python benchmarks/bench_drag.py --baseline /tmp/lv-base   # a worktree of the commit to compare
    python benchmarks/bench_drag.py --baseline /tmp/lv-base --rounds 3 --measurements 50 --steps 60

Each round starts one process per tree, in turn (baseline, this tree, baseline, ...): it opens the
demo's Sudirman case (small) in a 1200 x 700 window with the 2 x 2 layout, adds ``--measurements``
distances on the sagittal plane (all on screen, in all views that show that plane), then drags
one distance's end handle with real mouse events (press, ``--steps`` moves, release) three times.
A move is timed from the mouse event sent to the viewport to the events it posted processed
(``QApplication.processEvents``) and the viewport repainted; the release likewise. Printed per
tree: the median of the round medians with their min-max, and the release. Nothing is written
outside a temporary folder (workspace, cache and QSettings are pointed there).

To make the baseline: ``git worktree add /tmp/lv-base 85d65e2`` (remove it with ``git worktree
remove /tmp/lv-base`` when done).
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

HERE = Path(__file__).resolve().parents[1]

WORKER = r'''
import json, os, sys, time
import numpy as np
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest

demo, n_measurements, steps, drags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
QtCore.QCoreApplication.setOrganizationName("lumbarview-bench")
from lumbarview.ui.app import make_app
from lumbarview.ui.main_window import MainWindow
from lumbarview.model.measurements import Measurement

app = make_app()
win = MainWindow()
win.resize(1200, 700)
win.show()
win.set_layout("2x2")
ready = []
win.views_ready.connect(lambda *a: ready.append(1))
win.open(demo)
deadline = time.time() + 120
while not ready and time.time() < deadline:
    app.processEvents()
    time.sleep(0.01)
for _ in range(20):
    app.processEvents()
view = win.views["sagittal"]
view.fit()
app.processEvents()
plane = view.plane
centre = plane.centre_lps()
session = win.session
for k in range(n_measurements):  # 50 short distances in a grid around the centre, all on screen
    a = centre + (-30.0 + 6.0 * (k % 10)) * plane.right_lps + (-30.0 + 12.0 * (k // 10)) * plane.down_lps
    b = a + 4.0 * plane.right_lps + 3.0 * plane.down_lps
    session.measurements.add(Measurement.create("distance", np.array([a, b]), plane,
                                                series=view.view_state.series.uid, case=session.case.id))
app.processEvents()
target = list(session.measurements)[0]
vp = view.graphics.viewport()
left = QtCore.Qt.MouseButton.LeftButton
none = QtCore.Qt.KeyboardModifier.NoModifier

def widget(lps):
    x, y = view.to_scene(np.asarray(lps, dtype=float))
    return view.graphics.mapFromScene(view.viewbox.mapViewToScene(QtCore.QPointF(x, y)))

moves, releases = [], []
for d in range(drags):
    m = session.measurements.get(target.id)
    start = widget(m.points[1])
    QTest.mousePress(vp, left, none, start)
    app.processEvents()
    for s in range(1, steps + 1):
        angle = 2 * np.pi * s / steps
        p = QtCore.QPoint(start.x() + round(25 * np.sin(angle)), start.y() + round(25 * (1 - np.cos(angle)) / 2))
        t0 = time.perf_counter()
        QTest.mouseMove(vp, p)
        app.processEvents()
        vp.repaint()
        moves.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    QTest.mouseRelease(vp, left, none, p)
    app.processEvents()
    vp.repaint()
    releases.append(time.perf_counter() - t0)
moved = session.measurements.get(target.id)
print(json.dumps({"moves": moves, "releases": releases, "moved": moved.points_lps != target.points_lps,
                  "count": len(session.measurements)}))
win.close()
'''


def run_tree(tree: Path, demo: Path, args: argparse.Namespace, scratch: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree), "QT_QPA_PLATFORM": "offscreen",
           "LUMBARVIEW_WORKSPACE": str(scratch / "workspace"), "LUMBARVIEW_CACHE_DIR": str(scratch / "cache"),
           "XDG_CONFIG_HOME": str(scratch / "config"), "LUMBARVIEW_NO_DIALOGS": "1"}
    done = subprocess.run([sys.executable, "-c", WORKER, str(demo), str(args.measurements), str(args.steps),
                           str(args.drags)], env=env, capture_output=True, text=True, timeout=600, cwd=scratch)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measurements", type=int, default=50)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--drags", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from lumbarview.phantom.layouts import Sizes, write_all
    from lumbarview.phantom.spine import PhantomParams

    trees = {"baseline": args.baseline.resolve(), "this tree": HERE}
    medians: dict[str, list[float]] = {name: [] for name in trees}
    releases: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="lv-bench-drag-") as tmp:
        scratch = Path(tmp)
        demo = write_all(scratch / "demo", PhantomParams(), Sizes.small(), layouts=("sudirman",))["sudirman"]
        for r in range(args.rounds):
            for name, tree in trees.items():
                result = run_tree(tree, demo, args, scratch)
                assert result["moved"] and result["count"] == args.measurements, result
                moves = [float(t) for t in result["moves"]]  # type: ignore[attr-defined]
                medians[name].append(statistics.median(moves))
                releases[name].append(statistics.median([float(t) for t in result["releases"]]))  # type: ignore[attr-defined]
                print(f"round {r + 1} {name:9s}: per move {1e3 * medians[name][-1]:7.2f} ms "
                      f"(p90 {1e3 * sorted(moves)[int(0.9 * len(moves))]:.2f}), release "
                      f"{1e3 * releases[name][-1]:.2f} ms", flush=True)
    print(f"\n{args.measurements} measurements on screen, {args.steps} moves x {args.drags} drags per round, "
          f"{args.rounds} rounds, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name in trees:
        m, r = medians[name], releases[name]
        print(f"{name:9s}: per move {1e3 * statistics.median(m):7.2f} ms (round medians {1e3 * min(m):.2f}-"
              f"{1e3 * max(m):.2f}); release {1e3 * statistics.median(r):.2f} ms ({1e3 * min(r):.2f}-"
              f"{1e3 * max(r):.2f})")
    ratio = statistics.median(medians["baseline"]) / statistics.median(medians["this tree"])
    print(f"per move: this tree is {ratio:.1f}x faster than the baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
