"""``lumbarview --self-test``: the checks that need no Qt, the runner and the rendering set-up.

The self-test proves that an installation (the standalone app above all: PyInstaller leaves out
what is loaded dynamically) can do the app's work: open the built-in phantom, render it in 2D
and 3D (:mod:`lumbarview.ui.selftest`), measure it and compare with the phantom's truth, and
decode JPEG Lossless and JPEG 2000 DICOM pixel data through the same child-process decoder pool
the viewer uses. One line per check; exit 0 only when every check passed.

With no display it renders offscreen by itself (``QT_QPA_PLATFORM=offscreen``, VTK through
OSMesa) before Qt or VTK are imported.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

#: The JPEG Lossless (process 14, first-order prediction) slice shipped as package data; its
#: pixels are :func:`sample_pattern` (made by packaging/make_selftest_data.py with GDCM, which
#: pydicom cannot encode).
JPEG_LOSSLESS_SAMPLE = Path(__file__).resolve().parent.parent / "selftest_data" / "jpeg_lossless.dcm"
#: The phantom's canal AP diameter must be measured within this of its truth.
CANAL_AP_TOLERANCE_MM = 0.5
SELFTEST_LEVEL = "L4-L5"


class SelfTestFailure(Exception):
    """A check's result is wrong (the message says what was expected and what came out)."""


@dataclass(frozen=True)
class Check:
    """One named check: ``run()`` returns a short detail for the PASS line or raises."""

    name: str
    run: Callable[[], str]


