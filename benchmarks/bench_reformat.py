"""Reformat steps against the native step, interleaved in the same run.

    python benchmarks/bench_reformat.py                 # pixels only (lumbarview.slicing)
    python benchmarks/bench_reformat.py --paint         # also pixels + pyqtgraph setImage + repaint
    python benchmarks/bench_reformat.py --rounds 7 --steps 40 --threads 2

Volume: 300 x 512 x 512 int16 (a sagittal stack: rows posterior, columns inferior, 0.7 mm
pixels, 1.0 mm slices), random values (no structure to help caches). Kinds of step:

* ``native``: the sagittal view (radiological convention) moves one slice: ``standard_plane``
  on the next slice + ``reformat``, which takes the native path (stored pixels, flips only);
  512 x 512 output;
* ``aligned``: an axial cut on the volume's own grid (screen right = patient left along the
  slices at 1.0 mm, screen down = posterior along the rows at 0.7 mm; 512 x 300 output) moves
  0.35 mm (half a voxel) along its normal: the slab path (two slabs, one lerp);
* ``oblique``: a plane tilted 20 degrees about left-right and 10 degrees about
  antero-posterior, 0.7 mm pixels, 512 x 512 output, moves 0.7 mm along its normal:
  ``reformat`` with ``method="auto"`` (vtkImageReslice, trilinear);
* ``oblique-numpy``: the same steps with ``method="numpy"``: the banded numpy path, which was
  the only path before vtkImageReslice (the baseline, measured in the same run).

With ``--scroll``, also scrolling as a reader does (``--rate`` steps per second, 30 by default:
a key held down): blocks of ``--steps`` steps of the sagittal (native) and of the oblique plane
through a :class:`PlaneCache`, each step = the cache's pixels + setImage + repaint, then the
neighbours along the normal prefetched on the cache's background thread (as ``SliceView``
does); the time of each step from the request to the repainted image, and the share of steps
whose pixels were ready (prefetched) or in flight. Blocks alternate native / oblique, the
order flips each round. And as fast as possible (no pause between steps): steps per second.

Warm caches: the volume is in memory (touched once before timing) and each kind is run a few
times before the rounds (so the VTK wrapping of the volume is cached); the plane's index-space
origin and steps are computed in every step (they are part of the step). Steps alternate
between the kinds within each round, and the order flips from round to round. Figures: wall
time median and interquartile range over all steps, the median of each round (its spread
shows the shared machine's noise), and the median CPU time per step (process time: all
threads, so a step spread over two threads can take more CPU than wall time).
"""

from __future__ import annotations

import argparse
import os
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
from lumbarview.slicing.reformat import Method, reformat


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
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import header  # the commit and the machine, first

    print(header("bench_reformat"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="steps of each kind per round")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2,
                        help="row-band threads for the numpy path (VTK uses min(4, cores) threads)")
    parser.add_argument("--paint", action="store_true", help="also time setImage + repaint (offscreen Qt)")
    parser.add_argument("--scroll", action="store_true",
                        help="also scroll through the cache with prefetching at --rate steps/s (implies --paint)")
    parser.add_argument("--rate", type=float, default=30.0)
    args = parser.parse_args()

    volume, geometry = build(args.size, args.slices)
    centre = geometry.centre_lps()
    executor = ThreadPoolExecutor(max_workers=max(1, args.threads))
    tilt = _rot(0, 20.0) @ _rot(1, 10.0)
    oblique0 = ViewPlane.centred(centre, tilt @ np.array([1.0, 0, 0]), tilt @ np.array([0, 1.0, 0]), (0.7, 0.7),
                                 (args.size, args.size))
    k_mid = args.slices // 2
    state = {"k": k_mid, "dk": 1, "off": 0, "doff": 1, "a": 0, "da": 1}

    def native_pixels() -> Any:
        state["k"] += state["dk"]
        if abs(state["k"] - k_mid) >= 20:
            state["dk"] = -state["dk"]
        cursor = geometry.index_to_lps((args.size / 2, args.size / 2, state["k"]))
        plane = standard_plane(geometry, PlaneOrientation.SAGITTAL, cursor)
        out = reformat(volume, geometry, plane, executor=executor)
        assert out.native_k == state["k"]
        return out.pixels

    def oblique_step(method: Method) -> Callable[[], Any]:
        def step() -> Any:
            state["off"] += state["doff"]
            if abs(state["off"]) >= 20:
                state["doff"] = -state["doff"]
            out = reformat(volume, geometry, oblique0.stepped(0.7 * state["off"]), executor=executor, method=method)
            assert out.method == ("vtk" if method == "auto" else "numpy"), out.method
            return out.pixels
        return step

    # Axial on the volume's grid: right = patient left (-k, 1.0 mm), down = posterior (+i, 0.7 mm),
    # a quarter voxel off the rows (j) so that every step interpolates between two slabs.
    axial0 = ViewPlane(geometry.index_to_lps((0.0, args.size / 2 + 0.25, args.slices - 1.0)), (1.0, 0.0, 0.0),
                       (0.0, 1.0, 0.0), (1.0, 0.7), (args.size, args.slices))

    def aligned_pixels() -> Any:
        state["a"] += state["da"]
        if abs(state["a"]) >= 20:
            state["da"] = -state["da"]
        out = reformat(volume, geometry, axial0.stepped(0.35 * state["a"]), executor=executor)
        assert out.method == "slabs", out.method
        return out.pixels

    kinds: dict[str, Callable[[], Any]] = {"native": native_pixels, "aligned": aligned_pixels,
                                           "oblique": oblique_step("auto"), "oblique-numpy": oblique_step("numpy")}
    if args.scroll:
        args.paint = True
    if args.paint:
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
        kinds["oblique+paint"] = painted(oblique_step("auto"))

    times: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
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
                c0, t0 = time.process_time(), time.perf_counter()
                kinds[name]()
                this_round[name].append((time.perf_counter() - t0) * 1000)
                cpu[name].append((time.process_time() - c0) * 1000)
        for name in names:
            times[name].extend(this_round[name])
            round_medians[name].append(statistics.median(this_round[name]))
    executor.shutdown()

    print(f"volume {args.slices} x {args.size} x {args.size} int16, output {args.size} x {args.size} "
          f"({args.size} x {args.slices} aligned), {args.rounds} rounds x {args.steps} steps of each kind, "
          f"interleaved; numpy-path threads {args.threads}, os.cpu_count() {os.cpu_count()}")
    for name in names:
        per_round = ", ".join(f"{m:.2f}" for m in round_medians[name])
        print(f"  {name:14s} {summary(times[name])}; CPU median {statistics.median(cpu[name]):.2f} ms; "
              f"round medians {per_round}")
    native = statistics.median(times["native"])
    for name in ("aligned", "oblique", "oblique-numpy"):
        ms = statistics.median(times[name])
        print(f"  pixels only: {name} / native = {ms / native:.1f}x ({name} {ms:.2f} ms; goal <= 8 ms)")
    if args.paint:
        n_p = statistics.median(times["native+paint"])
        o_p = statistics.median(times["oblique+paint"])
        print(f"  pixels + paint: oblique / native = {o_p / n_p:.2f}x (goal <= 2x)")
    if args.scroll:
        scroll(args, volume, geometry, oblique0, item, widget)
    return 0


