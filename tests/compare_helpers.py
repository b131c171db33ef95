"""A prior/current pair of the phantom written as two case folders, for compare-mode tests: the
prior is the same analytic spine in another pose (pitched 4 degrees, shifted) with a wider canal
at L4-L5 (AP 10.5 mm against the current 7.5 mm)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lumbarview.core.labels import lumbarview_phantom_scheme
from lumbarview.io.volume_write import write_metaimage
from lumbarview.phantom.layouts import level_roi_geometry
from lumbarview.phantom.spine import LevelParams, LumbarPhantom, PhantomParams, _default_levels

LEVEL = "L4-L5"
PRIOR_AP = 10.5


def write_case(root: Path, phantom: LumbarPhantom) -> Path:
    root.mkdir(parents=True)
    g = level_roi_geometry(phantom, LEVEL, 1.0, 1.0)
    images, labels = phantom.render(g)
    write_metaimage(root / "T2.mha", images["T2"].astype(np.int16), g)
    write_metaimage(root / "T2_labels.mha", labels, g)
    (root / "lumbarview-labels.json").write_text(json.dumps(lumbarview_phantom_scheme().to_json()))
    return root


def phantom_pair(base: Path) -> tuple[Path, Path, LumbarPhantom, LumbarPhantom]:
    current = LumbarPhantom(PhantomParams(seed=1))
    levels = _default_levels()
    levels[LEVEL] = LevelParams(**{**levels[LEVEL].__dict__, "canal_ap_mm": PRIOR_AP})
    prior = LumbarPhantom(PhantomParams(seed=2, tilt_deg=-4.0, origin_lps=(6.0, -9.0, -48.0), levels=levels))
    return write_case(base / "current", current), write_case(base / "prior", prior), current, prior
