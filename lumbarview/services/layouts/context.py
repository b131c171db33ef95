"""What every layout opener shares: the dataset being built, one guard per file read, DICOM
scanning and assembly per case folder, attachments."""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.errors import Cancelled, LoadError, NothingToOpenError, SpecialFileError
from lumbarview.core.labels import LabelScheme
from lumbarview.core.limits import ResourceLimitError
from lumbarview.core.types import LoadIssue, Severity, StudyCollection
from lumbarview.io.dicom.assemble import AssemblyCache
from lumbarview.io.dicom.scan import IndexCache, ProgressCallback, scan_paths

USER_SCHEME_FILE = "lumbarview-labels.json"
#: The issue code of a FIFO, device or socket met inside a dataset (skipped, never opened).
SPECIAL_FILE_CODE = "load.special-file"


def natural_key(text: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


class OpenContext:
    """One opening of one dataset root."""

    def __init__(self, root: Path, cache_dir: str | Path | None, use_cache: bool,
                 progress: ProgressCallback | None, cancel: threading.Event | None,
                 scheme: LabelScheme | None) -> None:
        self.root = root
        self.cache = IndexCache(cache_dir) if use_cache else None
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.progress = progress
        self.cancel = cancel
        self.user_scheme = scheme
        self.dataset = Dataset(path=str(root), layout="folder")
        self.dicom_error: NothingToOpenError | None = None
        #: The FIFOs, devices and sockets a layout's own listing of the whole tree met, as
        #: ``(path, kind)``; None when no layout listed the whole tree (they are then looked for).
        self.specials: list[tuple[str, str]] | None = None

    def issue(self, severity: Severity, code: str, message: str, path: str | Path | None,
              case: Case | None = None) -> None:
        target = case.issues if case is not None else self.dataset.issues
        target.append(LoadIssue(severity, code, message, None if path is None else str(path)))

    def special_file(self, exc: SpecialFileError, path: str | Path | None = None, case: Case | None = None) -> None:
        """A FIFO, device or socket met where a file was expected: one WARNING, skipped
        (the same issue whoever meets it, so a reader and the dataset walk count it once)."""
        self.issue(Severity.WARNING, SPECIAL_FILE_CODE, f"{exc.problem}. {exc.action}".strip(". ") + ".",
                   exc.path or path, case)

    def guarded(self, case: Case | None, what: Callable[[], Any], path: str | Path | None = None) -> Any:
        r"""Run one reader for one file: whatever goes wrong with that file becomes one ERROR
        issue and the rest of the dataset goes on. Readers raise typed LoadErrors;
        anything else (a reader bug met by a hostile file) is caught here too, as the last line."""
        if path is None:
            path = getattr(what, "args", (None,))[0] if isinstance(what, partial) and what.args else None
        try:
            return what()
        except Cancelled:
            raise
        except SpecialFileError as exc:
            self.special_file(exc, path, case)
            return None
        except LoadError as exc:
            code = "load.limit" if isinstance(exc, ResourceLimitError) else "load.failed"
            self.issue(Severity.ERROR, code, f"{exc.problem}. {exc.action}".strip(". ") + ".",
                       exc.path or path, case)
            return None
        except MemoryError:
            self.issue(Severity.ERROR, "load.memory", "there is not enough memory to read this file. "
                       "Close other programs or raise the machine's memory; the rest of the dataset opened",
                       path, case)
            return None
        except (Exception, RecursionError) as exc:
            self.issue(Severity.ERROR, "load.unreadable",
                       f"the file cannot be read ({type(exc).__name__}: {str(exc)[:160]}). It is damaged or "
                       "in a variant lumbarview does not read; the rest of the dataset opened", path, case)
            return None

    # -- DICOM helpers --------------------------------------------------------------------

    def dicom_cases(self, folder: Path, case_folders: Iterable[Path] | None = None) -> list[Case]:
        """Scan ``folder`` once and assemble each case folder (or each patient) apart."""
        scan = scan_paths(folder, cache=self.cache, progress=self.progress, cancel=self.cancel)
        self.dataset.issues.extend(scan.issues)
        # Assemblies come from the cache beside the header index when their files are unchanged.
        assembly = AssemblyCache(scan, self.cache)
        cases: list[Case] = []
        if case_folders is not None:
            for case_dir in case_folders:
                case = Case(id=case_dir.name)
                if not scan.count_under(str(case_dir)):
                    self.issue(Severity.WARNING, "case.no-images",
                               "this case folder holds no DICOM image", case_dir, case)
                else:
                    collection = assembly.assemble(str(case_dir), str(case_dir))
                    case.series = collection.all_series()
                    case.issues.extend(collection.issues)
                cases.append(case)
            assembly.save()
            return cases
        collection = assembly.assemble(str(folder))
        assembly.save()
        return self.cases_from_collection(collection)

    @staticmethod
    def cases_from_collection(collection: StudyCollection) -> list[Case]:
        cases = []
        for patient in collection.patients:
            case = Case(id=patient.id or "(no patient id)")
            case.series = [s for st in patient.studies for s in st.series]
            cases.append(case)
        if cases:
            cases[0].issues.extend(collection.issues)
        return cases

    # -- layouts --------------------------------------------------------------------------

    def attachments(self, folder: Path, exclude: set[Path], known: set[str] | None = None) -> None:
        for path in sorted(folder.iterdir()):
            if path in exclude or path.name.startswith(".") or path.is_dir():
                continue
            if known and path.name in known:
                continue
            self.dataset.attachments.append(str(path))
