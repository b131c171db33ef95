"""Phase two of DICOM loading: turn scanned headers into patients, studies, series and stacks.

Slices are ordered by the projection of (0020,0032) *Image Position (Patient)* on the normal of
(0020,0037) *Image Orientation (Patient)*; (0020,0013) *Instance Number* is used only to break
ties. A series whose slices are not all parallel (lumbar axial blocks angled per disc) becomes
one stack per block, each a regular :class:`VolumeGeometry`. Irregularities are reported as
:class:`LoadIssue` records, never silently fixed.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from lumbarview.core.errors import Cancelled
from lumbarview.core.fs import atomic_write_bytes
from lumbarview.core.geometry import VolumeGeometry, is_parallel
from lumbarview.core.types import (
    ImageStack,
    LoadIssue,
    Patient,
    Series,
    Severity,
    Study,
    StudyCollection,
)
from lumbarview.io.dicom.headers import DicomFileHeader, FrameGeometry
from lumbarview.io.dicom.pixels import SliceSource, decode_stack
from lumbarview.io.dicom.scan import IndexCache, ScanResult, _gc_paused

_ANGLE_TOL_DEG = 0.5
#: Positions closer than this along the normal are the same slice position.
_SAME_POSITION_MM = 0.01
#: Patient coordinates beyond a kilometre, or pixels larger than ten metres, are not a scanner's:
#: such values come from damaged headers and would overflow the geometry arithmetic.
_MAX_COORDINATE_MM = 1e6
_MAX_SPACING_MM = 1e4
#: At most this many per-file geometry issues per series; the rest are counted in one more.
_MAX_FILE_ISSUES = 20


@dataclass(frozen=True)
class _Plane:
    """One image plane (a single-frame file or one frame of a multi-frame file)."""

    source: SliceSource
    geometry: FrameGeometry

    @property
    def header(self) -> DicomFileHeader:
        return self.source.header

    @property
    def has_geometry(self) -> bool:
        g = self.geometry
        return g.position_lps is not None and g.orientation is not None

    def geometry_problem(self) -> str | None:
        """What is wrong with a geometry the header does give (None when it is usable or
        absent): a position or orientation that is not finite, not plausible, or not a pair
        of orthogonal unit vectors."""
        g = self.geometry
        if g.position_lps is not None and not all(
                math.isfinite(v) and abs(v) <= _MAX_COORDINATE_MM for v in g.position_lps):
            return (f"(0020,0032) Image Position (Patient) {list(g.position_lps)} is not a "
                    f"finite position within {_MAX_COORDINATE_MM:g} mm")
        if g.orientation is not None and not _valid_orientation(g.orientation):
            return (f"(0020,0037) Image Orientation (Patient) {list(g.orientation)} is not two "
                    "orthogonal unit vectors")
        return None

    def normal(self) -> npt.NDArray[np.float64]:
        assert self.geometry.orientation is not None
        o = np.asarray(self.geometry.orientation)
        n: npt.NDArray[np.float64] = np.cross(o[:3], o[3:])
        return n / np.linalg.norm(n)


def _is_padding_file(path: str) -> bool:
    return os.path.basename(path).lower().startswith("pad_")


def _planes(header: DicomFileHeader) -> list[_Plane]:
    return [_Plane(SliceSource(header, i), g) for i, g in enumerate(header.frames)]


def _valid_orientation(o: Sequence[float] | None) -> bool:
    if o is None or len(o) != 6:
        return False
    # Unit vectors have components within [-1, 1]; checking that first keeps 1e308 out of the
    # norms below, where it would overflow.
    if not all(math.isfinite(v) and abs(v) <= 1.5 for v in o):
        return False
    a = np.asarray(o[:3])
    b = np.asarray(o[3:])
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return bool(abs(na - 1) < 0.05 and abs(nb - 1) < 0.05 and abs(a @ b) < 0.05)


def _orientation_clusters(planes: list[_Plane]) -> list[list[_Plane]]:
    """Group planes whose row and column directions agree within the angle tolerance: each
    plane joins the first group (in order of creation) whose first plane it agrees with.
    One pass of array maths per group rather than per plane."""
    cos_tol = np.cos(np.radians(_ANGLE_TOL_DEG))
    o = np.array([p.geometry.orientation for p in planes], dtype=np.float64).reshape(-1, 6)
    label = np.full(len(planes), -1)
    n_groups = 0
    for i in range(len(planes)):
        if label[i] >= 0:
            continue
        ref = o[i]
        agree = (label < 0) & (o[:, :3] @ ref[:3] >= cos_tol) & (o[:, 3:] @ ref[3:] >= cos_tol)
        agree[i] = True
        label[agree] = n_groups
        n_groups += 1
    groups: list[list[_Plane]] = [[] for _ in range(n_groups)]
    for plane, g in zip(planes, label.tolist(), strict=True):
        groups[g].append(plane)
    return groups


def _suspect_geometry(planes: list[_Plane]) -> list[int]:
    """Indices of the planes whose geometry may have a problem: every plane the array checks
    do not clear with a margin (exact per-plane checks decide for these)."""
    n = len(planes)
    pos = np.zeros((n, 3))
    ori = np.tile([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], (n, 1))
    for k, p in enumerate(planes):
        g = p.geometry
        if g.position_lps is not None:
            pos[k] = g.position_lps
        if g.orientation is not None:
            ori[k] = g.orientation
    with np.errstate(all="ignore"):
        ok = np.isfinite(pos).all(axis=1) & (np.abs(pos) <= _MAX_COORDINATE_MM * 0.999).all(axis=1)
        ok &= np.isfinite(ori).all(axis=1) & (np.abs(ori) <= 1.49).all(axis=1)
        na = np.sqrt((ori[:, :3] ** 2).sum(axis=1))
        nb = np.sqrt((ori[:, 3:] ** 2).sum(axis=1))
        dot = (ori[:, :3] * ori[:, 3:]).sum(axis=1)
        ok &= (np.abs(na - 1) < 0.049) & (np.abs(nb - 1) < 0.049) & (np.abs(dot) < 0.049)
    return np.flatnonzero(~ok).tolist()


def _frame_spacing(plane: _Plane) -> tuple[float, float] | None:
    return plane.geometry.pixel_spacing_rc


def _usable_spacing(spacing: tuple[float, float] | None) -> tuple[float, float] | None:
    """(0028,0030) Pixel Spacing when it is two finite, positive, plausible values."""
    if spacing is None or len(spacing) != 2:
        return None
    if not all(math.isfinite(v) and 0 < v <= _MAX_SPACING_MM for v in spacing):
        return None
    return float(spacing[0]), float(spacing[1])


def _positive(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and 0 < value <= _MAX_SPACING_MM else None


def _split_key(plane: _Plane) -> tuple[Any, ...]:
    h = plane.header
    spacing = plane.geometry.pixel_spacing_rc
    return (h.rows, h.cols, None if spacing is None else (round(spacing[0], 4), round(spacing[1], 4)))


def _series_label(h: DicomFileHeader) -> str:
    number = "" if h.series_number is None else f"#{h.series_number} "
    return f"series {number}{h.series_description or h.series_uid}".strip()


class _StackBuilder:
    """Builds the stacks of one series from its planes and records what it finds."""

    def __init__(self, series_uid: str, label: str) -> None:
        self.series_uid = series_uid
        self.label = label
        self.issues: list[LoadIssue] = []
        self.stacks: list[ImageStack] = []

    def issue(self, severity: Severity, code: str, message: str, path: str | None) -> None:
        text = f"{self.label}: {message}"
        # One record per finding: the blocks of an angled series share their gap, say.
        if any(i.code == code and i.message == text for i in self.issues):
            return
        self.issues.append(LoadIssue(severity, code, text, path))

    def guarded(self, step: Any, *args: Any) -> Any:
        """Run one building step; anything it raises (a geometry the checks above did not
        foresee) becomes an ERROR issue for its images, and the rest of the series goes on."""
        try:
            return step(*args)
        except Cancelled:
            raise
        except (Exception, RecursionError) as exc:  # one stack, one issue
            first = next((a for a in args[0] if a is not None), None) if args else None
            path = first.header.path if first is not None else None
            self.issue(Severity.ERROR, "dicom.stack-failed",
                       f"a stack of {len(args[0]) if args else 0} image(s) could not be built "
                       f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); those images "
                       "are left out. Re-export the series from the scanner or PACS", path)
            return None

    # -- ordering, duplicates, gaps -------------------------------------------------------
    def _dedupe(self, planes: list[_Plane], along: npt.NDArray[np.float64]) -> tuple[
            list[list[_Plane]], list[npt.NDArray[np.float64]]]:
        """Split by echo or temporal position when that explains duplicate positions;
        otherwise keep the first image (lowest instance number) at each position."""
        # Padding files (LSS-MRI-AISSLab's black pad_NNN.dcm) sort after real images at a
        # shared position, so the real image is the one kept.
        is_pad = [_is_padding_file(p.header.path) for p in planes]
        order = np.lexsort((np.array([p.header.instance_number or 0 for p in planes]), np.array(is_pad), along))
        planes = [planes[i] for i in order]
        along = along[order]
        dup = np.diff(along) < _SAME_POSITION_MM
        if not dup.any():
            return [planes], [along]
        keep = np.concatenate([[True], ~dup])
        pads = [p for p, k in zip(planes, keep, strict=True) if not k and _is_padding_file(p.header.path)]
        if pads:
            self.issue(Severity.INFO, "dicom.padding-slice",
                       f"{len(pads)} padding image(s) repeat the position of a real slice; left out",
                       pads[0].header.path)
            drop = {id(p) for p in pads}
            kept = [(p, a) for p, a in zip(planes, along, strict=True) if id(p) not in drop]
            planes = [p for p, _ in kept]
            along = np.array([a for _, a in kept])
            dup = np.diff(along) < _SAME_POSITION_MM
            if not dup.any():
                return [planes], [along]
        for attr, what in (("echo_number", "echo"), ("temporal_position", "temporal position"),
                           ("acquisition_number", "acquisition")):
            keys = {getattr(p.header, attr) for p in planes}
            if len(keys) < 2:
                continue
            groups: dict[Any, list[int]] = defaultdict(list)
            for i, p in enumerate(planes):
                groups[getattr(p.header, attr)].append(i)
            if all(not (np.diff(along[idx]) < _SAME_POSITION_MM).any() for idx in groups.values()):
                self.issue(Severity.INFO, "dicom.split-by-" + attr.split("_")[0],
                           f"{len(groups)} images share each position; split into one stack "
                           f"per {what}", planes[0].header.path)
                keys_sorted = sorted(groups, key=lambda k: (k is None, k))
                return ([[planes[i] for i in groups[k]] for k in keys_sorted],
                        [along[groups[k]] for k in keys_sorted])
        keep = np.concatenate([[True], ~dup])
        dropped = [p for p, k in zip(planes, keep, strict=True) if not k]
        self.issue(Severity.WARNING, "dicom.duplicate-position",
                   f"{len(dropped)} image(s) repeat a position already filled; kept the first "
                   f"(by instance number) at each position. Check whether the folder mixes two "
                   f"acquisitions", dropped[0].header.path)
        return [[p for p, k in zip(planes, keep, strict=True) if k]], [along[keep]]

    def _blocks(self, planes: list[_Plane], along: npt.NDArray[np.float64]) -> list[
            tuple[list[_Plane | None], npt.NDArray[np.float64]]]:
        """Split parallel planes into regular blocks, filling isolated missing slices."""
        if len(planes) < 3:
            return [(list(planes), along)]
        steps = np.diff(along)
        d = float(np.median(steps))
        blocks: list[tuple[list[_Plane | None], list[float]]] = [([planes[0]], [float(along[0])])]
        for plane, pos, step in zip(planes[1:], along[1:], steps, strict=True):
            ratio = step / d
            n = round(ratio)
            current = blocks[-1]
            if ratio < 1.5:
                current[0].append(plane)
                current[1].append(float(pos))
            elif n <= 4 and abs(ratio - n) < 0.2:
                for _ in range(1, n):
                    current[0].append(None)
                    current[1].append(float(current[1][-1] + d))
                current[0].append(plane)
                current[1].append(float(pos))
                self.issue(Severity.WARNING, "dicom.missing-slices",
                           f"{n - 1} slice(s) missing between {current[1][-n - 1]:.1f} and "
                           f"{pos:.1f} mm along the normal (expected every {d:.2f} mm); shown "
                           "black", plane.header.path)
            else:
                self.issue(Severity.INFO, "dicom.split-blocks",
                           f"a jump of {step:.1f} mm between slices (spacing {d:.2f} mm) "
                           "starts a separate block", plane.header.path)
                blocks.append(([plane], [float(pos)]))
        return [(p, np.asarray(a)) for p, a in blocks]

    # -- building one stack ---------------------------------------------------------------
    def build(self, slots: list[_Plane | None], along: npt.NDArray[np.float64]) -> None:
        present = [p for p in slots if p is not None]
        first_plane = next(p for p in slots if p is not None)
        first = first_plane.header
        o = np.asarray(first_plane.geometry.orientation, dtype=np.float64)
        row_dir, col_dir = o[:3] / np.linalg.norm(o[:3]), o[3:] / np.linalg.norm(o[3:])
        normal = np.cross(row_dir, col_dir)
        declared = first_plane.geometry.pixel_spacing_rc
        spacing_rc = _usable_spacing(declared)
        if spacing_rc is None:
            what = "missing" if declared is None else f"invalid ({list(declared)})"
            self.issue(Severity.WARNING, "dicom.no-pixel-spacing",
                       f"(0028,0030) Pixel Spacing is {what}; distances assume 1 mm pixels and "
                       "are NOT real millimetres", first.path)
            spacing_rc = (1.0, 1.0)
        row_spacing, col_spacing = spacing_rc
        thicknesses = [t for p in present
                       if (t := _positive(p.geometry.slice_thickness_mm)) is not None]
        thickness = float(np.median(thicknesses)) if thicknesses else None
        n = len(slots)
        positions = [np.asarray(p.geometry.position_lps, dtype=np.float64) if p is not None
                     else None for p in slots]
        k0 = next(i for i, p in enumerate(positions) if p is not None)
        k1 = max(i for i, p in enumerate(positions) if p is not None)
        p0 = positions[k0]
        assert p0 is not None
        if k1 > k0:
            p1 = positions[k1]
            assert p1 is not None
            step_vec = (p1 - p0) / (k1 - k0)
        else:
            nominal = _positive(first.spacing_between_slices_mm) or thickness or 1.0
            step_vec = normal * nominal
        origin = p0 - k0 * step_vec
        affine = np.eye(4)
        affine[:3, 0] = row_dir * col_spacing
        affine[:3, 1] = col_dir * row_spacing
        affine[:3, 2] = step_vec
        affine[:3, 3] = origin
        geometry = VolumeGeometry((n, first.rows, first.cols), affine)

        stack_issues: list[LoadIssue] = []
        if n > 2:
            ks = np.array([k for k, p in enumerate(positions) if p is not None])
            actual = np.array([p for p in positions if p is not None])
            expected = origin + ks[:, None] * step_vec
            deviation = np.sqrt(((actual - expected) ** 2).sum(axis=1))
            worst_at = int(np.argmax(deviation))
            worst_k, worst = int(ks[worst_at]), float(deviation[worst_at])
            step_mm = float(np.linalg.norm(step_vec))
            if worst > max(0.05, 0.05 * step_mm):
                self.issue(Severity.WARNING, "dicom.uneven-spacing",
                           f"slice positions are irregular: slice {worst_k + 1} lies "
                           f"{worst:.2f} mm from a regular {step_mm:.2f} mm grid; the stack is "
                           "shown on the regular grid", first.path)
        slice_step_mm = float(abs(step_vec @ normal)) if n > 1 else (
            _positive(first.spacing_between_slices_mm) or thickness or 1.0)
        gap = None if thickness is None else slice_step_mm - thickness
        if gap is not None and n > 1 and abs(gap) > 0.01:
            code = "dicom.slice-gap" if gap > 0 else "dicom.slice-overlap"
            what = "gap" if gap > 0 else "overlap"
            self.issue(Severity.INFO, code,
                       f"slices are {thickness:.2f} mm thick every {slice_step_mm:.2f} mm: a "
                       f"{abs(gap):.2f} mm {what} between slices", first.path)
        shear = float(np.degrees(np.arccos(min(1.0, abs(step_vec @ normal) /
                                               max(np.linalg.norm(step_vec), 1e-12))))) if n > 1 else 0.0
        if shear > _ANGLE_TOL_DEG:
            self.issue(Severity.INFO, "dicom.sheared-stack",
                       f"slices are offset in-plane from one another (a {shear:.1f} degree "
                       "shear, as with gantry tilt); geometry follows the true positions",
                       first.path)
        window = None
        if first.window_center is not None and first.window_width and first.window_width > 0:
            window = (first.window_center, first.window_width)
        meta: dict[str, Any] = {
            "series_uid": self.series_uid,
            "study_uid": first.study_uid,
            "patient_position": first.patient_position,
            "slice_thickness_mm": thickness,
            "slice_spacing_mm": slice_step_mm,
            "slice_gap_mm": gap,
            "spacing_between_slices_tag_mm": first.spacing_between_slices_mm,
            "window": window,
            "frame_of_reference_uid": first.frame_of_reference_uid,
            "modality": first.modality,
            "description": first.series_description,
            "transfer_syntax": first.transfer_syntax,
            "bits_stored": first.bits_stored,
            "has_patient_geometry": True,
            "positions_lps": [None if p is None else p.tolist() for p in positions],
            "files": [None if p is None else p.header.path for p in slots],
            "frames": [None if p is None else p.source.frame for p in slots],
        }
        sources = [None if p is None else p.source for p in slots]
        shape_rc = (first.rows, first.cols)
        uid = f"{self.series_uid}#{len(self.stacks) + 1}"
        self.stacks.append(ImageStack(uid, self.series_uid, geometry, meta,
                                      _make_loader(sources, shape_rc), stack_issues))

    def build_flat(self, planes: list[_Plane]) -> None:
        """Images without 3D geometry: stacked in file order with 1 mm pixels, and said so."""
        first = planes[0].header
        planes = sorted(planes, key=lambda p: (p.header.instance_number or 0, p.header.path,
                                               p.source.frame))
        spacing = _usable_spacing(planes[0].geometry.pixel_spacing_rc) or (1.0, 1.0)
        geometry = VolumeGeometry.from_directions(
            (len(planes), first.rows, first.cols), (0.0, 0.0, 0.0), (1, 0, 0), (0, 1, 0),
            (spacing[1], spacing[0], 1.0))
        self.issue(Severity.WARNING, "dicom.no-geometry",
                   "the images carry no (0020,0032)/(0020,0037) patient geometry; they are "
                   "shown in file order without cross-references, and positions are not in "
                   "patient space", first.path)
        meta: dict[str, Any] = {
            "series_uid": self.series_uid, "patient_position": first.patient_position,
            "slice_thickness_mm": None, "slice_spacing_mm": None, "slice_gap_mm": None,
            "spacing_between_slices_tag_mm": None, "window": None,
            "frame_of_reference_uid": first.frame_of_reference_uid, "modality": first.modality,
            "description": first.series_description, "transfer_syntax": first.transfer_syntax,
            "bits_stored": first.bits_stored, "has_patient_geometry": False,
            "positions_lps": [None] * len(planes),
            "files": [p.header.path for p in planes], "frames": [p.source.frame for p in planes],
        }
        uid = f"{self.series_uid}#{len(self.stacks) + 1}"
        self.stacks.append(ImageStack(uid, self.series_uid, geometry, meta,
                                      _make_loader([p.source for p in planes],
                                                   (first.rows, first.cols))))


def _make_loader(sources: list[SliceSource | None], shape_rc: tuple[int, int]):  # type: ignore[no-untyped-def]
    def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        array, issues = decode_stack(sources, shape_rc)
        issues.extend(_padding_issues(array, sources))
        return array, issues
    return load


def _padding_issues(array: npt.NDArray[Any], sources: Sequence[SliceSource | None]) -> list[LoadIssue]:
    """Report all-black slices at either end of a stack (padding, as in LSS-MRI-AISSLab)."""
    if array.shape[0] < 2:
        return []
    black = [not np.any(array[k]) and sources[k] is not None for k in range(array.shape[0])]
    if all(black):
        return []
    out = []
    for k, is_black in enumerate(black):
        if is_black:
            src = sources[k]
            out.append(LoadIssue(Severity.INFO, "dicom.padding-slice",
                                 f"slice {k + 1} is entirely black (a padding slice?)",
                                 None if src is None else src.header.path))
    return out


def _build_series(headers: list[DicomFileHeader]) -> Series:
    first = headers[0]
    series = Series(uid=first.series_uid, description=first.series_description,
                    modality=first.modality, number=first.series_number,
                    frame_of_reference_uid=first.frame_of_reference_uid or None)
    builder = _StackBuilder(first.series_uid, _series_label(first))
    planes = [p for h in headers for p in _planes(h)]
    invalid: list[_Plane] = []
    for p in (planes[k] for k in _suspect_geometry(planes)):
        problem = p.geometry_problem()
        if problem is None:
            continue
        invalid.append(p)
        if len(invalid) <= _MAX_FILE_ISSUES:
            frame = f" (frame {p.source.frame + 1})" if p.header.n_frames > 1 else ""
            builder.issue(Severity.WARNING, "dicom.invalid-geometry",
                          f"{os.path.basename(p.header.path)}{frame}: {problem}; the image is left "
                          "out of the stack (or shown without patient geometry). Re-export it "
                          "from the scanner or PACS", p.header.path)
    if len(invalid) > _MAX_FILE_ISSUES:
        builder.issue(Severity.WARNING, "dicom.invalid-geometry",
                      f"{len(invalid) - _MAX_FILE_ISSUES} more image(s) have an invalid "
                      "position or orientation", invalid[_MAX_FILE_ISSUES].header.path)
    bad = {id(p) for p in invalid}
    with_geom = [p for p in planes if id(p) not in bad and p.has_geometry]
    without = [p for p in planes if id(p) not in bad and not p.has_geometry]
    if invalid and not with_geom:
        without.extend(invalid)
    if with_geom and without:
        pads = [p for p in without if os.path.basename(p.header.path).lower().startswith("pad")]
        if pads:
            builder.issue(Severity.INFO, "dicom.padding-slice",
                          f"{len(pads)} padding image(s) without geometry left out",
                          pads[0].header.path)
        others = [p for p in without if p not in pads]
        if others:
            builder.issue(Severity.WARNING, "dicom.missing-geometry",
                          f"{len(others)} image(s) lack (0020,0032)/(0020,0037) geometry and were "
                          "left out of the stack", others[0].header.path)
    if not with_geom:
        groups: dict[tuple[int, int], list[_Plane]] = defaultdict(list)
        for p in without:
            groups[(p.header.rows, p.header.cols)].append(p)
        for members in groups.values():
            builder.guarded(builder.build_flat, members)
    else:
        by_grid: dict[tuple[Any, ...], list[_Plane]] = defaultdict(list)
        for p in with_geom:
            by_grid[_split_key(p)].append(p)
        if len({k[:2] for k in by_grid}) > 1:
            sizes = sorted({f"{k[0]}x{k[1]}" for k in by_grid})
            builder.issue(Severity.WARNING, "dicom.mixed-matrix-in-series",
                          f"images of different sizes ({', '.join(sizes)}) are split into "
                          "separate stacks", first.path)
        for grid_planes in by_grid.values():
            for cluster in _orientation_clusters(grid_planes):
                normal = cluster[0].normal()
                along = np.array([p.geometry.position_lps for p in cluster],
                                 dtype=np.float64).reshape(-1, 3) @ normal
                groups_, alongs = builder._dedupe(cluster, along)
                for group, group_along in zip(groups_, alongs, strict=True):
                    blocks = builder.guarded(builder._blocks, list(group), np.asarray(group_along))
                    for slots, block_along in blocks or []:
                        builder.guarded(builder.build, slots, block_along)
        if len(builder.stacks) > 1:
            normals = [s.geometry.slice_normal for s in builder.stacks]
            if not all(is_parallel(normals[0], n) for n in normals[1:]):
                builder.issue(Severity.INFO, "dicom.angled-blocks",
                              f"slices are not all parallel: {len(builder.stacks)} blocks at "
                              "different angles, each shown as its own stack", first.path)
    series.stacks = builder.stacks
    series.issues = builder.issues
    return series


_NON_IMAGE_CLASSES = {"1.2.840.10008.1.3.10"}


def assemble(headers: Sequence[DicomFileHeader], path: str,
             issues: Sequence[LoadIssue] = ()) -> StudyCollection:
    """Group headers into patients, studies and series, and build each series' stacks."""
    collection = StudyCollection(path=path, issues=list(issues))
    images: list[DicomFileHeader] = []
    for h in headers:
        if h.sop_class_uid in _NON_IMAGE_CLASSES:
            continue
        if not h.has_pixels or h.rows <= 0 or h.cols <= 0:
            collection.issues.append(LoadIssue(
                Severity.INFO, "dicom.no-image",
                f"not an image ({h.modality or 'unknown modality'}, SOP class "
                f"{h.sop_class_uid or 'unknown'}); skipped", h.path))
            continue
        images.append(h)
        for note in h.notes:
            collection.issues.append(LoadIssue(
                Severity.WARNING, "dicom.invalid-value",
                f"the header has an invalid value ({note}); it was read as well as possible",
                h.path))
    by_series: dict[tuple[str, str, str, int], list[DicomFileHeader]] = defaultdict(list)
    for h in images:
        series_uid = h.series_uid
        if not series_uid:
            series_uid = f"folder:{os.path.dirname(h.path)}:{h.series_number}"
            collection.issues.append(LoadIssue(
                Severity.WARNING, "dicom.no-series-uid",
                "(0020,000E) Series Instance UID is missing; images are grouped by folder",
                h.path))
            h = _with_series(h, series_uid)
        # (0020,0011) Series Number is part of the key: some exports reuse one Series Instance
        # UID for several series (dcm_qa_ts stores each transfer syntax as its own series).
        number = -1 if h.series_number is None else h.series_number
        by_series[(h.patient_id, h.study_uid, series_uid, number)].append(h)
    numbers_per_uid: dict[str, set[int]] = defaultdict(set)
    for key in by_series:
        numbers_per_uid[key[2]].add(key[3])
    for uid, numbers in numbers_per_uid.items():
        if len(numbers) > 1:
            collection.issues.append(LoadIssue(
                Severity.WARNING, "dicom.series-uid-reused",
                f"series numbers {', '.join(str(n) for n in sorted(numbers))} share one Series "
                f"Instance UID ({uid}); they are kept apart by series number", None))

    patients: dict[str, Patient] = {}
    studies: dict[tuple[str, str], Study] = {}
    for (patient_id, study_uid, _, _), members in sorted(by_series.items(), key=lambda kv: kv[0]):
        first = members[0]
        patient = patients.get(patient_id)
        if patient is None:
            patient = patients[patient_id] = Patient(id=patient_id, name=first.patient_name)
        study = studies.get((patient_id, study_uid))
        if study is None:
            study = studies[(patient_id, study_uid)] = Study(
                uid=study_uid, description=first.study_description, date=first.study_date)
            patient.studies.append(study)
        try:
            series = _build_series(members)
        except Cancelled:
            raise
        except (Exception, RecursionError) as exc:  # one series, one issue
            collection.issues.append(LoadIssue(
                Severity.ERROR, "dicom.series-failed",
                f"{_series_label(first)} could not be assembled ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:160]}); its {len(members)} file(s) are left out. "
                "Re-export the series from the scanner or PACS", first.path))
            continue
        study.series.append(series)
    for study in studies.values():
        study.series.sort(key=lambda s: (s.number is None, s.number or 0, s.description))
        sizes = sorted({f"{k.geometry.shape_kji[1]}x{k.geometry.shape_kji[2]}"
                        for s in study.series for k in s.stacks})
        if len(sizes) > 1:
            collection.issues.append(LoadIssue(
                Severity.INFO, "dicom.mixed-matrix",
                f"study {study.uid} mixes image sizes: {', '.join(sizes)}", None))
    collection.patients = sorted(patients.values(), key=lambda p: p.id)
    return collection


