"""`lumbarview --self-test`: every check passes on a good installation (run as a user would,
in a child process without a display), and a failing check is named with a non-zero exit."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lumbarview.cli import main
from lumbarview.services import selftest
from tests.conftest import REPO

CHECKS = ("phantom", "view-2d", "view-3d", "measurement", "jpeg-lossless", "jpeg2000")


def _env_without_display() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "VTK_DEFAULT_OPENGL_WINDOW")}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.mark.qt
@pytest.mark.vtk
def test_self_test_passes_with_no_display_and_says_so_per_check() -> None:
    # A child process: the self-test picks offscreen rendering itself (nothing set here), and a
    # renderer that crashes fails this test instead of killing pytest.
    proc = subprocess.run([sys.executable, "-m", "lumbarview", "--self-test"], env=_env_without_display(),
                          capture_output=True, text=True, timeout=600)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Qt platform offscreen, VTK window vtkOSOpenGLRenderWindow" in lines[0]
    for name in CHECKS:
        assert sum(line.startswith(f"PASS {name}: ") for line in lines) == 1, (name, proc.stdout)
    assert not any(line.startswith("FAIL") for line in lines)
    assert lines[-1].startswith(f"self-test passed: {len(CHECKS)} checks")
    measured = next(line for line in lines if line.startswith("PASS measurement"))
    assert "canal AP" in measured and "truth" in measured
    assert "Traceback" not in proc.stderr


def test_a_failing_check_is_named_the_others_still_run_and_the_exit_is_non_zero(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ran: list[str] = []

    def ok() -> str:
        ran.append("ok")
        return "fine"

    def wrong() -> str:
        raise selftest.SelfTestFailure("canal AP 3.00 mm, truth 7.50 mm")

    def crashes() -> str:
        raise RuntimeError("no render window")

    monkeypatch.setattr(selftest, "write_phantom", lambda root: {"sudirman": root, "bids": root})
    monkeypatch.setattr(selftest, "qt_free_checks", lambda phantom, work: [
        selftest.Check("measurement", wrong), selftest.Check("jpeg2000", ok)])
    monkeypatch.setattr(os, "environ", dict(os.environ))  # run() isolates settings through the environment
    out = io.StringIO()
    code = selftest.run(lambda phantom, work: [selftest.Check("view-3d", crashes)], out=out)
    lines = out.getvalue().splitlines()
    assert code == 1
    assert "FAIL measurement: canal AP 3.00 mm, truth 7.50 mm" in lines
    assert any(line.startswith("FAIL view-3d: RuntimeError: no render window (at test_selftest.py:") for line in lines)
    assert any(line.startswith("PASS jpeg2000: fine") for line in lines)
    assert ran == ["ok"]
    assert lines[-1].startswith("self-test FAILED: view-3d, measurement (2 of 4 checks")


def test_a_phantom_that_cannot_be_written_stops_the_run_with_a_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(root: Path) -> dict[str, Path]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(selftest, "write_phantom", no_space)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    out = io.StringIO()
    assert selftest.run(None, out=out) == 1
    text = out.getvalue()
    assert "FAIL phantom: OSError: [Errno 28] No space left on device" in text
    assert text.splitlines()[-1] == "self-test FAILED: phantom (the other checks need it)"


@pytest.mark.parametrize(("given", "platform", "vtk_window"), [
    ({}, "offscreen", "vtkOSOpenGLRenderWindow"),
    ({"DISPLAY": ":0"}, None, None),
    ({"WAYLAND_DISPLAY": "wayland-0"}, None, None),
    ({"QT_QPA_PLATFORM": "xcb"}, "xcb", None),
    ({"VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}, "offscreen", "vtkEGLRenderWindow"),
])
def test_rendering_is_offscreen_only_without_a_display_and_what_is_set_is_kept(
        given: dict[str, str], platform: str | None, vtk_window: str | None) -> None:
    env = dict(given)
    selftest.prepare_environment(env)
    assert env.get("QT_QPA_PLATFORM") == platform
    assert env.get("VTK_DEFAULT_OPENGL_WINDOW") == vtk_window


def test_the_shipped_jpeg_lossless_slice_decodes_to_the_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_DECODE_IN_PROCESS", "1")  # the pool is exercised by the run above
    assert selftest.JPEG_LOSSLESS_SAMPLE.stat().st_size < 8192
    assert "exact" in selftest.check_jpeg_lossless()
    decoded = selftest.decode_like_the_viewer(selftest.JPEG_LOSSLESS_SAMPLE)[0]
    assert np.array_equal(decoded, selftest.sample_pattern())


def test_a_damaged_or_missing_jpeg_sample_fails_its_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_DECODE_IN_PROCESS", "1")
    with pytest.raises(selftest.SelfTestFailure, match="missing"):
        selftest.check_jpeg_lossless(tmp_path / "nothing.dcm")
    damaged = tmp_path / "damaged.dcm"
    data = bytearray(selftest.JPEG_LOSSLESS_SAMPLE.read_bytes())
    # Flip bytes in the middle of the entropy-coded data: the decoder yields other values or fails.
    middle = len(data) - 1200
    data[middle: middle + 40] = bytes(b ^ 0x5A for b in data[middle: middle + 40])
    damaged.write_bytes(bytes(data))
    with pytest.raises(Exception) as caught:
        selftest.check_jpeg_lossless(damaged)
    assert "differ" in str(caught.value) or "decod" in str(caught.value) or "read" in str(caught.value)


def test_a_sample_in_another_transfer_syntax_is_refused(tmp_path: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(selftest.JPEG_LOSSLESS_SAMPLE)
    ds.decompress()
    native = tmp_path / "native.dcm"
    ds.save_as(native, enforce_file_format=True)
    with pytest.raises(selftest.SelfTestFailure, match="not JPEG Lossless"):
        selftest.check_jpeg_lossless(native)


def test_the_measurement_check_compares_with_the_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "truth" in selftest.check_measurement()
    monkeypatch.setattr(selftest, "CANAL_AP_TOLERANCE_MM", 1e-6)  # no engine is that exact at 1 mm
    with pytest.raises(selftest.SelfTestFailure, match="tolerance"):
        selftest.check_measurement()


def test_a_blank_3d_scene_fails_the_3d_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lumbarview.ui import selftest as ui_selftest

    blank = np.full((400, 480, 3), 40, dtype=np.uint8)
    monkeypatch.setattr(ui_selftest, "_scene_view_class", lambda: None)
    monkeypatch.setattr(ui_selftest, "_render_plain_vtk", lambda study: (blank, "VTK scene"))
    with pytest.raises(selftest.SelfTestFailure, match="blank"):
        ui_selftest.check_3d(tmp_path)
    drawn = blank.copy()
    drawn[100:300, 200:260] = (230, 210, 180)
    monkeypatch.setattr(ui_selftest, "_render_plain_vtk", lambda study: (drawn, "VTK scene"))
    assert "% covered" in ui_selftest.check_3d(tmp_path)


def test_self_test_runs_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--self-test", "info", "x"]) == 2
    assert "--self-test runs alone" in capsys.readouterr().err


def test_the_spec_and_the_package_data_agree() -> None:
    # The spec collects lumbarview's *.dcm package data and the setuptools config ships it too.
    spec = (REPO / "packaging" / "lumbarview.spec").read_text(encoding="utf-8")
    assert '"**/*.dcm"' in spec and "collect_submodules(\"lumbarview\")" in spec
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert "selftest_data/*.dcm" in pyproject
