"""What Help > About says: the version, the libraries the program runs on with their versions
and licences (read from their installed metadata), and where the program keeps its files."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lumbarview import __version__

#: The distributions lumbarview runs on (``pyproject.toml``'s dependencies), in that order.
LIBRARIES = ("numpy", "scipy", "pydicom", "pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "python-gdcm",
             "nibabel", "pynrrd", "psygnal", "platformdirs", "orjson", "threadpoolctl", "defusedxml", "Pillow",
             "highdicom", "PySide6-Essentials", "pyqtgraph", "superqt", "vtk", "pypdfium2", "fpdf2")
_UNKNOWN = "not recorded in this build (see the library's project page)"


@dataclass(frozen=True)
class Library:
    name: str
    version: str
    licence: str


@dataclass(frozen=True)
class About:
    version: str
    libraries: tuple[Library, ...]
    workspace: Path  # autosaved sessions, flags and reports
    cache: Path  # the header index and the demo dataset
    crash_log: Path  # where an unexpected error is written


def _field(meta: metadata.PackageMetadata, key: str) -> str:
    values = meta.get_all(key) or []
    return str(values[0]).strip() if values else ""


def licence_of(meta: metadata.PackageMetadata) -> str:
    """A distribution's licence from its metadata: the SPDX expression, else a short
    ``License`` field, else the licence classifiers; :data:`_UNKNOWN` when none says."""
    expression = _field(meta, "License-Expression")
    if expression:
        return expression
    field = _field(meta, "License")
    if field and "\n" not in field and len(field) <= 80:
        return field
    classifiers = [c.rsplit("::", 1)[-1].strip() for c in (meta.get_all("Classifier") or [])
                   if c.startswith("License ::") and "Other/Proprietary" not in c]
    return "; ".join(classifiers) or _UNKNOWN


def libraries(names: tuple[str, ...] = LIBRARIES) -> tuple[Library, ...]:
    out = []
    for name in names:
        try:
            meta = metadata.metadata(name)
        except metadata.PackageNotFoundError:
            out.append(Library(name, "not installed", _UNKNOWN))
            continue
        out.append(Library(name, _field(meta, "Version") or "?", licence_of(meta)))
    return tuple(out)


def about() -> About:
    from lumbarview.services.demo import default_demo_root
    from lumbarview.services.session_store import workspace_dir

    cache = default_demo_root().parent
    return About(__version__, libraries(), workspace_dir(), cache, cache / "crash.log")
