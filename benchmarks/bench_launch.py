"""Launch: lumbarview against earlier commits of itself, a bare Qt process and MRIcron, each run a
fresh process, the subjects interleaved round by round (A B C A B C ...).

    python benchmarks/bench_launch.py [--rounds 5] [--commits 950195b 85d65e2] [--skip-mricron]

1. ``lumbarview view --demo --screenshot OUT`` (the whole process: start, open the demo, first
   image, the work queued at open, the screenshot) on this tree and on each earlier commit (its
   files unpacked with ``git archive`` into a temporary folder and run with this virtual
   environment: same Python, same libraries), against a bare ``import PySide6.QtWidgets,
   pyqtgraph`` process. This tree also reports the wall-clock time of its first image
   (``LUMBARVIEW_REPORT_TIMING``), measured here from the moment the process was spawned.
   Every commit gets its own cache folder (its own demo, written in the untimed warm-up round)
   and every process an empty settings folder.
2. Memory after the first image: this tree's resident memory then, against a bare window that
   holds the same series (pydicom reads the files of the series the views show, one pyqtgraph
   ImageItem per series in a window of the same size).
3. First image of a NIfTI volume under one X server (Xvfb): ``lumbarview view FILE`` against
   MRIcron (Debian's native viewer, ``apt-get install mricron xvfb``), both spawned by this
   process, which polls the screen (QScreen.grabWindow) until an MR image shows: more than 1,500
   grey pixels with texture (a neighbour differing by 3 or more; flat interface colours have
   none). Skipped, with a message, where MRIcron or Xvfb is missing.

Each figure: median with the range of the rounds; each ratio per round (neighbours in time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import header

REPO = Path(__file__).resolve().parents[1]
BARE = "import PySide6.QtWidgets, pyqtgraph"
NIFTI = REPO.parent / "shared" / "data" / "sct-lumbar-t2" / "t2_lumbar.nii.gz"


def _unpack(commit: str, base: Path) -> Path:
    """The files of ``commit`` (``git archive``) in ``base``; unpacked once and reused."""
    folder = base / commit
    if not (folder / "lumbarview" / "__init__.py").exists():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _env(base: Path, name: str, **extra: str) -> dict[str, str]:
    settings = Path(tempfile.mkdtemp(prefix="settings-", dir=base))
    return {**os.environ, "QT_QPA_PLATFORM": extra.pop("QT_QPA_PLATFORM", "offscreen"),
            "LUMBARVIEW_CACHE_DIR": str(base / f"cache-{name}"), "XDG_CONFIG_HOME": str(settings),
            "LUMBARVIEW_WORKSPACE": str(base / f"workspace-{name}"), "LUMBARVIEW_REPORT_TIMING": "1", **extra}


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, dict[str, Any] | None]:
    """(seconds from spawn to exit, the timing JSON the process printed, if any)."""
    t0 = time.time()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.time() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} in {cwd} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    timing = next((json.loads(line) for line in done.stderr.splitlines() if line.startswith('{"first_image_s"')),
                  None)
    if timing is not None:
        timing["spawned_at"] = t0
    return wall, timing


def _fig(values: list[float], unit: str = "s") -> str:
    if unit == "x":
        return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"
    if unit == "MB":
        return f"{statistics.median(values):.0f} MB ({min(values):.0f}-{max(values):.0f})"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def launch(rounds: int, commits: list[str], base: Path) -> None:
    trees = {"this tree": REPO, **{c: _unpack(c, base) for c in commits}}
    shots = base / "shots"
    shots.mkdir(exist_ok=True)
    walls: dict[str, list[float]] = {name: [] for name in [*trees, "bare"]}
    first: list[float] = []
    rss: list[float] = []
    sidecar: Path | None = None
    for name, tree in trees.items():  # each tree's demo, written once, untimed
        done = subprocess.run([sys.executable, "-m", "lumbarview", "demo"], cwd=tree,
                              env=_env(base, name.replace(" ", "-")), capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"writing the demo of {name} failed:\n{done.stderr[-2000:]}")
    for r in range(rounds + 1):  # round 0: untimed warm-up (page cache, compiled bytecode)
        for name, tree in trees.items():
            out = shots / f"{name.replace(' ', '-')}.png"
            wall, timing = _timed([sys.executable, "-m", "lumbarview", "view", "--demo", "--screenshot", str(out)],
                                  tree, _env(base, name.replace(" ", "-")))
            if r == 0:
                continue
            walls[name].append(wall)
            if name == "this tree":
                if timing is None or timing.get("first_image_at") is None:
                    raise SystemExit("this tree printed no first-image time (LUMBARVIEW_REPORT_TIMING)")
                first.append(timing["first_image_at"] - timing["spawned_at"])
                rss.append(timing["first_image_rss_mb"])
                sidecar = out.with_suffix(".json")
        t0 = time.time()
        subprocess.run([sys.executable, "-c", BARE], check=True, env=_env(base, "bare"))
        if r > 0:
            walls["bare"].append(time.time() - t0)
    print(f"\n1. launch, whole process (`view --demo --screenshot`), {rounds} rounds:")
    for name, values in walls.items():
        print(f"  {name if name != 'bare' else 'bare ' + repr(BARE):<48} {_fig(values)}")
    for commit in commits:
        ratio = [a / b for a, b in zip(walls["this tree"], walls[commit], strict=True)]
        print(f"  this tree / {commit:<36} {_fig(ratio, 'x')} (goal for 950195b: at most 1.0x)")
    print(f"  this tree, spawn to first image               {_fig(first)}")
    ratio = [a / b for a, b in zip(first, walls["bare"], strict=True)]
    print(f"  first image / bare import process             {_fig(ratio, 'x')} (goal: at most 3x)")
    assert sidecar is not None
    bare_mb = [_bare_window_rss(sidecar, base) for _ in range(rounds)]
    print("\n2. memory after the first image (resident):")
    print(f"  lumbarview                                    {_fig(rss, 'MB')}")
    print(f"  bare window holding the same series           {_fig(bare_mb, 'MB')}")
    ratio = [a / b for a, b in zip(rss, bare_mb, strict=True)]
    print(f"  lumbarview / bare window                      {_fig(ratio, 'x')} (goal: at most 1.3x)")


_BARE_WINDOW = """
import sys, json, pathlib
import numpy as np, pydicom, pyqtgraph as pg
from PySide6 import QtWidgets
doc = json.loads(pathlib.Path(sys.argv[1]).read_text())
wanted = {v["series"] for v in doc["views"] if v.get("series")}
stacks = {}
for path in sorted(pathlib.Path(sys.argv[2]).rglob("*")):
    if path.is_file() and path.suffix.lower() in (".ima", ".dcm"):
        ds = pydicom.dcmread(path)
        if ds.get("SeriesDescription") in wanted:
            stacks.setdefault(ds.SeriesDescription, []).append(ds.pixel_array)
