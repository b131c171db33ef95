"""The bad-input checks of compare mode: different patients, non-parallel series; the variability table."""

from __future__ import annotations

from typing import Any

import numpy as np

from lumbarview.core.dataset import Case
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.types import ImageStack
from lumbarview.measure.register import rigid_matrix
from lumbarview.measure.variability import TABLE, variability
from lumbarview.services.compare import CompareStudy, change_rows, parallel_planes, patients_differ

SAG = VolumeGeometry.from_directions((10, 64, 64), (0, 0, 0), (0, 1, 0), (0, 0, -1), (1.0, 1.0, 3.0))


def _study(case_id: str, meta: dict[str, Any]) -> CompareStudy:
    stack = ImageStack("s", "s", SAG, meta, lambda: (np.zeros(SAG.shape_kji, np.int16), []), [])
    return CompareStudy("x", Case(id=case_id), stack, None)


def test_different_dicom_patients_are_warned_and_unknown_ones_are_not_claimed() -> None:
    a, b = _study("PAT-1", {"study_uid": "1.2"}), _study("PAT-2", {"study_uid": "1.3"})
    warning = patients_differ(a, b)
    assert warning is not None and "different patients" in warning and "PAT-2" in warning
    assert patients_differ(a, _study("PAT-1", {"study_uid": "1.4"})) is None
    # Files without a patient id (NIfTI folders are named by folder, not by patient): not claimed.
    assert patients_differ(_study("VB2_05", {}), _study("VB2_06", {})) is None


def test_parallel_planes_within_0_99_only() -> None:
    assert parallel_planes(SAG, SAG) is None
    # 5 degrees apart: cos 5 deg = 0.996, still parallel; 10 degrees: 0.985, not.
    for angle, parallel in ((5.0, True), (10.0, False)):
        m = rigid_matrix(np.radians((angle, 0.0, 0.0)), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        rotated = VolumeGeometry(SAG.shape_kji, m @ SAG.ijk_to_lps)
        assert (parallel_planes(SAG, rotated) is None) is parallel
        # Through an alignment that undoes the rotation, the pair is parallel again.
        assert parallel_planes(SAG, rotated, m) is None
    axial = VolumeGeometry.from_directions((10, 64, 64), (0, 0, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0, 3.0))
    reason = parallel_planes(SAG, axial)
    assert reason is not None and "unsynchronised" in reason


def test_change_rows_match_by_level_quantity_side_and_unit() -> None:
    def row(level: str, q: str, v: float | None, side: str | None = None, unit: str = "mm2",
            confidence: str = "high") -> dict[str, Any]:
        return {"level": level, "quantity": q, "value": v, "side": side, "unit": unit, "confidence": confidence,
                "series": "T2"}

    current = [row("L4-L5", "canal_area", 90.0), row("L4-L5", "foramen_area", 50.0, "left"),
               row("L4-L5", "foramen_area", 41.0, "right"), row("L3-L4", "canal_area", None),
               row("L5-S1", "distance", 12.0, unit="mm", confidence="low"),
               row("L5-S1", "distance", 11.0, unit="mm", confidence="high")]
    prior = [row("L4-L5", "canal_area", 100.0), row("L4-L5", "foramen_area", 40.0, "right"),
             row("L3-L4", "canal_area", 120.0), row("L5-S1", "distance", 9.0, unit="mm")]
    rows = change_rows(current, prior)
    keys = [(r["level"], r["quantity"], r["side"]) for r in rows]
    assert keys == [("L4-L5", "canal_area", None), ("L4-L5", "foramen_area", "right"), ("L5-S1", "distance", None)]
    area, foramen, dist = rows
    assert (area["difference"], area["percent"], area["flagged"]) == (-10.0, -10.0, False)
    assert foramen["difference"] == 1.0 and foramen["flagged"] is False
    # The more confident of two current distances is compared: 11 - 9 = 2 mm > 1.4 mm.
    assert dist["current"] == 11.0 and dist["flagged"] is True


def test_every_variability_has_a_source_and_a_positive_threshold() -> None:
    for v in TABLE.values():
        assert v.threshold > 0 and v.source and v.basis
    assert variability("canal_area", "mm2") is not None
    assert variability("slip", "%") is None  # no published agreement for slip in percent


def test_role_views_show_each_voxel_where_it_lies_in_patient_space() -> None:
    from lumbarview.services.compare import role_view

    rng = np.random.default_rng(5)
    g = VolumeGeometry.from_directions((20, 24, 18), (5.0, -7.0, 30.0), (0, 1, 0), (0, 0, -1), (1.1, 1.0, 1.2))
    data = rng.integers(0, 1000, g.shape_kji).astype(np.int16)
    stack = ImageStack("s", "s", g, {}, lambda: (data, []), [])
    for role, normal, right, down in (("sagittal", (1, 0, 0), (0, 1, 0), (0, 0, -1)),
                                      ("axial", (0, 0, 1), (1, 0, 0), (0, 1, 0)),
                                      ("coronal", (0, 1, 0), (1, 0, 0), (0, 0, -1))):
        view = role_view(stack, role)
        assert view is not None
        vg = view.geometry
        assert abs(float(vg.slice_normal @ normal)) > 0.999
        np.testing.assert_allclose(vg.row_direction_lps, right, atol=1e-9)
        np.testing.assert_allclose(vg.column_direction_lps, down, atol=1e-9)
        for _ in range(20):
            kji = tuple(int(rng.integers(0, n)) for n in vg.shape_kji)
            lps = vg.index_to_lps(kji[::-1])
            i, j, k = np.rint(g.lps_to_index(lps)).astype(int)
            assert view.pixels[kji] == data[k, j, i]
    # A thick-slice sagittal stack is not shown as axial (it would be 5 mm blocks).
    thick = VolumeGeometry.from_directions((20, 24, 18), (0, 0, 0), (0, 1, 0), (0, 0, -1), (1.0, 1.0, 5.0))
    assert role_view(ImageStack("t", "t", thick, {}, lambda: (data, []), []), "axial") is None
