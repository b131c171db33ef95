"""Use case: segment a study that comes without labels, from seeds (``lumbarview segment``).

The seeds (a contract, ``SEEDS.json``; see the README): ``bodies`` and ``discs`` lists of
``{"level", "point_lps"}``, ``canal`` a list of ``{"level", "point_lps"}`` (each a click in the
dural sac), optional ``canal_polyline_lps`` and ``background_lps`` (points that are not body).

* each body grows from its click (:func:`lumbarview.measure.segment.bodies.body_from_click`);
* each named disc (``"L4-L5"``) fills the space between its two bodies when both are seeded (its
  ``point_lps`` is kept in the provenance; nothing grows from it);
* each canal click is contoured on a plane (:func:`lumbarview.measure.segment.canal.canal_from_click`):
  the disc-aligned plane through the click when that level's disc was segmented (the engine's own
  level plane, :func:`lumbarview.measure.measurer.disc_plane`), else the image's slice through the
  point. Its contour is painted into the label map extruded 10 mm either side of that plane.

The label map is on the image's own grid, in :func:`lumbarview.core.labels.semi_auto_scheme`
(documented in the README). The provenance sidecar records the seeds, each structure's method and
parameters, and the lumbarview version. Nothing here touches the source image; the writer is atomic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from skimage import measure

from lumbarview import __version__
from lumbarview.core.errors import LumbarviewError, MeasurementError
from lumbarview.core.fs import atomic_write_text
from lumbarview.core.geometry import SlicePlane, VolumeGeometry
from lumbarview.core.labels import (
    CANAL_VALUE,
    SEMI_AUTO_SCHEME_NAME,
    LabelScheme,
    disc_value,
    scheme_from_json,
    semi_auto_scheme,
    vertebra_value,
)
from lumbarview.core.safe_json import read_json_guarded
from lumbarview.core.types import ImageStack
from lumbarview.io.volume import open_label_volume, open_volume, volume_stem
from lumbarview.io.volume_write import write_volume
from lumbarview.measure.engine import measure_label_map
from lumbarview.measure.measurer import disc_plane
from lumbarview.measure.segment.bodies import BodyParameters, body_from_click, disc_between
from lumbarview.measure.segment.canal import CanalParameters, canal_from_click, canal_summary
from lumbarview.services.binding import labels_on_image
from lumbarview.services.measure_case import value_row
from lumbarview.slicing.planes import disc_aligned_plane
from lumbarview.slicing.reformat import reformat

SIDECAR_FORMAT = "lumbarview-segmentation"
#: A canal click's contour is extruded this far either side of its plane in the label map, so that
#: the engine, which reslices the canal on the disc plane and looks for the smallest area over the
#: disc's thickness, reads that contour's area (one click is one section: no narrowing between).
CANAL_HALF_THICKNESS_MM = 10.0
_CANAL_PLANE_PX = 0.35  # mm: the disc-aligned plane's pixel (the phantom trials' resolution)
_CANAL_PLANE_HALF_MM = 40.0


class SeedsError(LumbarviewError, ValueError):
    """The seeds file is not what the contract says."""


@dataclass(frozen=True)
class Seed:
    level: str
    point_lps: tuple[float, float, float]


@dataclass(frozen=True)
class Seeds:
    bodies: tuple[Seed, ...] = ()
    discs: tuple[Seed, ...] = ()
    canal: tuple[Seed, ...] = ()
    canal_polyline_lps: tuple[tuple[float, float, float], ...] = ()
    background_lps: tuple[tuple[float, float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def seeds(items: tuple[Seed, ...]) -> list[dict[str, Any]]:
            return [{"level": s.level, "point_lps": list(s.point_lps)} for s in items]
        return {"bodies": seeds(self.bodies), "discs": seeds(self.discs), "canal": seeds(self.canal),
                "canal_polyline_lps": [list(p) for p in self.canal_polyline_lps],
                "background_lps": [list(p) for p in self.background_lps]}


def _point(value: Any, where: str) -> tuple[float, float, float]:
    if (not isinstance(value, list | tuple) or len(value) != 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise SeedsError(f"{where}: a point is three finite numbers [x, y, z] in LPS mm, not {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def parse_seeds(data: Any) -> Seeds:
    """The seeds of a ``SEEDS.json`` object, checked; :class:`SeedsError` says what is wrong."""
    if not isinstance(data, dict):
        raise SeedsError("the seeds file must hold one JSON object with `bodies`, `discs` and `canal` lists")
    unknown = sorted(set(data) - {"bodies", "discs", "canal", "canal_polyline_lps", "background_lps"})
    if unknown:
        raise SeedsError(f"unknown key(s) {', '.join(unknown)} in the seeds file (known: bodies, discs, canal, "
                         f"canal_polyline_lps, background_lps)")

    def seeds(key: str, check: Any) -> tuple[Seed, ...]:
        items = data.get(key, [])
        if not isinstance(items, list):
            raise SeedsError(f"`{key}` must be a list of {{level, point_lps}} objects")
        out = []
        for n, item in enumerate(items):
            where = f"`{key}`[{n}]"
            if not isinstance(item, dict) or not isinstance(item.get("level"), str):
                raise SeedsError(f"{where} must be an object with a `level` text and a `point_lps` [x, y, z]")
            check(item["level"], where)
            out.append(Seed(item["level"], _point(item.get("point_lps"), where)))
        levels = [s.level for s in out]
        if len(set(levels)) != len(levels):
            raise SeedsError(f"`{key}` names a level twice: {levels}")
        return tuple(out)

    def body_level(level: str, where: str) -> None:
        vertebra_value(level, where)

    def disc_level(level: str, where: str) -> None:
        disc_value(level, where)

    def points(key: str) -> tuple[tuple[float, float, float], ...]:
        items = data.get(key, [])
        if not isinstance(items, list):
            raise SeedsError(f"`{key}` must be a list of [x, y, z] points in LPS mm")
        return tuple(_point(p, f"`{key}`[{n}]") for n, p in enumerate(items))

    try:
        result = Seeds(seeds("bodies", body_level), seeds("discs", disc_level), seeds("canal", disc_level),
                       points("canal_polyline_lps"), points("background_lps"))
    except ValueError as exc:
        raise SeedsError(str(exc)) from None
    if not (result.bodies or result.discs or result.canal):
        raise SeedsError("the seeds file names no body, disc or canal click: nothing to segment")
    return result


@dataclass
class Segmentation:
    """The label map on the image's grid, one summary per structure, and the provenance."""

    labels: npt.NDArray[np.int16]
    geometry: VolumeGeometry
    structures: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


