"""Use case: the measurement engine on the loaded case, for the viewer and the exports.

:func:`run_engine` calls :func:`lumbarview.services.measure_case.measure_case` (the function
``lumbarview measure`` calls: the same rows, from the case already in memory), with progress and
cancel, and keeps the geometry each value was measured on
(:class:`lumbarview.measure.results.MeasuredGeometry`, returned by the engine with the value)
grouped per label map, level and part, so that the viewer draws exactly what was measured.

Parts and the quantities they carry (:func:`part_of`):

* ``canal``: the level plane through the sac's centroid (right = patient left, down =
  posterior, as a radiological axial): contour and chords;
* ``foramen`` (per side): the parasagittal plane the foramen was measured on (right =
  posterior, down = inferior along the disc normal): outline, height, width and posterior
  disc-height lines;
* ``disc``: the mid-sagittal plane through the disc centre: the disc-height lines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import lumbarview
from lumbarview.core.dataset import Case
from lumbarview.core.errors import Cancelled
from lumbarview.core.geometry import FloatArray
from lumbarview.measure.results import MeasuredGeometry, Polyline
from lumbarview.services.measure_case import GEOMETRY_KEY, measurable_label_maps, measure_case

__all__ = ["ENGINE_VERSION", "EngineResult", "PartGeometry", "Polyline", "part_of", "run_engine"]

ENGINE_VERSION = f"lumbarview {lumbarview.__version__}"
#: The quantity whose geometry stands for each part (its lines include the part's others).
_PART_QUANTITY = {"canal": "canal_area", "foramen": "foramen_area", "disc": "disc_height_middle"}


def part_of(quantity: str | None) -> str | None:
    """Which part of a level a quantity belongs to: ``canal``, ``foramen`` or ``disc``."""
    if quantity is None:
        return None
    if quantity.startswith("canal"):
        return "canal"
    if quantity.startswith("foramen") or quantity == "posterior_disc_height":
        return "foramen"
    return "disc"


@dataclass
class PartGeometry:
    """Where the engine measured one part of one level, and what it drew there."""

    series: str
    level: str
    part: str  # canal | foramen | disc
    side: str | None
    centre_lps: FloatArray
    right_lps: FloatArray
    down_lps: FloatArray
    polylines: list[Polyline] = field(default_factory=list)
    view: str = "axial"  # the view that shows it: axial for the canal, sagittal otherwise

    @classmethod
    def of(cls, key: tuple[str, str, str, str | None], geometry: MeasuredGeometry) -> PartGeometry:
        """The part ``key`` (series, level, part, side) drawn from the geometry the engine
        returned with the part's value."""
        series, level, part, side = key
        return cls(series, level, part, side, geometry.centre_lps, geometry.right_lps, geometry.down_lps,
                   list(geometry.polylines), "axial" if part == "canal" else "sagittal")

    @property
    def normal_lps(self) -> FloatArray:
        return np.cross(self.right_lps, self.down_lps)

    def key(self) -> tuple[str, str, str, str | None]:
        return (self.series, self.level, self.part, self.side)

    def plane_json(self) -> dict[str, list[float]]:
        return {"origin_lps": self.centre_lps.tolist(), "right_lps": self.right_lps.tolist(),
                "down_lps": self.down_lps.tolist(), "normal_lps": self.normal_lps.tolist()}


@dataclass
class EngineResult:
    """The rows of ``lumbarview measure`` for the case and the geometry behind them."""

    case_id: str
    rows: list[dict[str, Any]]
    parts: list[PartGeometry]
    engine_version: str = ENGINE_VERSION
    notes: list[str] = field(default_factory=list)  # label maps that could not be measured, and why
    #: Each measured row's own geometry (its first line is the row's), by :func:`row_key`.
    geometries: dict[tuple[Any, ...], MeasuredGeometry] = field(default_factory=dict)

    def geometry_for(self, row: dict[str, Any]) -> MeasuredGeometry | None:
        """The geometry the row's value was measured on (None: the row has none)."""
        return self.geometries.get(row_key(row))

    def part_for(self, row: dict[str, Any]) -> PartGeometry | None:
        """The geometry of the part a row belongs to (None: nothing was drawn for it)."""
        key = (row.get("series"), row.get("level"), part_of(row.get("quantity")),
               row.get("side") if part_of(row.get("quantity")) == "foramen" else None)
        return next((p for p in self.parts if p.key() == key), None)


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Names a measured row among a case's rows (series, level, quantity, side, unit)."""
    return (row.get("series"), row.get("level"), row.get("quantity"), row.get("side"), row.get("unit"))


Progress = Callable[[int, int], None]


def run_engine(case: Case, progress: Progress | None = None,
               cancel: threading.Event | None = None) -> EngineResult:
    """Measure ``case`` in memory (see the module). Never raises for the case's data: a label
    map that cannot be measured has its one row saying why, and no geometry. Raises
    :class:`~lumbarview.core.errors.Cancelled` when ``cancel`` is set between label maps."""

    def step(n: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("measuring cancelled")
        if progress is not None:
            progress(n, total)

    _label_maps, skipped = measurable_label_maps(case)
    rows = measure_case(case, geometry=True, after_each=step)
    parts: dict[tuple[str, str, str, str | None], PartGeometry] = {}
    geometries: dict[tuple[Any, ...], MeasuredGeometry] = {}
    for row in rows:
        geometry = row.pop(GEOMETRY_KEY, None)
        part = part_of(row.get("quantity"))
        if not isinstance(geometry, MeasuredGeometry) or part is None:
            continue
        geometries[row_key(row)] = geometry
        if row["quantity"] == _PART_QUANTITY[part]:
            key = (row["series"], row["level"], part, row.get("side") if part == "foramen" else None)
            parts.setdefault(key, PartGeometry.of(key, geometry))
    return EngineResult(case.id, rows, list(parts.values()), notes=list(skipped), geometries=geometries)
