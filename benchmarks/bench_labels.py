"""Label editing (issue 23): undo memory and undo time, interpolation, saving; each beside a
baseline measured in the same run.

    python benchmarks/bench_labels.py                 # all, 5 rounds
    python benchmarks/bench_labels.py --rounds 3 --strokes 200

Map: 300 x 512 x 512 uint16 (SPIDER-like values: background, a block of label 1, a canal 100).

* ``undo``: ``--strokes`` brush strokes (each 12 stamps of a 10 mm disk moving 2 mm per stamp on
  an axial slice, preserve on, written through ``ImageStack.write_voxels``) pushed on the session's
  undo stack: the bytes the history holds (target: <= 32 MB for 200), then undoing them all
  (byte-identical to the map before: checked), and the time of one stroke's undo (target <= 20
  ms) beside the baseline ``ImageStack.replace_region`` (the copy-on-write seam: a whole-volume
  copy) of the same voxels' bounding box.
* ``interpolate``: one label across 300 slices from 10 key slices (target < 1 s) beside the
  baseline of one pass over the map (``labels == label``).
* ``save``: the corrected map through ``label_store`` (``write_like`` of an uncompressed MetaImage
  source, atomic: temporary file, fsync, rename) beside ``numpy.tofile`` + the header (target
  <= 1.5x), and beside ``tofile`` + fsync.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import Figure, header, interleaved, ratios
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.types import ImageStack
from lumbarview.io.label_write import write_like
from lumbarview.measure import label_tools as lt
from lumbarview.model.commands import UndoStack
from lumbarview.model.label_edits import LabelEditor, StackTarget

SHAPE = (300, 512, 512)


def _map() -> tuple[VolumeGeometry, np.ndarray]:
    geometry = VolumeGeometry.from_directions(SHAPE, (-180.0, -180.0, -150.0), (1, 0, 0), (0, 1, 0), (0.7, 0.7, 1.0))
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[40:260, 150:350, 120:380] = 1
    labels[:, 360:400, 230:270] = 100
    return geometry, labels


def bench_undo(strokes: int, rounds: int) -> None:
    geometry, labels = _map()
    stack = ImageStack("labels", "labels", geometry, {"kind": "labels"}, lambda: (labels.copy(), []))
    before = stack.pixels().tobytes()
    undo = UndoStack(limit=strokes + 10)
    editor = LabelEditor(StackTarget(stack), undo)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    for _ in range(strokes):
        k = int(rng.integers(0, SHAPE[0]))
        plane = lt.EditPlane.of(geometry.slice_plane(k))
        start = geometry.index_to_lps(np.array([[rng.uniform(50, 450), rng.uniform(50, 450), k]], float))[0]
        editor.begin_stroke({"op": "paint", "label": 100, "preserve": True, "shape": "disk", "radius_mm": 5.0})
        for s in range(12):
            centre = start + s * 2.0 * plane.right_lps
            sel = lt.paint(stack.pixels(), lt.disk_voxels(geometry, plane, centre, 5.0), 100)
            editor.stamp(sel.flat, sel.values, centre)
        editor.end_stroke()
    paint_s = time.perf_counter() - t0
    held = sum(edit.nbytes for edit in editor.edits)
    print(f"undo: {strokes} strokes painted in {paint_s:.2f} s; history holds {held / 2**20:.2f} MB "
          f"(target <= {32 * strokes / 200:.0f} MB), {sum(e.changed for e in editor.edits):,} voxels changed")
    t0 = time.perf_counter()
    while undo.undo():
        pass
    undo_all_s = time.perf_counter() - t0
    identical = stack.pixels().tobytes() == before
    print(f"undo: undoing all {strokes}: {undo_all_s * 1000:.1f} ms; map byte-identical to before: {identical}")
    # one stroke's undo (redo/undo of the last), beside the copy-on-write replace_region of its box
    undo.redo()
    last = editor.edits[-1]
    kji = np.unravel_index(last.flat.astype(np.int64), SHAPE)
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in kji)
    values = np.array(stack.pixels()[box])
    # the baseline on a stack of its own: replace_region hands the stack a new array, which the
    # next write_voxels would copy once (timing that copy into the undo would be the baseline's)
    other = ImageStack("labels2", "labels2", geometry, {"kind": "labels"}, lambda: (labels.copy(), []))
    other.pixels()

    def undo_redo() -> None:
        undo.undo()
        undo.redo()

    figures = interleaved({"replace_region (copy on write)": lambda: other.replace_region(box, values),
                           "undo + redo of one stroke": undo_redo}, rounds)
    for name, figure in figures.items():
        print(f"  {name:34s} {figure.text()}")
    half = Figure(tuple(v / 2 for v in figures["undo + redo of one stroke"].values))
    print(f"  {'one undo (half of undo + redo)':34s} {half.text()}  (target <= 0.020 s)")


def bench_interpolate(rounds: int) -> None:
    geometry, _ = _map()
    labels = np.zeros(SHAPE, dtype=np.uint16)
    yy, xx = np.mgrid[0:512, 0:512]
    keys = np.linspace(0, 299, 10).round().astype(int)
    for n, k in enumerate(keys):
        r = 20 + 3 * n
        labels[k][(yy - 256 - n) ** 2 + (xx - 256) ** 2 <= r * r] = 100
    figures = interleaved({"labels == 100 (one pass)": lambda: labels == 100,
                           "interpolate 300 slices": lambda: lt.interpolate(labels, geometry, 100, (0, 0, 1))},
                          rounds)
    for name, figure in figures.items():
        print(f"  {name:34s} {figure.text()}")
    print("  (target: interpolation < 1 s)")


def bench_save(rounds: int) -> None:
    _geometry, labels = _map()
    labels[150, 200:210, 200:210] = 100
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        folder = Path(tmp)
        source = folder / "source.mha"
        head = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = -180 -180 -150\n"
                "ElementSpacing = 0.69999999999999996 0.69999999999999996 1\nDimSize = 512 512 300\n"
                "ElementType = MET_USHORT\nElementDataFile = LOCAL\n").encode("ascii")
        with open(source, "wb") as fh:
            fh.write(head)
            labels.tofile(fh)
        n = iter(range(10**6))

        def tofile(sync: bool) -> None:
            path = folder / f"tofile-{next(n)}.mha"
            with open(path, "wb") as fh:
                fh.write(head)
                labels.tofile(fh)
                if sync:
                    fh.flush()
                    os.fsync(fh.fileno())
            path.unlink()

        def save() -> None:
            path = folder / f"saved-{next(n)}.mha"
            write_like(source, labels, path)
            path.unlink()

        figures = interleaved({"numpy.tofile + header": lambda: tofile(False),
                               "numpy.tofile + header + fsync": lambda: tofile(True),
                               "write_like (atomic, fsync)": save}, rounds)
    for name, figure in figures.items():
        print(f"  {name:34s} {figure.text()}")
    print(f"  {'ratio to tofile + header':34s} "
          f"{ratios(figures['write_like (atomic, fsync)'], figures['numpy.tofile + header']).text('x')}"
          "  (target <= 1.5x)")
    print(f"  {'ratio to tofile + header + fsync':34s} "
          f"{ratios(figures['write_like (atomic, fsync)'], figures['numpy.tofile + header + fsync']).text('x')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--strokes", type=int, default=200)
    parser.add_argument("--only", choices=("undo", "interpolate", "save"))
    args = parser.parse_args()
    print(header("bench_labels"))
    if args.only in (None, "undo"):
        print("== undo ==")
        bench_undo(args.strokes, args.rounds)
    if args.only in (None, "interpolate"):
        print("== interpolate ==")
        bench_interpolate(args.rounds)
    if args.only in (None, "save"):
        print("== save ==")
        bench_save(args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
