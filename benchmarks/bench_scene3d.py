"""3D pane performance, headless (offscreen Qt, VTK through OSMesa), each figure beside a bare VTK
render of the same scene in the same run, interleaved.

    python benchmarks/bench_scene3d.py [--repeats 5] [--frames 60] [--steps 60] [--out FILE.json]

Scene: the phantom's SPIDER case (label maps: vertebra, disc and canal surfaces) with the BIDS
case's models (dura, cord, nerve roots) and markers added (the same phantom, so they share one
space), in a 600 x 600 pane. What is drawn is printed first: triangles per kind (label surfaces
as decimated, with the count before decimation; STL meshes; marker spheres; curve tubes), the
textured slices, the text labels and the line segments.

The bare VTK scene is the pane's scene without Qt and without our render path: a plain offscreen
vtkRenderWindow of the pane's pixel size holding a copy of every prop the pane shows (new actors
and mappers on the pane's own polydata: the same, decimated, triangles and normals; the same
glyphs, tubes, text labels, textured slices and lines; the same colours, opacities and back-face
culling), the pane's camera and the pane's render settings (multisamples, order-independent
transparency, no depth peeling or FXAA). Until the label surfaces were decimated the bare scene
was only the label surfaces and STL meshes as opaque actors, with VTK's default multisampling
(4x on OSMesa), normals computed in the first-frame timing; it drew less than the pane.

1. First frame: a new pane (Qt widget, render window, every object of the case: meshes, marker
   spheres, tubes and names, label surfaces built (cache cleared, and again warm), three
   textured slices) to the first frame's pixels in memory; bare: a new offscreen
   vtkRenderWindow, the copies of the warm pane's props made, first Render() and read-back;
   beside the pane's cold frame, the bare one also builds the label surfaces (a plain VTK
   pipeline: surface nets over every visible label of a map at once, then decimation, at the
   map's full resolution on one thread: the pane first pools the labels to about 1.2 mm voxels
   and builds them on two threads, so the bare pipeline makes more triangles; it is the plain
   way, not the same mesh).
2. Rotation frame: camera azimuth 3 degrees + Render(), ours (the pane's render window inside
   Qt) and bare alternating; also the process's CPU time per frame (OSMesa's threads included),
   which other load on the machine disturbs less than the wall clock.
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


def _triangles(poly: Any) -> int:
    """Triangles OpenGL draws for ``poly``'s polygons and strips."""
    import numpy as np
    from vtkmodules.util.numpy_support import vtk_to_numpy

    n = 0
    for cells in (poly.GetPolys(), poly.GetStrips()):
        if cells is not None and cells.GetNumberOfCells():
            n += int((np.diff(vtk_to_numpy(cells.GetOffsetsArray())) - 2).sum())
    return n


def _drawn(scene: Any) -> dict[str, Any]:
    """What the pane draws, by kind: triangles, props, and for label surfaces the triangles
    before decimation."""
    from vtkmodules.vtkRenderingCore import vtkBillboardTextActor3D, vtkGlyph3DMapper

    from lumbarview.services import surfaces

    out: dict[str, Any] = {"label surfaces": [0, 0], "STL meshes": [0, 0], "marker spheres": [0, 0],
                           "curve tubes": [0, 0], "slices": [0, 0], "text labels": [0, 0], "line segments": [0, 0]}
    undecimated = 0
    for obj in scene.objects.values():
        for prop in obj.props:
            if not prop.GetVisibility():
                continue
            if isinstance(prop, vtkBillboardTextActor3D):
                out["text labels"][1] += 1
                continue
            mapper = prop.GetMapper()
            mapper.Update()
            if isinstance(mapper, vtkGlyph3DMapper):
                kind = "marker spheres"
                tri = mapper.GetInput().GetNumberOfPoints() * _triangles(mapper.GetSource())
            else:
                kind = {"surface": "label surfaces", "mesh": "STL meshes", "curve": "curve tubes"}[obj.kind]
                tri = _triangles(mapper.GetInput())
            out[kind][0] += tri
            out[kind][1] += 1
            if obj.kind == "surface":
                found = surfaces.build_label_surface(obj.layer.source, int(obj.value), reduction=0.0)
                undecimated += found.mesh.n_triangles if found is not None else 0
    labels = getattr(scene, "labels", None)  # the marker names (one overlay for all of them)
    if labels is not None and labels.actor.GetVisibility():
        out["text labels"][1] += len(labels.texts)
    for sl in scene.slices.values():
        if sl.actor.GetVisibility():
            out["slices"][0] += 2 * sl.actor.GetMapper().GetInput().GetNumberOfPolys()  # a quad: 2 triangles
            out["slices"][1] += 1
            out["line segments"][0] += sl.frame.GetMapper().GetInput().GetNumberOfLines()
    if scene.cursor_actor.GetVisibility():
        out["line segments"][0] += scene.cursor_actor.GetMapper().GetInput().GetNumberOfLines()
    result = {k: {"triangles": v[0], "props": v[1]} for k, v in out.items()}
    result["label surfaces"]["triangles_before_decimation"] = undecimated
    result["total_triangles"] = sum(v[0] for v in out.values() if v is not out["line segments"])
    return result


