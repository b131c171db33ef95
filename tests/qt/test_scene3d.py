"""The 3D pane: meshes where the camera projection says, contours where the plane cuts, picking
moves the cursor, the cursor moves the slices, label surfaces of the visible labels only, and
the screenshot carries the pane's pixels and its actors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from lumbarview.core.dataset import Case, LabelMap, Mesh
from lumbarview.io.mesh import read_stl
from lumbarview.phantom.layouts import TRUTH_FILE, write_stl
from tests.qt.conftest import open_and_wait

pytestmark = [pytest.mark.qt, pytest.mark.vtk]

RED, GREEN, MAGENTA = (255, 0, 0), (0, 255, 0), (255, 0, 255)



def _shown_pane(qtbot, session, size: tuple[int, int]):  # type: ignore[no-untyped-def]
    """A 3D pane on ``session``, shown at ``size``, its 3D cursor hidden."""
    from lumbarview.slicing.cache import PlaneCache
    from lumbarview.ui.scene3d.scene_view import SceneView

    scene = SceneView(session, PlaneCache(), None)
    qtbot.addWidget(scene)
    scene.resize(*size)
    scene.show()
    qtbot.waitExposed(scene)
    scene.cursor_actor.SetVisibility(False)
    return scene

def _box(centre: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = centre - half, centre + half
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], dtype=np.int64)
    return v, f


def _scene(qtbot, meshes: list[tuple[Mesh, tuple[int, int, int]]]):  # type: ignore[no-untyped-def]
    """A bare session with ``meshes`` (coloured, unlit) in a 3D pane, parallel projection."""
    from lumbarview.model.session import Session
    from lumbarview.ui.app import make_app

    make_app()
    session = Session()
    case = Case(id="t", meshes=[m for m, _ in meshes])
    session.show_case(case, {}, (0.0, 0.0, 0.0))
    for layer, (_, colour) in zip([lay for lay in session.overlays.layers if lay.kind == "mesh"], meshes,
                                  strict=True):
        session.overlays.update(layer, colour_rgb=colour)
    scene = _shown_pane(qtbot, session, (420, 340))
    for obj in scene.objects.values():  # flat colours: the pixels say exactly which mesh is there
        obj.props[0].GetProperty().SetAmbient(1.0)
        obj.props[0].GetProperty().SetDiffuse(0.0)
        obj.props[0].GetProperty().SetSpecular(0.0)
    scene.renderer.GetActiveCamera().ParallelProjectionOn()
    return session, scene


def _predicted_rows_cols(scene, points_lps: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Our own parallel projection from the camera's parameters: (column, row from the top) of
    each point's pixel centre."""
    cam = scene.renderer.GetActiveCamera()
    position, focal = np.array(cam.GetPosition()), np.array(cam.GetFocalPoint())
    view_dir = (focal - position) / np.linalg.norm(focal - position)
    up = np.array(cam.GetViewUp())
    right = np.cross(view_dir, up)
    right /= np.linalg.norm(right)
    up = np.cross(right, view_dir)
    w, h = scene.render_window.GetSize()
    mm_per_px = 2.0 * cam.GetParallelScale() / h
    d = points_lps - focal
    col = w / 2.0 + (d @ right) / mm_per_px - 0.5
    row = h / 2.0 - (d @ up) / mm_per_px - 0.5
    return np.stack([col, row], axis=1)


