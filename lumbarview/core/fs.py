"""File-system helpers for what the *user* owns (flags, sessions, measurement tables, caches).

Everything is written atomically: a temporary file in the same folder, flushed and fsynced, then
renamed over the target, and the folder fsynced, so a crash or a kill leaves the old file or the
new one, never a part. Temporary files carry a recognisable name so that the leftovers of a
killed save can be swept at the next start.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from io import BufferedReader
from pathlib import Path
from typing import Any

from lumbarview.core.errors import SpecialFileError

TMP_SUFFIX = ".lvtmp"

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def special_kind(mode: int) -> str | None:
    """What a file of this ``st_mode`` is when it is not a regular file ("a FIFO (named pipe)",
    "a character device"...), ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def special_file_error(path: str | Path, kind: str) -> SpecialFileError:
    """The error (and, through the reader's guard, the issue) for a path that is ``kind``."""
    return SpecialFileError(path, f"it is {kind}, not a regular file; it was not opened",
                            "Only regular files are read; replace it by the file it stands for")


def open_regular(path: str | Path) -> BufferedReader:
    """Open ``path`` for reading in binary mode, only if it is a regular file.

    Every reader of the user's data opens through here. The file is opened non-blocking first
    (opening a FIFO for reading would otherwise wait for a writer forever), then its *open
    descriptor* is checked with ``fstat`` (so a swap between a check and the open cannot slip a
    FIFO or a device through), and only a regular file is handed back, in blocking mode.

    Raises
    ------
    SpecialFileError
        A FIFO, device, socket or folder (a :class:`LoadError`: the reader's caller turns it
        into an issue and skips the file).
    OSError
        The file cannot be opened (missing, no permission).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(os.fspath(path), flags)
    try:
        kind = special_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise special_file_error(path, kind)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_bytes(path: str | Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`); at most ``limit`` of them."""
    with open_regular(path) as fh:
        return fh.read() if limit is None else fh.read(limit)


def check_regular(path: str | Path) -> None:
    """Refuse a path that is not a regular file without opening it (``os.stat``, which never
    blocks); readers still open through :func:`open_regular`, which checks the descriptor."""
    kind = special_kind(os.stat(os.fspath(path)).st_mode)
    if kind is not None:
        raise special_file_error(path, kind)


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
    atomic_write_parts(path, (data,))


def atomic_write_parts(path: str | Path, parts: Iterable[Any], durable: bool = True) -> None:
    """Write ``parts`` one after the other to ``path``: bytes as they are, an array straight
    from its memory (its ``tofile``, no copy), into a temporary file beside ``path`` that is then
    renamed over it, so that readers see the old or the new file, never a part. ``durable``
    flushes the file and its folder to disk first (False: a killed process still loses nothing,
    a power cut may; for many small files made durable together afterwards)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for part in parts:
                if hasattr(part, "tofile"):
                    part.tofile(fh)
                else:
                    fh.write(part)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_with(path: str | Path, write: Callable[[Path], object], suffix: str = "") -> None:
    """Have ``write`` (a library's writer that takes a file name) write a temporary file beside
    ``path`` named with ``suffix`` (the writer may choose its format by it), then rename it over
    ``path``: no reader sees a part; the temporary file never outlives a failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def _aside_name(path: Path, reason: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        backup = path.with_name(path.name + f".{reason}-{stamp}" + (f"-{n}" if n else ""))
        if not backup.exists():
            return backup
    raise OSError(f"cannot find a free backup name for {path}")


def move_aside(path: str | Path, reason: str = "unreadable") -> Path:
    """Keep a file that cannot be read: rename it to ``<name>.<reason>-<timestamp>`` beside
    itself (never overwriting another) and return the new path."""
    path = Path(path)
    backup = _aside_name(path, reason)
    os.replace(path, backup)
    fsync_dir(path.parent)
    return backup


def keep_aside(path: str | Path, reason: str = "previous") -> Path:
    """Keep the current content of ``path`` as ``<name>.<reason>-<timestamp>`` while ``path``
    itself stays (a hard link, or a copy written atomically where links are not possible), so
    that the next atomic write over ``path`` loses nothing and no moment leaves ``path`` missing."""
    path = Path(path)
    backup = _aside_name(path, reason)
    try:
        os.link(path, backup)
    except OSError:
        with open_regular(path) as fh:
            atomic_write_bytes(backup, fh.read())
    fsync_dir(path.parent)
    return backup


def refuse_inside(path: str | Path, root: str | Path, what: str = "the file") -> Path:
    """``path`` resolved, or ValueError when it lies inside ``root`` (a dataset: the user's
    data is read-only to lumbarview)."""
    target = Path(path).resolve()
    folder = Path(root).resolve()
    if target == folder or folder in target.parents:
        raise ValueError(f"{target} is inside the dataset ({folder}): lumbarview never writes into a dataset; "
                         f"choose a folder outside it for {what} (the default is your workspace)")
    return target
