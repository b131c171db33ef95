"""The measurement engine against the phantom's ground truth (known by construction)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from lumbarview.core.labels import SPIDER_SACRUM, spider_scheme
from lumbarview.measure.accuracy import errors
from lumbarview.measure.engine import measure_label_map
from lumbarview.phantom.layouts import level_roi_geometry, render_labels, sagittal_geometry
from lumbarview.phantom.spine import LevelParams, LumbarPhantom, PhantomParams

LEVEL = "L4-L5"


def _measure(tilt: float, in_plane: float, slice_mm: float, params: PhantomParams | None = None):  # type: ignore[no-untyped-def]
    p = params or PhantomParams(tilt_deg=tilt)
    phantom = LumbarPhantom(p)
    g = level_roi_geometry(phantom, LEVEL, in_plane, slice_mm)
    values = measure_label_map(render_labels(phantom, g), g, spider_scheme(), levels=(LEVEL,))
    return values, phantom.ground_truth()["levels"][LEVEL]


@pytest.mark.parametrize(("tilt", "spacing"), [(0.0, 1.0), (30.0, 1.0), (15.0, 0.7)])
def test_isotropic_grids_of_1_mm_or_finer(tilt: float, spacing: float) -> None:
    values, truth = _measure(tilt, spacing, spacing)
    checked = errors(values, truth)
    assert len(checked) == 17  # every quantity with a truth (foramina and posterior disc height per side)
    for v, t, err in checked:
        assert v.confidence == "high", (v.quantity, v.confidence_reason)
        if v.unit == "mm":
            # Goal 0.3 mm; a binary mask at 1 mm leaves up to ~0.4 mm (see the README's table).
            assert abs(err) <= 0.45, (v.quantity, v.side, v.value, t)
        elif v.unit == "mm2":
            assert abs(err) <= max(3.0, 0.03 * t), (v.quantity, v.side, v.value, t)
        else:
            assert abs(err) <= 0.01, (v.quantity, v.value, t)


@pytest.mark.parametrize("slice_mm", [3.3, 4.4])
def test_sagittal_only_thick_slices_are_measured_and_marked_low_confidence(slice_mm: float) -> None:
    values, truth = _measure(0.0, 0.6, slice_mm)
    by_q = {(v.quantity, v.side): v for v in values}
    for q in ("canal_area", "canal_transverse", "canal_area_min"):
        assert by_q[(q, None)].confidence == "low" and "thick sagittal" in by_q[(q, None)].confidence_reason
    # In-plane quantities keep their accuracy.
    assert by_q[("canal_ap", None)].confidence == "high"
    assert abs(by_q[("canal_ap", None)].value - truth["canal_ap_mm"]) <= 0.45
    for q in ("disc_height_anterior", "disc_height_middle", "disc_height_posterior"):
        assert abs(by_q[(q, None)].value - truth[f"{q}_mm"]) <= 0.45
    for side in ("left", "right"):
        f = truth["foramen"][side]
        assert abs(by_q[("foramen_height", side)].value - f["height_mm"]) <= 0.6
        assert abs(by_q[("foramen_width", side)].value - f["width_mm"]) <= 0.6
    # The canal area is still computed (not faked, not hidden) and within 15 %.
    assert by_q[("canal_area", None)].value == pytest.approx(truth["canal_area_mm2"], rel=0.15)


def test_stenosis_and_slip_raise_flags_with_their_sources() -> None:
    params = PhantomParams(tilt_deg=5.0)
    params.levels[LEVEL] = LevelParams(disc_height_mm=5.0, canal_ap_mm=6.0, canal_transverse_mm=14.0,
                                       foramen_height_left_mm=12.0, foramen_width_left_mm=2.5, slip_mm=6.0)
    values, _truth = _measure(5.0, 0.7, 0.7, params)
    by_q = {(v.quantity, v.side): v for v in values}
    area = by_q[("canal_area", None)]
    assert area.value == pytest.approx(math.pi * 3 * 7, rel=0.04)
    assert "< 75 mm²" in (area.flag or "") and "Bolender" in (area.flag or "")
    assert "< 10 mm" in (by_q[("canal_ap", None)].flag or "")
    assert "Hasegawa" in (by_q[("foramen_height", "left")].flag or "")
    assert "moderate" in (by_q[("foramen_width", "left")].flag or "")
    slip = by_q[("slip", None)]
    assert slip.value == pytest.approx(6.0, abs=0.45) and "Meyerding grade I" in (slip.flag or "")
    assert slip.extra["slip_percent"] == pytest.approx(100 * 6 / 32, abs=2)
    # The right foramen is normal: no flag.
    assert by_q[("foramen_height", "right")].flag is None


def test_what_cannot_be_measured_is_nan_with_a_reason() -> None:
    phantom = LumbarPhantom()
    g = level_roi_geometry(phantom, LEVEL, 1.0, 1.0)
    labels = render_labels(phantom, g)
    labels[labels == 100] = 0  # no canal label
    labels[((labels >= 1) & (labels <= 99)) | (labels == SPIDER_SACRUM)] = 0  # no bone
    values = measure_label_map(labels, g, spider_scheme(), levels=(LEVEL, "L1-L2"))
    by_q = {(v.level, v.quantity, v.side): v for v in values}
    canal = by_q[(LEVEL, "canal_area", None)]
    assert math.isnan(canal.value) and "no canal" in (canal.reason or "")
    foramen = by_q[(LEVEL, "foramen_height", "left")]
    assert math.isnan(foramen.value) and "bone" in (foramen.reason or "")
    absent = by_q[("L1-L2", "disc_height_middle", None)]
    assert math.isnan(absent.value) and "not in the mask" in (absent.reason or "")
    # Disc heights need only the disc: still measured.
    assert not math.isnan(by_q[(LEVEL, "disc_height_middle", None)].value)


def _whole_spine(params: PhantomParams, fine: bool = True) -> tuple[list[Any], dict[str, Any]]:
    """Every level of the phantom on a 0.7 mm isotropic sagittal stack that holds the whole
    lumbar spine and the sacrum (SPIDER numbering, the sacrum as SPIDER_SACRUM). (At 1 mm on
    this grid the foramen widths at L4-L5 and L5-S1 right come out 0.8 mm short.)"""
    phantom = LumbarPhantom(params)
    g = sagittal_geometry(phantom, 320, 0.7, 110, 0.7) if fine else sagittal_geometry(phantom, 200, 1.0, 90, 1.0)
    labels = render_labels(phantom, g)
    assert (labels == SPIDER_SACRUM).any()
    return measure_label_map(labels, g, spider_scheme()), phantom.ground_truth()["levels"]


def test_l5_s1_is_measured_against_the_sacrum() -> None:
    values, truth = _whole_spine(PhantomParams())
    by_q = {(v.level, v.quantity, v.side): v for v in values}
    # The phantom's deliberately narrowed right L5-S1 foramen (16 x 5 mm) is reported (above
    # Hasegawa's 15 mm and the compendium's 4 mm: narrower than the left, not flagged).
    right = truth["L5-S1"]["foramen"]["right"]
    assert (right["height_mm"], right["width_mm"]) == (16.0, 5.0)
    height, width = by_q[("L5-S1", "foramen_height", "right")], by_q[("L5-S1", "foramen_width", "right")]
    assert height.value == pytest.approx(16.0, abs=0.45) and height.flag is None
    assert width.value == pytest.approx(5.0, abs=0.45) and width.flag is None
    assert by_q[("L5-S1", "foramen_height", "left")].value == pytest.approx(20.0, abs=0.45)
    # Slip between L5 and S1's posterior walls: the phantom has none.
    slip = by_q[("L5-S1", "slip", None)]
    assert slip.value == pytest.approx(0.0, abs=0.3) and slip.flag is None
    # DHI over L5 alone (the sacrum's extent is not a body height).
    assert "1 body/bodies" in by_q[("L5-S1", "dhi", None)].method


def test_dhi_flags_the_narrowed_disc_only() -> None:
    params = PhantomParams()
    params.levels[LEVEL] = LevelParams(disc_height_mm=5.0)
    values, _truth = _whole_spine(params, fine=False)
    dhi = {v.level: v for v in values if v.quantity == "dhi"}
    assert set(dhi) == {"L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"}
    assert dhi[LEVEL].value < 0.25 and "height loss" in (dhi[LEVEL].flag or "")
    # The normal discs (8-10.5 mm over 26 mm bodies, DHI 0.33-0.41) carry no flag.
    for level, v in dhi.items():
        if level != LEVEL:
            assert 0.30 <= v.value <= 0.45 and v.flag is None, (level, v.value, v.flag)


def test_a_body_cut_by_the_edge_of_the_image_is_not_measured_as_if_it_ended_there() -> None:
    phantom = LumbarPhantom(PhantomParams(tilt_deg=30.0))
    g = level_roi_geometry(phantom, LEVEL, 1.0, 1.0)  # cuts the sacrum and L3 off
    values = measure_label_map(render_labels(phantom, g), g, spider_scheme(), levels=("L3-L4", "L5-S1"))
    by_q = {(v.level, v.quantity): v for v in values}
    slip = by_q[("L5-S1", "slip")]
    assert math.isnan(slip.value) and "edge of the image" in (slip.reason or "")
    # L3 is cut: the DHI of L3-L4 rests on L4 alone and stays a normal one.
    dhi = by_q[("L3-L4", "dhi")]
    assert "1 body/bodies" in dhi.method and dhi.value == pytest.approx(10.5 * 1.0 / 26.0, abs=0.04)


def test_without_a_sacrum_l5_s1_says_so() -> None:
    phantom = LumbarPhantom(PhantomParams())
    g = sagittal_geometry(phantom, 200, 1.0, 90, 1.0)
    labels = render_labels(phantom, g)
    labels[labels == SPIDER_SACRUM] = 0  # as SPIDER's own masks
    values = measure_label_map(labels, g, spider_scheme(), levels=("L5-S1",))
    missing = [v for v in values if v.quantity in ("slip", "foramen_height", "foramen_area")]
    assert len(missing) == 5
    assert all(math.isnan(v.value) and "does not label the sacrum" in (v.reason or "") for v in missing)
    # What needs no sacrum is still measured.
    assert all(math.isfinite(v.value) for v in values if v.quantity.startswith("canal") or v.quantity == "dhi")