def scroll(args: argparse.Namespace, volume: np.ndarray, geometry: VolumeGeometry, oblique0: ViewPlane,
           item: Any, widget: Any) -> None:
    """Scrolling through a PlaneCache with prefetching, paced and as fast as possible."""
    from lumbarview.core.types import ImageStack
    from lumbarview.slicing.cache import PlaneCache

    stack = ImageStack("bench#1", "bench", geometry, {}, lambda: (volume, []))
    k_mid = args.slices // 2

    def native_plane(n: int) -> ViewPlane:
        cursor = geometry.index_to_lps((args.size / 2, args.size / 2, k_mid + n))
        return standard_plane(geometry, PlaneOrientation.SAGITTAL, cursor)

    def oblique_plane(n: int) -> ViewPlane:
        return oblique0.stepped(0.7 * n)

    kinds: dict[str, Callable[[int], ViewPlane]] = {"native": native_plane, "oblique": oblique_plane}
    latency: dict[str, list[float]] = {k: [] for k in kinds}
    ready: dict[str, list[int]] = {k: [0, 0, 0] for k in kinds}  # hits, waits, misses
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    period = 1.0 / args.rate

    def block(name: str, paced: bool, start: int) -> float:
        cache = PlaneCache()
        make = kinds[name]
        position, direction = start, 1
        t_begin = time.perf_counter()
        for n in range(args.steps):
            due = t_begin + n * period
            if paced:
                while time.perf_counter() < due:
                    time.sleep(max(0.0, min(0.002, due - time.perf_counter())))
            position += direction
            if abs(position - start) >= 20:
                direction = -direction
            t0 = time.perf_counter()
            got = cache.get(stack, make(position))
            item.setImage(got.pixels, autoLevels=False, levels=(500.0, 3500.0))
            widget.viewport().repaint()
            if paced:
                latency[name].append((time.perf_counter() - t0) * 1000)
            if got.native_k is None:  # a reformat: its neighbours next (SliceView does the same)
                cache.prefetch(stack, [make(position + direction), make(position - direction)])
        elapsed = time.perf_counter() - t_begin
        if paced:
            for i, v in enumerate((cache.hits, cache.waits, cache.misses)):
                ready[name][i] += v
        while not cache.idle():
            time.sleep(0.001)
        return args.steps / elapsed

    names = list(kinds)
    for _ in range(2):  # warm-up
        for name in names:
            block(name, False, 0)
    for rnd in range(args.rounds):
        for name in (names if rnd % 2 == 0 else names[::-1]):
            block(name, True, 0)
            rates[name].append(block(name, False, 0))
    print(f"scrolling at {args.rate:.0f} steps/s through a PlaneCache (pixels + setImage + repaint; reformatted "
          f"steps prefetch their two neighbours on the cache's background thread), {args.rounds} rounds x "
          f"{args.steps} steps of each, alternating blocks:")
    for name in names:
        hits, waits, misses = ready[name]
        total = max(1, hits + waits + misses)
        print(f"  {name:8s} step {summary(latency[name])}; pixels ready {100 * hits / total:.0f} %, in flight "
              f"{100 * waits / total:.0f} %, computed on request {100 * misses / total:.0f} %; as fast as possible "
              f"{statistics.median(rates[name]):.0f} steps/s (min {min(rates[name]):.0f})")
    ratio = statistics.median(latency["oblique"]) / statistics.median(latency["native"])
    print(f"  scrolling: oblique / native step = {ratio:.2f}x (goal <= 2x; oblique "
          f"{statistics.median(latency['oblique']):.2f} ms, goal <= 8 ms)")


if __name__ == "__main__":
    raise SystemExit(main())
