"""Suspect-annotation flags: a sidecar file in the user's workspace (never in the dataset),
written atomically so that a crash or a kill during a save leaves the previous file intact."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lumbarview.core.events import Signal

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
    digest = hashlib.sha1(os.path.abspath(dataset_path).encode("utf-8")).hexdigest()[:16]
    return Path(workspace) / "flags" / f"{Path(dataset_path).name}-{digest}.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part:
    a temporary file in the same folder, flushed to disk, then renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class FlagStore:
    """Flags for one dataset; every change is saved at once."""

    flags_changed = Signal()

    def __init__(self, path: str | Path, dataset_path: str = "") -> None:
        self.path = Path(path)
        self.dataset_path = dataset_path
        self._flags: dict[str, Flag] = {}
        self.load_error: str | None = None
        self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.load_error = f"the flag file {self.path} cannot be read ({exc}); it is left as it is"
            return
        for item in doc.get("flags", []) if isinstance(doc, dict) else []:
            try:
                flag = Flag(str(item["annotation_id"]), str(item["case"]), str(item.get("note", "")),
                            float(item.get("created", 0.0)))
            except (KeyError, TypeError, ValueError):
                continue
            self._flags[flag.annotation_id] = flag

    def save(self) -> None:
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
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["case", "annotation", "note", "flagged_at_utc"])
        for f in rows:
            writer.writerow([f.case, f.annotation_id, f.note,
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.created))])
        lines.append(buffer.getvalue())
        atomic_write_text(Path(path), "".join(lines))
        return len(rows)
