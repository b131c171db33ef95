"""services.segment on the axial phantom written as a volume: the canal click through the service
(plane, reformat, contour in LPS, label map) and the refusal of an image without patient geometry."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarview.core.errors import MeasurementError
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import CANAL_VALUE
from lumbarview.core.types import ImageStack
from lumbarview.measure.segment.canal import ClickOutsideSacError
from lumbarview.phantom.axial_sac import render_axial_sac
from lumbarview.services.segment import Seed, Seeds, segment


def _stack(meta: dict[str, object] | None = None, kind: str = "normal") -> tuple[ImageStack, object]:
    p = render_axial_sac(kind, seed=7)
    pixels = np.repeat(p.pixels[None], 3, axis=0)  # three identical axial slices, 3 mm apart
    # An axial stack: rows run posterior (+y), columns to the patient's left (+x), slices downward.
    geometry = VolumeGeometry.from_directions(pixels.shape, (-80.0, -60.0, 30.0), (1, 0, 0), (0, 1, 0),
                                              (p.pixel_mm, p.pixel_mm, 3.0), (0, 0, -1))
    stack = ImageStack("phantom", "phantom", geometry, meta or {}, lambda: (pixels, []))
    return stack, p


def test_canal_click_through_the_service() -> None:
    stack, p = _stack()
    g = stack.geometry
    click = g.index_to_lps((p.centre_rc[1], p.centre_rc[0], 1.0))
    result = segment(stack, Seeds(canal=(Seed("L4-L5", tuple(float(c) for c in click)),)))
    (row,) = result.structures
    assert row["structure"] == "canal" and row["plane"]["kind"] == "image slice"
    assert row["dsca_mm2"] == pytest.approx(p.area_mm2, abs=5.0)
    # The contour is in LPS on the clicked slice, around the click.
    contour = np.array(row["contour_lps"])
    assert np.allclose(contour[:, 2], click[2], atol=1e-6)
    assert np.allclose(contour.mean(axis=0)[:2], click[:2], atol=3.0)
    # AP runs along the rows here (+y): the phantom's normal sac is 13.3 mm deep, 17.6 mm wide.
    assert row["ap_mm"] == pytest.approx(13.31, abs=0.4) and row["transverse_mm"] == pytest.approx(17.6, abs=0.4)
    # Painted on the grid: every slice within 10 mm of the plane holds the section.
    painted = result.labels == CANAL_VALUE
    assert painted.any(axis=(1, 2)).all()
    assert painted[1].sum() * p.pixel_mm**2 == pytest.approx(p.area_mm2, abs=8.0)


def test_click_outside_the_sac_draws_nothing() -> None:
    stack, p = _stack()
    click = stack.geometry.index_to_lps((p.centre_rc[1] + 40 / p.pixel_mm, p.centre_rc[0], 1.0))
    with pytest.raises(ClickOutsideSacError):
        segment(stack, Seeds(canal=(Seed("L4-L5", tuple(float(c) for c in click)),)))


def test_image_without_patient_geometry_is_refused() -> None:
    stack, p = _stack({"has_patient_geometry": False})
    click = stack.geometry.index_to_lps((p.centre_rc[1], p.centre_rc[0], 1.0))
    with pytest.raises(MeasurementError, match="no patient geometry"):
        segment(stack, Seeds(canal=(Seed("L4-L5", tuple(float(c) for c in click)),)))
