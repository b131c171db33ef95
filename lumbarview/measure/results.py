"""What the measurement engine returns: each value with the geometry that produced it.

A :class:`Value` is one row of ``lumbarview measure``; its :class:`MeasuredGeometry` holds the
plane the value was measured on and the lines (LPS mm) that the same computation measured: for
an area its closed outline first, for a length its end points first, then the lines that go with
it (the canal chords, the disc-height lines). The viewer and ``measure --geometry`` draw these;
nothing redoes the measurement to draw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from lumbarview.core.geometry import FloatArray

NAN = float("nan")
QUANTITIES = ("canal_ap", "canal_transverse", "canal_area", "canal_area_min", "foramen_height",
              "foramen_width", "foramen_area", "posterior_disc_height", "disc_height_anterior",
              "disc_height_middle", "disc_height_posterior", "dhi", "slip")
UNITS = {"canal_ap": "mm", "canal_transverse": "mm", "canal_area": "mm2", "canal_area_min": "mm2",
         "foramen_height": "mm", "foramen_width": "mm", "foramen_area": "mm2",
         "posterior_disc_height": "mm", "disc_height_anterior": "mm", "disc_height_middle": "mm",
         "disc_height_posterior": "mm", "dhi": "ratio", "slip": "mm"}
SIDED = ("foramen_height", "foramen_width", "foramen_area", "posterior_disc_height")


class Confidence(StrEnum):
    """How well the mask's sampling supports a value (its string is the row's ``confidence``)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"


@dataclass(frozen=True)
class Polyline:
    """A measured line in LPS mm: ``points_lps`` ``(N, 3)``; ``closed`` joins the last point to
    the first (an outline)."""

    name: str
    points_lps: FloatArray
    closed: bool = False

    def json_points(self) -> list[list[float]]:
        """The points as ``[[x, y, z], ...]`` (mm, 3 decimals); a closed outline repeats its
        first point at the end, so that a reader draws it closed without knowing the flag."""
        pts = self.points_lps if not self.closed or len(self.points_lps) == 0 else np.vstack(
            [self.points_lps, self.points_lps[:1]])
        return [[round(float(c), 3) for c in p] for p in pts]


@dataclass(frozen=True)
class MeasuredGeometry:
    """The plane a value was measured on (centre, screen right and down, in LPS) and the lines
    it was measured on (see the module for their order)."""

    centre_lps: FloatArray
    right_lps: FloatArray
    down_lps: FloatArray
    polylines: tuple[Polyline, ...] = ()

    @property
    def normal_lps(self) -> FloatArray:
        normal: FloatArray = np.cross(self.right_lps, self.down_lps)
        return normal

    def with_lines(self, *first: Polyline | None, rest: tuple[Polyline, ...] = ()) -> MeasuredGeometry:
        """The same plane with ``first`` (the lines this value was measured on; None skipped)
        followed by ``rest`` without repeats."""
        lines = [p for p in first if p is not None]
        lines += [p for p in rest if all(p is not q for q in lines)]
        return MeasuredGeometry(self.centre_lps, self.right_lps, self.down_lps, tuple(lines))

    def to_json(self) -> dict[str, Any]:
        """The ``geometry`` of a ``measure --json --geometry`` row."""
        return {"polylines_lps": [line.json_points() for line in self.polylines]}


@dataclass(frozen=True)
class Value:
    """One measured value (a row of ``lumbarview measure``) and the geometry it was measured on."""

    level: str
    quantity: str
    value: float
    unit: str
    method: str
    confidence: Confidence
    confidence_reason: str
    side: str | None = None
    label: int | None = None
    flag: str | None = None
    reason: str | None = None  # why value is NaN
    position_lps: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    geometry: MeasuredGeometry | None = field(default=None, compare=False, repr=False)


def confidence(resolution_mm: float, what: str) -> tuple[Confidence, str]:
    """A value's confidence from how finely the mask samples the direction(s) it measures."""
    if not math.isfinite(resolution_mm):
        return Confidence.NONE, "not measured"
    if resolution_mm <= 1.0:
        return Confidence.HIGH, f"{what} sampled every {resolution_mm:.2f} mm"
    if resolution_mm <= 2.0:
        return Confidence.MEDIUM, f"{what} sampled every {resolution_mm:.2f} mm"
    return Confidence.LOW, (f"{what} sampled only every {resolution_mm:.1f} mm (e.g. thick sagittal slices "
                            "across an axial measurement); partial-volume weighting cannot recover that detail")


def not_measured(level: str, quantity: str, reason: str, side: str | None = None,
                 label: int | None = None) -> Value:
    """A value that could not be measured, saying why."""
    return Value(level, quantity, NAN, UNITS.get(quantity, "mm"), "", Confidence.NONE, reason, side, label,
                 None, reason)


def missing(level: str, label: int | None, reason: str, quantities: tuple[str, ...] = QUANTITIES) -> list[Value]:
    """Every quantity of ``quantities`` not measured (the sided ones on both sides)."""
    return [not_measured(level, q, reason, side, label)
            for q in quantities for side in (("left", "right") if q in SIDED else (None,))]
