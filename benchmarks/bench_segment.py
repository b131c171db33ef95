"""Semi-automatic segmentation: the canal click and the body click, beside baselines, interleaved.

    python benchmarks/bench_segment.py [--rounds 7] [--bodies]

* **Canal, one click on a 512 x 512 axial slice** (the MR-like phantom, 0.35 mm pixels, normal
  and stenotic): ``measure.segment.canal.canal_from_click`` (click to contour, everything it does)
  against a bare scikit-image marker watershed on the same region (the same 15 mm disk: Sobel of
  the slice, the click's 1 mm disk as the inside marker, the disk's outside as the other marker,
  holes filled; nothing else). Printed beside the times: each method's area error against the
  phantom's analytic area over 5 noise draws (mean, worst), and a click on a rootlet.
* **Bodies** (``--bodies``; needs ``../shared/data/chu2015-vb2``): one click per body, the time
  per body and the Dice against the manual labels (the click is the manual body's centroid).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import filters, segmentation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved, machine_note

from lumbarview.measure.segment.canal import canal_from_click
from lumbarview.phantom.axial_sac import render_axial_sac

PX = 0.35


def bare_watershed(image: np.ndarray, click: tuple[float, float], radius_mm: float = 15.0) -> float:
    """The baseline: a marker watershed of the disk around the click; its area in mm2."""
    r0, c0 = round(click[0]), round(click[1])
    half = int(np.ceil(radius_mm / PX)) + 2
    crop = image[r0 - half:r0 + half + 1, c0 - half:c0 + half + 1].astype(np.float64)
    rr, cc = np.mgrid[-half:half + 1, -half:half + 1]
    dist = np.hypot(rr, cc) * PX
    markers = np.zeros(crop.shape, np.int32)
    markers[dist > radius_mm] = 2
    markers[dist <= 1.0] = 1
    region = ndimage.binary_fill_holes(segmentation.watershed(filters.sobel(crop), markers) == 1)
    return float(region.sum()) * PX * PX


def canal(rounds: int) -> None:
    for kind in ("normal", "stenotic"):
        slices = [render_axial_sac(kind, seed=s) for s in range(5)]
        p = slices[0]
        figures = interleaved({
            "bare watershed": lambda p=p: bare_watershed(p.pixels, p.centre_rc),
            "canal_from_click": lambda p=p: canal_from_click(p.pixels, p.centre_rc, (PX, PX)),
        }, rounds)
        ours = [canal_from_click(s.pixels, s.centre_rc, (PX, PX)).area_mm2 - s.area_mm2 for s in slices]
        base = [bare_watershed(s.pixels, s.centre_rc) - s.area_mm2 for s in slices]
        rootlet_ours = [canal_from_click(s.pixels, s.rootlets_rc[i % 5], (PX, PX)).area_mm2 / s.area_mm2
                        for i, s in enumerate(slices)]
        rootlet_base = [bare_watershed(s.pixels, s.rootlets_rc[i % 5]) / s.area_mm2 for i, s in enumerate(slices)]
        print(f"canal, {kind} (truth {p.area_mm2:.1f} mm2), 512 x 512 slice, click to contour:")
        for name, fig in figures.items():
            print(f"  {name:18s} {fig.text()}")
        print(f"  area error, canal_from_click: mean {np.mean(ours):+.2f} mm2, worst {np.max(np.abs(ours)):.2f}; "
              f"bare watershed: mean {np.mean(base):+.2f}, worst {np.max(np.abs(base)):.2f}")
        print(f"  click on a rootlet, area / truth: canal_from_click {min(rootlet_ours):.3f}-{max(rootlet_ours):.3f}; "
              f"bare watershed {min(rootlet_base):.3f}-{max(rootlet_base):.3f}")


def bodies() -> None:
    import time

    from lumbarview.io.volume import open_label_volume, open_volume
    from lumbarview.measure.segment.bodies import body_from_click, dice

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "chu2015-vb2"
    scores, times = [], []
    for case in ("VB2_05", "VB2_06", "VB2_09"):
        image = open_volume(root / case / f"{case}_t2_iso1mm.nii.gz")
        manual = open_label_volume(root / case / f"{case}_t2_iso1mm_vertebrae_mask.nii.gz").pixels()
        pixels = image.pixels()
        row = []
        for value in range(1, 8):
            m = manual == value
            t0 = time.perf_counter()
            seg = body_from_click(pixels, image.geometry, ndimage.center_of_mass(m))
            times.append(time.perf_counter() - t0)
            scores.append(dice(seg, m))
            row.append(f"{scores[-1]:.3f}")
        print(f"  {case}: Dice T11..L5 {' '.join(row)}")
    print(f"bodies: mean Dice {np.mean(scores):.3f} (min {min(scores):.3f}) over {len(scores)}; time per body "
          f"median {np.median(times):.2f} s (max {max(times):.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--bodies", action="store_true")
    args = ap.parse_args()
    print(machine_note())
    canal(args.rounds)
    if args.bodies:
        bodies()


if __name__ == "__main__":
    main()
