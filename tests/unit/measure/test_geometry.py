"""The engine returns what it measured: the lines each value carries are checked against the value
and against the label map itself (nearest-voxel lookups), not against how the lines were built."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lumbarview.core.geometry import FloatArray, VolumeGeometry
from lumbarview.core.labels import Role, spider_scheme
from lumbarview.measure.engine import measure_label_map
from lumbarview.measure.results import Polyline, Value
from lumbarview.phantom.layouts import level_roi_geometry, render_labels
from lumbarview.phantom.spine import LevelParams, LumbarPhantom, PhantomParams

LEVELS = ("L3-L4", "L4-L5", "L5-S1")


def _stenosis() -> PhantomParams:
    params = PhantomParams(tilt_deg=5.0)
    params.levels["L4-L5"] = LevelParams(disc_height_mm=5.0, canal_ap_mm=6.0, canal_transverse_mm=14.0,
                                         foramen_height_left_mm=12.0, foramen_width_left_mm=2.5, slip_mm=6.0)
    return params


CASES = {"iso1_tilt0": (PhantomParams(tilt_deg=0.0), 1.0, 1.0),
         "iso07_tilt20": (PhantomParams(tilt_deg=20.0), 0.7, 0.7), "stenosis_07": (_stenosis(), 0.7, 0.7),
         "sag06x33": (PhantomParams(tilt_deg=0.0), 0.6, 3.3)}


@cache
def _measured(name: str) -> tuple[list[Value], npt.NDArray[Any], VolumeGeometry]:
    params, in_plane, slice_mm = CASES[name]
    phantom = LumbarPhantom(params)
    g = level_roi_geometry(phantom, "L4-L5", in_plane, slice_mm)
    labels = render_labels(phantom, g)
    return measure_label_map(labels, g, spider_scheme(), levels=LEVELS), labels, g


def _line(v: Value, index: int = 0) -> Polyline:
    assert v.geometry is not None, (v.level, v.quantity, v.side)
    return v.geometry.polylines[index]


def _area_in_plane(v: Value, points: FloatArray) -> float:
    assert v.geometry is not None
    rel = points - v.geometry.centre_lps
    x, y = rel @ v.geometry.right_lps, rel @ v.geometry.down_lps
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _label_at(labels: npt.NDArray[Any], g: VolumeGeometry, p: FloatArray) -> int:
    kji = np.floor(g.lps_to_index(np.asarray(p)) + 0.5).astype(int)[::-1]
    if np.any(kji < 0) or np.any(kji >= labels.shape):
        return 0
    return int(labels[tuple(kji)])


def _values(name: str, quantity: str) -> list[Value]:
    found = [v for v in _measured(name)[0] if v.quantity == quantity and math.isfinite(v.value)]
    assert found, (name, quantity)
    return found


def _on_edge(labels: npt.NDArray[Any], g: VolumeGeometry, p: FloatArray, inside: set[int]) -> bool:
    """Whether the edge of ``inside`` passes within half a voxel of ``p``: the voxels nearest to
    ``p`` moved by up to half a voxel along each grid axis are some inside, some not."""
    ijk = g.lps_to_index(np.asarray(p))
    found = set()
    for di in (-0.5, 0.0, 0.5):
        for dj in (-0.5, 0.0, 0.5):
            for dk in (-0.5, 0.0, 0.5):
                kji = np.floor(ijk + np.array([di, dj, dk]) + 0.5).astype(int)[::-1]
                outside = np.any(kji < 0) or np.any(kji >= labels.shape)
                found.add(False if outside else int(labels[tuple(kji)]) in inside)
    return found == {True, False}


def _ends_on_edge(name: str, v: Value, line: Polyline, inside: set[int]) -> None:
    """Each end of ``line`` lies within half a voxel of the edge of ``inside``, and its middle
    is inside."""
    _found, labels, g = _measured(name)
    a, b = line.points_lps
    assert _label_at(labels, g, (a + b) / 2) in inside, (v.level, v.quantity, line.name, "middle")
    for end in (a, b):
        assert _on_edge(labels, g, end, inside), (v.level, v.quantity, v.side, line.name, end)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_canal_contour_encloses_the_canal_area(name: str) -> None:
    for v in _values(name, "canal_area"):
        outline = _line(v)
        assert outline.closed and outline.name == "canal contour"
        assert _area_in_plane(v, outline.points_lps) == pytest.approx(v.value, rel=0.005), v.level
        # The outline lies in the plane it was measured on.
        assert v.geometry is not None
        assert np.abs((outline.points_lps - v.geometry.centre_lps) @ v.geometry.normal_lps).max() < 1e-6


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_foramen_outline_encloses_the_foramen_area(name: str) -> None:
    _v, _labels, g = _measured(name)
    for v in _values(name, "foramen_area"):
        outline = _line(v)
        assert outline.closed and outline.name == "foramen outline"
        assert v.geometry is not None
        rel = outline.points_lps - v.geometry.centre_lps
        extent = float(np.ptp(rel @ v.geometry.right_lps))  # the longest pixel row is at most this long
        row = extent * float(min(g.spacing_mm))
        assert abs(_area_in_plane(v, outline.points_lps) - v.value) <= row, (v.level, v.side)


@pytest.mark.parametrize("name", ["iso1_tilt0", "iso07_tilt20", "stenosis_07"])
def test_canal_chords_end_on_the_sac_edge_and_are_as_long_as_the_values(name: str) -> None:
    canal = _canal_values()
    for quantity, name_of_line in (("canal_ap", "canal ap"), ("canal_transverse", "canal transverse")):
        for v in _values(name, quantity):
            chord = _line(v)
            assert chord.name == name_of_line and len(chord.points_lps) == 2
            _ends_on_edge(name, v, chord, set(canal))
            # Edge to edge through the line the widest chord was taken on: the value is a mean of
            # partial-volume run lengths there, so they agree to within a voxel.
            assert float(np.linalg.norm(np.diff(chord.points_lps, axis=0))) == pytest.approx(v.value, abs=1.0)


@pytest.mark.parametrize("name", ["iso1_tilt0", "stenosis_07"])
def test_disc_height_lines_end_on_the_disc_edge(name: str) -> None:
    for quantity in ("disc_height_anterior", "disc_height_middle", "disc_height_posterior"):
        for v in _values(name, quantity):
            line = _line(v)
            assert line.name == quantity.replace("_", " ")
            assert v.label is not None
            _ends_on_edge(name, v, line, {v.label})
            assert float(np.linalg.norm(np.diff(line.points_lps, axis=0))) == pytest.approx(v.value, abs=1.0)


def test_foramen_height_and_width_lines_end_on_the_walls() -> None:
    name = "iso1_tilt0"
    scheme = spider_scheme()
    labels = _measured(name)[1]
    bone = (Role.VERTEBRA, Role.PARTIAL_VERTEBRA, Role.POSTERIOR_ELEMENT, Role.SACRUM)
    for quantity, line_name in (("foramen_height", "foramen height"), ("foramen_width", "foramen width")):
        for v in _values(name, quantity):
            free = {int(x) for x in np.unique(labels)
                    if x != v.label and (x == 0 or scheme.entry(int(x)).role not in bone)}
            line = _line(v)
            assert line.name == line_name
            _ends_on_edge(name, v, line, free)


def _canal_values() -> set[int]:
    scheme = spider_scheme()
    return set(scheme.values_with_role(Role.CANAL)) | set(scheme.values_with_role(Role.CORD))


@pytest.mark.parametrize("name", ["iso1_tilt0", "iso07_tilt20", "stenosis_07"])
def test_the_canal_contour_lies_on_the_sac_edge(name: str) -> None:
    _v, labels, g = _measured(name)
    canal = _canal_values()
    for v in _values(name, "canal_area"):
        off = [p for p in _line(v).points_lps if not _on_edge(labels, g, p, canal)]
        assert not off, (v.level, len(off), off[:3])