def _mask(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(np.abs(rgb.astype(int) - np.array(colour)) < 40, axis=2)


def test_ras_mesh_vertices_land_where_the_camera_projection_says(qtbot, tmp_path: Path) -> None:
    # Two boxes written in RAS: red at the patient's right (RAS x = +30), green at the left and
    # higher. Read back they must sit at LPS (-30, ...) and (+25, ...).
    red_ras, green_ras = np.array([30.0, -12.0, 20.0]), np.array([-25.0, 4.0, 45.0])
    half = np.array([4.0, 3.0, 5.0])
    paths = []
    for name, centre in (("red", red_ras), ("green", green_ras)):
        v, f = _box(centre, half)
        path = tmp_path / f"{name}.stl"
        write_stl(path, v, f, binary=name == "red", header=f"{name} SPACE=RAS")
        paths.append(path)
    (red, _), (green, _) = read_stl(paths[0]), read_stl(paths[1])
    _, scene = _scene(qtbot, [(red, RED), (green, GREEN)])
    for preset in ("anterior", "left", "superior"):
        scene.set_camera(preset)
        rgb = scene.grab_rgb()
        for mesh, colour, ras in ((red, RED, red_ras), (green, GREEN, green_ras)):
            rows, cols = np.nonzero(_mask(rgb, colour))
            assert len(rows) > 50, (preset, colour)
            corners_lps = _box(ras * np.array([-1.0, -1.0, 1.0]), half)[0]
            np.testing.assert_allclose(mesh.vertices_lps.min(0), corners_lps.min(0), atol=1e-4)
            predicted = _predicted_rows_cols(scene, corners_lps)
            # The drawn box spans exactly the pixels between its projected extreme vertices.
            assert abs(cols.min() - predicted[:, 0].min()) <= 1.5, (preset, colour)
            assert abs(cols.max() - predicted[:, 0].max()) <= 1.5, (preset, colour)
            assert abs(rows.min() - predicted[:, 1].min()) <= 1.5, (preset, colour)
            assert abs(rows.max() - predicted[:, 1].max()) <= 1.5, (preset, colour)
        if preset == "anterior":  # seen from the front: the patient's right on the screen's left
            red_cols = np.nonzero(_mask(rgb, RED))[1]
            green_cols = np.nonzero(_mask(rgb, GREEN))[1]
            assert red_cols.max() < green_cols.min()


def test_picking_a_mesh_moves_the_cursor(qtbot) -> None:
    centre, half = np.array([5.0, -8.0, 12.0]), np.array([10.0, 6.0, 15.0])
    v, f = _box(centre, half)
    session, scene = _scene(qtbot, [(Mesh("box", v, f, "box.stl"), RED)])
    scene.set_camera("anterior")
    scene.grab_rgb()
    target = centre + np.array([3.0, -half[1], -4.0])  # on the front face (anterior = -y)
    col, row = _predicted_rows_cols(scene, target[None])[0]
    h = scene.render_window.GetSize()[1]
    picked = scene.pick_display(round(col + 0.5 - 0.5), round(h - 1 - row))
    assert picked is not None
    np.testing.assert_allclose(session.cursor.crosshair, target, atol=0.8)
    # Nothing under the pointer: the cursor stays.
    before = session.cursor.crosshair.copy()
    assert scene.pick_display(2, 2) is None
    np.testing.assert_array_equal(session.cursor.crosshair, before)
    # A real click (press and release at one place) on the widget picks the same way.
    session.cursor.set_crosshair((0.0, 0.0, 0.0))
    other = centre + np.array([-6.0, -half[1], 9.0])
    col, row = _predicted_rows_cols(scene, other[None])[0]
    ratio = scene.vtk_widget.devicePixelRatioF()
    pos = QtCore.QPoint(round(col / ratio), round(row / ratio))
    qtbot.mouseClick(scene.vtk_widget, QtCore.Qt.MouseButton.LeftButton, pos=pos)
    np.testing.assert_allclose(session.cursor.crosshair, other, atol=1.0)


def test_mesh_contour_on_the_axial_view_is_the_analytic_cut(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["sudirman"])
    session = window.session
    axial = window.views["axial"]
    plane = axial.plane
    assert plane is not None
    centre = plane.centre_lps()
    half = np.array([12.0, 7.0, 80.0])  # a tall box through the axial plane
    v, f = _box(centre, half)
    session.case.meshes.append(Mesh("tall box", v, f, "box.stl"))
    session.overlays.set_case(session.case)
    layer = next(lay for lay in session.overlays.layers if lay.kind == "mesh")
    session.set_layer(layer, colour_rgb=MAGENTA)
    qtbot.wait(50)
    shown = [px for lay, px in axial.overlay.shown_contours if lay is layer]
    assert len(shown) == 1 and len(shown[0]) >= 8
    # The drawn item's points, back in LPS: on the plane and on the box's side faces.
    item = next(i for i in axial.overlay._pool["pairs"] if i.isVisible())
    xs, ys = item.getData()
    lps = np.array([axial.to_lps(x, y) for x, y in zip(xs, ys, strict=True)])
    np.testing.assert_allclose(plane.signed_distance_mm(lps), 0.0, atol=1e-6)
    d = np.abs(lps - centre)
    on_side = np.isclose(d[:, 0], half[0], atol=1e-6) | np.isclose(d[:, 1], half[1], atol=1e-6)
    assert on_side.all() and np.all(d[:, 0] <= half[0] + 1e-6) and np.all(d[:, 1] <= half[1] + 1e-6)
    # And the pixels: magenta on the middle of the box's anterior side, not at its centre.
    image = axial.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    arr = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h).reshape(h, -1)
    rgb = arr[:, : w * 3].reshape(h, w, 3).astype(int)

    def at(p_lps: np.ndarray) -> np.ndarray:
        x, y = axial.to_scene(p_lps)
        p = axial.graphics.mapFromScene(axial.viewbox.mapViewToScene(QtCore.QPointF(x, y)))
        p = axial.graphics.mapTo(axial, p)
        return rgb[p.y() - 1:p.y() + 2, p.x() - 1:p.x() + 2].reshape(-1, 3)

    side = centre - np.array([0.0, half[1], 0.0])
    side = side - plane.signed_distance_mm(side) * plane.normal_lps
    assert (_mask(at(side)[None], MAGENTA)).any()
    assert not (_mask(at(centre)[None], MAGENTA)).any()
    # Hidden: no contour.
    session.set_layer(layer, visible=False)
    assert not [px for lay, px in axial.overlay.shown_contours if lay is layer]