def _require_geometry(image: ImageStack) -> None:
    if not image.meta.get("has_patient_geometry", True):
        raise MeasurementError("this image has no patient geometry (no position or orientation in its header), so "
                               "seeds in LPS mm cannot be placed on it and no area or volume would be true; "
                               "segment a series that carries its geometry")


def _voxel(geometry: VolumeGeometry, lps: tuple[float, float, float], what: str) -> tuple[float, float, float]:
    k_j_i = geometry.lps_to_index(np.asarray(lps))[::-1]
    if np.any(k_j_i < -0.5) or np.any(k_j_i > np.array(geometry.shape_kji) - 0.5):
        raise MeasurementError(f"{what} at {list(lps)} (LPS mm) lies outside the image; check that the seeds "
                               f"belong to this image")
    return float(k_j_i[0]), float(k_j_i[1]), float(k_j_i[2])


def _structure(structure: str, level: str, label: int, mask: npt.NDArray[np.bool_],
               geometry: VolumeGeometry) -> dict[str, Any]:
    voxels = int(mask.sum())
    volume = voxels * abs(float(np.linalg.det(geometry.ijk_to_lps[:3, :3])))
    return {"structure": structure, "level": level, "label": label, "voxels": voxels,
            "volume_mm3": round(volume, 3)}


def canal_plane(geometry: VolumeGeometry, labels: npt.NDArray[np.int16], seed: Seed) -> tuple[SlicePlane, str]:
    """The plane a canal click is contoured on: the disc-aligned plane through the click when the
    level's disc is in ``labels``, else the image's slice through the point."""
    value = disc_value(seed.level, "canal click")
    if np.count_nonzero(labels == value) >= 20:
        _centre, normal = disc_plane(labels, geometry, value)
        n = round(2 * _CANAL_PLANE_HALF_MM / _CANAL_PLANE_PX)
        return disc_aligned_plane(seed.point_lps, normal, _CANAL_PLANE_PX, (n, n)), "disc-aligned"
    k = geometry.nearest_slice(seed.point_lps)
    if k is None:
        raise MeasurementError(f"the canal click at {list(seed.point_lps)} lies outside the image's slices")
    return geometry.slice_plane(k), "image slice"


