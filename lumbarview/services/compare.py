"""Use case: compare a prior study with the current one, level by level.

- :func:`load_study`: one study (a case folder or file) as compare mode needs it: the image to
  register (a sagittal T2 when there is one), its label map, the rows measured on it.
- :func:`level_centres`: each disc level's centre (LPS) from the labels: the disc's centroid, or
  midway between the centroids of the two vertebral bodies around it when discs are not labelled.
- :func:`change_rows`: for each level and quantity measured on both studies (rows of the export
  contract: engine, semi-automatic or manual), prior, current, difference and percent, flagged
  when the change exceeds the quantity's known measurement variability
  (:mod:`lumbarview.measure.variability`).
- :func:`compare`: register per level (or around an LPS point) and gather the above; one JSON
  object per level (the ``lumbarview compare`` contract).
- :func:`patients_differ`, :func:`parallel_planes`: the checks of bad input (said, never silent).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Case, LabelMap
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.fs import atomic_write_text, refuse_inside
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import Role
from lumbarview.core.types import ImageStack
from lumbarview.measure.register import RegistrationInputError, RigidResult, register_rigid
from lumbarview.measure.variability import variability
from lumbarview.services.measure_case import is_failure, measure_case
from lumbarview.services.open_dataset import open_path
from lumbarview.slicing.sync import parallel_reason

CHANGE_KEYS = ("level", "quantity", "side", "unit", "prior", "current", "difference", "percent",
               "variability", "flagged", "variability_source", "prior_series", "current_series")


class CompareError(LumbarviewError):
    """The two studies cannot be compared as asked (the message says why and what to do)."""


@dataclass
class CompareStudy:
    path: str
    case: Case
    image: ImageStack
    label_map: LabelMap | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def patient_id(self) -> str | None:
        """The DICOM PatientID (a DICOM case is named by it); None for files that carry none."""
        return self.case.id if "study_uid" in self.image.meta else None

    @property
    def frame_of_reference(self) -> str | None:
        value = self.image.meta.get("frame_of_reference_uid")
        return str(value) if value else None


def _role_score(stack: ImageStack) -> tuple[int, int, int]:
    text = str(stack.meta.get("description") or stack.uid).lower()
    t2 = int("t2" in text)
    sagittal = int(stack.geometry.orientation.value == "sagittal")
    return t2 + sagittal, int(stack.n_slices >= 8), stack.n_slices


def _choose_image(case: Case) -> ImageStack:
    candidates = [s for s in case.stacks() if s.geometry.shape_kji[0] >= 3]
    if not candidates:
        raise CompareError(f"case {case.id} holds no image volume (at least 3 slices) to register; "
                           "point at a case with a 3D series")
    return max(candidates, key=_role_score)


def _choose_labels(case: Case, image: ImageStack) -> LabelMap | None:
    bound = [m for m in case.label_maps if m.bound_to == image.uid]
    maps = bound or case.label_maps
    return maps[0] if maps else None


#: Per role: the LPS axis the slices step along, then screen right and screen down (radiological
#: convention: the patient's left on screen right in axial and coronal; anterior on the left,
#: feet down in sagittal).
_ROLE_AXES = {"sagittal": ((1, 0, 0), (0, 1, 0), (0, 0, -1)), "axial": ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
              "coronal": ((0, 1, 0), (1, 0, 0), (0, 0, -1))}


@dataclass(frozen=True)
class RoleView:
    """A stack presented as one plane role: ``pixels`` ``[k, j, i]`` (a view of the stack's array,
    axes permuted and flipped, never resampled) on ``geometry``."""

    role: str
    stack: ImageStack
    pixels: npt.NDArray[Any]
    geometry: VolumeGeometry

    @property
    def n_slices(self) -> int:
        return int(self.geometry.shape_kji[0])


def role_view(stack: ImageStack, role: str) -> RoleView | None:
    """``stack`` shown as ``role`` when its voxel axes lie along the patient axes (within 0.99) and it
    either was acquired in that plane or is near-isotropic (spacings within 1.5x, at least 16
    voxels on every axis); else None."""
    g = stack.geometry
    axes = g.ijk_to_lps[:3, :3] / np.linalg.norm(g.ijk_to_lps[:3, :3], axis=0)
    want = [np.asarray(v, dtype=np.float64) for v in _ROLE_AXES[role]]
    order = [int(np.argmax(np.abs(axes.T @ w))) for w in want]  # voxel axis (0=i,1=j,2=k) per slot
    if len(set(order)) != 3 or min(abs(float(axes[:, a] @ w)) for a, w in zip(order, want, strict=True)) < 0.99:
        return None
    spacing = np.asarray(g.spacing_mm)
    native = g.orientation.value == role
    iso = float(spacing.max() / spacing.min()) <= 1.5 and min(g.shape_kji) >= 16
    if not (native or iso):
        return None
    # The array is [k, j, i]: voxel axis a is array axis 2 - a. New order: slices, rows (down), columns (right).
    slot_axes = (order[0], order[2], order[1])
    pixels = np.transpose(np.asarray(stack.pixels()), [2 - a for a in slot_axes])
    affine = np.eye(4)
    affine[:3, 3] = g.ijk_to_lps[:3, 3]
    new_cols = {0: order[1], 1: order[2], 2: order[0]}  # new i (right), j (down), k (slices) -> old axis
    wanted_dir = {0: want[1], 1: want[2], 2: want[0]}
    flips = []
    for new, old in new_cols.items():
        column = g.ijk_to_lps[:3, old].copy()
        if float(column @ wanted_dir[new]) < 0:
            n = g.shape_kji[2 - old]
            affine[:3, 3] += (n - 1) * column
            column = -column
            flips.append(2 - new)
        affine[:3, new] = column
    if flips:
        pixels = np.flip(pixels, axis=tuple(flips))
    return RoleView(role, stack, pixels, VolumeGeometry(tuple(int(n) for n in pixels.shape), affine))  # type: ignore[arg-type]


def facing_pairs(current: Case, prior: Case) -> list[tuple[RoleView, RoleView]]:
    """The views to hang facing each other: per role (sagittal, axial, coronal) the best stack of each
    study able to show it (acquired in that plane first, then T2 by description, then the most
    slices); sagittal and axial when both studies have them, else any one role they share."""
    pairs = []
    for role in ("sagittal", "axial", "coronal"):
        a = [v for s in current.stacks() if (v := role_view(s, role)) is not None and v.n_slices >= 3]
        b = [v for s in prior.stacks() if (v := role_view(s, role)) is not None and v.n_slices >= 3]
        if a and b:
            def score(v: RoleView) -> tuple[int, tuple[int, int, int]]:
                return int(v.stack.geometry.orientation.value == v.role), _role_score(v.stack)

            pairs.append((max(a, key=score), max(b, key=score)))
    return pairs[:2]


def load_study(path: str | Path, *, measure: bool = True) -> CompareStudy:
    """Open one study for comparison (exactly one case must be found at ``path``)."""
    dataset = open_path(path)
    cases = [c for c in dataset.cases if c.stacks()]
    if len(cases) != 1:
        names = ", ".join(c.id for c in dataset.cases[:5])
        raise CompareError(f"{path} holds {len(cases)} cases with images ({names}); point at one case's "
                           "folder or file")
    case = cases[0]
    image = _choose_image(case)
    rows = [r for r in measure_case(case) if not is_failure([r])] if measure else []
    return CompareStudy(str(path), case, image, _choose_labels(case, image), rows)


def _centroids(labels: npt.NDArray[Any], geometry: VolumeGeometry, values: Iterable[int]
               ) -> dict[int, npt.NDArray[np.float64]]:
    flat = np.asarray(labels).ravel()
    wanted = sorted(set(values))
    if not wanted or flat.size == 0 or int(flat.min()) < 0:
        return {}
    size = max(int(flat.max()), max(wanted)) + 1
    counts = np.bincount(flat, minlength=size)
    grids: Sequence[npt.NDArray[Any]] = np.indices(labels.shape, sparse=True)
    sums = [np.bincount(flat, weights=np.broadcast_to(g, labels.shape).ravel(), minlength=size) for g in grids]
    out = {}
    for v in wanted:
        if counts[v] >= 20:
            centre_kji = np.array([s[v] / counts[v] for s in sums])
            out[v] = geometry.index_to_lps(centre_kji[::-1])
    return out


def level_centres(label_map: LabelMap | None) -> dict[str, npt.NDArray[np.float64]]:
    """Disc level -> centre (LPS mm): the disc's centroid, else midway between the two bodies'."""
    if label_map is None:
        return {}
    labels = np.asarray(label_map.stack.pixels())
    if not np.issubdtype(labels.dtype, np.integer):
        labels = labels.astype(np.int64)
    scheme = label_map.scheme
    discs = {e.level: e.value for e in scheme.entries.values() if e.role is Role.DISC and e.level}
    bodies = {e.level: e.value for e in scheme.entries.values()
              if e.role in (Role.VERTEBRA, Role.SACRUM) and e.level and "-" not in e.level}
    centroids = _centroids(labels.astype(np.int64, copy=False), label_map.stack.geometry,
                           [*discs.values(), *bodies.values()])
    out: dict[str, npt.NDArray[np.float64]] = {}
    for level, value in discs.items():
        if value in centroids:
            out[level] = centroids[value]
    names = list(bodies)
    for upper in names:
        for lower in names:
            level = f"{upper}-{lower}"
            if level in out or bodies[upper] not in centroids or bodies[lower] not in centroids:
                continue
            if _adjacent(upper, lower):
                out[level] = (centroids[bodies[upper]] + centroids[bodies[lower]]) / 2.0
    return dict(sorted(out.items(), key=lambda kv: _level_order(kv[0])))


_SPINE = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", *(f"T{i}" for i in range(1, 13)),
          "L1", "L2", "L3", "L4", "L5", "L6", "S1")


def _adjacent(upper: str, lower: str) -> bool:
    if upper not in _SPINE or lower not in _SPINE:
        return False
    return _SPINE.index(lower) - _SPINE.index(upper) == 1 and not (upper == "L5" and lower == "L6")


def _level_order(level: str) -> int:
    head = level.split("-")[0]
    return _SPINE.index(head) if head in _SPINE else len(_SPINE)


# -- change per level ---------------------------------------------------------------------------

def _key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return (str(row.get("level")), str(row.get("quantity")), str(row.get("side") or ""), str(row.get("unit") or ""))


_CONFIDENCE_RANK = {"high": 0, "medium": 1, "low": 2, "none": 3}


def _best(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """One row per (level, quantity, side, unit): the most confident finite value (first on ties)."""
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in rows:
        value = row.get("value")
        if row.get("level") in (None, "") or row.get("quantity") in (None, "", "point"):
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            continue
        key = _key(row)
        old = out.get(key)
        rank = _CONFIDENCE_RANK.get(str(row.get("confidence") or "high"), 3)
        if old is None or rank < _CONFIDENCE_RANK.get(str(old.get("confidence") or "high"), 3):
            out[key] = row
    return out


def change_rows(current: Iterable[dict[str, Any]], prior: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per level and quantity measured on both: prior, current, difference (current - prior),
    percent (of the prior; None when the prior is 0), the quantity's variability and whether
    |difference| exceeds it (None when no variability is documented for it)."""
    cur, pri = _best(current), _best(prior)
    out = []
    for key in sorted(set(cur) & set(pri), key=lambda k: (_level_order(k[0]), k[0], k[1], k[2], k[3])):
        c, p = float(cur[key]["value"]), float(pri[key]["value"])
        diff = c - p
        var = variability(key[1], key[3] or None)
        out.append({
            "level": key[0], "quantity": key[1], "side": key[2] or None, "unit": key[3] or None,
            "prior": round(p, 4), "current": round(c, 4), "difference": round(diff, 4),
            "percent": None if p == 0 else round(100.0 * diff / abs(p), 2),
            "variability": None if var is None else var.threshold,
            "flagged": None if var is None else abs(diff) > var.threshold,
            "variability_source": ("no published measurement variability: not flagged" if var is None
                                   else f"{var.basis} ({var.source})"),
            "prior_series": pri[key].get("series"), "current_series": cur[key].get("series"),
        })
    return out


