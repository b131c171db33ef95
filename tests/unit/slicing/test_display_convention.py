"""The radiological display convention, found in the pixels: bright markers at known LPS points
must land anterior-left on a sagittal, anterior-up on an axial, patient-right-left everywhere,
whatever the acquisition."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from lumbarview.core.geometry import PlaneOrientation, VolumeGeometry
from lumbarview.slicing.planes import letters, standard_plane
from lumbarview.slicing.reformat import reformat

CENTRE = np.array([10.0, -20.0, 30.0])
MARKERS = {  # value: offset from the centre (LPS mm)
    500: (0.0, 0.0, 0.0),
    1000: (0.0, -24.0, 0.0),  # anterior
    2000: (0.0, 0.0, 24.0),  # superior
    3000: (24.0, 0.0, 0.0),  # patient left
}

# (name, row direction, column direction, slice spacing): the acquisitions.
ACQUISITIONS = [
    ("sagittal head-first supine", (0, 1, 0), (0, 0, -1)),
    ("sagittal head-first prone", (0, -1, 0), (0, 0, -1)),
    ("axial feet-first supine", (-1, 0, 0), (0, 1, 0)),
    ("axial head-first prone", (-1, 0, 0), (0, -1, 0)),
    ("axial NIfTI rows posterior-up", (1, 0, 0), (0, -1, 0)),
    ("coronal feet-first", (-1, 0, 0), (0, 0, -1)),
    ("isotropic", (1, 0, 0), (0, 1, 0)),
]


def _volume(row: tuple[float, ...], col: tuple[float, ...]) -> tuple[npt.NDArray[np.int16], VolumeGeometry]:
    n = 41
    spacing = (1.6, 1.6, 1.6)
    g0 = VolumeGeometry.from_directions((n, n, n), (0, 0, 0), row, col, spacing)
    # Put the centre exactly on the middle voxel.
    origin = CENTRE - (g0.index_to_lps((20.0, 20.0, 20.0)) - g0.index_to_lps((0.0, 0.0, 0.0)))
    g = VolumeGeometry.from_directions((n, n, n), origin, row, col, spacing)
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for _ in range(3)), indexing="ij")
    lps = g.index_to_lps(np.stack([i, j, k], axis=-1))
    volume = np.zeros((n, n, n), dtype=np.int16)
    for value, offset in MARKERS.items():
        volume[np.linalg.norm(lps - (CENTRE + offset), axis=-1) <= 3.5] = value
    return volume, g


def _where(pixels: npt.NDArray[np.floating | np.integer], value: int) -> tuple[float, float]:  # type: ignore[type-arg]
    rows, cols = np.nonzero(np.abs(pixels.astype(float) - value) < 1)
    assert rows.size > 0, f"marker {value} not on the view"
    return float(cols.mean()), float(rows.mean())


@pytest.mark.parametrize(("name", "row", "col"), ACQUISITIONS, ids=[a[0] for a in ACQUISITIONS])
def test_every_acquisition_is_shown_in_the_radiological_convention(name: str, row: tuple[float, ...],
                                                                   col: tuple[float, ...]) -> None:
    volume, g = _volume(row, col)
    views = {o: reformat(volume, g, standard_plane(g, o, CENTRE)) for o in
             (PlaneOrientation.SAGITTAL, PlaneOrientation.AXIAL, PlaneOrientation.CORONAL)}
    # The acquired orientation is shown from the stored pixels (flips/transposes only).
    assert views[g.orientation].native_k == 20, name

    sag = views[PlaneOrientation.SAGITTAL].pixels
    c, r = _where(sag, 500)
    ca, ra = _where(sag, 1000)
    cs, rs = _where(sag, 2000)
    assert ca < c - 10 and abs(ra - r) < 2, "sagittal: anterior on the left"
    assert rs < r - 10 and abs(cs - c) < 2, "sagittal: superior up"

    ax = views[PlaneOrientation.AXIAL].pixels
    c, r = _where(ax, 500)
    ca, ra = _where(ax, 1000)
    cl, rl = _where(ax, 3000)
    assert ra < r - 10 and abs(ca - c) < 2, "axial: anterior up"
    assert cl > c + 10 and abs(rl - r) < 2, "axial: the patient's right on the left"

    cor = views[PlaneOrientation.CORONAL].pixels
    c, r = _where(cor, 500)
    cs, rs = _where(cor, 2000)
    cl, rl = _where(cor, 3000)
    assert rs < r - 10 and cl > c + 10, "coronal: superior up, the patient's right on the left"

    expected = {PlaneOrientation.SAGITTAL: ("A", "P", "S", "I"), PlaneOrientation.AXIAL: ("R", "L", "A", "P"),
                PlaneOrientation.CORONAL: ("R", "L", "S", "I")}
    for o, out in views.items():
        e = letters(out.plane)
        assert e is not None and (e.left, e.right, e.top, e.bottom) == expected[o], (name, o)


def test_native_orientation_flag_shows_rows_and_columns_as_stored() -> None:
    volume, g = _volume((0, -1, 0), (0, 0, -1))  # prone sagittal: rows run anterior
    plane = standard_plane(g, PlaneOrientation.SAGITTAL, CENTRE, native_orientation=True)
    out = reformat(volume, g, plane)
    assert out.native_k == 20
    np.testing.assert_array_equal(out.pixels, volume[20])
    c, _ = _where(out.pixels, 500)
    ca, _ = _where(out.pixels, 1000)
    assert ca > c + 10  # anterior on the right, as stored
    e = letters(plane)
    assert e is not None and (e.left, e.right) == ("P", "A")


def test_no_letters_and_stored_orientation_without_patient_geometry() -> None:
    volume, g = _volume((0, -1, 0), (0, 0, -1))
    plane = standard_plane(g, PlaneOrientation.SAGITTAL, CENTRE, has_patient_geometry=False)
    assert letters(plane, has_patient_geometry=False) is None
    np.testing.assert_array_equal(reformat(volume, g, plane).pixels, volume[20])


def test_reformatted_view_spans_the_volume_with_square_pixels() -> None:
    g = VolumeGeometry.from_directions((15, 120, 100), (0, 0, 0), (0, 1, 0), (0, 0, -1), (0.6, 0.6, 3.3))
    plane = standard_plane(g, PlaneOrientation.AXIAL, g.centre_lps())
    assert plane.spacing_mm == (0.6, 0.6)
    # Width: 15 slices x 3.3 mm left-right; height: 100 columns x 0.6 mm antero-posterior.
    assert abs(plane.shape_rc[1] * 0.6 - 15 * 3.3) <= 1.2 and plane.shape_rc[0] == 100
    assert abs(float(plane.signed_distance_mm(g.centre_lps()))) < 1e-9
