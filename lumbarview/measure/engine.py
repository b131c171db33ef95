"""Automatic canal, foramen and disc measurements from a lumbar label map, per disc level.

All geometry is in LPS mm from the label map's own :class:`VolumeGeometry`. The recipe follows
``docs/measurements.md`` §8 (the lumbar adaptation of SCT's ``compute_shape``): each level is
measured on its **level plane**, through the disc's centroid and normal to the disc (smallest
principal axis of the disc voxels, pointing superior); then the canal
(:mod:`lumbarview.measure.canal`), the foramina (:mod:`lumbarview.measure.foramen`) and the disc
(:mod:`lumbarview.measure.disc`). Flags are the literature cut-offs of
:mod:`lumbarview.measure.cutoffs`, never a diagnosis. Each value carries a confidence from the
mask's sampling along the directions it measures, and the geometry it was measured on
(:class:`lumbarview.measure.results.MeasuredGeometry`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy.typing as npt

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import LabelScheme, Role
from lumbarview.measure.canal import measure_canal
from lumbarview.measure.disc import measure_disc
from lumbarview.measure.foramen import measure_foramen
from lumbarview.measure.measurer import LabelMapMeasurer
from lumbarview.measure.results import SIDED, Value, missing

LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def measure_label_map(labels: npt.NDArray[Any], geometry: VolumeGeometry, scheme: LabelScheme,
                      levels: tuple[str, ...] = LEVELS) -> list[Value]:
    """Every quantity of every level present in ``labels`` (NaN rows with a reason for what
    cannot be measured)."""
    m = LabelMapMeasurer(labels, geometry, scheme)
    out: list[Value] = []
    for level in levels:
        value = scheme.disc_value(level)
        if value is None:
            continue
        out.extend(measure_level(m, level, value))
    return out


def measure_level(m: LabelMapMeasurer, level: str, disc_value: int) -> list[Value]:
    """Every quantity of one level, in the order disc, canal, left foramen, right foramen."""
    frame = m.disc_frame(disc_value)
    if isinstance(frame, str):
        return missing(level, disc_value, frame)
    centre, normal, e_lr, e_ap = frame
    rows: list[Value] = []
    disc = m.soft({disc_value})
    heights = measure_disc(m, level, disc_value, disc, centre, normal, e_ap)
    rows.extend(heights)
    middle = next((r.value for r in heights if r.quantity == "disc_height_middle"), float("nan"))
    rows.extend(measure_canal(m, level, disc_value, centre, normal, e_lr, e_ap, middle))
    for side in ("left", "right"):
        rows.extend(measure_foramen(m, level, disc_value, centre, normal, e_lr, e_ap, side))
    if level.endswith("-S1") and not m.values_of({Role.SACRUM}):
        # The bone below L5-S1 is the sacrum: without it the slip and the foramina cannot close.
        why = ("the mask does not label the sacrum (S1), the bone below this disc (SPIDER masks count "
               "vertebrae from L5 and leave it out)")
        rows = [dataclasses.replace(r, confidence_reason=why, reason=why)
                if (r.quantity == "slip" or r.quantity in SIDED) and not math.isfinite(r.value) else r for r in rows]
    return rows