def change_csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CHANGE_KEYS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CHANGE_KEYS})
    return buf.getvalue()


def write_change_csv(path: str | Path, rows: Sequence[dict[str, Any]], *,
                     sources: Sequence[str | Path] = ()) -> Path:
    """Write the change table atomically (refused inside either study's folder: source data is
    read-only)."""
    out = Path(path)
    try:
        for src in sources:
            refuse_inside(out, src, "the change table")
    except ValueError as exc:
        raise CompareError(str(exc)) from exc
    atomic_write_text(out, change_csv_text(rows))
    return out


# -- checks of bad input --------------------------------------------------------------------------

def patients_differ(current: CompareStudy, prior: CompareStudy) -> str | None:
    """A warning when the two studies are of different patients (None when the same, or unknown)."""
    a, b = current.patient_id, prior.patient_id
    if a is not None and b is not None and a != b:
        return (f"the two studies are of different patients (current {a!r}, prior {b!r}): a comparison "
                "between patients shows no change of either; confirm to go on")
    return None


def parallel_planes(current: VolumeGeometry, prior: VolumeGeometry, matrix: npt.ArrayLike | None = None) -> str | None:
    """None when the two stacks' rows and columns agree within 0.99 (after the rotation of
    ``matrix``, current LPS -> prior LPS), else the reason they cannot scroll in step."""
    return parallel_reason(current, prior, np.eye(4) if matrix is None else matrix)


