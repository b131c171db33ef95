"""Use case: the measurement engine on the loaded case, for the viewer and the exports.

:func:`run_engine` calls :func:`lumbarview.services.measure_case.measure_case` (the function
``lumbarview measure`` calls: the same rows, from the case already in memory) and adds, per
label map, level and part (canal; foramen left and right; disc), the geometry the engine
measured on: the plane (centre, screen right and down, normal in LPS) and what it drew there
as LPS polylines (canal contour and chords, foramen outline and height line, disc height
lines). The geometry is recomputed from the engine's own frame
(:meth:`LabelMapMeasurer.disc_frame`) and the positions its rows report; the values are never
recomputed: they are the rows'.

Parts and the quantities they carry (:data:`PART_OF`):

* ``canal``: the level plane through the sac's centroid (right = patient left, down =
  posterior, as a radiological axial);
* ``foramen`` (per side): the parasagittal plane the foramen was measured on (right =
  posterior, down = inferior along the disc normal);
* ``disc``: the mid-sagittal plane through the disc centre.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

import lumbarview
from lumbarview.core.dataset import Case, LabelMap
from lumbarview.core.errors import Cancelled, LumbarviewError
from lumbarview.core.geometry import FloatArray
from lumbarview.core.labels import Role
from lumbarview.measure.lumbar import LabelMapMeasurer
from lumbarview.measure.sampling import SoftMask, nearest_labels
from lumbarview.services.binding import labels_on_image
from lumbarview.services.measure_case import measurable_label_maps, measure_case, series_name

ENGINE_VERSION = f"lumbarview {lumbarview.__version__}"
_BONE = (Role.VERTEBRA, Role.PARTIAL_VERTEBRA, Role.POSTERIOR_ELEMENT, Role.SACRUM)
_N_RAYS = 96


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
class Polyline:
    """A drawn line in LPS mm: ``points_lps`` (N, 3); ``closed`` joins the last point to the
    first; ``pairs`` makes it independent segments (points 0-1, 2-3, ...)."""

    name: str
    points_lps: FloatArray
    closed: bool = False
    pairs: bool = False


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
    notes: list[str] = field(default_factory=list)  # geometry that could not be drawn, and why

    def part_for(self, row: dict[str, Any]) -> PartGeometry | None:
        """The geometry of the part a row belongs to (None: nothing was drawn for it)."""
        key = (row.get("series"), row.get("level"), part_of(row.get("quantity")),
               row.get("side") if part_of(row.get("quantity")) == "foramen" else None)
        return next((p for p in self.parts if p.key() == key), None)


Progress = Callable[[int, int], None]


def run_engine(case: Case, progress: Progress | None = None,
               cancel: threading.Event | None = None) -> EngineResult:
    """Measure ``case`` in memory (see the module). Never raises for the case's data: a label
    map that cannot be measured has its one row saying why, and no geometry. Raises
    :class:`~lumbarview.core.errors.Cancelled` when ``cancel`` is set between steps."""
    label_maps, skipped = measurable_label_maps(case)
    total = 1 + len(label_maps)

    def step(n: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("measuring cancelled")
        if progress is not None:
            progress(n, total)

    step(0)
    rows = measure_case(case)
    step(1)
    parts: list[PartGeometry] = []
    notes = list(skipped)
    for n, label_map in enumerate(label_maps, start=2):
        series = series_name(case, label_map)
        mine = [r for r in rows if r["series"] == series]
        try:
            parts.extend(label_map_geometry(case, label_map, series, mine))
        except LumbarviewError as exc:
            notes.append(f"{series}: the measured geometry could not be drawn ({exc})")
        except Exception as exc:  # the drawing is an aid: its failure must not lose the values
            notes.append(f"{series}: the measured geometry could not be drawn ({type(exc).__name__}: {exc})")
        step(n)
    return EngineResult(case.id, rows, parts, notes=notes)


def label_map_geometry(case: Case, label_map: LabelMap, series: str,
                       rows: Sequence[dict[str, Any]]) -> list[PartGeometry]:
    """The geometry of every measured part of one label map (see the module)."""
    image = case.stack(label_map.bound_to or "")
    if image is not None:
        labels, geometry = labels_on_image(label_map.stack, image.geometry)
    else:
        labels, geometry = label_map.stack.pixels(), label_map.stack.geometry
    m = LabelMapMeasurer(labels, geometry, label_map.scheme)
    out: list[PartGeometry] = []
    for level in dict.fromkeys(r["level"] for r in rows if r["level"]):
        disc_value = label_map.scheme.disc_value(level)
        if disc_value is None:
            continue
        frame = m.disc_frame(disc_value)
        if isinstance(frame, str):
            continue
        centre, normal, e_lr, e_ap = frame
        level_rows = {(r["quantity"], r["side"]): r for r in rows if r["level"] == level}
        canal = _canal_part(m, series, level, level_rows, normal, e_lr, e_ap)
        if canal is not None:
            out.append(canal)
        for side in ("left", "right"):
            foramen = _foramen_part(m, series, level, side, level_rows, disc_value, centre, normal, e_lr, e_ap)
            if foramen is not None:
                out.append(foramen)
        out.append(_disc_part(m, series, level, level_rows, disc_value, centre, normal, e_ap))
    return out


def _position(row: dict[str, Any] | None) -> FloatArray | None:
    if row is None or row.get("position_lps") is None or row.get("value") is None:
        return None
    return np.asarray(row["position_lps"], dtype=np.float64)


def _exit(m: LabelMapMeasurer, mask: SoftMask, start: FloatArray, direction: FloatArray,
          limit: float) -> float:
    """The engine's own exit search (:meth:`LabelMapMeasurer.exits`) along one line."""
    d = float(m.exits(mask, np.asarray(start, dtype=np.float64).reshape(1, 3),
                      np.asarray(direction, dtype=np.float64).reshape(1, 3), limit)[0])
    return d if math.isfinite(d) else float("nan")


