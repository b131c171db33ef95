"""Which subject a file of a plain folder belongs to, from its name (or its first folder).

A folder holding several subjects (``S01_t2.nii.gz``, ``S01_t2_seg.nii.gz``, ``S02_t2.nii.gz`` ...,
or ``VB2_05/VB2_05_t2.nii.gz``, ``VB2_06/...``) opens as one case per subject, never as one case
mixing them. The subject is the part of the name before the first word that says what the file
is (a sequence, ``seg``, ``mask``, ``label``, ``image``...), and it must hold a digit: ``S01``,
``sub-01``, ``VB2_06``, ``107``. A name that starts with such a word (``t2.nii.gz``,
``t2_seg-manual.nii.gz``, ``labels.nii.gz``) names no subject.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

#: Words that say what a file is, not whose it is (matched on a name's parts between ``_``,
#: ``-`` and ``.``, without case; a digit or a letter may follow: ``t2w``, ``mask1``).
_WHAT_WORDS = (
    "t1", "t2", "t2star", "pd", "flair", "stir", "dwi", "adc", "ciss", "dess", "tse", "space",
    "mr", "mri", "ct", "image", "img", "vol", "volume", "scan", "seg", "segmentation", "mask",
    "label", "labels", "labelmap", "gt", "roi", "manual", "sag", "ax", "cor", "sagittal",
    "axial", "coronal", "iso", "vertebrae", "dura", "cord", "nerveroots", "ganglions", "model",
)
_WHAT = re.compile(rf"^(?:{'|'.join(_WHAT_WORDS)})[0-9]*[a-z]?$", re.IGNORECASE)
_BIDS = re.compile(r"^sub-[A-Za-z0-9]+(?=_|$)")
_SUFFIXES = (".nii.gz", ".mrk.json", ".nii", ".mha", ".mhd", ".nrrd", ".json", ".stl", ".csv",
             ".tsv", ".pdf", ".xml", ".png", ".txt", ".raw", ".zraw")


def _name_stem(name: str) -> str:
    low = name.lower()
    for suffix in _SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def subject_of_name(name: str) -> str | None:
    """The subject a file or folder name gives, or None (see the module).

    >>> subject_of_name("S01_t2_seg.nii.gz"), subject_of_name("sub-01_T2w.nii.gz")
    ('S01', 'sub-01')
    >>> subject_of_name("VB2_06_t2_iso1mm.nii.gz"), subject_of_name("t2_seg-manual.nii.gz")
    ('VB2_06', None)
    """
    stem = _name_stem(name)
    bids = _BIDS.match(stem)
    if bids:
        return bids.group(0)
    subject = stem
    for token in re.finditer(r"[^_\-.]+", stem):
        if _WHAT.match(token.group(0)):
            subject = stem[: token.start()]
            break
    subject = subject.strip("_-.")
    return subject if any(c.isdigit() for c in subject) else None


def subject_of(path: Path, root: Path) -> str | None:
    """The subject of ``path`` under ``root``: its first folder's when that names one
    (``VB2_05/...``), else its file name's."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = (path.name,)
    if len(parts) > 1:
        folder = subject_of_name(parts[0])
        if folder is not None:
            return folder
    return subject_of_name(parts[-1])


def group_by_subject(root: Path, files: Iterable[Path], volumes: Iterable[Path]) -> dict[str | None, list[Path]]:
    """``files`` per subject, when the ``volumes`` among them name two subjects or more; else
    every file under None (one case, as a folder of one subject opens). Files that name no
    subject are under None too."""
    files = list(files)
    subjects = {subject_of(p, root) for p in volumes} - {None}
    if len(subjects) < 2:
        return {None: files} if files else {}
    out: dict[str | None, list[Path]] = {}
    for path in files:
        out.setdefault(subject_of(path, root), []).append(path)
    return out