def test_the_cursor_moves_the_slices_in_the_3d_pane(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    window.set_layout("2x2")
    open_and_wait(qtbot, window, demo_small["sudirman"])
    scene = window.scene3d
    assert scene is not None and scene.isVisible()
    assert "oblique" not in [v.name for v in window.visible_views()]
    session = window.session
    centre = session.views["axial"].plane.centre_lps()
    for offset in ((8.0, 0.0, 1.0), (-6.0, 4.0, -2.0), (0.0, 0.0, -400.0)):
        session.cursor.set_crosshair(centre + np.array(offset))
        qtbot.wait(20)
        for name in ("sagittal", "axial", "coronal"):
            view_plane = session.views[name].plane
            shown = scene.slices[name]
            if view_plane is None:  # the cursor left that series: no slice to show
                assert name != "sagittal" and not shown.actor.GetVisibility()
                continue
            assert shown.plane is view_plane and shown.actor.GetVisibility()
            corners = shown.corners(view_plane)
            np.testing.assert_allclose(view_plane.signed_distance_mm(corners), 0.0, atol=1e-6)
            quad = np.array([shown.source.GetOrigin(), shown.source.GetPoint1(), shown.source.GetPoint2()])
            np.testing.assert_allclose(quad, corners[:3], atol=1e-6)
        if offset[2] > -100:
            assert session.views["axial"].plane is not None
            texture = scene.slices["axial"].image
            assert texture.GetDimensions()[:2] == session.views["axial"].plane.shape_rc[::-1]
        else:
            assert session.views["axial"].plane is None
    entries = scene.actor_entries()
    assert {e["name"] for e in entries if e["kind"] == "slice"} == {"sagittal slice", "axial slice", "coronal slice"}
    window.set_layout("1x3")
    assert not scene.isVisible()
    window.toggle_scene3d(True)
    assert scene.isVisible() and [v.name for v in window.visible_views()] == ["sagittal", "axial"]
    assert not scene.slices["coronal"].actor.GetVisibility()


def test_label_surfaces_only_for_visible_labels_with_their_voxel_extent(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    window.set_layout("2x2")
    with qtbot.waitSignal(window.views_ready, timeout=60_000):
        window.open(str(demo_small["spider"]))
    scene = window.scene3d
    if scene.pending_surfaces:
        with qtbot.waitSignal(scene.surfaces_ready, timeout=60_000):
            pass
    layers = [lay for lay in window.session.overlays.layers if lay.kind == "labels"]
    visible = [lay for lay in layers if lay.visible]
    assert visible and len(visible) < len(layers)  # one mask on screen, the other sequence's hidden
    surfaces = [o for o in scene.objects.values() if o.kind == "surface"]
    assert {id(o.layer) for o in surfaces} == {id(lay) for lay in visible}
    layer = visible[0]
    assert isinstance(layer.source, LabelMap)
    labels = layer.source.stack.pixels()
    geometry = layer.source.stack.geometry
    assert {o.value for o in surfaces} == set(layer.label_values())
    for obj in surfaces:
        k, j, i = np.nonzero(labels == obj.value)
        corners = np.array([[x, y, z] for x in (i.min() - 0.5, i.max() + 0.5) for y in (j.min() - 0.5, j.max() + 0.5)
                            for z in (k.min() - 0.5, k.max() + 0.5)])
        lps = geometry.index_to_lps(corners)
        lo, hi = lps.min(axis=0), lps.max(axis=0)
        b = np.array(obj.bounds_lps)
        voxel = max(geometry.spacing_mm)
        assert np.all(b[0::2] >= lo - 1e-6) and np.all(b[1::2] <= hi + 1e-6), obj.name
        assert np.all(b[0::2] <= lo + voxel) and np.all(b[1::2] >= hi - voxel), obj.name
    # Hiding a label hides its surface; an undo shows it again.
    value = surfaces[0].value
    window.session.set_layer(layer, hidden_labels={value})
    assert not scene.objects[("surface", id(layer), value)].visible
    window.session.undo.undo()
    assert scene.objects[("surface", id(layer), value)].visible


def _label_box_session():  # type: ignore[no-untyped-def]
    """A session showing one label map: a box of label 41 on a grid whose index-to-LPS map
    mirrors (i x j runs against k, as in many NIfTI and DICOM stacks)."""
    from lumbarview.core.geometry import VolumeGeometry
    from lumbarview.core.labels import sct_scheme
    from lumbarview.core.types import ImageStack
    from lumbarview.model.session import Session
    from lumbarview.ui.app import make_app

    geometry = VolumeGeometry.from_directions((20, 30, 25), (12.0, -40.0, 85.0), (0, 1, 0), (0, 0, -1),
                                              (0.8, 0.9, 2.5), slice_direction_lps=(1, 0, 0))
    assert np.linalg.det(geometry.ijk_to_lps[:3, :3]) < 0
    labels = np.zeros((20, 30, 25), dtype=np.uint8)
    labels[4:12, 8:24, 5:20] = 41
    stack = ImageStack("mirrored", "sag", geometry, {"kind": "labels"}, lambda: (labels.copy(), []))
    make_app()
    session = Session()
    session.show_case(Case(id="t", label_maps=[LabelMap("mask", stack, sct_scheme(), "mask.nii", None)]), {},
                      (0.0, 0.0, 0.0))
    return session, labels, geometry


def test_label_surface_of_a_mirrored_grid_shows_its_near_side(qtbot) -> None:  # type: ignore[no-untyped-def]
    # Label surfaces cull their back faces, so a surface wound inside out would show its far
    # side: the depth drawn at the box's centre must be its front, seen from four sides.

    session, labels, geometry = _label_box_session()
    layer = next(lay for lay in session.overlays.layers if lay.kind == "labels")
    session.set_layer(layer, opacity=1.0)  # opaque: the surface writes the depth buffer
    scene = _shown_pane(qtbot, session, (400, 400))
    surface = scene.objects[("surface", id(layer), 41)]
    assert surface.props[0].GetProperty().GetBackfaceCulling()
    k, j, i = np.nonzero(labels == 41)
    corners = np.array([[x, y, z] for x in (i.min() - 0.5, i.max() + 0.5) for y in (j.min() - 0.5, j.max() + 0.5)
                        for z in (k.min() - 0.5, k.max() + 0.5)])
    lps = geometry.index_to_lps(corners)
    centre = lps.mean(axis=0)
    for preset, axis, near in (("anterior", 1, lps[:, 1].min()), ("posterior", 1, lps[:, 1].max()),
                               ("left", 0, lps[:, 0].max()), ("superior", 2, lps[:, 2].max())):
        scene.set_camera(preset)
        scene.grab_rgb()
        x, y = scene.world_to_display(centre)
        z = scene.render_window.GetZbufferDataAtPoint(round(x), round(y))
        assert z < 1.0, preset  # the surface is there
        scene.renderer.SetDisplayPoint(x, y, z)
        scene.renderer.DisplayToWorld()
        hit = np.array(scene.renderer.GetWorldPoint()[:3]) / scene.renderer.GetWorldPoint()[3]
        voxel = max(geometry.spacing_mm)
        assert abs(hit[axis] - near) <= voxel, (preset, hit, near)


def test_surfaces_arriving_after_the_pane_is_gone_are_dropped(qtbot) -> None:  # type: ignore[no-untyped-def]
    # A worker's surfaces (or its error) can arrive after the window that asked for them was
    # closed and deleted, as can a render the pane had scheduled: nothing may touch it then.
    import shiboken6

    from lumbarview.slicing.cache import PlaneCache
    from lumbarview.ui.scene3d.scene_view import SceneView

    session, _, _ = _label_box_session()
    asked = []
    scene = SceneView(session, PlaneCache(), lambda job, done, failed: asked.append((job, done, failed)))
    scene.resize(200, 200)
    scene.show()
    qtbot.waitExposed(scene)
    assert len(asked) == 1 and scene.pending_surfaces == 1
    scene.request_render()
    scene.shutdown()
    shiboken6.delete(scene)
    job, done, failed = asked[0]
    done(job())
    failed(RuntimeError("too late"))
    qtbot.wait(100)  # the scheduled render's timer went with the pane


def test_software_opengl_draws_without_multisampling(qtbot) -> None:
    # The tests run on OSMesa (a software rasteriser): each sample would be paid for by the CPU.
    from lumbarview.model.session import Session
    from lumbarview.slicing.cache import PlaneCache
    from lumbarview.ui.app import make_app
    from lumbarview.ui.scene3d.scene_view import SceneView, software_opengl

    make_app()
    scene = SceneView(Session(), PlaneCache(), None)
    qtbot.addWidget(scene)
    scene.resize(200, 200)
    scene.show()
    qtbot.waitExposed(scene)
    scene.grab_rgb()
    assert software_opengl(scene.render_window) and scene.software_opengl
    assert scene.render_window.GetMultiSamples() == 0
    assert not scene.renderer.GetUseDepthPeeling() and not scene.renderer.GetUseFXAA()


def test_view_screenshot_carries_the_3d_pixels_and_actors(tmp_path: Path) -> None:
    from lumbarview.phantom.layouts import Sizes, write_all

    root = write_all(tmp_path / "demo", sizes=Sizes.small(), layouts=("bids",))["bids"]
    shot = tmp_path / "bids.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LUMBARVIEW_NO_DIALOGS": "1",
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-m", "lumbarview", "view", str(root), "--layout", "2x2",
                           "--screenshot", str(shot), "--size", "1200x800"],
                          capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(shot.with_suffix(".json").read_text())
    scene = next(v for v in doc["views"] if v["name"] == "3d")
    kinds = {a["kind"] for a in scene["actors"]}
    assert {"mesh", "slice", "points", "curve"} <= kinds
    truth = json.loads((root / TRUTH_FILE).read_text())["meshes"]
    for name in ("Dura", "Cord"):
        actor = next(a for a in scene["actors"] if a["name"] == name)
        assert actor["visible"] and actor["kind"] == "mesh"
        first = np.asarray(truth[name]["first_vertex_lps"])
        b = actor["bounds_lps"]
        assert b[0] - 1e-3 <= first[0] <= b[1] + 1e-3 and b[4] - 1e-3 <= first[2] <= b[5] + 1e-3
    image = QtGui.QImage(str(shot)).convertToFormat(QtGui.QImage.Format.Format_RGB888)
    x, y, w, h = scene["rect_px"]
    assert w > 100 and h > 100
    arr = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * image.height())
    rgb = arr.reshape(image.height(), -1)[:, : image.width() * 3].reshape(image.height(), image.width(), 3)
    pane = rgb[y:y + h, x:x + w].astype(int)
    # The VTK pixels are there: the background colour and, on it, the orange roots and grey slices.
    assert (np.abs(pane - np.array([13, 13, 15])).max(axis=2) <= 3).mean() > 0.3
    orange = (pane[..., 0] > 150) & (pane[..., 1] > 60) & (pane[..., 1] < 170) & (pane[..., 2] < 90)
    assert orange.sum() > 50
