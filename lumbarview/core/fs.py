"""File-system helpers for what the *user* owns (flags, sessions, measurement tables, caches).

Everything is written atomically: a temporary file in the same folder, flushed and fsynced, then
renamed over the target, and the folder fsynced, so a crash or a kill leaves the old file or the
new one, never a part. Temporary files carry a recognisable name so that the leftovers of a
killed save can be swept at the next start.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

TMP_SUFFIX = ".lvtmp"


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new file in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sweep_temporaries(target: str | Path, older_than_s: float = 0.0) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes of ``target`` left behind
    (``.<name>.*.lvtmp`` beside it, and the ``.tmp`` of earlier versions). Returns what was removed."""
    target = Path(target)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    now = time.time()
    for pattern in (f".{target.name}.*{TMP_SUFFIX}", f".{target.name}.*.tmp"):
        for leftover in target.parent.glob(pattern):
            try:
                if now - leftover.stat().st_mtime >= older_than_s:
                    leftover.unlink()
                    removed.append(leftover)
            except OSError:
                continue
    return removed


def move_aside(path: str | Path, reason: str = "unreadable") -> Path:
    """Keep a file that cannot be read: rename it to ``<name>.<reason>-<timestamp>`` beside
    itself (never overwriting another) and return the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        suffix = f".{reason}-{stamp}" + (f"-{n}" if n else "")
        backup = path.with_name(path.name + suffix)
        if not backup.exists():
            os.replace(path, backup)
            fsync_dir(path.parent)
            return backup
    raise OSError(f"cannot find a free backup name for {path}")


def refuse_inside(path: str | Path, root: str | Path, what: str = "the file") -> Path:
    """``path`` resolved, or ValueError when it lies inside ``root`` (a dataset: the user's
    data is read-only to lumbarview)."""
    target = Path(path).resolve()
    folder = Path(root).resolve()
    if target == folder or folder in target.parents:
        raise ValueError(f"{target} is inside the dataset ({folder}): lumbarview never writes into a dataset; "
                         f"choose a folder outside it for {what} (the default is your workspace)")
    return target
