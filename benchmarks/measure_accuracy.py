"""Error of the measurement engine against the phantom's ground truth, as a markdown table.

    python benchmarks/measure_accuracy.py [--quick]

Grids: isotropic 0.3-1 mm at spine tilts of 0-30 degrees, and sagittal-only stacks with
0.6 mm pixels and 3.3 or 4.4 mm slices. Level L4-L5 of the default phantom (canal AP 7.5 mm,
transverse 18 mm; left foramen 14 x 4 mm, right 20 x 7 mm). Errors are measured - truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumbarview.core.labels import spider_scheme
from lumbarview.measure.accuracy import errors
from lumbarview.measure.engine import measure_label_map
from lumbarview.phantom.layouts import level_roi_geometry, render_labels
from lumbarview.phantom.spine import LumbarPhantom, PhantomParams

LEVEL = "L4-L5"


def run(configs: list[tuple[str, float, float, float]]) -> None:
    table: dict[str, dict[str, str]] = defaultdict(dict)
    columns = []
    for name, tilt, in_plane, slice_mm in configs:
        t0 = time.perf_counter()
        phantom = LumbarPhantom(PhantomParams(tilt_deg=tilt))
        g = level_roi_geometry(phantom, LEVEL, in_plane, slice_mm)
        values = measure_label_map(render_labels(phantom, g), g, spider_scheme(), levels=(LEVEL,))
        truth = phantom.ground_truth()["levels"][LEVEL]
        columns.append(name)
        for v, t, err in errors(values, truth):
            key = v.quantity + (f" ({v.side})" if v.side else "")
            if v.unit == "mm2":
                cell = f"{err:+.1f} ({100 * err / t:+.1f} %)"
            elif v.unit == "ratio":
                cell = f"{err:+.3f}"
            else:
                cell = f"{err:+.2f}"
            table[key][name] = cell + ("" if v.confidence == "high" else f" {v.confidence}")
        print(f"# {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print("| quantity | " + " | ".join(columns) + " |")
    print("| --- | " + " | ".join("---" for _ in columns) + " |")
    for key, row in table.items():
        print(f"| {key} | " + " | ".join(row.get(c, "n/a") for c in columns) + " |")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import header  # the commit and the machine, first

    print(header("measure_accuracy"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 0.3 mm grid (about a minute)")
    args = parser.parse_args()
    configs = [("iso 1.0, tilt 0", 0.0, 1.0, 1.0), ("iso 1.0, tilt 30", 30.0, 1.0, 1.0),
               ("iso 0.7, tilt 15", 15.0, 0.7, 0.7), ("iso 0.5, tilt 0", 0.0, 0.5, 0.5),
               ("iso 0.5, tilt 30", 30.0, 0.5, 0.5)]
    if not args.quick:
        configs.append(("0.3 x 0.3 x 1.0, tilt 10", 10.0, 0.3, 1.0))
    configs += [("sag 0.6 x 0.6 x 3.3", 0.0, 0.6, 3.3), ("sag 0.6 x 0.6 x 4.4", 0.0, 0.6, 4.4),
                ("sag 1.0 x 1.0 x 4.4, tilt 20", 20.0, 1.0, 4.4)]
    run(configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
