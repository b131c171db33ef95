"""The phantom's labels agree with its own ground truth, checked by sampling (not by reading
the numbers back): the truth the measurement tests rely on is true of the voxels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lumbarview.phantom.spine import (
    DISC_LABELS,
    LABEL_CANAL,
    LABEL_ROOT,
    LUMBAR_LEVELS,
    POSTERIOR_LABELS,
    LevelParams,
    LumbarPhantom,
    PhantomParams,
)


@pytest.fixture(scope="module", params=[0.0, 25.0], ids=["upright", "tilted-25"])
def phantom(request: pytest.FixtureRequest) -> LumbarPhantom:
    return LumbarPhantom(PhantomParams(tilt_deg=request.param))


def _plane_grid(centre: np.ndarray, e1: np.ndarray, e2: np.ndarray, half: float,
                step: float) -> tuple[np.ndarray, float]:
    t = np.arange(-half, half + step / 2, step)
    a, b = np.meshgrid(t, t, indexing="ij")
    return centre + a[..., None] * e1 + b[..., None] * e2, step * step


@pytest.mark.parametrize("level", LUMBAR_LEVELS)
def test_canal_cross_section_on_the_disc_plane_matches_truth(phantom: LumbarPhantom, level: str) -> None:
    truth = phantom.ground_truth()["levels"][level]
    normal = np.asarray(truth["disc_normal_lps"])
    centre = np.asarray(truth["canal_centre_lps"])
    e1 = np.array([1.0, 0.0, 0.0])
    e2 = np.cross(normal, e1)
    pts, cell = _plane_grid(centre, e1, e2, 16.0, 0.05)
    canal = phantom.labels_at(pts.reshape(-1, 3)).reshape(pts.shape[:2]) == LABEL_CANAL
    assert canal.sum() * cell == pytest.approx(truth["canal_area_mm2"], rel=0.01)
    rows = np.nonzero(canal.any(axis=0))[0]  # extent along e2 (anterior-posterior)
    cols = np.nonzero(canal.any(axis=1))[0]  # extent along e1 (left-right)
    assert (rows.max() - rows.min() + 1) * 0.05 == pytest.approx(truth["canal_ap_mm"], abs=0.1)
    assert (cols.max() - cols.min() + 1) * 0.05 == pytest.approx(truth["canal_transverse_mm"], abs=0.1)


@pytest.mark.parametrize(("level", "side"), [("L4-L5", "left"), ("L4-L5", "right"), ("L5-S1", "right")])
def test_foramen_is_the_empty_rectangle_between_pedicles_and_facet(
        phantom: LumbarPhantom, level: str, side: str) -> None:
    truth = phantom.ground_truth()["levels"][level]["foramen"][side]
    d = phantom.disc(level)
    x = float(np.mean([v for v in truth["parasagittal_x_range_mm"]]))
    x_spine = x - phantom.origin_lps[0]
    h_lo, h_hi = -d.hl[side], d.hu[side]
    width = truth["width_mm"]

    def label(a: float, u: float) -> int:
        return int(phantom.labels_at(phantom.to_lps(d.frame.point(x_spine, a, u))[None])[0])

    # Inside: fat (0) or the exiting root.
    for a in np.linspace(16.2, 16 + width - 0.2, 5):
        for u in np.linspace(h_lo + 0.2, h_hi - 0.2, 7):
            assert label(a, u) in (0, LABEL_ROOT), (a, u)
    # Just outside each side: bone of the right vertebra or the disc/body in front.
    assert label(16 + width / 2, h_hi + 0.3) == POSTERIOR_LABELS[d.above.name]
    assert label(16 + width / 2, h_lo - 0.3) == POSTERIOR_LABELS[d.below.name]
    assert label(16 + width + 0.3, 0.0) in (POSTERIOR_LABELS[d.above.name], POSTERIOR_LABELS[d.below.name])
    assert label(15.7, 0.0) == DISC_LABELS[level]
    assert truth["area_mm2"] == pytest.approx(truth["height_mm"] * width)


@pytest.mark.parametrize("level", LUMBAR_LEVELS)
def test_disc_heights_match_label_transitions_along_the_normal(phantom: LumbarPhantom, level: str) -> None:
    truth = phantom.ground_truth()["levels"][level]
    d = phantom.disc(level)
    for key, a in (("disc_height_anterior_mm", -12.8), ("disc_height_middle_mm", 0.0),
                   ("disc_height_posterior_mm", 12.8)):
        u = np.arange(-12, 12, 0.01)
        pts = np.array([phantom.to_lps(d.frame.point(0.0, a, t)) for t in u])
        in_disc = phantom.labels_at(pts) == DISC_LABELS[level]
        measured = in_disc.sum() * 0.01
        assert measured == pytest.approx(truth[key], abs=0.05), key


def test_stenosis_parameters_reach_the_truth() -> None:
    params = PhantomParams()
    params.levels["L3-L4"] = LevelParams(canal_ap_mm=6.0, canal_transverse_mm=14.0,
                                         foramen_height_left_mm=11.0, foramen_width_left_mm=3.0)
    truth = LumbarPhantom(params).ground_truth()["levels"]["L3-L4"]
    assert truth["canal_ap_mm"] == 6.0
    assert truth["canal_area_mm2"] == pytest.approx(math.pi * 3.0 * 7.0)
    assert truth["foramen"]["left"]["area_mm2"] == pytest.approx(33.0)


def test_the_phantom_is_deterministic_by_seed() -> None:
    from lumbarview.phantom.layouts import sagittal_geometry

    a = LumbarPhantom(PhantomParams(seed=3))
    g = sagittal_geometry(a, 40, 4.0, 3, 4.0)
    img1, lab1 = a.render(g, ("T2",))
    img2, lab2 = LumbarPhantom(PhantomParams(seed=3)).render(g, ("T2",))
    img3, _ = LumbarPhantom(PhantomParams(seed=4)).render(g, ("T2",))
    assert np.array_equal(img1["T2"], img2["T2"]) and np.array_equal(lab1, lab2)
    assert not np.array_equal(img1["T2"], img3["T2"])
    assert img1["T2"].max() < 4096  # 12-bit
