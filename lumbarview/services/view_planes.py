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
