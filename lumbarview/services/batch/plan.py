"""The plan of a batch run: its failure budget, a fingerprint of its inputs and its provenance
file (``OUT.meta.json`` beside ``--csv OUT``, written atomically, one entry per run)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import util
from pathlib import Path
from typing import Any

from lumbarview import __version__
from lumbarview.core.fs import atomic_write_text
from lumbarview.services.measure_all import Job

ENGINE_MODULE = "lumbarview.measure.engine"
#: The modules whose source is the engine (their sha256 together names it).
ENGINE_MODULES = (ENGINE_MODULE, "lumbarview.measure.canal", "lumbarview.measure.foramen", "lumbarview.measure.disc",
                  "lumbarview.measure.measurer", "lumbarview.measure.sampling", "lumbarview.measure.cutoffs",
                  "lumbarview.measure.results")


@dataclass(frozen=True)
class FailureBudget:
    """``--max-failures N`` (a count) or ``N%`` (of the cases of the run)."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> FailureBudget:
        """Raises ValueError with a message for the user."""
        match = re.fullmatch(r"\s*(\d{1,9}(?:\.\d+)?)\s*(%?)\s*", text)
        if match is None:
            raise ValueError(f"--max-failures takes a number of cases (e.g. 5) or a percentage (e.g. 10%), "
                             f"not {text!r}")
        number, percent = match.groups()
        if percent:
            value = float(number)
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"--max-failures {text}: a percentage is between 0% and 100%")
            return cls(percent=value)
        if "." in number:
            raise ValueError(f"--max-failures {text}: a number of cases is a whole number")
        return cls(count=int(number))

    def limit(self, total: int) -> int | None:
        """How many failed cases are allowed among ``total`` (None: no budget)."""
        if self.count is not None:
            return self.count
        if self.percent is not None:
            return math.floor(total * self.percent / 100.0 + 1e-9)
        return None

    def exceeded(self, failures: int, total: int) -> bool:
        limit = self.limit(total)
        return limit is not None and failures > limit

    def describe(self) -> str | None:
        if self.count is not None:
            return str(self.count)
        return None if self.percent is None else f"{self.percent:g}%"


def input_files(jobs: Sequence[Job]) -> list[str]:
    return sorted({p for job in jobs for p in (job.labels_path, job.image_path) if p})


def input_fingerprint(jobs: Sequence[Job]) -> str:
    """sha256 of every input file's path, size and modification time (not of the contents: a
    fingerprint of 447 series must not read them all)."""
    digest = hashlib.sha256()
    for path in input_files(jobs):
        try:
            st = os.stat(path)
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            digest.update(f"{path}\0missing\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def engine_version() -> dict[str, str]:
    """The measurement engine's identity: its module and the sha256 of the source of its
    modules (it has no version number of its own, and its internals change between releases)."""
    digest = hashlib.sha256()
    for name in ENGINE_MODULES:
        spec = util.find_spec(name)
        source = getattr(spec, "origin", None) if spec is not None else None
        try:
            if not source:
                raise OSError(name)
            digest.update(Path(source).read_bytes())
        except OSError:
            return {"module": ENGINE_MODULE, "source_sha256": "unknown"}
    return {"module": ENGINE_MODULE, "source_sha256": digest.hexdigest()[:16]}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def meta_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".meta.json")


class Provenance:
    """``OUT.meta.json``: what produced ``OUT``. Each run (the first and every resume) appends an
    entry; the file is replaced atomically at the start and at the end of a run."""

    def __init__(self, out: str | Path, dataset_path: str, jobs: Sequence[Job], runner: dict[str, Any],
                 options: dict[str, Any]) -> None:
        self.path = meta_path(out)
        self.warnings: list[str] = []
        self.doc = self._previous()
        fingerprint = input_fingerprint(jobs)
        engine = engine_version()
        previous = self.doc.get("runs")
        runs: list[Any] = previous if isinstance(previous, list) else []
        last = runs[-1] if runs and isinstance(runs[-1], dict) else {}
        if last and last.get("inputs_fingerprint") != fingerprint:
            self.warnings.append(f"the input files changed since the earlier run recorded in {self.path.name} "
                                 f"(their paths, sizes or times differ); its rows were kept as they are")
        if last and last.get("engine") != engine:
            self.warnings.append(f"the measurement engine changed since the earlier run recorded in "
                                 f"{self.path.name}; rows of earlier cases come from the earlier engine")
        self.run: dict[str, Any] = {
            "start": _now(), "end": None, "status": "running", "lumbarview_version": __version__,
            "engine": engine, "python": platform.python_version(), "host": platform.node(),
            "dataset": str(Path(dataset_path).resolve()), "inputs_fingerprint": fingerprint,
            "input_files": len(input_files(jobs)), "runner": runner, "options": options,
        }
        self.doc = {"tool": "lumbarview measure", "output": str(Path(out).name), "runs": [*runs, self.run]}
        self.write()

    def _previous(self) -> dict[str, Any]:
        try:
            if self.path.stat().st_size > 4_000_000:
                raise ValueError("too large")
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            self.warnings.append(f"{self.path} could not be read ({exc}); it is replaced by a new one")
            return {}
        return doc if isinstance(doc, dict) else {}

    def write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.doc, indent=2, allow_nan=False) + "\n")

    def finish(self, status: str, **counts: Any) -> None:
        self.run.update(end=_now(), status=status, **counts)
        self.write()