def _with_series(h: DicomFileHeader, series_uid: str) -> DicomFileHeader:
    from dataclasses import replace

    return replace(h, series_uid=series_uid)


# -- the assembly cache ---------------------------------------------------------------------
#
# Re-opening an unchanged tree should cost about a directory walk. The header index spares the
# header reads; this cache spares the assembly: patients, studies, series and stacks (everything
# but pixels) are kept beside the index, keyed by a digest of the paths, sizes and modification
# times of the files they were built from, and checked like the index (a checksum line, then
# every field for its type). Damage of any kind means: assemble again, with an INFO issue.

#: Bump when the assembly (or what the cache stores) changes: older entries are then ignored.
_ASSEMBLY_VERSION = 1
_ASSEMBLY_MAGIC = b"LVASM"
ASSEMBLY_REBUILT_CODE = "assembly-cache.rebuilt"


class _DamagedAssembly(Exception):
    """Internal: a cached assembly is not what this module writes."""


def _issue_doc(issue: LoadIssue) -> list[Any]:
    return [int(issue.severity), issue.code, issue.message, issue.path]


def _issue_from_doc(doc: Any) -> LoadIssue:
    if type(doc) is not list or len(doc) != 4:
        raise _DamagedAssembly("an issue is not a record")
    severity, code, message, path = doc
    if (type(severity) is not int or severity not in {int(s) for s in Severity}
            or type(code) is not str or type(message) is not str
            or not (path is None or type(path) is str)):
        raise _DamagedAssembly("an issue is damaged")
    return LoadIssue(Severity(severity), code, message, path)


