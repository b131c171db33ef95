"""The dural sac from one click on the MR-like axial phantom (truth from the analytic outline)."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarview.measure.segment.canal import CanalParameters, ClickOutsideSacError, canal_from_click
from lumbarview.phantom.axial_sac import render_axial_sac, sac_area_mm2

PX = (0.35, 0.35)


def test_phantom_truth_is_the_analytic_area() -> None:
    # Independent of the integral: the ellipse's pi a b, and the trefoil's pi r0^2 (1 + e^2 / 2).
    assert sac_area_mm2("normal") == pytest.approx(np.pi * 8.8 * 6.655, abs=1e-6)
    assert sac_area_mm2("stenotic") == pytest.approx(np.pi * 4.5**2 * (1 + 0.25**2 / 2), abs=1e-6)


@pytest.mark.parametrize("kind", ["normal", "stenotic"])
def test_one_click_area_within_goal(kind: str) -> None:
    errors = []
    for seed in range(5):
        p = render_axial_sac(kind, seed=seed)
        rng = np.random.default_rng(100 + seed)
        click = (p.centre_rc[0] + rng.uniform(-3, 3), p.centre_rc[1] + rng.uniform(-3, 3))
        assert p.inside_sac(*click)
        errors.append(canal_from_click(p.pixels, click, PX).area_mm2 - p.area_mm2)
    assert abs(float(np.mean(errors))) <= 5.0, errors
    assert float(np.max(np.abs(errors))) <= 10.0, errors


@pytest.mark.parametrize("kind", ["normal", "stenotic"])
def test_click_on_a_rootlet_does_not_leak(kind: str) -> None:
    p = render_axial_sac(kind, seed=3)
    for rootlet in p.rootlets_rc:
        res = canal_from_click(p.pixels, rootlet, PX)
        assert 0.8 * p.area_mm2 <= res.area_mm2 <= 1.2 * p.area_mm2, (rootlet, res.area_mm2)


def test_diameters_of_the_normal_ellipse() -> None:
    # The phantom's normal sac is an ellipse 2 x 8.8 mm wide and 2 x 6.655 mm deep (rows = AP).
    p = render_axial_sac("normal", seed=2)
    res = canal_from_click(p.pixels, p.centre_rc, PX)
    assert res.ap_mm == pytest.approx(2 * 6.655, abs=0.3)
    assert res.transverse_mm == pytest.approx(2 * 8.8, abs=0.3)
    # The same plane with its AP axis along the columns swaps the two.
    swapped = canal_from_click(p.pixels, p.centre_rc, PX, ap_direction_rc=(0.0, 1.0))
    assert swapped.ap_mm == pytest.approx(res.transverse_mm, abs=1e-9)


@pytest.mark.parametrize("where", ["disc", "muscle", "fat", "ligament"])
def test_click_outside_the_sac_is_refused(where: str) -> None:
    p = render_axial_sac("normal", seed=1)
    r, c = p.centre_rc
    point = {"disc": (r - 22 / 0.35, c), "muscle": (r, c + 40 / 0.35), "fat": (r + (6.655 + 3.5) / 0.35, c),
             "ligament": (r + (6.655 + 6) / 0.35, c + 8 / 0.35)}[where]
    assert not p.inside_sac(*point)
    with pytest.raises(ClickOutsideSacError, match="click"):
        canal_from_click(p.pixels, point, PX)


def test_click_outside_the_image_is_refused() -> None:
    p = render_axial_sac("normal", seed=1)
    with pytest.raises(ClickOutsideSacError, match="outside the image"):
        canal_from_click(p.pixels, (-5.0, 10.0), PX)


def test_radius_limit_stops_a_leak() -> None:
    # A broken dura: the sac opens into a bright field (fat made as bright as CSF). The region
    # must not follow it: refused at the radius limit, never a 25,000 mm2 area.
    p = render_axial_sac("normal", seed=4)
    img = p.pixels.copy()
    r, c = (int(v) for v in p.centre_rc)
    img[r:, c - 6:c + 6] = 1000.0
    with pytest.raises(ClickOutsideSacError, match="radius limit"):
        canal_from_click(img, p.centre_rc, PX)


def test_large_area_warns() -> None:
    p = render_axial_sac("normal", seed=0)
    res = canal_from_click(p.pixels, p.centre_rc, PX, parameters=CanalParameters(warn_area_mm2=150.0))
    assert res.warnings and "plausible" in res.warnings[0]
    assert not canal_from_click(p.pixels, p.centre_rc, PX).warnings