def _labels_on_plane(m: LabelMapMeasurer, origin: FloatArray, e1: FloatArray, e2: FloatArray,
                     r1: tuple[float, float], r2: tuple[float, float], step: float
                     ) -> tuple[npt.NDArray[Any], FloatArray, FloatArray]:
    """The label map's nearest labels on a grid of a plane (first axis along ``e1``)."""
    s1 = np.arange(r1[0], r1[1] + step / 2, step)
    s2 = np.arange(r2[0], r2[1] + step / 2, step)
    to_ijk = m.g.lps_to_ijk[:3, :3]
    c = m.g.lps_to_index(origin)
    d1, d2 = to_ijk @ e1, to_ijk @ e2
    coords = np.stack([c[a] + s1[:, None] * d1[a] + s2[None, :] * d2[a] for a in (2, 1, 0)])
    return nearest_labels(m.labels, coords), s1, s2


def ray_contour(m: LabelMapMeasurer, volume: SoftMask, centre: FloatArray, e1: FloatArray,
                e2: FloatArray, limit: float = 25.0, n: int = _N_RAYS) -> FloatArray:
    """The 0.5 iso-line of a soft mask around ``centre`` in the plane (e1, e2), found along
    ``n`` rays (the section must be star-shaped around ``centre``, as a thecal sac is)."""
    points = []
    for a in np.linspace(0.0, 2 * math.pi, n, endpoint=False):
        direction = math.cos(a) * e1 + math.sin(a) * e2
        d = _exit(m, volume, centre, direction, limit)
        if math.isfinite(d):
            points.append(centre + d * direction)
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)


def _chord(m: LabelMapMeasurer, volume: SoftMask, centre: FloatArray, direction: FloatArray,
           length: float | None) -> FloatArray | None:
    """A chord along ``direction`` centred between the mask's edges, ``length`` long (the
    engine's value) when given, else edge to edge."""
    a, b = _exit(m, volume, centre, -direction, 40.0), _exit(m, volume, centre, direction, 40.0)
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    mid = centre + (b - a) / 2 * direction
    half = (a + b) / 2 if length is None or not math.isfinite(length) else length / 2
    return np.array([mid - half * direction, mid + half * direction])


def _canal_part(m: LabelMapMeasurer, series: str, level: str, rows: dict[tuple[str, Any], dict[str, Any]],
                normal: FloatArray, e_lr: FloatArray, e_ap: FloatArray) -> PartGeometry | None:
    centroid = _position(rows.get(("canal_area", None)))
    values = m.values_by_role.get(Role.CANAL, set()) | m.values_by_role.get(Role.CORD, set())
    if centroid is None or not values:
        return None
    canal = m.soft(values)
    part = PartGeometry(series, level, "canal", None, centroid, e_lr, e_ap, view="axial")
    contour = ray_contour(m, canal, centroid, e_lr, e_ap)
    if len(contour) >= 3:
        part.polylines.append(Polyline("canal contour", contour, closed=True))
    for quantity, direction in (("canal_ap", e_ap), ("canal_transverse", e_lr)):
        row = rows.get((quantity, None))
        chord = _chord(m, canal, centroid, direction, None if row is None else row.get("value"))
        if chord is not None:
            part.polylines.append(Polyline(quantity.replace("_", " "), chord))
    return part