# -- compare ---------------------------------------------------------------------------------------

def _round(values: npt.ArrayLike, digits: int) -> list[Any]:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()  # type: ignore[no-any-return]


def _level_object(result: RigidResult, prior_geometry: VolumeGeometry, current_geometry: VolumeGeometry
                  ) -> dict[str, Any]:
    return {
        "converged": result.converged, "message": result.message,
        "matrix_lps": _round(result.matrix_lps, 6),
        "rotation_deg": _round(result.rotation_deg, 3), "translation_mm": _round(result.translation_mm, 3),
        "at_prior_lps": _round(result.apply(result.centre_lps), 3),
        "seconds": round(result.seconds, 2),
        "parallel": parallel_planes(current_geometry, prior_geometry, result.matrix_lps),
    }


def compare(current: CompareStudy, prior: CompareStudy, *, level: str | None = None,
            at_lps: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """One object per level (all levels with a centre in the current study, or ``level``), or one
    for the point ``at_lps`` (current LPS): the registration and the change table."""
    changes = change_rows(current.rows, prior.rows)
    cur_px = np.asarray(current.image.pixels())
    pri_px = np.asarray(prior.image.pixels())
    cg, pg = current.image.geometry, prior.image.geometry
    if at_lps is not None:
        try:
            result = register_rigid(cur_px, cg, pri_px, pg, at_lps)
        except RegistrationInputError as exc:
            raise CompareError(str(exc)) from exc
        centres = level_centres(current.label_map)
        nearest = min(centres, key=lambda lv: float(np.linalg.norm(centres[lv] - np.asarray(at_lps)))) if centres \
            else None
        return [{"at_lps": _round(at_lps, 3), **_level_object(result, pg, cg), "level_nearest": nearest,
                 "quantities": [c for c in changes if nearest is not None and c["level"] == nearest]}]
    centres = level_centres(current.label_map)
    if not centres:
        raise CompareError("the current study has no labels naming disc levels (or vertebral bodies): give a "
                           "point with --at X,Y,Z (LPS mm) instead of a level")
    if level is not None:
        if level not in centres:
            raise CompareError(f"level {level} is not in the current study's labels (levels found: "
                               f"{', '.join(centres)})")
        centres = {level: centres[level]}
    out = []
    for name, centre in centres.items():
        try:
            result = register_rigid(cur_px, cg, pri_px, pg, centre)
        except RegistrationInputError as exc:
            out.append({"level": name, "centre_lps": _round(centre, 3), "converged": False,
                        "message": f"not registered: {exc}", "matrix_lps": None, "rotation_deg": None,
                        "translation_mm": None, "at_prior_lps": None,
                        "quantities": [c for c in changes if c["level"] == name]})
            continue
        out.append({"level": name, "centre_lps": _round(centre, 3), **_level_object(result, pg, cg),
                    "quantities": [c for c in changes if c["level"] == name]})
    return out


def format_level(obj: dict[str, Any]) -> str:
    """One level's comparison for people (the ``--json`` object has everything)."""
    head = f"level {obj['level']}" if "level" in obj else f"at {obj['at_lps']} (LPS mm)"
    lines = [head + (": registered" if obj.get("converged") else f": {obj.get('message')}")]
    if obj.get("matrix_lps") is not None:
        lines.append(f"  rotation {obj['rotation_deg']} deg, translation {obj['translation_mm']} mm, "
                     f"prior point {obj['at_prior_lps']} (LPS mm), {obj.get('seconds')} s")
    if obj.get("parallel"):
        lines.append(f"  {obj['parallel']}")
    warning = (obj.get("patients") or {}).get("warning")
    if warning:
        lines.append(f"  warning: {warning}")
    rows = obj.get("quantities") or []
    if not rows:
        lines.append("  no quantity measured on both studies")
    for r in rows:
        flag = {True: "  CHANGED beyond measurement variability", False: "", None: "  (variability unknown)"}[
            r["flagged"]]
        pct = "" if r["percent"] is None else f" ({r['percent']:+.1f} %)"
        lines.append(f"  {r['quantity']:<24s} {r['side'] or '':5s} prior {r['prior']:9.2f}  current "
                     f"{r['current']:9.2f}  change {r['difference']:+8.2f} {r['unit'] or ''}{pct}{flag}")
    return "\n".join(lines)
