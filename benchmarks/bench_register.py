"""Per-level rigid registration (lumbarview.measure.register) against a bare SimpleITK Euler3D
registration with the same metric (mutual information) on the same region, interleaved.

    python benchmarks/bench_register.py --rounds 3

Data: the real chu2015-vb2 VB2_05 T2 (381 x 381 x 77, 1 mm iso) against a copy moved by a
known rigid motion (8 / -4 / 5 degrees about L / P / S, 10 / -8 / 12 mm) with Gaussian noise of
4 % of the 99th percentile. Region: the 40 mm cube around the L4-L5 disc (midway between the L4
and L5 body centroids of the expert labels). SimpleITK: Euler3D about the disc, Mattes MI (32
bins, 10 % random sampling, seeded), regular-step gradient descent with physical-shift scaling,
a 2-level pyramid (shrink 4, 2; smoothing 2, 1 mm) as in anchors-wave3 §E3, the fixed image
cropped to the same cube (with the same 1.5x margin at the coarse level as lumbarview uses).
Figures: wall time and CPU time per registration, median and spread; target error at the disc.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import Figure, machine_note

from lumbarview.io.volume import open_label_volume, open_volume
from lumbarview.measure.register import register_rigid
from lumbarview.phantom.moved import moved_copy, target_error_mm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chu2015-vb2" / "VB2_05"


def _sitk_image(pixels: np.ndarray, g: object) -> object:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(pixels, dtype=np.float32))
    aff = g.ijk_to_lps  # type: ignore[attr-defined]
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in aff[:3, 3]))
    img.SetDirection(tuple(float(d) for d in (aff[:3, :3] / spacing).ravel()))
    return img


def sitk_register(cur: object, pri: object, disc: np.ndarray, half: float) -> np.ndarray:
    import SimpleITK as sitk

    lo = cur.TransformPhysicalPointToIndex(tuple(float(v) for v in disc - 1.5 * half))  # type: ignore[attr-defined]
    hi = cur.TransformPhysicalPointToIndex(tuple(float(v) for v in disc + 1.5 * half))  # type: ignore[attr-defined]
    start = [min(a, b) for a, b in zip(lo, hi, strict=True)]
    size = [abs(a - b) + 1 for a, b in zip(lo, hi, strict=True)]
    start = [max(0, s) for s in start]
    size = [min(n, cur.GetSize()[i] - start[i]) for i, n in enumerate(size)]  # type: ignore[attr-defined]
    fixed = sitk.RegionOfInterest(cur, size, start)
    tx = sitk.Euler3DTransform()
    tx.SetCenter(tuple(float(v) for v in disc))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.10, seed=7)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=200)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(tx, inPlace=False)
    # SimpleITK's transform maps fixed (current) points to moving (prior) points, as ours does.
    out = reg.Execute(fixed, pri)
    final = sitk.CompositeTransform(out).GetNthTransform(0) if out.GetName() == "CompositeTransform" else out
    m = np.eye(4)
    m[:3, :3] = np.asarray(final.GetMatrix()).reshape(3, 3)
    m[:3, 3] = np.asarray(final.GetTranslation()) + np.asarray(final.GetCenter()) - m[:3, :3] @ np.asarray(
        final.GetCenter())
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    img = open_volume(DATA / "VB2_05_t2_iso1mm.nii.gz")
    labels = open_label_volume(DATA / "VB2_05_t2_iso1mm_vertebrae_mask.nii.gz").pixels()
    pixels, g = np.asarray(img.pixels()), img.geometry
    disc = sum(g.index_to_lps(np.argwhere(labels == v).mean(axis=0)[::-1]) for v in (6, 7)) / 2
    copy = moved_copy(pixels, g, rotation_deg=(8.0, -4.0, 5.0), translation_mm=(10.0, -8.0, 12.0),
                      centre_lps=g.centre_lps(), noise_sd=float(np.percentile(pixels, 99)) * 0.04)
    cur_s, pri_s = _sitk_image(pixels, g), _sitk_image(copy.pixels, copy.geometry)
    subjects = {
        "lumbarview": lambda: register_rigid(pixels, g, copy.pixels, copy.geometry, disc).matrix_lps,
        "SimpleITK Euler3D": lambda: sitk_register(cur_s, pri_s, disc, 20.0),
    }
    wall: dict[str, list[float]] = {k: [] for k in subjects}
    cpu: dict[str, list[float]] = {k: [] for k in subjects}
    tre: dict[str, list[float]] = {k: [] for k in subjects}
    for r in range(args.rounds):
        order = list(subjects) if r % 2 == 0 else list(subjects)[::-1]
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            m = subjects[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            tre[name].append(target_error_mm(m, copy.truth, disc))
    print(f"machine: {machine_note()}; SimpleITK threads {args.threads}")
    for name in subjects:
        print(f"{name:18s} wall {Figure(tuple(wall[name])).text()}")
        print(f"{'':18s} cpu  {Figure(tuple(cpu[name])).text()}")
        print(f"{'':18s} target error at the disc (mm): {', '.join(f'{t:.3f}' for t in tre[name])}")


if __name__ == "__main__":
    main()
