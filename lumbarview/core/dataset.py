"""The opened-dataset model: cases with their images, overlays and tables, all in LPS mm.

Overlays are bound to the image they belong to (``bound_to`` is an :class:`ImageStack` uid)
or live directly in patient space (points, meshes). Nothing here assumes that two grids are
aligned: a mask on a different grid keeps its own geometry.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.errors import Cancelled
from lumbarview.core.geometry import FloatArray
from lumbarview.core.labels import LabelScheme
from lumbarview.core.types import ImageStack, LoadIssue, Series

#: The ``path`` of a dataset opened from the study database: ``study:<Study Instance UID>``.
STUDY_PREFIX = "study:"


def storage_key(dataset_path: str) -> str:
    """The file-name key of what lumbarview keeps about a dataset (sessions, flags).

    A folder is keyed by its absolute path (its name and a digest of the path); a study from
    the study database by its Study Instance UID, wherever its files are."""
    if dataset_path.startswith(STUDY_PREFIX):
        uid = dataset_path[len(STUDY_PREFIX):]
        digest = hashlib.sha1(uid.encode("utf-8")).hexdigest()[:16]
        return f"study-{uid}" if uid.replace(".", "").isdigit() and len(uid) <= 64 else f"study-{digest}"
    digest = hashlib.sha1(os.path.abspath(dataset_path).encode("utf-8")).hexdigest()[:16]
    return f"{PurePath(dataset_path).name}-{digest}"


@dataclass
class LabelMap:
    """Integer labels on their own grid (``stack``), named through ``scheme``."""

    name: str
    stack: ImageStack
    scheme: LabelScheme
    source: str
    bound_to: str | None = None  # uid of the image stack it annotates
    resampled_from: str | None = None  # set when it was resampled onto its image's grid
    #: Why a volume whose name does not say "labels" was taken for one (None when its name or
    #: its layout says so), and the volume as an image, for :meth:`Case.treat_as_image`.
    guessed: str | None = None
    as_image: ImageStack | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Box:
    """A 2D box drawn on one slice (PASCAL VOC), with its corners in LPS.

    ``corners_lps`` are the box's outer corners (pixel edges) in display order: top-left,
    top-right, bottom-right, bottom-left.
    """

    name: str
    side: str | None  # "left" | "right"
    level: str | None  # "L4-L5"
    severity: int | None  # 0 normal .. 3 severe
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    stack_uid: str | None
    slice_index: int | None
    corners_lps: FloatArray | None
    source: str
    #: The slice the annotation file names (its file stem), for matching copies of one box.
    slice_name: str | None = None
    #: Other files holding this same box (a dataset that ships its annotations twice).
    copies: tuple[str, ...] = ()
    #: Set when another file's copy of this box says something else (what differs, and where):
    #: both copies are kept and shown, each marked.
    disagreement: str | None = None


@dataclass
class BoxSet:
    name: str
    source: str
    boxes: list[Box] = field(default_factory=list)


@dataclass
class PointSet:
    """Markup points or a curve (Slicer markups), converted to LPS."""

    name: str
    kind: str  # "points" | "curve" | "closed-curve" | "line"
    points_lps: FloatArray
    labels: list[str]
    source: str
    coordinate_system: str  # as found in the file ("LPS" or "RAS")
    #: Per point, what a dataset says about it (RSNA: level, condition, side, grade, series,
    #: instance, pixel); empty for plain markups. Point ``n``'s entry is ``info[n]``.
    info: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Mesh:
    """A triangle surface in LPS mm."""

    name: str
    vertices_lps: FloatArray
    faces: npt.NDArray[np.int64]
    source: str

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])


@dataclass
class Table:
    """A table joined to the case (gradings, overview, QC), rows as dicts."""

    name: str
    kind: str
    columns: list[str]
    rows: list[dict[str, Any]]
    source: str


# One lock for every lazily listed case: reading one case's headers takes milliseconds, and the
# lock keeps a case from being read twice at once (a background pass and the viewer's loader).
_OPENING = threading.RLock()


@dataclass
class Case:
    """One patient or subject.

    A layout may list a case before reading its files (``opener`` set): a big dataset then lists
    every case at once and reads each case's headers when it is first needed
    (:meth:`ensure_open`). ``opener`` fills the case in place and records what goes wrong as
    the case's issues; it never raises.
    """

    id: str
    series: list[Series] = field(default_factory=list)
    label_maps: list[LabelMap] = field(default_factory=list)
    box_sets: list[BoxSet] = field(default_factory=list)
    point_sets: list[PointSet] = field(default_factory=list)
    meshes: list[Mesh] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    sidecars: dict[str, dict[str, Any]] = field(default_factory=dict)  # stack uid -> JSON
    attachments: list[str] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    opener: Callable[[Case], None] | None = field(default=None, repr=False, compare=False)
    #: Series uid -> the guessed label map it was before :meth:`treat_as_image`.
    as_images: dict[str, LabelMap] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_open(self) -> bool:
        """True once the case's files have been read (always, for a case listed with them)."""
        return self.opener is None

    def ensure_open(self) -> bool:
        """Read the case's files if it was listed without them; True when they were read now.
        Safe to call from any thread."""
        if self.opener is None:
            return False
        with _OPENING:
            opener = self.opener
            if opener is None:
                return False
            try:
                opener(self)
            finally:
                self.opener = None
        return True

    def stacks(self) -> list[ImageStack]:
        return [k for s in self.series for k in s.stacks]

    def treat_as_image(self, label_map: LabelMap) -> Series:
        """Show a volume that was taken for a label map (:attr:`LabelMap.guessed`) as the image
        it may be instead: it leaves the label maps and becomes a series. Undone by
        :meth:`treat_as_labels`.

        Raises
        ------
        ValueError
            When the map is not one of this case's guessed label maps.
        """
        if label_map not in self.label_maps or label_map.as_image is None:
            raise ValueError(f"{label_map.name} is not a volume taken for labels by its values; "
                             "only those can be shown as an image")
        image = label_map.as_image
        series = Series(uid=image.uid, description=str(image.meta.get("description") or label_map.name),
                        modality=str(image.meta.get("modality") or "MR"), number=None, stacks=[image])
        self.label_maps.remove(label_map)
        self.series.append(series)
        self.as_images[series.uid] = label_map
        return series

    def treat_as_labels(self, series: Series) -> LabelMap:
        """Undo :meth:`treat_as_image`: the series is the label map it was taken for again.

        Raises
        ------
        ValueError
            When the series was not made by :meth:`treat_as_image`.
        """
        label_map = self.as_images.get(series.uid)
        if label_map is None or series not in self.series:
            raise ValueError(f"{series.description} was not a label map shown as an image")
        self.series.remove(series)
        del self.as_images[series.uid]
        self.label_maps.append(label_map)
        return label_map

    def stack(self, uid: str) -> ImageStack | None:
        return next((k for k in self.stacks() if k.uid == uid), None)


@dataclass
class Dataset:
    """Everything opened from one root folder."""

    path: str
    layout: str
    cases: list[Case] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)

    def case(self, case_id: str) -> Case | None:
        return next((c for c in self.cases if c.id == case_id), None)

    @property
    def pending_cases(self) -> list[Case]:
        """The cases listed but not read yet (see :attr:`Case.opener`)."""
        return [c for c in self.cases if not c.is_open]

    def open_all(self, cancel: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None) -> None:
        """Read every case listed without its files, reporting ``progress(n, total)``.

        Raises
        ------
        Cancelled
            When ``cancel`` is set before the last case is read.
        """
        pending = self.pending_cases
        for n, case in enumerate(pending, 1):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            case.ensure_open()
            if progress is not None:
                progress(n, len(pending))

    def all_issues(self) -> list[LoadIssue]:
        out = list(self.issues)
        for case in self.cases:
            out.extend(case.issues)
            for series in case.series:
                out.extend(series.issues)
                for stack in series.stacks:
                    out.extend(stack.issues)
                    out.extend(stack.decode_issues)
        seen: set[LoadIssue] = set()
        unique = []
        for issue in out:
            if issue not in seen:
                seen.add(issue)
                unique.append(issue)
        return unique