def region_edges(region: npt.NDArray[np.bool_], origin: FloatArray, e1: FloatArray, e2: FloatArray,
                 s1: npt.NDArray[Any], s2: npt.NDArray[Any], step: float) -> FloatArray:
    """The boundary of a pixel region (first axis along ``e1`` at ``s1``, second along ``e2``
    at ``s2``) as segments (pairs of LPS points), pixel edges exactly."""
    padded = np.pad(region, 1)
    segments: list[tuple[float, float, float, float]] = []
    h = step / 2
    for axis in (0, 1):
        diff = np.diff(padded.astype(np.int8), axis=axis)
        for i, j in np.argwhere(diff != 0):
            if axis == 0:  # edge between rows i-1 and i (padded): along e2 at s1 boundary
                a = s1[min(i, len(s1) - 1)] - h if i < len(s1) else s1[-1] + h
                b = s2[j - 1]
                segments.append((a, b - h, a, b + h))
            else:
                b = s2[min(j, len(s2) - 1)] - h if j < len(s2) else s2[-1] + h
                a = s1[i - 1]
                segments.append((a - h, b, a + h, b))
    if not segments:
        return np.zeros((0, 3))
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    return np.asarray(origin + seg[:, :1] * e1 + seg[:, 1:] * e2, dtype=np.float64)


def _foramen_part(m: LabelMapMeasurer, series: str, level: str, side: str,
                  rows: dict[tuple[str, Any], dict[str, Any]], disc_value: int, centre: FloatArray,
                  normal: FloatArray, e_lr: FloatArray, e_ap: FloatArray) -> PartGeometry | None:
    centroid = _position(rows.get(("foramen_area", side)))
    if centroid is None:
        return None
    origin = centre + float((centroid - centre) @ e_lr) * e_lr  # the plane it was measured on
    down = -normal
    part = PartGeometry(series, level, "foramen", side, centroid, e_ap, down, view="sagittal")
    bone = set().union(*(m.values_by_role.get(r, set()) for r in _BONE))
    walls = bone | {disc_value}
    step = max(m.fine * 1.5, 0.25)
    lab, s_ap, s_u = _labels_on_plane(m, origin, e_ap, normal, (-20.0, 45.0), (-25.0, 25.0), step)
    free = ~np.isin(lab, list(walls))
    comps, _ = ndimage.label(free)
    a0 = int(np.argmin(np.abs(s_ap - float((centroid - origin) @ e_ap))))
    u0 = int(np.argmin(np.abs(s_u - float((centroid - origin) @ normal))))
    seed = comps[a0, u0]
    if seed == 0:  # the centroid of a curved region can fall on a wall: take the nearest free pixel
        free_idx = np.argwhere(free)
        if free_idx.size:
            a0, u0 = (int(v) for v in free_idx[np.argmin(np.sum((free_idx - [a0, u0]) ** 2, axis=1))])
            seed = comps[a0, u0]
    if seed != 0:
        region = comps == seed
        if not (region[0, :].any() or region[-1, :].any() or region[:, 0].any() or region[:, -1].any()):
            edges = region_edges(region, origin, e_ap, normal, s_ap, s_u, step)
            part.polylines.append(Polyline("foramen outline", edges, pairs=True))
    free_soft = m.soft(walls, complement=True)
    up, dn = _exit(m, free_soft, centroid, normal, 40.0), _exit(m, free_soft, centroid, -normal, 40.0)
    if math.isfinite(up) and math.isfinite(dn):
        part.polylines.append(Polyline("foramen height", np.array([centroid - dn * normal, centroid + up * normal])))
    return part


def _disc_part(m: LabelMapMeasurer, series: str, level: str, rows: dict[tuple[str, Any], dict[str, Any]],
               disc_value: int, centre: FloatArray, normal: FloatArray, e_ap: FloatArray) -> PartGeometry:
    part = PartGeometry(series, level, "disc", None, centre, e_ap, -normal, view="sagittal")
    disc = m.soft({disc_value})
    for quantity in ("disc_height_anterior", "disc_height_middle", "disc_height_posterior"):
        start = _position(rows.get((quantity, None)))
        if start is None:
            continue
        up, dn = _exit(m, disc, start, normal, 25.0), _exit(m, disc, start, -normal, 25.0)
        if math.isfinite(up) and math.isfinite(dn):
            part.polylines.append(Polyline(quantity.replace("_", " "),
                                           np.array([start - dn * normal, start + up * normal])))
    return part