def _fmt_drawn(drawn: dict[str, Any]) -> str:
    s = drawn["label surfaces"]
    parts = [f"label surfaces {s['triangles']:,} tri in {s['props']} "
             f"(before decimation {s['triangles_before_decimation']:,})"]
    for kind in ("STL meshes", "marker spheres", "curve tubes"):
        parts.append(f"{kind} {drawn[kind]['triangles']:,} tri in {drawn[kind]['props']}")
    parts.append(f"{drawn['slices']['props']} textured slices, {drawn['text labels']['props']} text labels, "
                 f"{drawn['line segments']['triangles']} line segments")
    return f"drawn: {drawn['total_triangles']:,} triangles: " + "; ".join(parts)


def _copy_prop(prop: Any) -> Any:
    """A new prop with a new mapper drawing the same data as ``prop``, looking the same."""
    from vtkmodules.vtkRenderingCore import (
        vtkActor,
        vtkBillboardTextActor3D,
        vtkGlyph3DMapper,
        vtkPolyDataMapper,
        vtkTexture,
    )

    if isinstance(prop, vtkBillboardTextActor3D):
        text = vtkBillboardTextActor3D()
        text.SetInput(prop.GetInput())
        text.SetPosition(*prop.GetPosition())
        text.GetTextProperty().ShallowCopy(prop.GetTextProperty())
        return text
    source = prop.GetMapper()
    source.Update()
    mapper: Any
    if isinstance(source, vtkGlyph3DMapper):
        mapper = vtkGlyph3DMapper()
        mapper.SetInputData(source.GetInput())
        mapper.SetSourceData(source.GetSource())
        mapper.SetScaling(source.GetScaling())
        mapper.SetOrient(source.GetOrient())
    else:
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(source.GetInput())
    mapper.SetScalarVisibility(source.GetScalarVisibility())
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().DeepCopy(prop.GetProperty())
    if prop.GetTexture() is not None:
        texture = vtkTexture()
        texture.SetInputData(prop.GetTexture().GetInput())
        texture.SetInterpolate(prop.GetTexture().GetInterpolate())
        actor.SetTexture(texture)
    return actor


def _bare_scene(scene: Any) -> tuple[Any, Any]:
    """A plain offscreen VTK window (no Qt, none of our render path) drawing copies of the props
    ``scene`` shows, from its camera, with its render settings and pixel size."""
    from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow

    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*scene.render_window.GetSize())
    window.SetMultiSamples(scene.render_window.GetMultiSamples())
    renderer = vtkRenderer()
    renderer.SetBackground(*scene.renderer.GetBackground())
    renderer.SetUseDepthPeeling(scene.renderer.GetUseDepthPeeling())
    renderer.SetUseOIT(scene.renderer.GetUseOIT())
    renderer.SetUseFXAA(scene.renderer.GetUseFXAA())
    window.AddRenderer(renderer)
    props = scene.renderer.GetViewProps()
    props.InitTraversal()
    for _ in range(props.GetNumberOfItems()):
        prop = props.GetNextProp()
        if prop.GetVisibility():
            renderer.AddViewProp(_copy_prop(prop))
    renderer.GetActiveCamera().DeepCopy(scene.renderer.GetActiveCamera())
    renderer.ResetCameraClippingRange()
    return window, renderer


def _bare_surfaces(session: Any) -> list[Any]:
    """The label surfaces the pane shows, built by a plain VTK pipeline (the cold first frame's
    baseline builds its surfaces too): per visible label layer, the whole map as one vtkImageData
    on its spacing, one vtkSurfaceNets3D over every visible label (the pane's smoothing) and one
    vtkQuadricDecimation (the pane's reduction)."""
    import numpy as np
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkQuadricDecimation, vtkSurfaceNets3D

    from lumbarview.core.dataset import LabelMap
    from lumbarview.services import surfaces

    out = []
    for layer in session.overlays.layers:
        if layer.kind != "labels" or not layer.visible or not isinstance(layer.source, LabelMap):
            continue
        stack = layer.source.stack
        if stack.n_slices < 2:
            continue
        labels = stack.pixels()
        k, j, i = labels.shape
        image = vtkImageData()
        image.SetDimensions(i, j, k)
        image.SetSpacing(*stack.geometry.spacing_mm)
        image.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(labels).ravel(), deep=True))
        nets = vtkSurfaceNets3D()
        nets.SetInputData(image)
        for n, value in enumerate(v for v in layer.label_values() if v not in layer.hidden_labels):
            nets.SetLabel(n, float(value))
        nets.SetBackgroundLabel(0.0)
        nets.SetOutputMeshTypeToTriangles()
        nets.SmoothingOn()
        nets.SetNumberOfIterations(surfaces.DEFAULT_SMOOTHING)
        decimate = vtkQuadricDecimation()
        decimate.SetInputConnection(nets.GetOutputPort())
        decimate.SetTargetReduction(surfaces.DEFAULT_REDUCTION)
        decimate.Update()
        out.append(decimate.GetOutput())
    return out


