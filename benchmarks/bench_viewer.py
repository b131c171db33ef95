"""Viewer performance, headless (offscreen Qt), each figure beside its baseline in the same run.

    python benchmarks/bench_viewer.py            # slice-step latency, 320^2 and 512^2
    python benchmarks/bench_viewer.py --startup  # launch -> first painted image on the demo, memory

Slice step: a change of slice in the model (``ViewState.scroll``) through the view's update to
pixels painted (a synchronous ``viewport().repaint()``), against the floor of bare pyqtgraph:
``ImageItem.setImage(levels=...)`` + ``repaint()`` on a widget of the same size.
"""

from __future__ import annotations

import time

T_PROCESS = time.time()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def scroll_times(view, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds per slice step, model change to pixels painted, scrolling back and forth."""
    times = []
    direction = 1
    last = view.state.n_slices - 1
    for i in range(n):
        if view.state.current.series_index in (0, last):
            direction = -direction if i else 1
        t0 = time.perf_counter()
        view.state.scroll(direction)
        view.graphics.viewport().repaint()
        times.append(time.perf_counter() - t0)
    return times


def slice_step(sizes: tuple[int, ...], n_steps: int) -> None:
    import numpy as np
    import pyqtgraph as pg
    from lumbarview.ui.slice_view import SliceView

    from lumbarview.core.geometry import VolumeGeometry
    from lumbarview.core.types import ImageStack, Series
    from lumbarview.model.cursor import CursorModel
    from lumbarview.model.view_state import WindowLevel
    from lumbarview.slicing.cache import SliceCache
    from lumbarview.ui.app import make_app

    app = make_app()
    for n in sizes:
        rng = np.random.default_rng(0)
        volume = rng.integers(0, 4096, size=(64, n, n), dtype=np.uint16)
        levels = (500.0, 3500.0)

        # Baseline: bare pyqtgraph.
        widget = pg.GraphicsLayoutWidget()
        widget.resize(700, 700)
        vb = widget.addViewBox(lockAspect=True, invertY=True)
        item = pg.ImageItem(axisOrder="row-major")
        vb.addItem(item)
        widget.show()
        app.processEvents()
        bare = []
        for i in range(n_steps + 5):
            t0 = time.perf_counter()
            item.setImage(volume[i % 64], levels=levels)
            widget.viewport().repaint()
            bare.append(time.perf_counter() - t0)
        widget.close()

        # lumbarview: model change -> SliceView -> painted.
        g = VolumeGeometry.from_directions((64, n, n), (0, 0, 0), (0, 1, 0), (0, 0, -1), (0.8, 0.8, 3.0))
        stack = ImageStack("bench", "bench", g, {}, lambda v=volume: (v, []))
        series = Series("bench", "bench", "MR", 1, [stack])
        cursor = CursorModel(g.index_to_lps((n / 2, n / 2, 0)))
        cache = SliceCache(512 * 2**20)
        view = SliceView("bench", cursor, cache, {}, lambda s: WindowLevel(2000.0, 3000.0))
        view.resize(720, 700)
        view.show()
        view.set_series(series)
        for k in range(64):
            cache.get(stack, k)  # what prefetching does off the GUI thread while reading
        app.processEvents()
        ours = scroll_times(view, n_steps + 5)
        view.close()
        b = statistics.median(bare[5:]) * 1000
        o = statistics.median(ours[5:]) * 1000
        p95 = sorted(ours[5:])[int(0.95 * n_steps)] * 1000
        print(f"{n}x{n}: slice step median {o:.2f} ms (p95 {p95:.2f}), bare pyqtgraph floor {b:.2f} ms, "
              f"ratio {o / b:.2f}x")


def overlay_step(n: int, n_steps: int) -> None:
    """Slice step with three overlays shown (a label map on the image's grid, a box set, a
    point set) against the same step without them, in the same run."""
    import numpy as np
    from lumbarview.ui.overlay_items import OverlayItems
    from lumbarview.ui.slice_view import SliceView

    from lumbarview.core.dataset import Box, BoxSet, Case, LabelMap, PointSet
    from lumbarview.core.geometry import VolumeGeometry
    from lumbarview.core.labels import spider_scheme
    from lumbarview.core.types import ImageStack, Series
    from lumbarview.model.cursor import CursorModel
    from lumbarview.model.overlays import OverlayModel
    from lumbarview.model.view_state import WindowLevel
    from lumbarview.slicing.cache import SliceCache
    from lumbarview.ui.app import make_app

    app = make_app()
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 4096, size=(64, n, n), dtype=np.uint16)
    labels = np.zeros((64, n, n), dtype=np.int32)
    labels[:, n // 4: n // 2, n // 3: n // 2] = 202
    labels[:, n // 2: 3 * n // 4, n // 2: 2 * n // 3] = 100
    g = VolumeGeometry.from_directions((64, n, n), (0, 0, 0), (0, 1, 0), (0, 0, -1), (0.8, 0.8, 3.0))
    stack = ImageStack("img", "img", g, {}, lambda: (volume, []))
    label_stack = ImageStack("lab", "img", g, {}, lambda: (labels, []))
    boxes = [Box("LFS", "left", "L4-L5", 2, 10, 10, 40, 40, "img", k,
                 g.slice_plane(k).pixel_to_lps(np.array([[10, 10], [40, 10], [40, 40], [10, 40]], float)), "")
             for k in range(64)]
    points = g.index_to_lps(np.array([[n / 2, n / 2, k] for k in range(64)], float))
    case = Case("bench", series=[Series("img", "img", "MR", 1, [stack])],
                label_maps=[LabelMap("mask", label_stack, spider_scheme(), "", "img")],
                box_sets=[BoxSet("boxes", "", boxes)],
                point_sets=[PointSet("points", "points", points, [], "", "LPS")])
    results = {}
    for with_overlays in (False, True):
        cursor = CursorModel(g.index_to_lps((n / 2, n / 2, 0)))
        cache = SliceCache(512 * 2**20)
        view = SliceView("bench", cursor, cache, {}, lambda s: WindowLevel(2000.0, 3000.0))
        model = OverlayModel()
        if with_overlays:
            view.overlay = OverlayItems(view, model)
        view.resize(720, 700)
        view.show()
        view.set_series(case.series[0])
        model.set_case(case)
        for k in range(64):
            cache.get(stack, k)
        app.processEvents()
        times = scroll_times(view, n_steps + 5)
        view.close()
        results[with_overlays] = statistics.median(times[5:]) * 1000
    print(f"{n}x{n}: slice step with 3 overlays {results[True]:.2f} ms, without {results[False]:.2f} ms, "
          f"ratio {results[True] / results[False]:.2f}x")


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
        window.sagittal.graphics.viewport().repaint()
        window.axial.graphics.viewport().repaint()
        result["painted"] = time.time()
        QtCore.QTimer.singleShot(0, app.quit)

    window.views_ready.connect(ready)
    QtCore.QTimer.singleShot(0, lambda: window.open(root))
    QtCore.QTimer.singleShot(60_000, app.quit)
    app.exec()
    print(f"PAINTED {result.get('painted', float('nan')):.6f} RSS {_rss_mb():.1f}")


def startup() -> None:
    from lumbarview.io.dicom.scan import default_cache_dir
    from lumbarview.services.demo import ensure_demo

    root = ensure_demo(default_cache_dir() / "demo")["sudirman"]
    runs = []
    for _ in range(3):
        t0 = time.time()
        out = subprocess.run([sys.executable, __file__, "--startup-child", str(root)], capture_output=True,
                             text=True, check=True).stdout
        line = next(line for line in out.splitlines() if line.startswith("PAINTED"))
        _, painted, _, rss = line.split()
        runs.append((float(painted) - t0, float(rss)))
    base = []
    for _ in range(3):
        t0 = time.time()
        subprocess.run([sys.executable, "-c", "import PySide6.QtWidgets, pyqtgraph"], check=True)
        base.append(time.time() - t0)
    print(f"launch -> both views painted on the demo: median {statistics.median(r[0] for r in runs):.2f} s "
          f"(runs {', '.join(f'{r[0]:.2f}' for r in runs)}); bare 'import PySide6.QtWidgets, pyqtgraph' "
          f"process {statistics.median(base):.2f} s")
    print(f"memory with the demo open: {statistics.median(r[1] for r in runs):.0f} MB RSS")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--startup", action="store_true")
    parser.add_argument("--startup-child")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    if args.startup_child:
        startup_child(args.startup_child)
    elif args.startup:
        startup()
    else:
        slice_step((320, 512), args.steps)
        for n in (320, 512):
            overlay_step(n, args.steps)
