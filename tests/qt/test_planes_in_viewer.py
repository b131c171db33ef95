"""Views are planes: three views of one isotropic volume in the radiological convention, the
axial reformat of a sagittal-only case, the axial aligned to a disc, the screenshot sidecar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.io.volume_write import write_nifti
from lumbarview.phantom.layouts import TRUTH_FILE
from lumbarview.phantom.spine import LumbarPhantom
from tests.qt.conftest import open_and_wait

pytestmark = pytest.mark.qt


@pytest.fixture(scope="module")
def iso_volume(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LumbarPhantom, VolumeGeometry, np.ndarray]:
    """A 2 mm isotropic axial T2 volume of the phantom's lumbar spine."""
    phantom = LumbarPhantom()
    lo, hi = phantom.extent_lps()
    lo, hi = lo - 10.0, hi + 10.0
    spacing = 2.0
    shape_xyz = np.ceil((hi - lo) / spacing).astype(int) + 1
    geometry = VolumeGeometry.from_directions((int(shape_xyz[2]), int(shape_xyz[1]), int(shape_xyz[0])), lo,
                                              (1, 0, 0), (0, 1, 0), (spacing, spacing, spacing))
    images, _labels = phantom.render(geometry, ("T2",), noise_sigma=0.0)
    folder = tmp_path_factory.mktemp("iso")
    write_nifti(folder / "t2_iso.nii.gz", images["T2"], geometry)
    return folder, phantom, geometry, images["T2"].astype(np.float64)


def _screen(view, lps) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(view.to_scene(np.asarray(lps, dtype=float)))


def test_three_views_of_an_isotropic_volume_follow_the_convention(qtbot, window, iso_volume) -> None:  # type: ignore[no-untyped-def]
    folder, phantom, geometry, volume = iso_volume
    window.set_layout("1x3")
    open_and_wait(qtbot, window, folder)
    views = window.views
    assert views["axial"].view_state.mode == "native"  # acquired axially
    assert views["sagittal"].view_state.mode == "reformat" and views["coronal"].view_state.mode == "reformat"
    truth = phantom.ground_truth()["levels"]
    disc = np.asarray(truth["L4-L5"]["disc_centre_lps"])
    canal = np.asarray(truth["L4-L5"]["canal_centre_lps"])
    upper = np.asarray(truth["L3-L4"]["disc_centre_lps"])
    window.session.cursor.set_crosshair(disc)
    qtbot.wait(20)
    letters = {name: {k: v.hud.text(k) for k in ("left", "right", "top", "bottom")} for name, v in views.items()
               if name in ("sagittal", "axial", "coronal")}
    assert letters["sagittal"] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert letters["axial"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert letters["coronal"] == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    # Anatomy where the convention puts it: the canal behind the disc (right of it on the
    # sagittal, below it on the axial); the upper disc above the lower one; the patient's left
    # on the screen's right.
    sag, ax, cor = views["sagittal"], views["axial"], views["coronal"]
    assert _screen(sag, canal)[0] > _screen(sag, disc)[0] + 5
    assert _screen(sag, upper)[1] < _screen(sag, disc)[1] - 10
    assert _screen(ax, canal)[1] > _screen(ax, disc)[1] + 5
    assert _screen(cor, upper)[1] < _screen(cor, disc)[1] - 10
    assert _screen(cor, disc + np.array([20.0, 0.0, 0.0]))[0] > _screen(cor, disc)[0] + 5
    # The reformatted pixels are the volume's, sampled independently at the same points.
    for view in (sag, cor):
        plane = view.plane
        pixels = window.cache.get(view.view_state.source, plane).pixels
        rows, cols = plane.shape_rc
        rr, cc = np.meshgrid(np.arange(0, rows, 3), np.arange(0, cols, 3), indexing="ij")
        lps = plane.pixel_to_lps(np.stack([cc, rr], axis=-1).reshape(-1, 2).astype(float))
        ijk = geometry.lps_to_index(lps)
        inside = np.all((ijk > 0) & (ijk < np.array(geometry.shape_kji[::-1]) - 1), axis=1)
        expected = ndimage.map_coordinates(volume, ijk[inside][:, ::-1].T, order=1)
        got = pixels[rr.ravel()[inside], cc.ravel()[inside]]
        assert inside.sum() > 100
        assert np.abs(got - expected).max() < 0.5


def test_a_sagittal_only_case_gets_an_axial_reformat_through_the_cursor(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["spider"])
    axial = window.views["axial"].view_state
    assert axial.mode == "reformat" and axial.plane is not None
    assert "reformatted from t2" in axial.note
    cursor = window.session.cursor.crosshair
    assert abs(float(axial.plane.signed_distance_mm(cursor))) < 1e-6
    # Stepping moves the cursor along the plane's normal, by one voxel step.
    before = cursor.copy()
    window.views["axial"].step_slices(1)
    moved = window.session.cursor.crosshair - before
    assert np.linalg.norm(np.cross(moved, axial.plane.normal_lps)) < 1e-6 and np.linalg.norm(moved) > 0.1


def test_align_to_disc_puts_the_axial_on_the_disc_and_undo_restores(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["spider"])
    truth = json.loads((demo_small["spider"] / TRUTH_FILE).read_text())["levels"]["L4-L5"]
    before = window.views["axial"].plane
    assert window.align_to_disc("L4-L5")
    plane = window.views["axial"].plane
    normal = np.asarray(truth["disc_normal_lps"])
    angle = np.degrees(np.arccos(min(1.0, abs(float(plane.normal_lps @ normal)))))
    assert angle < 3.0
    assert abs(float(plane.signed_distance_mm(np.asarray(truth["disc_centre_lps"])))) < 1.5
    # The sagittal draws the axial's plane as a line through the disc.
    lines = [line for line in window.views["sagittal"].reference_segments() if line.source == "axial"]
    assert any(line.current for line in lines)
    window.session.undo.undo()
    after = window.views["axial"].plane
    assert np.allclose(after.normal_lps, before.normal_lps)
    window.session.undo.redo()
    assert np.allclose(window.views["axial"].plane.normal_lps, plane.normal_lps)


def test_view_command_line_writes_the_sidecar(demo_small, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LUMBARVIEW_NO_DIALOGS": "1"}
    done = subprocess.run([sys.executable, "-m", "lumbarview", "view", str(demo_small["spider"]), "--layout", "2x2",
                           "--plane", "L4-L5", "--screenshot", str(shot), "--size", "1200x800"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(shot.with_suffix(".json").read_text())
    assert {"case", "cursor_lps", "layout", "docks", "views"} <= set(doc)
    assert doc["layout"] == "2x2" and len(doc["views"]) == 4
    names = [v["name"] for v in doc["views"]]
    assert names[:2] == ["sagittal", "axial"]
    truth = json.loads((demo_small["spider"] / TRUTH_FILE).read_text())["levels"]["L4-L5"]
    axial = next(v for v in doc["views"] if v["name"] == "axial")
    assert axial["mode"] == "reformat"
    normal = np.asarray(axial["plane"]["normal_lps"])
    assert abs(float(normal @ np.asarray(truth["disc_normal_lps"]))) > np.cos(np.radians(3))
    right, down = np.asarray(axial["plane"]["right_lps"]), np.asarray(axial["plane"]["down_lps"])
    assert right[0] > 0.9 and down[1] > 0.5  # patient left to the right, posterior down
    sag = next(v for v in doc["views"] if v["name"] == "sagittal")
    assert sag["letters"] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    x, y, w, h = sag["rect_px"]
    assert w > 100 and h > 100 and x >= 0 and y >= 0