def _issues_from_doc(doc: Any) -> list[LoadIssue]:
    if type(doc) is not list:
        raise _DamagedAssembly("issues are not a list")
    return [_issue_from_doc(d) for d in doc]


def _finite_json(value: Any) -> bool:
    """Whether JSON keeps ``value`` as it is (NaN and infinities would come back as null)."""
    if type(value) is float:
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_finite_json(v) for v in value)
    return value is None or type(value) in (str, int, bool)


#: Stack meta entries, with the JSON types each may take (checked on load).
_META_SCALARS: dict[str, tuple[type, ...]] = {
    "series_uid": (str,), "study_uid": (str,), "patient_position": (str,),
    "slice_thickness_mm": (float, int, type(None)), "slice_spacing_mm": (float, int, type(None)),
    "slice_gap_mm": (float, int, type(None)),
    "spacing_between_slices_tag_mm": (float, int, type(None)),
    "frame_of_reference_uid": (str,), "modality": (str,), "description": (str,),
    "transfer_syntax": (str,), "bits_stored": (int,), "has_patient_geometry": (bool,),
}
_META_KEYS = frozenset(_META_SCALARS) | {"window", "positions_lps", "files", "frames"}


def _stack_doc(stack: ImageStack) -> dict[str, Any] | None:
    meta = dict(stack.meta)
    if set(meta) - _META_KEYS or not all(_finite_json(v) for v in meta.values()):
        return None
    return {"uid": stack.uid, "shape": list(stack.geometry.shape_kji),
            "affine": stack.geometry.ijk_to_lps.ravel().tolist(), "meta": meta,
            "issues": [_issue_doc(i) for i in stack.issues]}


