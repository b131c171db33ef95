"""Suspect-annotation flags: a sidecar file in the user's workspace (never in the dataset),
written atomically so that a crash or a kill during a save leaves the previous file intact."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lumbarview.core.dataset import storage_key
from lumbarview.core.errors import LoadError
from lumbarview.core.events import Signal
from lumbarview.core.fs import atomic_write_text, move_aside, sweep_temporaries
from lumbarview.core.safe_json import json_path, read_json_guarded, type_name
from lumbarview.core.types import LoadIssue, Severity

_VERSION = 1


@dataclass(frozen=True)
class Flag:
    annotation_id: str  # stable: "<case>|<kind>|<source>|<details>"
    case: str
    note: str
    created: float


def default_flag_file(dataset_path: str, workspace: str | Path | None = None) -> Path:
    """Where the flags of a dataset live: ``$LUMBARVIEW_WORKSPACE`` or the user data folder,
    one file per dataset root."""
    if workspace is None:
        workspace = os.environ.get("LUMBARVIEW_WORKSPACE")
    if workspace is None:
        import platformdirs

        workspace = platformdirs.user_data_dir("lumbarview", appauthor=False)
    return Path(workspace) / "flags" / f"{storage_key(dataset_path)}.json"


#: Temporary files of a save younger than this are left alone at start (another lumbarview
#: may be saving the same flags right now); older ones are leftovers of a killed save.
TEMPORARY_GRACE_S = 10.0


def _flag_from(item: Any) -> Flag | None:
    """A flag from one entry of the file, or None when the entry is not a valid flag."""
    if not isinstance(item, dict):
        return None
    ident, case = item.get("annotation_id"), item.get("case")
    note, created = item.get("note", ""), item.get("created", 0.0)
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in (ident, case)):
        return None
    if not isinstance(note, str) or not isinstance(created, int | float) or isinstance(created, bool):
        return None
    if not math.isfinite(float(created)):
        return None
    return Flag(str(ident), str(case), note, float(created))


class FlagStore:
    """Flags for one dataset; every change is saved at once.

    Opening never fails and never loses the user's flags: leftover temporary files of killed
    saves are removed; a flags file that cannot be read (damaged, truncated, too deep, wrong
    structure) is first moved aside to a timestamped backup beside it, so the next save cannot
    overwrite it, and :attr:`notice` / :attr:`issue` say where it is. If even the move fails,
    nothing is saved during this session (the file is left untouched) and the notice says so.
    """

    flags_changed = Signal()

    def __init__(self, path: str | Path, dataset_path: str = "") -> None:
        self.path = Path(path)
        self.dataset_path = dataset_path
        self._flags: dict[str, Flag] = {}
        self.notice: str | None = None
        self.issue: LoadIssue | None = None
        self.backup_path: Path | None = None
        self.saving_disabled = False
        self.removed_temporaries = sweep_temporaries(self.path, older_than_s=TEMPORARY_GRACE_S)
        self._load()

    @property
    def load_error(self) -> str | None:
        """The notice about an unreadable flags file (kept for callers of the first API)."""
        return self.notice

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            doc = read_json_guarded(self.path, "flags file")
        except LoadError as exc:
            self._set_aside(exc.problem)
            return
        items = doc.get("flags") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            found = type_name(items) if isinstance(doc, dict) and "flags" in doc else "missing"
            self._set_aside(f"it is not a lumbarview flags file ($.flags is {found})")
            return
        bad: list[str] = []
        for n, item in enumerate(items):
            flag = _flag_from(item)
            if flag is None:
                bad.append(json_path(["flags", n]))
                continue
            self._flags[flag.annotation_id] = flag
        if bad:
            self._set_aside(f"{len(bad)} of its {len(items)} entries are not valid flags (first: {bad[0]}); "
                            f"the {len(self._flags)} valid flags were kept", severity=Severity.WARNING)
            if self.backup_path is not None:
                # The valid flags stay in use after a restart, the backup keeps everything; if this
                # save fails, the next change saves them and the backup holds them meanwhile.
                with contextlib.suppress(OSError):
                    self.save()

    def _set_aside(self, problem: str, severity: Severity = Severity.ERROR) -> None:
        try:
            self.backup_path = move_aside(self.path, "unreadable")
        except OSError as exc:
            self.saving_disabled = True
            self.notice = (f"The flags file {self.path} cannot be read ({problem}) and could not be moved "
                           f"aside ({exc.strerror or exc}); it is left untouched and new flags are not saved "
                           "in this session. Move or repair the file, then reopen the dataset.")
        else:
            self.notice = (f"The flags file {self.path} could not be read ({problem}). It was kept as "
                           f"{self.backup_path}; new flags go to a new file. Restore the backup by hand if "
                           "you need its flags.")
            severity = max(severity, Severity.WARNING)
        self.issue = LoadIssue(severity, "flags.unreadable", self.notice, str(self.path))

    def save(self) -> None:
        """Write the flags atomically (old file or new file, never a part)."""
        if self.saving_disabled:
            return
        doc = {"version": _VERSION, "dataset": self.dataset_path,
               "flags": [asdict(f) for f in self._flags.values()]}
        atomic_write_text(self.path, json.dumps(doc, indent=1))

    def flags(self) -> list[Flag]:
        return list(self._flags.values())

    def get(self, annotation_id: str) -> Flag | None:
        return self._flags.get(annotation_id)

    def flag(self, annotation_id: str, case: str, note: str) -> Flag:
        flag = Flag(annotation_id, case, note, time.time())
        self._flags[annotation_id] = flag
        self.save()
        self.flags_changed.emit()
        return flag

    def unflag(self, annotation_id: str) -> None:
        if self._flags.pop(annotation_id, None) is not None:
            self.save()
            self.flags_changed.emit()

    def export_csv(self, path: str | Path) -> int:
        rows = sorted(self._flags.values(), key=lambda f: (f.case, f.annotation_id))
        lines = []
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["case", "annotation", "note", "flagged_at_utc"])
        for f in rows:
            writer.writerow([f.case, f.annotation_id, f.note,
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.created))])
        lines.append(buffer.getvalue())
        atomic_write_text(path, "".join(lines))
        return len(rows)
