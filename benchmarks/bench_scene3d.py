"""3D pane performance, headless (offscreen Qt, VTK through OSMesa), each figure beside a bare VTK
render of the same scene in the same run, interleaved.

    python benchmarks/bench_scene3d.py [--repeats 5] [--frames 60] [--steps 60] [--out FILE.json]

Scene: the phantom's SPIDER case (label maps: vertebra, disc and canal surfaces) with the BIDS
case's models (dura, cord, nerve roots) and markers added (the same phantom, so they share one
space), in a 600 x 600 pane.

1. First frame: a new pane (Qt widget, render window, every object of the case: meshes, marker
   spheres, tubes and names, label surfaces built (cache cleared, and again warm), three
   textured slices) to the first frame's pixels in memory; bare: a new offscreen
   vtkRenderWindow with actors made from the same triangles, first Render() and read-back.
2. Rotation frame: camera azimuth 3 degrees + Render(), ours (the pane's render window inside
   Qt) and bare alternating.
3. Slice step: two main windows on the SPIDER case (1x3 layout), one showing the 3D pane in
   place of the coronal; a sagittal step (model change to pixels painted) alternating between
   them. Also the steps per second of continuous stepping with the event loop running (so the
   pane's renders, at most one per ``min_frame_interval_s``, compete for the two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ["QT_QPA_PLATFORM"] == "offscreen":
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = (600, 600)


def _stats(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 4 else [ms[0], statistics.median(ms), ms[-1]]
    return {"median_ms": statistics.median(ms), "q1_ms": q[0], "q3_ms": q[2], "min_ms": ms[0], "max_ms": ms[-1],
            "n": len(ms)}


def _fmt(name: str, s: dict[str, float]) -> str:
    return f"{name}: median {s['median_ms']:.1f} ms (IQR {s['q1_ms']:.1f}-{s['q3_ms']:.1f}, n={s['n']})"


def _case(root: Path) -> Any:
    from lumbarview.services.open_dataset import open_path

    spider = open_path(str(root / "spider")).cases[0]
    bids = open_path(str(root / "bids")).cases[0]
    spider.meshes.extend(bids.meshes)
    spider.point_sets.extend(bids.point_sets)
    return spider


def _session(case: Any) -> Any:
    from lumbarview.model.session import Session
    from lumbarview.model.window_presets import default_window
    from lumbarview.services.case_loader import load_case

    view = load_case(case)
    session = Session(default_window)
    session.show_case(case, view.series, view.cursor_lps, view.disc_planes, view.shown_stacks)
    return session


def _bare_scene(meshes: list[tuple[Any, Any, tuple[float, float, float]]]) -> Any:
    """A plain offscreen VTK window with the same triangles (no Qt, none of our code paths)."""
    from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow

    from lumbarview.ui.scene3d.vtk_objects import mesh_actor

    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*SIZE)
    renderer = vtkRenderer()
    renderer.SetBackground(0.05, 0.05, 0.06)
    window.AddRenderer(renderer)
    for vertices, faces, colour in meshes:
        actor = mesh_actor(vertices, faces)
        actor.GetProperty().SetColor(*colour)
        renderer.AddActor(actor)
    renderer.ResetCamera()
    camera = renderer.GetActiveCamera()
    camera.Azimuth(30)
    camera.Elevation(15)
    renderer.ResetCamera()
    return window, renderer


def first_frame(case: Any, repeats: int) -> dict[str, Any]:
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    from lumbarview.services import surfaces
    from lumbarview.slicing.cache import PlaneCache
    from lumbarview.ui.app import make_app
    from lumbarview.ui.scene3d.scene_view import SceneView

    app = make_app()
    session = _session(case)
    cold, warm, bare = [], [], []
    n_triangles = 0
    for _ in range(repeats):
        for kind in ("cold", "warm", "bare"):
            if kind == "cold":
                surfaces.clear_cache()
            if kind == "bare":
                meshes = [(o.mesh.vertices_lps, o.mesh.faces, (0.8, 0.6, 0.4)) for lm in case.label_maps
                          for o in surfaces.build_label_surfaces(lm, [v for v in range(1, 256)])
                          if any(lay.visible and lay.source is lm for lay in session.overlays.layers)]
                meshes += [(m.vertices_lps, m.faces, (0.9, 0.8, 0.5)) for m in case.meshes]
                n_triangles = sum(len(f) for _, f, _ in meshes)
                t0 = time.perf_counter()
                window, _renderer = _bare_scene(meshes)
                window.Render()
                grab = vtkWindowToImageFilter()  # to pixels in memory, as ours
                grab.SetInput(window)
                grab.ReadFrontBufferOff()
                grab.Update()
                bare.append(time.perf_counter() - t0)
                window.Finalize()
                continue
            t0 = time.perf_counter()
            scene = SceneView(session, PlaneCache(), None)
            scene.resize(*SIZE)
            scene.show()
            app.processEvents()
            scene.grab_rgb()  # the first frame, rendered and read back
            (cold if kind == "cold" else warm).append(time.perf_counter() - t0)
            scene.shutdown()
            scene.deleteLater()
            app.processEvents()
    out = {"ours_cold_surfaces": _stats(cold), "ours_cached_surfaces": _stats(warm), "bare_vtk": _stats(bare),
           "triangles": n_triangles}
    print(_fmt("first frame, ours (surfaces built)", out["ours_cold_surfaces"]))
    print(_fmt("first frame, ours (surfaces cached)", out["ours_cached_surfaces"]))
    print(_fmt("first frame, bare VTK", out["bare_vtk"]) + f"  [{n_triangles:,} triangles]")
    return out


def rotation(case: Any, frames: int) -> dict[str, Any]:
    from lumbarview.services import surfaces
    from lumbarview.slicing.cache import PlaneCache
    from lumbarview.ui.app import make_app
    from lumbarview.ui.scene3d.scene_view import SceneView

    app = make_app()
    session = _session(case)
    scene = SceneView(session, PlaneCache(), None)
    scene.resize(*SIZE)
    scene.show()
    app.processEvents()
    scene.grab_rgb()
    meshes = [(o.mesh.vertices_lps, o.mesh.faces, (0.8, 0.6, 0.4)) for lm in case.label_maps
              for o in surfaces.build_label_surfaces(lm, range(1, 256))
              if any(lay.visible and lay.source is lm for lay in session.overlays.layers)]
    meshes += [(m.vertices_lps, m.faces, (0.9, 0.8, 0.5)) for m in case.meshes]
    window, renderer = _bare_scene(meshes)
    window.Render()
    ours, bare = [], []
    for _ in range(frames + 5):
        t0 = time.perf_counter()
        scene.renderer.GetActiveCamera().Azimuth(3)
        scene.renderer.ResetCameraClippingRange()
        scene.render_window.Render()
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        renderer.GetActiveCamera().Azimuth(3)
        renderer.ResetCameraClippingRange()
        window.Render()
        bare.append(time.perf_counter() - t0)
    shown = sum(1 for o in scene.objects.values() if o.visible)
    scene.shutdown()
    window.Finalize()
    out = {"ours": _stats(ours[5:]), "bare_vtk": _stats(bare[5:]), "visible_objects": shown}
    print(_fmt("rotation frame, ours", out["ours"]) + f"  [{shown} visible objects + slices]")
    print(_fmt("rotation frame, bare VTK", out["bare_vtk"]))
    return out


def slice_step(root: Path, steps: int) -> dict[str, Any]:
    from lumbarview.ui.app import make_app
    from lumbarview.ui.main_window import MainWindow

    app = make_app()
    windows = []
    for with_3d in (False, True):
        w = MainWindow(layout="1x3")
        w.resize(1500, 700)
        w.show()
        ready = {"v": False}
        w.views_ready.connect(lambda r=ready: r.__setitem__("v", True))
        w.open(str(root / "spider"))
        t0 = time.time()
        while not ready["v"] and time.time() - t0 < 120:
            app.processEvents()
            time.sleep(0.005)
        if with_3d:
            w.toggle_scene3d(True)
            t0 = time.time()
            while (w.scene3d.pending_surfaces or time.time() - t0 < 1.0) and time.time() - t0 < 60:
                app.processEvents()
                time.sleep(0.005)
        windows.append(w)
    times: dict[bool, list[float]] = {False: [], True: []}
    direction = {False: 1, True: 1}
    for _ in range(steps + 5):
        for with_3d, w in zip((False, True), windows, strict=True):
            view = w.views["sagittal"]
            index, count = view.view_state.position()
            if index + direction[with_3d] not in range(count):
                direction[with_3d] = -direction[with_3d]
            t0 = time.perf_counter()
            view.view_state.step(direction[with_3d])
            view.graphics.viewport().repaint()
            times[with_3d].append(time.perf_counter() - t0)
            app.processEvents()  # the pane's deferred render runs here, outside the timing
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(3):
        for with_3d, w in zip((False, True), windows, strict=True):
            view = w.views["sagittal"]
            n, t_end = 0, time.perf_counter() + 1.5
            renders = {"n": 0}
            if w.scene3d is not None:
                w.scene3d.rendered.connect(lambda r=renders: r.__setitem__("n", r["n"] + 1))
            while time.perf_counter() < t_end:
                index, count = view.view_state.position()
                if index + direction[with_3d] not in range(count):
                    direction[with_3d] = -direction[with_3d]
                view.view_state.step(direction[with_3d])
                view.graphics.viewport().repaint()
                app.processEvents()
                n += 1
            rates[with_3d].append(n / 1.5)
            if with_3d:
                rates.setdefault("renders", []).append(renders["n"] / 1.5)  # type: ignore[call-overload]
    for w in windows:
        w.close()
    out = {"without_3d": _stats(times[False][5:]), "with_3d": _stats(times[True][5:])}
    ratio = out["with_3d"]["median_ms"] / out["without_3d"]["median_ms"]
    out["ratio"] = ratio
    out["steps_per_s_without_3d"] = statistics.median(rates[False])
    out["steps_per_s_with_3d"] = statistics.median(rates[True])
    out["pane_frames_per_s_while_stepping"] = statistics.median(rates["renders"])  # type: ignore[index]
    print(_fmt("sagittal step, 3D pane hidden", out["without_3d"]))
    print(_fmt("sagittal step, 3D pane shown", out["with_3d"]) + f"  ratio {ratio:.2f}x")
    print(f"continuous stepping: {out['steps_per_s_without_3d']:.0f} steps/s without the pane, "
          f"{out['steps_per_s_with_3d']:.0f} steps/s with it ({out['pane_frames_per_s_while_stepping']:.0f} "
          "pane frames/s)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from lumbarview.phantom.layouts import write_all

    with tempfile.TemporaryDirectory(prefix="lumbarview-bench3d-") as tmp:
        root = Path(tmp)
        write_all(root, layouts=("spider", "bids"))
        case = _case(root)
        results = {"cores": os.cpu_count(), "pane_px": list(SIZE),
                   "opengl_window": os.environ.get("VTK_DEFAULT_OPENGL_WINDOW", "default"),
                   "first_frame": first_frame(case, args.repeats), "rotation": rotation(case, args.frames),
                   "slice_step": slice_step(root, args.steps)}
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
