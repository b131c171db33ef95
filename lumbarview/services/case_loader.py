"""Use case: get a case ready for viewing. Which series each view shows, decoding off the GUI
thread, a damaged series passed over for the next best, disc planes from the label maps.

Each view takes the best native series for its orientation (T2 before T1, then most slices);
where the case has none, it takes the best volume to reformat (the finest voxels, then T2) and
the view says so on the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Case
from lumbarview.core.errors import LumbarviewError, MeasurementError
from lumbarview.core.geometry import PlaneOrientation
from lumbarview.core.labels import Role
from lumbarview.core.types import LoadIssue, Series, Severity
from lumbarview.model.overlays import label_values_of
from lumbarview.model.session import LAYOUTS
from lumbarview.model.view_state import is_native_for
from lumbarview.model.window_presets import default_window
from lumbarview.services.annotations import Annotation, case_annotations, case_summary
from lumbarview.slicing.planes import standard_plane
from lumbarview.slicing.reformat import needs_resampler, warm_resampler

_ORIENTATIONS = {"sagittal": PlaneOrientation.SAGITTAL, "axial": PlaneOrientation.AXIAL,
                 "coronal": PlaneOrientation.CORONAL}
DiscPlanes = dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]


def _weight(series: Series) -> int:
    text = (series.description or "").upper()
    return 2 if "T2" in text else 1 if "T1" in text else 0


def _has_geometry(series: Series) -> bool:
    return bool(series.stacks) and bool(series.stacks[0].meta.get("has_patient_geometry", True))


def rank_native(case: Case, orientation: PlaneOrientation, exclude: frozenset[str] = frozenset()) -> list[Series]:
    """Series acquired in ``orientation``, best first: T2 before T1, then the most slices."""
    found = [s for s in case.series if s.uid not in exclude and _has_geometry(s) and is_native_for(s, orientation)]
    return sorted(found, key=lambda s: (_weight(s), s.n_slices), reverse=True)


def rank_volumes(case: Case, exclude: frozenset[str] = frozenset()) -> list[Series]:
    """Series to reformat from, best first: one stack (a regular volume) with the smallest
    largest voxel side (isotropic 1 mm before 4 mm sagittal slices), then T2, then size."""
    found = [s for s in case.series if s.uid not in exclude and len(s.stacks) == 1 and _has_geometry(s)
             and s.stacks[0].n_slices > 1]

    def key(s: Series) -> tuple[float, int, int]:
        geometry = s.stacks[0].geometry
        return (max(geometry.spacing_mm[0], geometry.spacing_mm[1], geometry.slice_spacing_mm),
                -_weight(s), -int(np.prod(geometry.shape_kji)))

    return sorted(found, key=key)


def choose_series(case: Case, views: tuple[str, ...], exclude: frozenset[str] = frozenset()
                  ) -> dict[str, Series | None]:
    """The series each view starts with (None: nothing to show)."""
    out: dict[str, Series | None] = {}
    volumes = rank_volumes(case, exclude)
    for name in views:
        orientation = _ORIENTATIONS.get(name)
        native = rank_native(case, orientation, exclude) if orientation is not None else []
        out[name] = native[0] if native else (volumes[0] if volumes else None)
    if all(v is None for v in out.values()):
        first = next((s for s in case.series if s.uid not in exclude and s.stacks), None)
        if first is not None and views:
            out[views[0]] = first
    return out


@dataclass
class CaseView:
    """A case ready to show: the series per view, the start of the cursor, annotations, the
    summary and the disc planes (level -> centre, normal in LPS)."""

    case: Case
    series: dict[str, Series | None]
    cursor_lps: npt.NDArray[np.float64]
    annotations: list[Annotation] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    disc_planes: DiscPlanes = field(default_factory=dict)
    shown_stacks: set[str] = field(default_factory=set)


def _needs_resampler(view: str, series: Series) -> bool:
    """Whether ``view`` showing ``series`` reformats off the volume's grid (an oblique plane
    through the voxels: the compiled resampler); a native view or a cut along the volume's
    axes (the slabs) does not."""
    orientation = _ORIENTATIONS.get(view, PlaneOrientation.CORONAL)  # the oblique view starts coronal
    if view in _ORIENTATIONS and is_native_for(series, orientation):
        return False
    if len(series.stacks) != 1:
        return True
    stack = series.stacks[0]
    plane = standard_plane(stack.geometry, orientation, stack.geometry.centre_lps(), snap_to_slice=False,
                           has_patient_geometry=bool(stack.meta.get("has_patient_geometry", True)))
    return needs_resampler(stack.geometry, plane)


def disc_planes(case: Case) -> DiscPlanes:
    """Each labelled disc's plane (the engine's own, :func:`disc_plane`), from the first 3D
    label map that has it."""
    out: DiscPlanes = {}
    for label_map in case.label_maps:
        if not label_map.stack.is_loaded or label_map.stack.n_slices < 2:
            continue
        from lumbarview.measure.measurer import disc_plane  # the engine (scipy): loaded on first use

        pixels = label_map.stack.pixels()
        present = {int(v) for v in np.unique(pixels)}
        for value in label_map.scheme.values_with_role(Role.DISC):
            level = label_map.scheme.entry(value).level
            if not level or level in out or value not in present:
                continue
            try:
                out[level] = disc_plane(pixels, label_map.stack.geometry, value)
            except MeasurementError:
                continue
    return out


def load_case(case: Case, layout: str = "2x2",
              window: Callable[[Any], Any] = default_window,
              visible: tuple[str, ...] | None = None) -> CaseView:
    """Decode what the views will show (call off the GUI thread). A series that cannot be
    decoded becomes an issue of the case and the next best is taken. ``visible`` names the views
    on screen (default: the layout's): the compiled resampler is loaded ahead only when one of
    them reformats off the volume's grid."""
    case.ensure_open()  # a lazily listed case: its headers first
    views = LAYOUTS.get(layout, LAYOUTS["2x2"])
    failed: set[str] = set()
    while True:
        chosen = choose_series(case, views, frozenset(failed))
        bad = None
        for series in {id(s): s for s in chosen.values() if s is not None}.values():
            try:
                for stack in series.stacks:
                    stack.pixels()
                    window(stack)
            except LumbarviewError as exc:
                case.issues.append(LoadIssue(Severity.ERROR, "image.unreadable", str(exc),
                                             series.stacks[0].meta.get("source")))
                bad = series
                break
        if bad is None:
            break
        failed.add(bad.uid)
    from lumbarview.services.dicom_overlays import bind_dicom_overlays  # on first use: not at launch

    bind_dicom_overlays(case)  # 60xx overlay planes as label layers on their slice
    for label_map in case.label_maps:
        try:
            label_map.stack.pixels()
        except LumbarviewError as exc:
            case.issues.append(LoadIssue(Severity.ERROR, "labels.unreadable", str(exc), label_map.source))
    case.label_maps[:] = [m for m in case.label_maps if m.stack.is_loaded]
    for label_map in case.label_maps:
        label_values_of(label_map)  # warmed here, off the GUI thread
    on_screen = views if visible is None else visible
    if any(_needs_resampler(name, series) for name, series in chosen.items()
           if series is not None and name in on_screen):
        warm_resampler()  # VTK (45 MB) only for a case whose views need it; else on first use
    shown = {k.uid for s in chosen.values() if s is not None for k in s.stacks}
    anchor = chosen.get("axial") or chosen.get("sagittal") or next((s for s in chosen.values() if s), None)
    if anchor is not None:
        mid = anchor.stacks[len(anchor.stacks) // 2]
        k, j, i = mid.geometry.shape_kji
        cursor = mid.geometry.index_to_lps(((i - 1) / 2, (j - 1) / 2, (k - 1) // 2))
    else:
        cursor = np.zeros(3)
    return CaseView(case, chosen, np.asarray(cursor, dtype=np.float64), case_annotations(case),
                    case_summary(case), disc_planes(case), shown)


def case_bytes(case: Case) -> int:
    """Bytes of the case's decoded pixels (images and label maps) held in memory now."""
    stacks = [k for s in case.series for k in s.stacks] + [m.stack for m in case.label_maps]
    return sum(k.pixels().nbytes for k in stacks if k.is_loaded)


def release_case(case: Case) -> int:
    """Drop the decoded pixels of a case (they decode again when it is shown); returns bytes freed."""
    freed = case_bytes(case)
    for stack in [k for s in case.series for k in s.stacks] + [m.stack for m in case.label_maps]:
        stack.release()
    return freed


class CaseMemory:
    """The decoded cases kept in memory, least recently shown first out, bounded by bytes: the
    current case (and the one prefetched next) always stay; older ones are released."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._order: list[Case] = []

    def touch(self, case: Case) -> None:
        self._order = [c for c in self._order if c is not case] + [case]

    def trim(self, keep: tuple[Case | None, ...] = ()) -> list[Case]:
        """Release least recently shown cases until the rest fit the budget; returns them."""
        released: list[Case] = []
        total = sum(case_bytes(c) for c in self._order)
        for case in list(self._order):
            if total <= self.max_bytes:
                break
            if any(case is k for k in keep):
                continue
            total -= release_case(case)
            self._order.remove(case)
            released.append(case)
        return released

    @property
    def cases(self) -> list[Case]:
        return list(self._order)
