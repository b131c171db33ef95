"""Measurement error against the phantom's ground truth: one function shared by the tests and
the accuracy report (``benchmarks/measure_accuracy.py``)."""

from __future__ import annotations

from typing import Any

from lumbarview.measure.results import Value

#: quantity -> (truth key in the phantom's level truth, per side?)
TRUTH_KEYS = {
    "canal_ap": "canal_ap_mm", "canal_transverse": "canal_transverse_mm", "canal_area": "canal_area_mm2",
    "canal_area_min": "canal_area_min_mm2", "disc_height_anterior": "disc_height_anterior_mm",
    "disc_height_middle": "disc_height_middle_mm", "disc_height_posterior": "disc_height_posterior_mm",
    "dhi": "dhi", "slip": "slip_mm", "posterior_disc_height": "posterior_disc_height_mm",
    "foramen_height": "height_mm", "foramen_width": "width_mm", "foramen_area": "area_mm2",
}


def truth_for(value: Value, level_truth: dict[str, Any]) -> float | None:
    key = TRUTH_KEYS.get(value.quantity)
    if key is None:
        return None
    if value.quantity.startswith("foramen"):
        found = level_truth["foramen"][value.side or "left"].get(key)
        return None if found is None else float(found)
    return float(level_truth[key])


def errors(values: list[Value], level_truth: dict[str, Any]) -> list[tuple[Value, float, float]]:
    """(value, truth, error) for every measured value that has a truth (mm units except
    "mm2" areas and the DHI ratio)."""
    out = []
    for v in values:
        t = truth_for(v, level_truth)
        if t is not None and v.unit != "%":
            out.append((v, t, v.value - t))
    return out
