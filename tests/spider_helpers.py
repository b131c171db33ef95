"""A SPIDER-layout dataset of many cases made of hard links to one phantom case (the same
content per case, as in benchmarks/bench_open_large.py), for tests of big datasets."""

from __future__ import annotations

import os
from pathlib import Path

from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom

#: A MetaImage header that lies (two sizes for three dimensions): a file that fails to open.
BAD_METAIMAGE = b"ObjectType = Image\nNDims = 3\nDimSize = 4 4\nElementDataFile = LOCAL\n"


def spider_cases(source: Path, root: Path, n_cases: int) -> Path:
    """``root`` with ``images/`` and ``masks/`` holding cases 1..n (T1 and T2), hard links of a
    small phantom case written once into ``source``."""
    if not (source / "images" / "1_t2.mha").exists():
        write_spider(source, LumbarPhantom(), Sizes.small(), patient=1)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for case in range(1, n_cases + 1):
            for seq in ("t1", "t2"):
                os.link(source / folder / f"1_{seq}.mha", root / folder / f"{case}_{seq}.mha")
    return root


def damage(path: Path) -> None:
    """Replace a (hard-linked) file by one whose header lies, without touching its other links."""
    path.unlink()
    path.write_bytes(BAD_METAIMAGE)