def _collection_doc(collection: StudyCollection) -> dict[str, Any] | None:
    """The assembled structure as JSON-ready data, or None when it cannot be kept exactly."""
    patients = []
    for patient in collection.patients:
        studies = []
        for study in patient.studies:
            series_docs = []
            for series in study.series:
                stacks = [_stack_doc(k) for k in series.stacks]
                if any(s is None for s in stacks):
                    return None
                series_docs.append({
                    "uid": series.uid, "description": series.description,
                    "modality": series.modality, "number": series.number,
                    "for": series.frame_of_reference_uid,
                    "issues": [_issue_doc(i) for i in series.issues], "stacks": stacks})
            studies.append({"uid": study.uid, "description": study.description,
                            "date": study.date, "series": series_docs})
        patients.append({"id": patient.id, "name": patient.name, "studies": studies})
    return {"patients": patients, "issues": [_issue_doc(i) for i in collection.issues]}


def _field(doc: Any, key: str, *types: type) -> Any:
    if type(doc) is not dict or key not in doc:
        raise _DamagedAssembly(f"{key} is missing")
    value = doc[key]
    if type(value) not in types:
        raise _DamagedAssembly(f"{key} has the wrong type")
    return value


def _list_of(values: Any, types: tuple[type, ...], what: str) -> list[Any]:
    # The types of all values at once (map and set run in C: a stack of a 48,000-file tree has
    # tens of thousands of values, checked on every re-open).
    if type(values) is not list or not set(map(type, values)).issubset(types):
        raise _DamagedAssembly(f"{what} is not a list of the right type")
    return values