def first_frame(case: Any, repeats: int) -> dict[str, Any]:
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    from lumbarview.services import surfaces
    from lumbarview.slicing.cache import PlaneCache
    from lumbarview.ui.app import make_app
    from lumbarview.ui.scene3d.scene_view import SceneView

    app = make_app()
    session = _session(case)
    cold, warm, bare, bare_cold = [], [], [], []
    drawn: dict[str, Any] = {}
    for _ in range(repeats):
        source = None
        for kind in ("cold", "warm", "bare"):
            if kind == "cold":
                surfaces.clear_cache()
            if kind == "bare":
                assert source is not None
                t0 = time.perf_counter()
                built = _bare_surfaces(session)
                surfaces_s = time.perf_counter() - t0
                assert built, "no label surface to build"
                t0 = time.perf_counter()
                window, _renderer = _bare_scene(source)
                window.Render()
                grab = vtkWindowToImageFilter()  # to pixels in memory, as ours
                grab.SetInput(window)
                grab.ReadFrontBufferOff()
                grab.Update()
                bare.append(time.perf_counter() - t0)
                bare_cold.append(bare[-1] + surfaces_s)
                window.Finalize()
                source.shutdown()
                source.deleteLater()
                app.processEvents()
                continue
            t0 = time.perf_counter()
            scene = SceneView(session, PlaneCache(), None)
            scene.resize(*SIZE)
            scene.show()
            app.processEvents()
            scene.grab_rgb()  # the first frame, rendered and read back
            (cold if kind == "cold" else warm).append(time.perf_counter() - t0)
            if kind == "warm":
                source = scene  # the bare scene copies its props
                drawn = _drawn(scene)
                continue
            scene.shutdown()
            scene.deleteLater()
            app.processEvents()
    out = {"ours_cold_surfaces": _stats(cold), "ours_cached_surfaces": _stats(warm), "bare_vtk": _stats(bare),
           "bare_vtk_surfaces_built": _stats(bare_cold), "drawn": drawn}
    print(_fmt_drawn(drawn))
    print(_fmt("first frame, ours (surfaces built)", out["ours_cold_surfaces"]))
    print(_fmt("first frame, ours (surfaces cached)", out["ours_cached_surfaces"]))
    print(_fmt("first frame, bare VTK", out["bare_vtk"]) + f"  [{drawn['total_triangles']:,} triangles]")
    print(_fmt("first frame, bare VTK (surfaces built: surface nets + decimation)", out["bare_vtk_surfaces_built"]))
    print(f"  ours / bare, surfaces built: {statistics.median(cold) / statistics.median(bare_cold):.2f}x; "
          f"surfaces cached / bare: {statistics.median(warm) / statistics.median(bare):.2f}x")
    return out


def rotation(case: Any, frames: int) -> dict[str, Any]:
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
    window, renderer = _bare_scene(scene)
    window.Render()
    ours, bare, ours_cpu, bare_cpu = [], [], [], []
    for _ in range(frames + 5):
        t0, c0 = time.perf_counter(), time.process_time()
        scene.renderer.GetActiveCamera().Azimuth(3)
        scene.renderer.ResetCameraClippingRange()
        scene.render_window.Render()
        ours.append(time.perf_counter() - t0)
        ours_cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        renderer.GetActiveCamera().Azimuth(3)
        renderer.ResetCameraClippingRange()
        window.Render()
        bare.append(time.perf_counter() - t0)
        bare_cpu.append(time.process_time() - c0)
    shown = sum(1 for o in scene.objects.values() if o.visible)
    drawn = _drawn(scene)
    settings = {"multisamples": scene.render_window.GetMultiSamples(), "software_opengl": scene.software_opengl,
                "size_px": list(scene.render_window.GetSize())}
    scene.shutdown()
    window.Finalize()
    out = {"ours": _stats(ours[5:]), "bare_vtk": _stats(bare[5:]), "ours_cpu": _stats(ours_cpu[5:]),
           "bare_vtk_cpu": _stats(bare_cpu[5:]), "visible_objects": shown, "drawn": drawn, "settings": settings}
    print(f"rotation: {shown} visible objects + slices, {drawn['total_triangles']:,} triangles, "
          f"{settings['size_px'][0]} x {settings['size_px'][1]} px, {settings['multisamples']} multisamples")
    for name, key in (("ours", "ours"), ("bare VTK", "bare_vtk")):
        print(_fmt(f"rotation frame, {name}", out[key]) + f"  [cpu median {out[key + '_cpu']['median_ms']:.1f} ms]")
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
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import header  # the commit and the machine, first

    print(header("bench_scene3d"))
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
