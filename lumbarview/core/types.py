"""Immutable data carriers shared by io, services and the views.

A dataset opens into ``Patient -> Study -> Series -> ImageStack``. A stack is one regular voxel
grid (a :class:`~lumbarview.core.geometry.VolumeGeometry`); a series whose slices are not all
parallel (angled axial blocks) has one stack per block.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.errors import CorruptFileError, LoadError
from lumbarview.core.geometry import VolumeGeometry


class Severity(enum.IntEnum):
    """How bad a load issue is. ERROR: something could not be opened or is wrong;
    WARNING: it opened but may mislead; INFO: worth knowing."""

    INFO = 10
    WARNING = 20
    ERROR = 30

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class LoadIssue:
    """A problem found while opening data, returned beside the data (never raised).

    ``code`` is a stable dotted identifier such as ``"dicom.uneven-spacing"``; tools and tests
    match on it, people read ``message``.
    """

    severity: Severity
    code: str
    message: str
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.label,
            "code": self.code,
            "message": self.message,
            "path": self.path,
        }


PixelLoader = Callable[[], tuple[npt.NDArray[Any], Sequence[LoadIssue]]]


class ImageStack:
    """One regular grid of slices whose pixels are decoded lazily, once, on first use.

    Parameters
    ----------
    uid : str
        Unique within a dataset (series UID plus block number).
    series_uid : str
        The series it belongs to.
    geometry : VolumeGeometry
        Where the grid sits in LPS mm.
    meta : Mapping
        Acquisition facts without DICOM keywords (``slice_thickness_mm``, ``slice_gap_mm``,
        ``patient_position``, ``window``, ``positions_lps``...).
    loader : callable
        Returns the ``[k, j, i]`` array and any issues found while decoding.
    issues : sequence of LoadIssue
        Issues found while assembling the stack.
    """

    def __init__(
        self,
        uid: str,
        series_uid: str,
        geometry: VolumeGeometry,
        meta: Mapping[str, Any],
        loader: PixelLoader,
        issues: Sequence[LoadIssue] = (),
    ) -> None:
        self.uid = uid
        self.series_uid = series_uid
        self.geometry = geometry
        self.meta: Mapping[str, Any] = dict(meta)
        self.issues: tuple[LoadIssue, ...] = tuple(issues)
        self._loader = loader
        self._pixels: npt.NDArray[Any] | None = None
        self._decode_issues: tuple[LoadIssue, ...] = ()
        self._lock = threading.Lock()
        #: Decodes one slice without the rest (set by readers that can, e.g. DICOM: one file).
        self.slice_loader: Callable[[int], npt.NDArray[Any]] | None = None
        #: Bumped by each :meth:`replace_region`: what is computed from the pixels (cached planes,
        #: label values) is keyed by ``(uid, revision)``, so an edit never shows stale pixels.
        self.revision = 0

    @property
    def n_slices(self) -> int:
        return self.geometry.shape_kji[0]

    @property
    def is_loaded(self) -> bool:
        return self._pixels is not None

    @property
    def decode_issues(self) -> tuple[LoadIssue, ...]:
        """Issues found while decoding pixels (empty until :meth:`pixels` has run)."""
        return self._decode_issues

    def pixels(self) -> npt.NDArray[Any]:
        """The ``[k, j, i]`` pixel array (read-only), decoding it on first call.

        Raises
        ------
        LoadError
            When no slice of the stack could be decoded.
        """
        with self._lock:
            if self._pixels is None:
                array, issues = self._checked_load()
                array.setflags(write=False)
                self._pixels = array
                self._decode_issues = tuple(issues)
            return self._pixels

    def versioned_pixels(self) -> tuple[int, npt.NDArray[Any]]:
        """``(revision, pixels)`` read together: a cache computing from these pixels keys its
        result by this revision, never by one an edit on another thread bumped meanwhile."""
        pixels = self.pixels()
        with self._lock:
            if self._pixels is not None:
                pixels = self._pixels
            return self.revision, pixels

    def replace_region(self, region: tuple[slice, ...], values: npt.ArrayLike) -> int:
        """Write ``values`` into ``pixels()[region]`` (``[k, j, i]`` slices), copy on write: the
        array readers already hold never changes under them; the stack then holds the new array
        and its :attr:`revision` is bumped (returned). Raises ValueError (nothing changed) when
        the values do not fit the region or would change the pixel type (a float into labels)."""
        self.pixels()
        with self._lock:
            current = self._pixels
            if current is None:  # released between the two calls: decode again
                current, issues = self._checked_load()
                self._decode_issues = tuple(issues)
            array = np.asarray(values)
            _check_fits(array, current.dtype)
            updated = np.array(current, copy=True)
            try:
                updated[region] = array
            except (ValueError, IndexError) as exc:
                raise ValueError(f"the values do not fit the region {region} of a {current.shape} "
                                 f"stack: {exc}") from exc
            updated.setflags(write=False)
            self._pixels = updated
            self.revision += 1
            return self.revision

    def _checked_load(self) -> tuple[npt.NDArray[Any], Sequence[LoadIssue]]:
        """The loader's array (not kept), of the shape the header declares."""
        array, issues = self._guarded_load()
        if array.shape != self.geometry.shape_kji:
            raise CorruptFileError(self.meta.get("source"),
                                   f"the pixel data decodes to {array.shape}, not the "
                                   f"{self.geometry.shape_kji} its header declares",
                                   "the file is damaged; re-copy it from its source")
        return array, issues

    def _guarded_load(self) -> tuple[npt.NDArray[Any], Sequence[LoadIssue]]:
        """The loader, with anything but a :class:`LoadError` turned into one: a damaged file
        must never surface as a bare exception (or a traceback) far from where it was read."""
        source = self.meta.get("source") or (self.meta.get("files") or [None])[0]
        try:
            return self._loader()
        except LoadError:
            raise
        except MemoryError as exc:
            raise LoadError(source, "there is not enough memory to decode this image",
                            "close other cases or programs, or open a smaller series") from exc
        except (Exception, RecursionError) as exc:  # a reader bug or a hostile file
            raise CorruptFileError(source, f"the pixel data cannot be decoded ({type(exc).__name__}: "
                                   f"{str(exc)[:160]})",
                                   "the file is damaged or in a variant lumbarview does not read; "
                                   "re-copy it from its source") from exc

    def slice_pixels(self, k: int) -> npt.NDArray[Any]:
        """Slice ``k`` alone: from the decoded array when there is one, else through
        :attr:`slice_loader` (one file of a DICOM series) when the reader gave one, else by
        decoding the stack without keeping it (another thread may be decoding the same stack
        to keep: a thumbnail never releases what a viewer is about to show)."""
        decoded = self._pixels
        if decoded is not None:
            one: npt.NDArray[Any] = decoded[k]
            return one
        if self.slice_loader is not None:
            return self.slice_loader(k)
        array, _issues = self._checked_load()
        return np.array(array[k])  # a copy: the whole decoded array is freed on return

    def release(self) -> None:
        """Drop decoded pixels to free memory; the next :meth:`pixels` decodes again. An edited
        stack (``revision > 0``) keeps its pixels: they exist nowhere else."""
        with self._lock:
            if self.revision == 0:
                self._pixels = None

    def __repr__(self) -> str:
        k, j, i = self.geometry.shape_kji
        return f"ImageStack({self.uid!r}, {k}x{j}x{i})"