class _LazySources:
    """The pixel sources of a cached stack, resolved through the scan when pixels are first
    asked for (building 48,000 header records up front is what the cache avoids)."""

    def __init__(self, headers: Callable[[str], DicomFileHeader | None], files: list[str | None],
                 frames: list[int | None], shape_rc: tuple[int, int]) -> None:
        self.headers = headers
        self.files = files
        self.frames = frames
        self.shape_rc = shape_rc

    def __call__(self) -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        sources: list[SliceSource | None] = []
        for path, frame in zip(self.files, self.frames, strict=True):
            header = None if path is None else self.headers(path)
            sources.append(None if header is None or frame is None else SliceSource(header, frame))
        array, issues = decode_stack(sources, self.shape_rc)
        issues.extend(_padding_issues(array, sources))
        return array, issues


def _stack_from_doc(doc: Any, series_uid: str, known: Callable[[str], bool],
                    headers: Callable[[str], DicomFileHeader | None]) -> ImageStack:
    uid = _field(doc, "uid", str)
    shape = _list_of(_field(doc, "shape", list), (int,), "shape")
    affine = _list_of(_field(doc, "affine", list), (float, int), "affine")
    if len(shape) != 3 or len(affine) != 16:
        raise _DamagedAssembly("the geometry has the wrong size")
    geometry = VolumeGeometry((shape[0], shape[1], shape[2]),
                              np.asarray(affine, dtype=np.float64).reshape(4, 4))
    meta_doc = _field(doc, "meta", dict)
    if not set(meta_doc) <= _META_KEYS:
        raise _DamagedAssembly("the stack description has other entries")
    # Entries in their stored order (stacks without patient geometry have fewer of them).
    meta: dict[str, Any] = dict.fromkeys(meta_doc)
    for key, types in _META_SCALARS.items():
        if key in meta_doc:
            meta[key] = _field(meta_doc, key, *types)
    window = _field(meta_doc, "window", list, type(None))
    if window is not None:
        _list_of(window, (float, int), "window")
        if len(window) != 2:
            raise _DamagedAssembly("the window is not a pair")
        window = (window[0], window[1])
    meta["window"] = window
    n = geometry.shape_kji[0]
    positions = _list_of(_field(meta_doc, "positions_lps", list), (list, type(None)), "positions")
    given = [p for p in positions if p is not None]
    _list_of(list(itertools.chain.from_iterable(given)), (float, int), "a position")
    if not set(map(len, given)).issubset((3,)):
        raise _DamagedAssembly("a position is not three numbers")
    files = _list_of(_field(meta_doc, "files", list), (str, type(None)), "files")
    frames = _list_of(_field(meta_doc, "frames", list), (int, type(None)), "frames")
    if not len(positions) == len(files) == len(frames) == n:
        raise _DamagedAssembly("a stack's slices do not match its size")
    if any((f is None) != (k is None) or (k is not None and k < 0) for f, k in zip(files, frames, strict=True)):
        raise _DamagedAssembly("a slice's frame does not match its file")
    if not all(map(known, [f for f in files if f is not None])):
        raise _DamagedAssembly("a stack names a file that was not scanned")
    meta["positions_lps"] = positions
    meta["files"] = files
    meta["frames"] = frames
    loader = _LazySources(headers, files, frames, (geometry.shape_kji[1], geometry.shape_kji[2]))
    return ImageStack(uid, series_uid, geometry, meta, loader,
                      _issues_from_doc(_field(doc, "issues", list)))


