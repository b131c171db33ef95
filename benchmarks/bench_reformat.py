"""Reformatted oblique step against the native step, interleaved in the same run.

    python benchmarks/bench_reformat.py                 # pixels only (lumbarview.slicing)
    python benchmarks/bench_reformat.py --paint         # also pixels + pyqtgraph setImage + repaint
    python benchmarks/bench_reformat.py --rounds 7 --steps 40 --threads 2

Volume: 300 x 512 x 512 int16 (a sagittal stack: rows posterior, columns inferior, 0.7 mm
pixels, 1.0 mm slices), random values (no structure to help caches). Output: 512 x 512.

* native step: the sagittal view (radiological convention) moves one slice: ``standard_plane``
  on the next slice + ``reformat``, which takes the native path (stored pixels, flips only);
* oblique step: a plane tilted 20 degrees about left-right and 10 degrees about
  antero-posterior, 0.7 mm pixels, moves 0.7 mm along its normal + ``reformat`` (trilinear).

Warm caches: the volume is in memory (touched once before timing) and each kind is run a few
times before the rounds; the plane's index-space origin and steps are computed in every step
(they are part of the step). Steps alternate native / oblique within each round, and the
order flips from round to round. Figures: median and interquartile range over all steps, and
the median of each round (its spread shows the shared machine's noise).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumbarview.core.geometry import PlaneOrientation, VolumeGeometry
from lumbarview.slicing.planes import ViewPlane, standard_plane
from lumbarview.slicing.reformat import reformat


def _rot(axis: int, deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    m = np.eye(3)
    i, j = [x for x in range(3) if x != axis]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def build(n: int, n_slices: int) -> tuple[np.ndarray, VolumeGeometry]:
    volume = np.random.default_rng(0).integers(0, 4096, size=(n_slices, n, n), dtype=np.int16)
    geometry = VolumeGeometry.from_directions((n_slices, n, n), (-150.0, -180.0, 180.0), (0, 1, 0), (0, 0, -1),
                                              (0.7, 0.7, 1.0))
    volume.sum()  # touch every page
    return volume, geometry


def summary(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=4)
    return f"median {statistics.median(ms):6.2f} ms (IQR {q[0]:.2f}-{q[2]:.2f}, min {min(ms):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="steps of each kind per round")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2, help="row-band threads for the reformat")
    parser.add_argument("--paint", action="store_true", help="also time setImage + repaint (offscreen Qt)")
    args = parser.parse_args()

    volume, geometry = build(args.size, args.slices)
    centre = geometry.centre_lps()
    executor = ThreadPoolExecutor(max_workers=max(1, args.threads))
    tilt = _rot(0, 20.0) @ _rot(1, 10.0)
    oblique0 = ViewPlane.centred(centre, tilt @ np.array([1.0, 0, 0]), tilt @ np.array([0, 1.0, 0]), (0.7, 0.7),
                                 (args.size, args.size))
    k_mid = args.slices // 2
    state = {"k": k_mid, "dk": 1, "off": 0, "doff": 1}

    def native_pixels() -> Any:
        state["k"] += state["dk"]
        if abs(state["k"] - k_mid) >= 20:
            state["dk"] = -state["dk"]
        cursor = geometry.index_to_lps((args.size / 2, args.size / 2, state["k"]))
        plane = standard_plane(geometry, PlaneOrientation.SAGITTAL, cursor)
        out = reformat(volume, geometry, plane, executor=executor)
        assert out.native_k == state["k"]
        return out.pixels

    def oblique_pixels() -> Any:
        state["off"] += state["doff"]
        if abs(state["off"]) >= 20:
            state["doff"] = -state["doff"]
        out = reformat(volume, geometry, oblique0.stepped(0.7 * state["off"]), executor=executor)
        assert out.native_k is None
        return out.pixels

    kinds: dict[str, Callable[[], Any]] = {"native": native_pixels, "oblique": oblique_pixels}
    if args.paint:
        import os

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        import pyqtgraph as pg

        from lumbarview.ui.app import make_app

        app = make_app()
        widget = pg.GraphicsLayoutWidget()
        widget.resize(700, 700)
        vb = widget.addViewBox(lockAspect=True, invertY=True)
        item = pg.ImageItem(axisOrder="row-major")
        vb.addItem(item)
        widget.show()
        app.processEvents()

        def painted(fn: Callable[[], Any]) -> Callable[[], Any]:
            def step() -> Any:
                item.setImage(fn(), autoLevels=False, levels=(500.0, 3500.0))
                widget.viewport().repaint()
            return step

        kinds["native+paint"] = painted(native_pixels)
        kinds["oblique+paint"] = painted(oblique_pixels)

    times: dict[str, list[float]] = {k: [] for k in kinds}
    round_medians: dict[str, list[float]] = {k: [] for k in kinds}
    for fn in kinds.values():  # warm-up
        for _ in range(3):
            fn()
    names = list(kinds)
    for rnd in range(args.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        this_round: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.steps):
            for name in order:
                t0 = time.perf_counter()
                kinds[name]()
                this_round[name].append((time.perf_counter() - t0) * 1000)
        for name in names:
            times[name].extend(this_round[name])
            round_medians[name].append(statistics.median(this_round[name]))
    executor.shutdown()

    print(f"volume {args.slices} x {args.size} x {args.size} int16, output {args.size} x {args.size}, "
          f"{args.rounds} rounds x {args.steps} steps of each kind, interleaved; reformat threads {args.threads}")
    for name in names:
        per_round = ", ".join(f"{m:.2f}" for m in round_medians[name])
        print(f"  {name:14s} {summary(times[name])}; round medians {per_round}")
    native = statistics.median(times["native"])
    oblique = statistics.median(times["oblique"])
    print(f"  pixels only: oblique / native = {oblique / native:.1f}x (oblique {oblique:.2f} ms; goal <= 8 ms)")
    if args.paint:
        n_p = statistics.median(times["native+paint"])
        o_p = statistics.median(times["oblique+paint"])
        print(f"  pixels + paint: oblique / native = {o_p / n_p:.2f}x (goal <= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
