"""Viewer performance, headless (offscreen Qt), each figure beside its baseline in the same run.

    python benchmarks/bench_viewer.py            # slice steps (native, reformat) and overlays
    python benchmarks/bench_viewer.py --startup  # launch -> first painted image on the demo, memory
    python benchmarks/bench_viewer.py --scroll-memory [--cache-mb 64]
                                                 # memory while scrolling every slice of a 200 x 512 x
                                                 # 512 stack (native sagittal, reformatted axial)

A step is a change of slice in the model (``ViewState.step``) through the view's update to pixels
painted (a synchronous ``viewport().repaint()``). Baseline: bare pyqtgraph,
``ImageItem.setImage(levels=...)`` + ``repaint()`` on a widget of the same size, pixels already
in memory. Each step is timed twice: wall time, and the CPU time of the GUI thread (on a shared,
loaded machine the wall time also holds the time other processes had the cores). Rounds
interleave baseline and subject; the view's plane cache is warm for the native
step (prefetching does that off the GUI thread while a reader reads) and cleared before the
reformatted steps of each round; as it steps, the view prefetches the planes either side on the
cache's background thread, and the steps follow back to back, so a step may find its plane
computed or in flight (``bench_reformat.py --scroll`` separates the two). Medians with the spread
(min-max of the round medians).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import header


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _steps(view: Any, n: int, also: tuple[Any, ...] = (), pace_s: float = 0.0) -> list[tuple[float, float]]:
    """Seconds per step, model change to pixels painted (the view's, and those of the views in
    ``also``: linked views whose reference lines moved), back and forth across the series. With
    ``pace_s``, one step every ``pace_s`` seconds (a scroll at that rate): the wait between
    steps runs the event loop, and only the steps are timed."""
    from PySide6 import QtWidgets

    times = []
    direction = 1
    next_at = time.perf_counter()
    for _ in range(n):
        if pace_s:
            while time.perf_counter() < next_at:
                QtWidgets.QApplication.processEvents()
                time.sleep(0.001)
            next_at = time.perf_counter() + pace_s
        index, count = view.view_state.position()
        if index <= 0:
            direction = 1
        elif index >= count - 1:
            direction = -1
        t0, c0 = time.perf_counter(), time.thread_time()
        view.view_state.step(direction)
        view.graphics.viewport().repaint()
        for other in also:
            other.graphics.viewport().repaint()
        times.append((time.perf_counter() - t0, time.thread_time() - c0))
    return times


def _walk(view: Any, start: int, n: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per step of ``n`` steps forward from slice ``start`` (the same planes
    each call)."""
    view.view_state.go_to(start)
    view.graphics.viewport().repaint()
    times = []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.thread_time()
        view.view_state.step(1)
        view.graphics.viewport().repaint()
        times.append((time.perf_counter() - t0, time.thread_time() - c0))
    return times


def _warm_native(view: Any, cache: Any, stacks: list[tuple[Any, str]]) -> None:
    """Every native plane of ``view``'s series in ``cache``, images and labels: what prefetching
    does off the GUI thread while a reader reads."""
    geometry = view.view_state.source.geometry
    for k in range(geometry.shape_kji[0]):
        plane = view.view_state.plane.through(geometry.index_to_lps((0, 0, k)))
        for stack, kind in stacks:
            cache.get(stack, plane, kind=kind)


def _medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    """(wall, CPU) medians in ms."""
    return statistics.median(t[0] for t in times) * 1000, statistics.median(t[1] for t in times) * 1000


def _spread(rounds: list[tuple[float, float]]) -> str:
    wall = [r[0] for r in rounds]
    cpu = [r[1] for r in rounds]
    return (f"wall {statistics.median(wall):6.2f} ms ({min(wall):.2f}-{max(wall):.2f}), "
            f"CPU {statistics.median(cpu):5.2f} ms ({min(cpu):.2f}-{max(cpu):.2f})")


def _ratio(subject: list[tuple[float, float]], baseline: list[tuple[float, float]]) -> str:
    """Per-round ratios (the rounds pair neighbours in time), wall and CPU: median and range."""
    out = []
    for i, name in ((0, "wall"), (1, "CPU")):
        per_round = [a[i] / b[i] for a, b in zip(subject, baseline, strict=True)]
        out.append(f"{name} {statistics.median(per_round):.2f}x ({min(per_round):.2f}-{max(per_round):.2f})")
    return ", ".join(out)