def canal_on_plane(volume: npt.NDArray[Any], geometry: VolumeGeometry, plane: SlicePlane,
                   point_lps: tuple[float, float, float],
                   parameters: CanalParameters | None = None) -> tuple[dict[str, Any], npt.NDArray[np.float64]]:
    """One canal click on ``plane``: the summary (dsca_mm2, ap_mm, transverse_mm, contour_lps and
    the provenance) and the contour in LPS (N, 3)."""
    sampled = reformat(volume, geometry, plane, kind="image")
    # A bridge narrower than 1.5 source pixels is partial volume, not anatomy: the opening that
    # cuts leaks scales with the source's in-plane pixel (0.7 mm at least).
    p = parameters or CanalParameters()
    p = replace(p, opening_mm=max(p.opening_mm, 1.5 * max(geometry.spacing_mm[0], geometry.spacing_mm[1])))
    col, row = plane.lps_to_pixel(np.asarray(point_lps))[:2]
    right, down = plane.row_direction_lps, plane.column_direction_lps
    anterior_posterior = np.array([0.0, 1.0, 0.0])
    result = canal_from_click(sampled.pixels, (float(row), float(col)), (plane.spacing_mm[1], plane.spacing_mm[0]),
                              ap_direction_rc=(float(down @ anterior_posterior), float(right @ anterior_posterior)),
                              parameters=p, valid=sampled.inside)
    contour_lps = plane.pixel_to_lps(result.contour_rc[:, ::-1])
    summary = {"dsca_mm2": round(result.area_mm2, 3), "ap_mm": round(result.ap_mm, 3),
               "transverse_mm": round(result.transverse_mm, 3),
               "contour_lps": [[round(float(c), 3) for c in p] for p in contour_lps],
               "provenance": canal_summary(result)}
    return summary, contour_lps