def _collection_from_doc(doc: Any, path: str, known: Callable[[str], bool],
                         headers: Callable[[str], DicomFileHeader | None]) -> StudyCollection:
    collection = StudyCollection(path=path, issues=_issues_from_doc(_field(doc, "issues", list)))
    for p in _field(doc, "patients", list):
        patient = Patient(id=_field(p, "id", str), name=_field(p, "name", str))
        for st in _field(p, "studies", list):
            study = Study(uid=_field(st, "uid", str), description=_field(st, "description", str),
                          date=_field(st, "date", str))
            for s in _field(st, "series", list):
                series = Series(uid=_field(s, "uid", str),
                                description=_field(s, "description", str),
                                modality=_field(s, "modality", str),
                                number=_field(s, "number", int, type(None)),
                                frame_of_reference_uid=_field(s, "for", str, type(None)),
                                issues=_issues_from_doc(_field(s, "issues", list)))
                series.stacks = [_stack_from_doc(k, series.uid, known, headers)
                                 for k in _field(s, "stacks", list)]
                study.series.append(series)
            patient.studies.append(study)
        collection.patients.append(patient)
    return collection


class AssemblyCache:
    """Assembled structures of the folders of one scan, kept beside its header index.

    One file per scanned root (``assembly-<digest>.json`` in the index folder) holding one entry
    per assembled folder: its state key (:meth:`ScanResult.state_key`) and its structure.
    Use :meth:`assemble` for each folder, then :meth:`save` once.
    """

    def __init__(self, scan: ScanResult, cache: IndexCache | None) -> None:
        self.scan = scan
        self.cache = cache
        self._entries: dict[str, Any] | None = None
        self._damage: str | None = None
        self._changed = False
        self._known: set[str] | None = None
        self.n_hits = 0

    def _file(self) -> Path:
        assert self.cache is not None
        index_file = self.cache._file_for(self.scan.root)
        return index_file.with_name(index_file.name.replace("index-", "assembly-", 1))

    def _load(self) -> dict[str, Any]:
        if self._entries is not None:
            return self._entries
        self._entries = {}
        if self.cache is None:
            return self._entries
        try:
            data = self._file().read_bytes()
        except FileNotFoundError:
            return self._entries
        except OSError as exc:
            self._damage = f"it cannot be read ({exc.strerror or exc})"
            return self._entries
        try:
            self._entries = _parse_assembly_file(data, os.path.abspath(self.scan.root))
        except _DamagedAssembly as exc:
            self._damage = str(exc)
        except (Exception, RecursionError) as exc:  # any damage: assemble again
            self._damage = type(exc).__name__
        return self._entries

    def _scanned(self) -> set[str]:
        if self._known is None:
            self._known = set(self.scan.paths)
        return self._known

    def assemble(self, path: str, folder: str | None = None,
                 issues: Sequence[LoadIssue] = ()) -> StudyCollection:
        """The assembly of the scanned files below ``folder`` (all of them for None), from the
        cache when nothing they depend on changed; ``issues`` go first, as with
        :func:`assemble`."""
        if self.cache is None:
            headers = self.scan.headers if folder is None else self.scan.headers_under(folder)
            return assemble(headers, path, issues)
        entries = self._load()
        name = os.path.abspath(folder or self.scan.root) + "\n" + path
        key = self.scan.state_key(folder)
        rebuilt: list[LoadIssue] = []
        entry = entries.get(name)
        if self._damage is not None:
            rebuilt.append(_assembly_rebuilt_issue(path, self._damage))
            self._damage = None
        elif type(entry) is dict and entry.get("key") == key:
            try:
                with _gc_paused():
                    found = _collection_from_doc(entry.get("collection"), path,
                                                 self._scanned().__contains__, self.scan.header_for)
                found.issues[:0] = list(issues)
                self.n_hits += 1
                return found
            except Cancelled:
                raise
            except (Exception, RecursionError) as exc:  # any damage: assemble again
                why = str(exc) if isinstance(exc, _DamagedAssembly) else type(exc).__name__
                rebuilt.append(_assembly_rebuilt_issue(path, why))
        headers = self.scan.headers if folder is None else self.scan.headers_under(folder)
        collection = assemble(headers, path)
        doc = _collection_doc(collection)
        if doc is None:
            entries.pop(name, None)
        else:
            entries[name] = {"key": key, "collection": doc}
        self._changed = True
        collection.issues[:0] = [*issues, *rebuilt]
        return collection

    def save(self) -> None:
        """Write the entries if any changed; failures are silent (the cache is an optimisation)."""
        if self.cache is None or not self._changed or self._entries is None:
            return
        body = orjson.dumps({"version": _ASSEMBLY_VERSION, "root": os.path.abspath(self.scan.root),
                             "entries": self._entries})
        head = _assembly_head(body)
        with contextlib.suppress(OSError):
            atomic_write_bytes(self._file(), head + body)
        self._changed = False


