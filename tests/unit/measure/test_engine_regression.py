"""The measurement engine against its own frozen output (``tests/data/engine/*.json``).

The fixture was written by the engine as it was *before* it was made faster (commit "engine
fixture"), from phantom label maps that this test regenerates deterministically from the
parameters stored beside the values. Every value, position and extra must match within 1e-6
(mm, mm² or ratio), and every text (confidence, flag, reason, method) must be identical.

To rewrite the fixture (only when the engine's *results* are meant to change, with the reason in
the commit message)::

    python tests/unit/measure/test_engine_regression.py --write
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import SPIDER_SACRUM, spider_scheme
from lumbarview.measure.engine import measure_label_map
from lumbarview.measure.results import Value
from lumbarview.phantom.layouts import level_roi_geometry, render_labels
from lumbarview.phantom.spine import LevelParams, LumbarPhantom, PhantomParams

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "engine"
TOLERANCE = 1e-6
ALL_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def _stenosis_params() -> PhantomParams:
    params = PhantomParams(tilt_deg=5.0)
    params.levels["L4-L5"] = LevelParams(disc_height_mm=5.0, canal_ap_mm=6.0, canal_transverse_mm=14.0,
                                         foramen_height_left_mm=12.0, foramen_width_left_mm=2.5, slip_mm=6.0)
    return params


# name -> (phantom params, ROI level, in-plane mm, slice mm, label edit, levels measured)
CASES: dict[str, tuple[PhantomParams, str, float, float, str | None, tuple[str, ...]]] = {
    "iso1_tilt0": (PhantomParams(tilt_deg=0.0), "L4-L5", 1.0, 1.0, None, ALL_LEVELS),
    "iso1_tilt30": (PhantomParams(tilt_deg=30.0), "L4-L5", 1.0, 1.0, None, ALL_LEVELS),
    "iso07_tilt15": (PhantomParams(tilt_deg=15.0), "L4-L5", 0.7, 0.7, None, ALL_LEVELS),
    "sag06x33_tilt0": (PhantomParams(tilt_deg=0.0), "L4-L5", 0.6, 3.3, None, ALL_LEVELS),
    "sag1x44_tilt20": (PhantomParams(tilt_deg=20.0), "L3-L4", 1.0, 4.4, None, ALL_LEVELS),
    "stenosis_slip_07_tilt5": (_stenosis_params(), "L4-L5", 0.7, 0.7, None, ALL_LEVELS),
    "no_canal_no_bone_iso1": (PhantomParams(), "L4-L5", 1.0, 1.0, "drop_canal_and_bone", ("L4-L5", "L1-L2")),
}


def _params_from_json(d: dict[str, Any]) -> PhantomParams:
    levels = {name: LevelParams(**lp) for name, lp in d["levels"].items()}
    rest = {k: v for k, v in d.items() if k != "levels"}
    rest["origin_lps"] = tuple(rest["origin_lps"])
    return PhantomParams(levels=levels, **rest)


def _label_map(spec: dict[str, Any]) -> tuple[npt.NDArray[Any], VolumeGeometry]:
    phantom = LumbarPhantom(_params_from_json(spec["phantom"]))
    g = level_roi_geometry(phantom, spec["roi_level"], spec["in_plane_mm"], spec["slice_mm"])
    labels = render_labels(phantom, g)
    if spec["edit"] == "drop_canal_and_bone":
        labels[labels == 100] = 0
        labels[((labels >= 1) & (labels <= 99)) | (labels == SPIDER_SACRUM)] = 0
    elif spec["edit"] is not None:
        raise ValueError(f"unknown label edit {spec['edit']!r}")
    return labels, g


def _plain(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become the strings "nan", "inf", "-inf"."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else repr(f)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _value_json(v: Value) -> dict[str, Any]:
    """A value as the fixture stores it: every field but its geometry (tested in test_geometry)."""
    return {k: _plain(x) for k, x in asdict(v).items() if k != "geometry"}


def _same(expected: Any, actual: Any, where: str) -> list[str]:
    """Differences between a stored and a fresh JSON-safe value (numbers within TOLERANCE)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            return [f"{where}: keys {sorted(expected)} != {sorted(actual)}"]
        return [d for k in expected for d in _same(expected[k], actual[k], f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: length {len(expected)} != {len(actual)}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for d in _same(e, a, f"{where}[{i}]")]
    numbers = (int, float)
    if (isinstance(expected, numbers) and isinstance(actual, numbers)
            and not isinstance(expected, bool) and not isinstance(actual, bool)):
        return [] if abs(float(expected) - float(actual)) <= TOLERANCE else [f"{where}: {expected!r} != {actual!r}"]
    return [] if expected == actual else [f"{where}: {expected!r} != {actual!r}"]


def _spec(name: str) -> dict[str, Any]:
    params, roi_level, in_plane, slice_mm, edit, levels = CASES[name]
    return {"phantom": _plain(params.to_json()), "roi_level": roi_level, "in_plane_mm": in_plane,
            "slice_mm": slice_mm, "edit": edit, "levels": list(levels)}


def _measure(spec: dict[str, Any]) -> list[dict[str, Any]]:
    labels, g = _label_map(spec)
    return [_value_json(v) for v in measure_label_map(labels, g, spider_scheme(), levels=tuple(spec["levels"]))]


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_output_matches_the_frozen_fixture(name: str) -> None:
    stored = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    # The stored parameters are the ones this test would use: the fixture describes these cases.
    assert stored["spec"] == _spec(name)
    fresh = _measure(stored["spec"])
    assert len(fresh) == len(stored["values"])
    differences = [d for i, (e, a) in enumerate(zip(stored["values"], fresh, strict=True))
                   for d in _same(e, a, f"{e['level']} {e['quantity']} {e['side']} [{i}]")]
    assert not differences, "\n".join(differences[:20])


def test_the_comparison_detects_a_change_beyond_the_tolerance() -> None:
    stored = json.loads((FIXTURES / "iso1_tilt0.json").read_text(encoding="utf-8"))
    row = stored["values"][0]
    finite = next(r for r in stored["values"] if isinstance(r["value"], float))
    assert _same(row, dict(row), "row") == []
    assert _same(finite, {**finite, "value": finite["value"] + 2 * TOLERANCE}, "row") != []
    assert _same(finite, {**finite, "value": finite["value"] + 0.5 * TOLERANCE}, "row") == []
    assert _same(finite, {**finite, "confidence": "low" if finite["confidence"] != "low" else "high"}, "row") != []
    assert _same(finite, {**finite, "value": "nan"}, "row") != []
    # The fixture has real content: measured values and NaN rows with reasons.
    assert sum(isinstance(r["value"], float) for r in stored["values"]) >= 15
    assert any(r["value"] == "nan" and r["reason"] for r in stored["values"])


def _write() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in sorted(CASES):
        spec = _spec(name)
        values = _measure(spec)
        # One value per line: a change shows as a one-line diff.
        rows = ",\n  ".join(json.dumps(v, ensure_ascii=False, allow_nan=False) for v in values)
        text = (f'{{"spec": {json.dumps(spec, allow_nan=False)},\n "values": [\n  {rows}\n ]\n}}\n')
        (FIXTURES / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"{name}: {len(values)} values", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite tests/data/engine/*.json from this engine")
    if parser.parse_args().write:
        _write()