def _check_fits(values: npt.NDArray[Any], dtype: np.dtype[Any]) -> None:
    """ValueError unless every value is stored in ``dtype`` unchanged (integers in range for
    integer pixels; otherwise a cast within the same kind)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.dtype.kind not in "biu" or (values.size and (int(values.min()) < info.min
                                                                 or int(values.max()) > info.max)):
            raise ValueError(f"values of type {values.dtype} do not all fit {dtype} pixels unchanged; "
                             f"give integers from {info.min} to {info.max}")
    elif not np.can_cast(values.dtype, dtype, casting="same_kind"):
        raise ValueError(f"values of type {values.dtype} cannot be written into {dtype} pixels unchanged")


@dataclass
class Series:
    """An acquisition: one or more stacks sharing (0020,000E) *Series Instance UID*."""

    uid: str
    description: str
    modality: str
    number: int | None
    stacks: list[ImageStack] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    frame_of_reference_uid: str | None = None

    @property
    def n_slices(self) -> int:
        return sum(s.n_slices for s in self.stacks)


@dataclass
class Study:
    uid: str
    description: str = ""
    date: str = ""
    series: list[Series] = field(default_factory=list)


@dataclass
class Patient:
    id: str
    name: str = ""
    studies: list[Study] = field(default_factory=list)


@dataclass
class StudyCollection:
    """Everything opened from one path: patients, and issues that belong to no series."""

    path: str
    patients: list[Patient] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)

    def all_series(self) -> list[Series]:
        return [s for p in self.patients for st in p.studies for s in st.series]

    def all_stacks(self) -> list[ImageStack]:
        return [k for s in self.all_series() for k in s.stacks]

    def all_issues(self) -> list[LoadIssue]:
        """Collection issues, then every series' and stack's issues, each once."""
        seen: set[LoadIssue] = set()
        out: list[LoadIssue] = []
        groups: list[Sequence[LoadIssue]] = [self.issues]
        for series in self.all_series():
            groups.append(series.issues)
            for stack in series.stacks:
                groups.append(stack.issues)
                groups.append(stack.decode_issues)
        for group in groups:
            for issue in group:
                if issue not in seen:
                    seen.add(issue)
                    out.append(issue)
        return out
