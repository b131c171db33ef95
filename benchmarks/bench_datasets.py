"""Opening dataset cases: lumbarview against a bare SimpleITK read of the same files, same run.

    python benchmarks/bench_datasets.py [--repeats N]

Writes one SPIDER-layout case (448x448x15 image + mask, two sequences) and one BIDS case
(686x686x17 T2 at 0.35 mm + CISS, markers, STL) with the phantom at realistic sizes, then times:
* lumbarview: ``open_path`` (layout recognition, headers, tables, overlays) + decoding every
  image and label volume of the case;
* baseline: ``SimpleITK.ReadImage`` + ``GetArrayFromImage`` of the same volume files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dicom import median_seconds as median

from lumbarview.phantom.layouts import Sizes, write_bids, write_spider
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.open_dataset import open_path


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import header  # the commit and the machine, first

    print(header("bench_datasets"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    phantom = LumbarPhantom()
    with tempfile.TemporaryDirectory(prefix="lv-bench-ds-") as tmp:
        root = Path(tmp)
        write_spider(root / "spider", phantom, Sizes())
        write_bids(root / "bids", phantom, Sizes())
        cases = {
            "spider": (root / "spider", sorted((root / "spider").rglob("*.mha"))),
            "bids": (root / "bids", sorted((root / "bids").rglob("*.nii.gz"))),
        }
        for name, (path, files) in cases.items():
            def lumbarview_open(p: Path = path) -> int:
                ds = open_path(p, use_cache=False)
                n = 0
                for case in ds.cases:
                    for stack in case.stacks():
                        n += stack.pixels().size
                    for labels in case.label_maps:
                        n += labels.stack.pixels().size
                return n

            def bare_sitk(fs: list[Path] = files) -> int:
                return sum(sitk.GetArrayFromImage(sitk.ReadImage(str(f))).size for f in fs)

            assert lumbarview_open() == bare_sitk(), "both must read the same voxels"
            ours = median(lumbarview_open, args.repeats)
            base = median(bare_sitk, args.repeats)
            print(f"{name:7s} files={len(files)}  lumbarview {ours * 1000:8.1f} ms   "
                  f"bare SimpleITK {base * 1000:8.1f} ms   ratio {ours / base:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
