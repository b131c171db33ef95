"""Use case: measurements from 2D masks (one slice), and why a dataset's 2D annotations cannot
be measured where the anatomy does not allow it.

* LSS-MRI-AISSLab's mid-sagittal PNG masks: disc heights, DHI and slip per level, levels counted
  up from the sacrum, and canal AP where the scheme has a canal class
  (:mod:`lumbarview.measure.sagittal2d`).
* BIDS (Liu et al.) closed dura curves: see :func:`dura_note`; they are not measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lumbarview.core.dataset import Case, LabelMap
from lumbarview.core.labels import Role
from lumbarview.measure.sagittal2d import measure_sagittal_mask


def is_2d_mask(label_map: LabelMap) -> bool:
    """A one-slice mask with a disc class but no named disc levels (the 2D engine's input)."""
    scheme = label_map.scheme
    return (label_map.stack.geometry.shape_kji[0] == 1 and bool(scheme.values_with_role(Role.DISC))
            and not any(e.level for e in scheme.entries.values() if e.role is Role.DISC))


def measure_2d_rows(case: Case, label_map: LabelMap, series: str, grades: Sequence[Any]) -> list[dict[str, Any]]:
    """The ``measure`` rows of one 2D mask (see :func:`lumbarview.services.measure_case.value_row`)."""
    from lumbarview.services.measure_case import value_row

    labels = label_map.stack.pixels()[0]
    rows: list[dict[str, Any]] = []
    for v in measure_sagittal_mask(labels, label_map.stack.geometry, label_map.scheme):
        rows.append(value_row(case.id, series, grades, v))
        if v.quantity == "slip":
            percent = float(v.extra.get("slip_percent", math.nan))
            rows.append(value_row(case.id, series, grades, v, unit="%", value=percent))
    return rows


def dura_note() -> str:
    """Why the BIDS dura curves are not measured (the closing note of the issue)."""
    return ("BIDS dura curves are not measured: in this dataset each dura file is one closed curve drawn on a "
            "few axial slices, and the nerve-root markers give exits per side without the disc, so a canal "
            "area per slice would carry no level one could check")