def prepare_environment(environ: dict[str, str] | None = None) -> str:
    """Pick offscreen rendering when there is no display; returns how it will render.

    Only sets what is not already set (a user's ``QT_QPA_PLATFORM=xcb`` is kept). Must run
    before Qt or VTK create anything.
    """
    env: Any = os.environ if environ is None else environ
    has_display = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    if not has_display and not env.get("QT_QPA_PLATFORM"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    if env.get("QT_QPA_PLATFORM") == "offscreen":
        env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")
    return (f"Qt platform {env.get('QT_QPA_PLATFORM') or 'default'}, "
            f"VTK window {env.get('VTK_DEFAULT_OPENGL_WINDOW') or 'default'}")


def sample_pattern() -> npt.NDArray[np.uint16]:
    """The shipped JPEG Lossless slice's pixels: 48x64, 12 bits, edges and a gradient (values
    that a lossy or wrong decoder would not reproduce exactly)."""
    j, i = np.mgrid[0:48, 0:64]
    values = (i * 61 + j * 37) % 4096
    values[(i - 32) ** 2 + (j - 24) ** 2 < 100] = 4095
    values[::7, :] = 0
    return np.asarray(values, dtype=np.uint16)


# -- the phantom ------------------------------------------------------------------------------
def write_phantom(root: Path) -> dict[str, Path]:
    """The built-in phantom, small, in the layouts the checks use: DICOM slices (sudirman) and
    a BIDS folder with the label map and STL meshes."""
    from lumbarview.phantom.layouts import Sizes, write_all
    from lumbarview.phantom.spine import PhantomParams

    return write_all(root, PhantomParams(), Sizes.small(), layouts=("sudirman", "bids"))


def check_measurement() -> str:
    """The engine on a phantom label map at 1 mm against the phantom's truth (canal AP)."""
    from lumbarview.core.labels import spider_scheme
    from lumbarview.measure.engine import measure_label_map
    from lumbarview.phantom.layouts import level_roi_geometry, render_labels
    from lumbarview.phantom.spine import LumbarPhantom

    phantom = LumbarPhantom()
    truth = float(phantom.ground_truth()["levels"][SELFTEST_LEVEL]["canal_ap_mm"])
    geometry = level_roi_geometry(phantom, SELFTEST_LEVEL, 1.0, 1.0)
    values = measure_label_map(render_labels(phantom, geometry), geometry, spider_scheme(),
                               levels=(SELFTEST_LEVEL,))
    canal = [v for v in values if v.quantity == "canal_ap" and v.side is None]
    if not canal:
        raise SelfTestFailure(f"no canal_ap value for {SELFTEST_LEVEL}")
    measured = float(canal[0].value)
    if not np.isfinite(measured) or abs(measured - truth) > CANAL_AP_TOLERANCE_MM:
        raise SelfTestFailure(f"{SELFTEST_LEVEL} canal AP {measured:.2f} mm, truth {truth:.2f} mm "
                              f"(tolerance {CANAL_AP_TOLERANCE_MM} mm)")
    return f"{SELFTEST_LEVEL} canal AP {measured:.2f} mm, truth {truth:.2f} mm"


# -- compressed DICOM -------------------------------------------------------------------------
def decode_like_the_viewer(path: Path) -> npt.NDArray[Any]:
    """Header, then pixels through the viewer's decoder pool (a spawned child process for
    compressed data: in the frozen app this is the executable started again)."""
    from lumbarview.io.dicom.headers import read_header
    from lumbarview.io.dicom.pixels import decode_file_isolated

    header = read_header(path)
    return decode_file_isolated(header)


def _compare(name: str, decoded: npt.NDArray[Any], expected: npt.NDArray[Any]) -> str:
    frame = np.asarray(decoded)
    if frame.ndim == 3 and frame.shape[0] == 1:
        frame = frame[0]
    if frame.shape != expected.shape:
        raise SelfTestFailure(f"{name}: decoded {frame.shape}, expected {expected.shape}")
    if not np.array_equal(frame.astype(np.int64), expected.astype(np.int64)):
        diff = int(np.abs(frame.astype(np.int64) - expected.astype(np.int64)).max())
        raise SelfTestFailure(f"{name}: decoded values differ from the original (max difference {diff})")
    return f"{frame.shape[1]}x{frame.shape[0]}, {int(expected.min())}..{int(expected.max())}, exact"


def check_jpeg_lossless(sample: Path = JPEG_LOSSLESS_SAMPLE) -> str:
    """The shipped JPEG Lossless slice decodes to :func:`sample_pattern` exactly."""
    if not sample.is_file():
        raise SelfTestFailure(f"the JPEG Lossless sample is missing ({sample}): the installation is incomplete")
    import pydicom

    syntax = str(pydicom.dcmread(sample, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    if syntax != "1.2.840.10008.1.2.4.70":
        raise SelfTestFailure(f"the sample's transfer syntax is {syntax}, not JPEG Lossless SV1")
    return "JPEG Lossless SV1 " + _compare("JPEG Lossless", decode_like_the_viewer(sample), sample_pattern())


def check_jpeg2000(sudirman_root: Path, work: Path) -> str:
    """A phantom DICOM slice compressed to JPEG 2000 Lossless here (pydicom's encoder through
    pylibjpeg-openjpeg), then decoded exactly."""
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    slices = sorted(p for p in sudirman_root.rglob("*") if p.is_file()
                    and p.suffix.lower() in ("", ".dcm", ".ima") and p.name != "DICOMDIR")
    # From the middle of the study on (the spine, not an edge slice).
    for candidate in slices[len(slices) // 2:] + slices[: len(slices) // 2]:
        try:
            ds = pydicom.dcmread(candidate)
            original = np.asarray(ds.pixel_array)
        except Exception:  # a non-image file of the layout: try the next one
            continue
        if original.ndim == 2 and int(original.max()) > 0:
            break
    else:
        raise SelfTestFailure(f"no phantom DICOM slice with pixels under {sudirman_root}")
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    out = work / "jpeg2000.dcm"
    ds.save_as(out, enforce_file_format=True)
    return "JPEG 2000 Lossless " + _compare("JPEG 2000", decode_like_the_viewer(out), original)


# -- the runner -------------------------------------------------------------------------------
def qt_free_checks(phantom: dict[str, Path], work: Path) -> list[Check]:
    return [
        Check("measurement", check_measurement),
        Check("jpeg-lossless", check_jpeg_lossless),
        Check("jpeg2000", lambda: check_jpeg2000(phantom["sudirman"], work)),
    ]


def run_checks(checks: Sequence[Check], out: TextIO) -> list[str]:
    """Run each check, one line each; returns the names of those that failed."""
    failed: list[str] = []
    for check in checks:
        start = time.perf_counter()
        try:
            detail = check.run()
        except SelfTestFailure as exc:
            failed.append(check.name)
            print(f"FAIL {check.name}: {exc}", file=out, flush=True)
            continue
        except Exception as exc:  # a check that crashes is that check's failure, not the runner's
            failed.append(check.name)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            print(f"FAIL {check.name}: {type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})",
                  file=out, flush=True)
            continue
        print(f"PASS {check.name}: {detail} ({time.perf_counter() - start:.1f} s)", file=out, flush=True)
    return failed


def run(rendering_checks: Callable[[dict[str, Path], Path], list[Check]] | None = None,
        out: TextIO | None = None) -> int:
    """The whole self-test: 0 when every check passed, 1 otherwise (the last line names the
    failed checks).

    ``rendering_checks`` builds the Qt/VTK checks (:func:`lumbarview.ui.selftest.checks`) from
    the phantom's folders; the CLI passes it so that this module stays Qt-free.
    """
    from lumbarview import __version__

    out = out or sys.stdout
    start = time.perf_counter()
    mode = prepare_environment()
    frozen = " (standalone app)" if getattr(sys, "frozen", False) else ""
    print(f"lumbarview {__version__} self-test{frozen}: {mode}", file=out, flush=True)
    with tempfile.TemporaryDirectory(prefix="lumbarview-selftest-") as tmp:
        work = Path(tmp)
        phantom: dict[str, Path] = {}

        def open_phantom() -> str:
            phantom.update(write_phantom(work / "phantom"))
            return "wrote " + ", ".join(sorted(phantom))

        # The viewer's settings and caches go to the temporary folder: a self-test changes
        # nothing of the user's.
        for variable, folder in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                                 ("LUMBARVIEW_CACHE_DIR", "index")):
            (work / folder).mkdir()
            os.environ[variable] = str(work / folder)
        failed = run_checks([Check("phantom", open_phantom)], out)
        if failed:
            print("self-test FAILED: phantom (the other checks need it)", file=out, flush=True)
            return 1
        checks = list(rendering_checks(phantom, work) if rendering_checks else [])
        checks += qt_free_checks(phantom, work)
        failed = run_checks(checks, out)
        total = len(checks) + 1
    elapsed = time.perf_counter() - start
    if failed:
        print(f"self-test FAILED: {', '.join(failed)} ({len(failed)} of {total} checks, {elapsed:.1f} s)",
              file=out, flush=True)
        return 1
    print(f"self-test passed: {total} checks in {elapsed:.1f} s", file=out, flush=True)
    return 0