app = QtWidgets.QApplication([])
win = pg.GraphicsLayoutWidget()
win.resize(1400, 860)
for name, slices in stacks.items():
    volume = np.stack(slices)
    item = pg.ImageItem(volume[len(volume) // 2])
    win.addViewBox(lockAspect=True).addItem(item)
win.show()
app.processEvents()
assert len(stacks) == len(wanted), (sorted(stacks), sorted(wanted))
with open("/proc/self/status") as fh:
    print(next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmRSS:")))
"""


def _bare_window_rss(sidecar: Path, base: Path) -> float:
    demo = next((base / "cache-this-tree").rglob("sudirman"))
    out = subprocess.run([sys.executable, "-c", _BARE_WINDOW, str(sidecar), str(demo)], capture_output=True,
                         text=True, check=True, env=_env(base, "bare")).stdout
    return float(out.strip().splitlines()[-1])


# -- 3. NIfTI first image under Xvfb, against MRIcron ------------------------------------------

def _textured(image: Any) -> int:
    """Grey pixels with texture on a screen grab: an MR image's, not an interface's."""
    import numpy as np

    image = image.convertToFormat(image.Format.Format_RGB888)
    h, w = image.height(), image.width()
    raw = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    rgb = raw.reshape(h, -1)[:, : w * 3].reshape(h, w, 3).astype(np.int16)
    grey = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2]) & (rgb[..., 0] > 8) & (rgb[..., 0] < 247)
    texture = np.zeros_like(grey)
    texture[:, :-1] = np.abs(rgb[:, 1:, 0] - rgb[:, :-1, 0]) >= 3
    return int(np.count_nonzero(grey & texture))


def _first_image(cmd: list[str], env: dict[str, str], screen: Any, timeout_s: float = 60.0) -> tuple[float, float]:
    """(seconds from spawn until an MR image shows on the X screen, median seconds per poll)."""
    polls = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < timeout_s:
            p0 = time.perf_counter()
            shown = _textured(screen.grabWindow(0).toImage()) > 1500
            polls.append(time.perf_counter() - p0)
            if shown:
                return time.perf_counter() - t0, statistics.median(polls)
            time.sleep(0.005)
        raise SystemExit(f"{cmd[0]}: no image on the screen after {timeout_s:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mricron(rounds: int, base: Path) -> None:
    print(f"\n3. first image of a NIfTI volume ({NIFTI.name}) under Xvfb, lumbarview against MRIcron:")
    missing = [tool for tool in ("mricron", "Xvfb") if shutil.which(tool) is None]
    if missing:
        print(f"  skipped: {' and '.join(missing)} not installed (apt-get install mricron xvfb)")
        return
    if not NIFTI.is_file():
        print(f"  skipped: {NIFTI} is not there")
        return
    display = ":93"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        os.environ["DISPLAY"] = display
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        from PySide6 import QtGui

        app = QtGui.QGuiApplication(["bench_launch"])
        screen = app.primaryScreen()
        env = _env(base, "x11", QT_QPA_PLATFORM="xcb", DISPLAY=display)
        subjects = {"lumbarview": [sys.executable, "-m", "lumbarview", "view", str(NIFTI)],
                    "MRIcron": ["mricron", str(NIFTI)]}
        times: dict[str, list[float]] = {name: [] for name in [*subjects, "bare"]}
        polls: list[float] = []
        for r in range(rounds + 1):  # round 0: warm-up
            for name, cmd in subjects.items():
                seconds, poll = _first_image(cmd, {**env, "PWD": str(REPO)}, screen)
                if r > 0:
                    times[name].append(seconds)
                    polls.append(poll)
                time.sleep(0.5)
            t0 = time.perf_counter()  # the floor of a Python + Qt viewer: its imports alone
            subprocess.run([sys.executable, "-c", BARE], check=True, env=env)
            if r > 0:
                times["bare"].append(time.perf_counter() - t0)
        for name, values in times.items():
            print(f"  {name if name != 'bare' else 'bare ' + repr(BARE) + ' process':<46} {_fig(values)}")
        for name in ("lumbarview", "bare"):
            ratio = [a / b for a, b in zip(times[name], times["MRIcron"], strict=True)]
            print(f"  {name + ' / MRIcron':<46} {_fig(ratio, 'x')}" + (" (goal: at most 2.5x)" if name == "lumbarview"
                                                                      else " (the floor of a Python Qt viewer)"))
        print(f"  (the screen is polled every {statistics.median(polls) * 1000:.0f} ms or so: the resolution)")
        del app
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--commits", nargs="*", default=["950195b", "85d65e2"])
    parser.add_argument("--skip-launch", action="store_true")
    parser.add_argument("--skip-mricron", action="store_true")
    parser.add_argument("--data", help="folder for the unpacked commits and caches (kept; default: a new one)")
    args = parser.parse_args()
    print(header("bench_launch") + f"; {args.rounds} interleaved rounds")
    base = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="lv-bench-launch-"))
    base.mkdir(parents=True, exist_ok=True)
    if not args.skip_launch:
        launch(args.rounds, args.commits, base)
    if not args.skip_mricron:
        mricron(args.rounds, base)
    print(f"\nafter: {header('bench_launch')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
