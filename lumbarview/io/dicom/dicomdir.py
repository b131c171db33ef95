"""DICOMDIR (PS3.10 media directory) reading through pydicom's FileSet."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.fileset import FileSet

from lumbarview.core.fs import open_regular
from lumbarview.core.types import LoadIssue, Severity


@dataclass
class DicomdirListing:
    """The instances a DICOMDIR references, and what was wrong with it."""

    path: str
    files: list[str] = field(default_factory=list)
    n_patients: int = 0
    n_series: int = 0
    issues: list[LoadIssue] = field(default_factory=list)


def is_dicomdir(path: str | Path) -> bool:
    """True when ``path`` is a file named DICOMDIR (any case) or with the
    Media Storage Directory SOP Class in its file meta."""
    p = Path(path)
    if not p.is_file():
        return False
    if p.name.upper() == "DICOMDIR":
        return True
    try:
        with open_regular(p) as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head[128:132] == b"DICM" and b"1.2.840.10008.1.3.10" in head


def is_inside(file_path: str, folder_realpath: str) -> bool:
    """True when ``file_path`` resolves (links and ``..`` followed) inside ``folder_realpath``."""
    resolved = os.path.realpath(file_path)
    return os.path.commonpath([resolved, folder_realpath]) == folder_realpath


def read_dicomdir(path: str | Path) -> DicomdirListing:
    """List the files a DICOMDIR references. Never raises for a bad DICOMDIR: the problem is
    an issue, and the caller falls back to walking the folder."""
    listing = DicomdirListing(path=str(path))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fs = FileSet(str(path))
        for w in caught:
            # pydicom says it "will update" non-standard DICOMDIRs when writing; we never write.
            text = str(w.message).split(" and will be updated")[0]
            listing.issues.append(LoadIssue(
                Severity.INFO, "dicomdir.nonstandard",
                f"{text}; it was read as it is (lumbarview never modifies source data)", str(path)))
    except (Exception, RecursionError) as exc:  # a damaged DICOMDIR makes pydicom raise anything
        text = " ".join(str(exc).split())[:200]
        listing.issues.append(LoadIssue(
            Severity.WARNING, "dicomdir.unreadable",
            f"the DICOMDIR cannot be read ({type(exc).__name__}: {text}); the folder is scanned "
            "file by file instead", str(path)))
        return listing
    folder = os.path.realpath(os.path.dirname(os.path.abspath(str(path))))
    series: set[str] = set()
    patients: set[str] = set()
    try:
        instances = list(fs)
    except (Exception, RecursionError) as exc:
        listing.issues.append(LoadIssue(
            Severity.WARNING, "dicomdir.unreadable",
            f"the DICOMDIR's records cannot be read ({type(exc).__name__}); the folder is "
            "scanned file by file instead", str(path)))
        return listing
    for instance in instances:
        try:
            file_path = str(instance.path)
            series_uid = str(getattr(instance, "SeriesInstanceUID", "") or "")
            patient_id = str(getattr(instance, "PatientID", "") or "")
        except (Exception, RecursionError) as exc:
            listing.issues.append(LoadIssue(
                Severity.WARNING, "dicomdir.bad-reference",
                f"a record of the DICOMDIR names no usable file ({type(exc).__name__}); it was "
                "skipped", str(path)))
            continue
        if not is_inside(file_path, folder):
            listing.issues.append(LoadIssue(
                Severity.ERROR, "dicomdir.outside-reference",
                f"the DICOMDIR references {file_path!r}, which lies outside its folder; nothing "
                "was read from it. A DICOMDIR may only reference files in its own folder tree: "
                "check where the export came from", str(path)))
            continue
        listing.files.append(file_path)
        series.add(series_uid)
        patients.add(patient_id)
        if not os.path.exists(file_path):
            listing.issues.append(LoadIssue(
                Severity.WARNING, "dicomdir.missing-file",
                "the DICOMDIR references a file that is not on disk", file_path))
    listing.n_series = len(series)
    listing.n_patients = len(patients)
    if not listing.files:
        listing.issues.append(LoadIssue(Severity.WARNING, "dicomdir.empty",
                                        "the DICOMDIR references no images", str(path)))
    return listing