def steps(sizes: tuple[int, ...], n_steps: int, rounds: int, overlays: bool) -> None:
    import numpy as np
    import pyqtgraph as pg

    from lumbarview.core.dataset import Box, BoxSet, Case, LabelMap, PointSet
    from lumbarview.core.geometry import VolumeGeometry
    from lumbarview.core.labels import spider_scheme
    from lumbarview.core.types import ImageStack, Series
    from lumbarview.model.session import Session
    from lumbarview.model.view_state import WindowLevel
    from lumbarview.slicing.cache import PlaneCache
    from lumbarview.ui.app import make_app
    from lumbarview.ui.items.overlay_items import OverlayItems
    from lumbarview.ui.views.slice_view import SliceView

    app = make_app()
    for n in sizes:
        rng = np.random.default_rng(0)
        volume = rng.integers(0, 4096, size=(64, n, n), dtype=np.uint16)
        labels = np.zeros((64, n, n), dtype=np.int32)
        labels[:, n // 4: n // 2, n // 3: n // 2] = 202
        g = VolumeGeometry.from_directions((64, n, n), (0, 0, 0), (0, 1, 0), (0, 0, -1), (0.8, 0.8, 3.0))
        stack = ImageStack("img", "img", g, {}, lambda v=volume: (v, []))
        label_stack = ImageStack("lab", "img", g, {}, lambda v=labels: (v, []))
        boxes = [Box("LFS", "left", "L4-L5", 2, 10, 10, 40, 40, "img", k,
                     g.slice_plane(k).pixel_to_lps(np.array([[10, 10], [40, 10], [40, 40], [10, 40]], float)), "")
                 for k in range(64)]
        points = g.index_to_lps(np.array([[n / 2, n / 2, k] for k in range(64)], float))
        series = Series("img", "img", "MR", 1, [stack])
        case = Case("bench", series=[series])
        if overlays:
            case.label_maps = [LabelMap("mask", label_stack, spider_scheme(), "", "img")]
            case.box_sets = [BoxSet("boxes", "", boxes)]
            case.point_sets = [PointSet("points", "points", points, [], "", "LPS")]
        stack.pixels()
        label_stack.pixels()

        widget = pg.GraphicsLayoutWidget()
        widget.resize(700, 700)
        vb = widget.addViewBox(lockAspect=True, invertY=True)
        item = pg.ImageItem(axisOrder="row-major")
        vb.addItem(item)
        widget.show()

        session = Session(default_window=lambda s: WindowLevel(2000.0, 3000.0))
        session.layout = "1x2"
        cache = PlaneCache(512 * 2**20)
        views = {name: SliceView(name, session, cache) for name in ("sagittal", "axial")}
        for view in views.values():
            view.resize(720, 700)
            view.show()
            if overlays:
                view.overlay = OverlayItems(view, session.overlays)
        session.show_case(case, {"sagittal": series, "axial": series}, g.index_to_lps((n / 2, n / 2, 32)))
        sagittal, axial = views["sagittal"], views["axial"]

        warm = (sagittal, cache, [(stack, "image")] + ([(label_stack, "labels")] if overlays else []))
        _warm_native(*warm)
        app.processEvents()
        count = axial.view_state.position()[1]
        walk = min(n_steps, count - 1)
        start = max(0, (count - 1 - walk) // 2)
        names = ("bare", "native", "linked", "new", "cached", "paced", "native paced")
        figures: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
        for _ in range(rounds):
            bare = []
            for i in range(n_steps):
                t0, c0 = time.perf_counter(), time.thread_time()
                item.setImage(volume[i % 64], levels=(500.0, 3500.0))
                widget.viewport().repaint()
                bare.append((time.perf_counter() - t0, time.thread_time() - c0))
            figures["bare"].append(_medians(bare))
            figures["native"].append(_medians(_steps(sagittal, n_steps)))
            figures["linked"].append(_medians(_steps(sagittal, n_steps, also=(axial,))))
            cache.clear()
            _warm_native(*warm)
            figures["new"].append(_medians(_walk(axial, start, walk)))
            figures["cached"].append(_medians(_walk(axial, start, walk)))
            cache.clear()
            _warm_native(*warm)
            figures["paced"].append(_medians(_steps(axial, walk, pace_s=1 / 30)))
            figures["native paced"].append(_medians(_steps(sagittal, walk, pace_s=1 / 30)))
        for view in views.values():
            view.close()
        widget.close()
        what = "with 3 overlays (mask, boxes, points)" if overlays else "no overlays"
        f = figures
        print(f"{n}x{n}x64 volume, {what} (per step: wall time, and CPU time of the GUI thread):")
        rows = [("bare pyqtgraph (setImage + repaint)", "bare", None, ""),
                ("native sagittal step, one view", "native", "bare", "the bare floor"),
                ("native sagittal step, two linked views", "linked", "bare", "the bare floor (both views repainted)"),
                ("reformatted axial step, new planes", "new", "cached", "the cached step (prefetch in flight)"),
                ("reformatted axial step, cached planes", "cached", None, ""),
                ("reformatted axial step, 30 steps/s", "paced", "native paced", "the native step at 30 steps/s"),
                ("native sagittal step, 30 steps/s", "native paced", None, "")]
        for title, key, base, versus in rows:
            print(f"  {title:<40} {_spread(f[key])}")
            if base is not None:
                print(f"  {'':<40} {_ratio(f[key], f[base])} {versus}")


def startup_child(root: str) -> None:
    from PySide6 import QtCore

    from lumbarview.ui.app import make_app
    from lumbarview.ui.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.resize(1500, 850)
    window.show()
    result: dict[str, float] = {}

    def ready() -> None:
        for view in window.visible_views():
            view.graphics.viewport().repaint()
        result["painted"] = time.time()
        QtCore.QTimer.singleShot(0, app.quit)

    window.views_ready.connect(ready)
    QtCore.QTimer.singleShot(0, lambda: window.open(root))
    QtCore.QTimer.singleShot(60_000, app.quit)
    app.exec()
    print(f"PAINTED {result.get('painted', float('nan')):.6f} RSS {_rss_mb():.1f}")


def startup(rounds: int) -> None:
    from lumbarview.services.demo import default_demo_root, ensure_demo

    root = ensure_demo(default_demo_root())["sudirman"]
    runs, base = [], []
    for _ in range(rounds):  # interleaved: the viewer, then the bare imports
        t0 = time.time()
        out = subprocess.run([sys.executable, __file__, "--startup-child", str(root)], capture_output=True,
                             text=True, check=True).stdout
        line = next(line for line in out.splitlines() if line.startswith("PAINTED"))
        _, painted, _, rss = line.split()
        runs.append((float(painted) - t0, float(rss)))
        t0 = time.time()
        subprocess.run([sys.executable, "-c", "import PySide6.QtWidgets, pyqtgraph"], check=True)
        base.append(time.time() - t0)
    print(f"launch -> every view painted on the demo (1x3): median {statistics.median(r[0] for r in runs):.2f} s "
          f"(runs {', '.join(f'{r[0]:.2f}' for r in runs)}); bare 'import PySide6.QtWidgets, pyqtgraph' "
          f"process {statistics.median(base):.2f} s")
    print(f"memory with the demo open: {statistics.median(r[1] for r in runs):.0f} MB RSS")


def scroll_memory(cache_mb: int) -> None:
    """Resident memory while every slice of a 200 x 512 x 512 int16 stack is shown in the sagittal
    (native) and the axial (reformatted) view, through a plane cache of ``cache_mb``: the bound is
    the volume plus the cache plus the program itself (measured before the first step)."""
    import numpy as np

    from lumbarview.core.dataset import Case
    from lumbarview.core.geometry import VolumeGeometry
    from lumbarview.core.types import ImageStack, Series
    from lumbarview.model.session import Session
    from lumbarview.model.view_state import WindowLevel
    from lumbarview.slicing.cache import PlaneCache
    from lumbarview.ui.app import make_app
    from lumbarview.ui.views.slice_view import SliceView

    app = make_app()
    volume = np.random.default_rng(0).integers(0, 4096, size=(200, 512, 512), dtype=np.int16)
    g = VolumeGeometry.from_directions((200, 512, 512), (0, 0, 0), (0, 1, 0), (0, 0, -1), (0.6, 0.6, 1.0))
    stack = ImageStack("img", "img", g, {}, lambda: (volume, []))
    series = Series("img", "img", "MR", 1, [stack])
    stack.pixels()
    session = Session(default_window=lambda s: WindowLevel(2000.0, 3000.0))
    session.layout = "1x2"
    cache = PlaneCache(cache_mb * 2**20)
    views = {name: SliceView(name, session, cache) for name in ("sagittal", "axial")}
    for view in views.values():
        view.resize(720, 700)
        view.show()
    session.show_case(Case("bench", series=[series]), {"sagittal": series, "axial": series},
                      g.index_to_lps((256, 256, 0)))
    app.processEvents()
    before = _rss_mb()
    peaks = []
    counts = {}
    for _pass in range(2):  # the second pass shows whether memory keeps growing
        peak = before
        for name, view in views.items():
            view.view_state.go_to(0)
            _index, count = view.view_state.position()
            counts[name] = count
            for _ in range(count - 1):
                view.view_state.step(1)
                view.graphics.viewport().repaint()
                app.processEvents()
                peak = max(peak, _rss_mb())
            while not cache.idle():
                time.sleep(0.001)
        peaks.append(peak)
    print(f"scrolling every slice of a 200 x 512 x 512 int16 stack ({volume.nbytes / 2**20:.0f} MB decoded), "
          f"twice: sagittal {counts['sagittal']} native slices, then axial {counts['axial']} reformatted planes; "
          f"plane cache bound {cache_mb} MB (held {cache.used_bytes / 2**20:.0f} MB at the end): RSS "
          f"{before:.0f} MB before the first step, peak {peaks[0]:.0f} MB in the first pass (+{peaks[0] - before:.0f}"
          f" MB), {peaks[1]:.0f} MB in the second (+{peaks[1] - before:.0f} MB); beyond the cache's bytes, freed "
          "memory the C allocator keeps for reuse")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--startup", action="store_true")
    parser.add_argument("--startup-child")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scroll-memory", action="store_true")
    parser.add_argument("--cache-mb", type=int, default=64)
    args = parser.parse_args()
    if args.startup_child:
        startup_child(args.startup_child)
    elif args.startup:
        startup(args.rounds)
    elif args.scroll_memory:
        scroll_memory(args.cache_mb)
    else:
        print(header("bench_viewer") + f"; {args.rounds} interleaved rounds of {args.steps} steps")
        for overlays in (False, True):
            steps((320, 512), args.steps, args.rounds, overlays)