def _assembly_rebuilt_issue(path: str, why: str) -> LoadIssue:
    return LoadIssue(Severity.INFO, ASSEMBLY_REBUILT_CODE,
                     f"the cached assembly of this folder could not be used ({why}); the series "
                     "were assembled again from the headers", path)


def _assembly_head(body: bytes) -> bytes:
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    return _ASSEMBLY_MAGIC + f"{_ASSEMBLY_VERSION} {digest}\n".encode("ascii")


def _parse_assembly_file(data: bytes, root: str) -> dict[str, Any]:
    """Check an assembly file: its entries, or {} for another version or root. Raises
    _DamagedAssembly (or whatever orjson raises) when it is damaged."""
    head, sep, body = data.partition(b"\n")
    if not sep or not head.startswith(_ASSEMBLY_MAGIC):
        raise _DamagedAssembly("it is not a lumbarview assembly cache")
    version, _, digest = head[len(_ASSEMBLY_MAGIC):].decode("ascii", "replace").partition(" ")
    if version != str(_ASSEMBLY_VERSION):
        return {}
    if hashlib.blake2b(body, digest_size=16).hexdigest() != digest:
        raise _DamagedAssembly("its checksum does not match its contents")
    doc = orjson.loads(body)
    if type(doc) is not dict or doc.get("version") != _ASSEMBLY_VERSION:
        raise _DamagedAssembly("it does not hold an assembly cache")
    if doc.get("root") != root:
        return {}
    entries = doc.get("entries")
    if type(entries) is not dict:
        raise _DamagedAssembly("it has no entries")
    return entries


def collection_to_doc(collection: StudyCollection) -> dict[str, Any] | None:
    """The assembled structure as JSON-ready data (what :class:`AssemblyCache` keeps), or None
    when it cannot be kept exactly. For other keepers of assemblies (the study database)."""
    return _collection_doc(collection)


def collection_from_doc(doc: Any, path: str, known: Callable[[str], bool],
                        headers: Callable[[str], DicomFileHeader | None]) -> StudyCollection:
    """The inverse of :func:`collection_to_doc`: ``known(file)`` says a file is still there,
    ``headers(file)`` gives its header when its pixels are first read.

    Raises
    ------
    ValueError
        The document is damaged or names a file that is not known.
    """
    try:
        return _collection_from_doc(doc, path, known, headers)
    except _DamagedAssembly as exc:
        raise ValueError(str(exc)) from None