def paint_contour(labels: npt.NDArray[np.int16], geometry: VolumeGeometry, plane: SlicePlane,
                  contour_lps: npt.NDArray[np.float64], value: int,
                  half_thickness_mm: float = 0.0) -> npt.NDArray[np.bool_]:
    """Set ``value`` on the unlabelled voxels within ``half_thickness_mm`` (at least half a voxel)
    of ``plane`` whose centre projects inside the contour: the contour extruded along the plane's
    normal. Returns those voxels."""
    painted = np.zeros(labels.shape, bool)
    half = max(0.5 * min(geometry.spacing_mm), half_thickness_mm)
    ends = np.concatenate([contour_lps + half * plane.normal_lps, contour_lps - half * plane.normal_lps])
    ijk = geometry.lps_to_index(ends)
    lo = np.maximum(np.floor(ijk.min(axis=0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 2, np.array(geometry.shape_kji[::-1]))
    if np.any(hi <= lo):
        return painted
    ii, jj, kk = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij")
    centres = geometry.index_to_lps(np.stack([ii, jj, kk], axis=-1).reshape(-1, 3).astype(float))
    near = np.abs(plane.signed_distance_mm(centres)) <= half
    if not near.any():
        return painted
    px = plane.lps_to_pixel(centres[near])[:, :2]
    poly = plane.lps_to_pixel(contour_lps)[:, :2]
    inside = measure.points_in_poly(px, poly)
    idx = np.stack([ii, jj, kk], axis=-1).reshape(-1, 3)[near][inside]
    painted[idx[:, 2], idx[:, 1], idx[:, 0]] = True
    painted &= labels == 0
    labels[painted] = value
    return painted


def segment(image: ImageStack, seeds: Seeds, body_parameters: BodyParameters | None = None,
            canal_parameters: CanalParameters | None = None) -> Segmentation:
    """Segment ``image`` from ``seeds`` (see the module). Raises a :class:`LumbarviewError` that
    says what is wrong (no patient geometry, a seed outside the image, a click outside the sac)."""
    _require_geometry(image)
    geometry = image.geometry
    volume = np.asarray(image.pixels())
    labels = np.zeros(geometry.shape_kji, np.int16)
    bp = body_parameters or BodyParameters()
    cp = canal_parameters or CanalParameters()
    background = np.array([[round(c) for c in _voxel(geometry, p, "a background point")]
                           for p in seeds.background_lps], dtype=np.intp).reshape(-1, 3)
    out = Segmentation(labels, geometry)
    bodies: dict[str, npt.NDArray[np.bool_]] = {}
    for seed in seeds.bodies:
        mask = body_from_click(volume, geometry, _voxel(geometry, seed.point_lps, f"the {seed.level} body seed"),
                               bp, background if len(background) else None)
        mask &= labels == 0
        value = vertebra_value(seed.level, "body seed")
        labels[mask] = value
        bodies[seed.level] = mask
        out.structures.append(_structure("vertebra", seed.level, value, mask, geometry))
    for seed in seeds.discs:
        upper_name, lower_name = seed.level.split("-")
        value = disc_value(seed.level, "disc seed")
        if upper_name not in bodies or lower_name not in bodies:
            raise MeasurementError(f"the {seed.level} disc needs both its bodies ({upper_name} and {lower_name}) "
                                   f"seeded in `bodies`")
        mask = disc_between(bodies[upper_name], bodies[lower_name], geometry, taken=labels > 0)
        labels[mask] = value
        out.structures.append(_structure("disc", seed.level, value, mask, geometry))
    for seed in seeds.canal:
        plane, plane_kind = canal_plane(geometry, labels, seed)
        summary, contour_lps = canal_on_plane(volume, geometry, plane, seed.point_lps, cp)
        painted = paint_contour(labels, geometry, plane, contour_lps, CANAL_VALUE, CANAL_HALF_THICKNESS_MM)
        row = _structure("canal", seed.level, CANAL_VALUE, painted, geometry)
        row.update({k: summary[k] for k in ("dsca_mm2", "ap_mm", "transverse_mm", "contour_lps")})
        row["plane"] = {"kind": plane_kind, "origin_lps": [round(float(c), 4) for c in plane.origin_lps],
                        "normal_lps": [round(float(c), 6) for c in plane.normal_lps]}
        row["provenance"] = summary["provenance"]
        out.structures.append(row)
    out.provenance = {
        "format": SIDECAR_FORMAT, "version": 1, "lumbarview": __version__, "source": "semi-auto",
        "image": str(image.meta.get("source") or image.uid), "scheme": semi_auto_scheme().to_json(),
        "seeds": seeds.to_dict(), "body_parameters": bp.to_dict(), "canal_parameters": cp.to_dict(),
        "structures": [{k: v for k, v in s.items() if k != "contour_lps"} for s in out.structures],
    }
    return out


def sidecar_path(labels_path: str | Path) -> Path:
    """``LABELS.nii.gz`` -> ``LABELS.segmentation.json`` beside it."""
    p = Path(labels_path)
    name = p.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(f"{name}.segmentation.json")


def save_segmentation(result: Segmentation, out: str | Path) -> Path:
    """Write the label map (atomically; never over the image) and its sidecar; returns the sidecar."""
    import orjson

    path = Path(out)
    write_volume(path, result.labels, result.geometry)
    sidecar = sidecar_path(path)
    atomic_write_text(sidecar, orjson.dumps(result.provenance, option=orjson.OPT_INDENT_2).decode())
    return sidecar


def open_image(path: str | Path) -> ImageStack:
    """The image a seeds file refers to (a volume file)."""
    return open_volume(path)


def read_seeds(path: str | Path) -> Seeds:
    """A ``SEEDS.json`` file, read within the JSON budgets and checked."""
    return parse_seeds(read_json_guarded(path, "seeds file"))


def labels_scheme(labels_path: str | Path) -> tuple[LabelScheme, bool]:
    """The scheme of a label map: from its segmentation sidecar when there is one (then it is
    semi-automatic: True), else the semi-automatic scheme if nothing else is known (False)."""
    sidecar = sidecar_path(labels_path)
    if sidecar.is_file():
        data = read_json_guarded(sidecar, "segmentation sidecar")
        if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT and isinstance(data.get("scheme"), dict):
            return scheme_from_json(data["scheme"], str(sidecar)), data.get("source") == "semi-auto"
    return semi_auto_scheme(), False


def measure_labels(image_path: str | Path, labels_path: str | Path) -> list[dict[str, Any]]:
    """The engine's rows (``lumbarview measure`` contract plus ``source``) for one label map on
    one image: the map is put on the image's grid (the one binding rule); rows carry ``source``
    "semi-auto" when the map was made by :func:`segment` (its sidecar says so), else "engine"."""
    image = open_volume(image_path)
    _require_geometry(image)
    label_stack = open_label_volume(labels_path)
    scheme, semi_auto = labels_scheme(labels_path)
    labels, geometry = labels_on_image(label_stack, image.geometry)
    case_id = volume_stem(image_path)
    series = str(image.meta.get("description") or case_id)
    rows = []
    for v in measure_label_map(labels, geometry, scheme):
        rows.append(value_row(case_id, series, (), v))
        if v.quantity == "slip":
            rows.append(value_row(case_id, series, (), v, unit="%", value=v.extra.get("slip_percent", float("nan"))))
    for row in rows:
        row["source"] = "semi-auto" if semi_auto else "engine"
    return rows


__all__ = ["SEMI_AUTO_SCHEME_NAME", "Seeds", "SeedsError", "Segmentation", "measure_labels", "open_image",
           "parse_seeds", "read_seeds", "save_segmentation", "segment", "sidecar_path"]
