"""Use case: the planes the views show beyond their standard ones, and which view shows a series.

A custom plane (the axial aligned to a disc, an oblique axial planned by a line drawn on the
sagittal, the plane the engine measured on) samples the case's best volume, the one the case
loader would reformat from (:func:`lumbarview.services.case_loader.rank_volumes`), on square
pixels of that volume's finest spacing, and covers the whole volume. Each is returned as a
:class:`PlannedPlane` that the session applies as one undoable step; nothing here needs Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Case
from lumbarview.core.geometry import FloatArray, SlicePlane
from lumbarview.core.types import Series
from lumbarview.model.session import VIEW_NAMES, Session
from lumbarview.model.view_state import ViewState
from lumbarview.services.case_loader import DiscPlanes, rank_volumes
from lumbarview.slicing.planes import ViewPlane, covering_plane, disc_aligned_plane, plane_from_sagittal_line

# The axes builders want an output size; the covering plane then sets the real one.
_AXES_ONLY_RC = (8, 8)


@dataclass(frozen=True)
class PlannedPlane:
    """A custom plane for one view, ready to apply to a :class:`Session`.

    Attributes
    ----------
    view : str
        The view that shows it (``"axial"`` for the disc-aligned and line-planned planes).
    plane : ViewPlane
        The plane, covering ``source``.
    source : Series
        The series the plane samples.
    cursor_lps : FloatArray
        Where the cursor goes (on the plane), LPS mm.
    text : str
        The name of the undo step.
    """

    view: str
    plane: ViewPlane
    source: Series
    cursor_lps: FloatArray
    text: str

    def apply(self, session: Session) -> None:
        """Show the plane in its view, as one undoable step of ``session``."""
        session.set_plane(self.view, self.plane, self.source, self.text, cursor_lps=self.cursor_lps)


def best_volume(case: Case | None) -> Series | None:
    """The series custom planes sample: the case's best volume to reformat from (the finest
    voxels, then T2, then size), or None when the case has no single-stack volume."""
    volumes = rank_volumes(case) if case is not None else []
    return volumes[0] if volumes else None


def covering_view_plane(source: Series, right_lps: npt.ArrayLike, down_lps: npt.ArrayLike,
                        point_lps: npt.ArrayLike) -> ViewPlane:
    """The plane spanned by ``right_lps`` and ``down_lps`` through ``point_lps`` that covers
    ``source``'s volume, on square pixels of its finest spacing (see
    :func:`lumbarview.slicing.planes.covering_plane`)."""
    geometry = source.stacks[0].geometry
    return covering_plane(geometry, right_lps, down_lps, point_lps, min(geometry.spacing_mm))


def disc_aligned(case: Case | None, disc_planes: DiscPlanes, level: str) -> PlannedPlane | None:
    """The axial view on the plane of ``level``'s disc, through the disc centre.

    Parameters
    ----------
    case : Case or None
        The case on screen; its best volume is sampled.
    disc_planes : dict
        Level -> (centre, normal) in LPS, from the label maps
        (:func:`lumbarview.services.case_loader.disc_planes`).
    level : str
        A disc level, e.g. ``"L4-L5"``.

    Returns
    -------
    PlannedPlane or None
        None when the case has no labelled disc at ``level`` or no volume to sample.
    """
    found = disc_planes.get(level)
    source = best_volume(case)
    if found is None or source is None:
        return None
    centre, normal = found
    axes = disc_aligned_plane(centre, normal, min(source.stacks[0].geometry.spacing_mm), _AXES_ONLY_RC)
    plane = covering_view_plane(source, axes.right_lps, axes.down_lps, centre)
    return PlannedPlane("axial", plane, source, np.asarray(centre, dtype=np.float64), f"align axial to {level}")


def planned_from_line(case: Case | None, sagittal: SlicePlane | None, start_lps: npt.ArrayLike,
                      end_lps: npt.ArrayLike) -> PlannedPlane | None:
    """The oblique axial planned by a line drawn on the sagittal view, as a technologist plans
    an axial block: it contains the line and the sagittal normal, and the cursor goes to the
    line's midpoint (see :func:`lumbarview.slicing.planes.plane_from_sagittal_line`).

    Returns
    -------
    PlannedPlane or None
        None when the sagittal view shows no plane or the case has no volume to sample.

    Raises
    ------
    ValueError
        When the line is too short (or perpendicular to the sagittal plane) to plan a plane; the
        message says so.
    """
    source = best_volume(case)
    if sagittal is None or source is None:
        return None
    start = np.asarray(start_lps, dtype=np.float64).reshape(3)
    end = np.asarray(end_lps, dtype=np.float64).reshape(3)
    pixel_mm = min(source.stacks[0].geometry.spacing_mm)
    axes = plane_from_sagittal_line(start, end, sagittal, pixel_mm, _AXES_ONLY_RC)
    middle = (start + end) / 2
    plane = covering_view_plane(source, axes.right_lps, axes.down_lps, middle)
    return PlannedPlane("axial", plane, source, middle, "plan oblique axial")


def reset_planes(session: Session) -> None:
    """Every view that shows a custom plane back to its standard plane (one undo step each)."""
    for name, view in session.views.items():
        if view.custom_plane is not None:
            session.set_plane(name, None, text="standard plane")


def view_for_series(series: Series, view_names: tuple[str, ...] = VIEW_NAMES) -> str:
    """The view that shows ``series`` when it is picked in the browser: the one named after
    the orientation its stacks share, else the sagittal."""
    orientations = {stack.geometry.orientation.value for stack in series.stacks}
    if len(orientations) == 1 and orientations <= set(view_names):
        return orientations.pop()
    return "sagittal"


#: A view shows a plane already when their normals are within this angle ...
GO_TO_PARALLEL_DEG = 0.5
#: ... and the points to show lie within this distance of the plane the view would show.
GO_TO_ON_PLANE_MM = 1e-3


@dataclass(frozen=True)
class GoTo:
    """Where "go to this" takes the views (see :func:`plan_go_to`).

    Attributes
    ----------
    cursor_lps : FloatArray
        Where the cursor goes, LPS mm.
    planned : PlannedPlane or None
        A custom plane for one view when no visible view shows the wanted plane, else None.
    zoom : tuple of str
        The views to centre on ``cursor_lps`` (the ones that show the thing afterwards).
    field_mm : float
        How much around the cursor those views show, mm.
    """

    cursor_lps: FloatArray
    planned: PlannedPlane | None
    zoom: tuple[str, ...]
    field_mm: float

    def apply(self, session: Session) -> None:
        """Move the cursor (and show the custom plane, one undoable step) in ``session``."""
        if self.planned is not None:
            self.planned.apply(session)
        else:
            session.cursor.set_crosshair(self.cursor_lps)


def _would_show(state: ViewState, normal: FloatArray, points: FloatArray, centre: FloatArray) -> bool:
    """Whether ``state``'s view, once the cursor is at ``centre``, shows a plane of normal
    ``normal`` through ``points`` (a native view: its stored slice nearest to ``centre``)."""
    plane = state.plane
    if plane is None or state.series is None:
        return False
    if abs(float(plane.normal_lps @ normal)) < np.cos(np.radians(GO_TO_PARALLEL_DEG)):
        return False
    if state.mode == "native":
        best: float | None = None
        for stack in state.series.stacks:
            k = stack.geometry.nearest_slice(centre)
            if k is None:
                continue
            slice_plane = stack.geometry.slice_plane(k)
            distance = float(np.max(np.abs(slice_plane.signed_distance_mm(points))))
            best = distance if best is None else min(best, distance)
        return best is not None and best <= GO_TO_ON_PLANE_MM
    offsets = (points - centre) @ plane.normal_lps
    return float(np.max(np.abs(offsets))) <= GO_TO_ON_PLANE_MM


def plan_go_to(session: Session, centre_lps: npt.ArrayLike, *, right_lps: npt.ArrayLike | None = None,
               down_lps: npt.ArrayLike | None = None, points_lps: npt.ArrayLike | None = None,
               series: Series | None = None, prefer: str | None = None, field_mm: float = 60.0,
               text: str = "go to") -> GoTo:
    """The one "go to this" policy of the measurement table, the levels panel and the
    annotation table.

    A point (no plane: an annotation) moves the cursor there and centres every visible view on
    it. A thing drawn on a plane (``right_lps`` and ``down_lps`` span it; ``points_lps`` lie
    on it; the centre alone when not given) moves the cursor to its centre and centres the
    visible views that would then show it on their plane; when none would, one view gets a
    custom plane covering a volume: the view ``prefer`` when visible, else the oblique when
    visible, else the visible view whose plane is the most parallel. The plane samples
    ``series`` when it is a single-stack volume, else the case's best volume
    (:func:`best_volume`), else the series that view shows.

    Parameters
    ----------
    session : Session
        The session on screen (its layout says which views are visible; nothing is changed).
    centre_lps : array_like
        The centre of the thing to show, LPS mm.
    right_lps, down_lps : array_like, optional
        Unit vectors spanning the plane the thing was drawn or measured on.
    points_lps : array_like, optional
        The thing's points (N x 3, LPS mm).
    series : Series, optional
        The series the thing was drawn on or measured from.
    prefer : str, optional
        The view that should take a custom plane (the engine names the view it measured in).
    field_mm : float
        How much around the centre the views show, mm.
    text : str
        The name of the undo step when a custom plane is shown.

    Returns
    -------
    GoTo
        What to do; :meth:`GoTo.apply` does the session's part, the caller zooms the views in
        :attr:`GoTo.zoom`.
    """
    centre = np.asarray(centre_lps, dtype=np.float64).reshape(3)
    visible = session.visible_views()
    if right_lps is None or down_lps is None:
        return GoTo(centre, None, tuple(v.name for v in visible if v.plane is not None or v.series is not None),
                    field_mm)
    right = np.asarray(right_lps, dtype=np.float64).reshape(3)
    down = np.asarray(down_lps, dtype=np.float64).reshape(3)
    normal = np.cross(right, down)
    norm = float(np.linalg.norm(normal))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError("the plane to go to needs two independent directions")
    normal = normal / norm
    points = centre[None, :] if points_lps is None else np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    showing = tuple(v.name for v in visible if _would_show(v, normal, points, centre))
    if showing or not visible:
        return GoTo(centre, None, showing, field_mm)
    names = [v.name for v in visible]
    if prefer in names:
        target = session.views[str(prefer)]
    elif "oblique" in names:
        target = session.views["oblique"]
    else:
        target = max(visible, key=lambda v: abs(float(v.plane.normal_lps @ normal)) if v.plane is not None else -1.0)
    source = series if series is not None and len(series.stacks) == 1 else None
    source = source or best_volume(session.case) or target.series
    if source is None or not source.stacks:
        return GoTo(centre, None, (), field_mm)
    plane = covering_view_plane(source, right, down, centre)
    return GoTo(centre, PlannedPlane(target.name, plane, source, centre, text), (target.name,), field_mm)
