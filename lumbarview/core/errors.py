"""Typed errors. Every message says what is wrong and what the user can do about it."""

from __future__ import annotations

from pathlib import Path

from lumbarview.core.text import safe_line


class LumbarviewError(Exception):
    """Base of every error lumbarview raises on purpose."""


class LoadError(LumbarviewError):
    """Something could not be opened.

    Parameters
    ----------
    path : str or Path or None
        The file or folder concerned.
    problem : str
        What is wrong, in words a user understands.
    action : str
        What to do about it.
    """

    def __init__(self, path: str | Path | None, problem: str, action: str = "") -> None:
        self.path = None if path is None else str(path)
        # The problem often quotes the file (a header field, a parser's message): one
        # terminal-safe line, whatever the file held.
        self.problem = safe_line(problem)
        self.action = safe_line(action)
        where = f"{safe_line(self.path)}: " if self.path else ""
        text = f"{where}{self.problem}"
        if action:
            text += f". {self.action}"
        super().__init__(text)


class SpecialFileError(LoadError):
    """The path is a FIFO, a device or a socket: never opened for reading (it could block
    forever or never end)."""


class UnsupportedFormatError(LoadError):
    """The file is not in a format lumbarview reads."""


class CorruptFileError(LoadError):
    """The file claims a format but its content is damaged or truncated."""


class InconsistentSeriesError(LoadError):
    """A series' images do not form a consistent 3D geometry."""


class MissingDecoderError(LoadError):
    """The pixel data is compressed with a codec for which no decoder is installed."""


class NothingToOpenError(LoadError):
    """A path held nothing lumbarview could open."""


class MeasurementError(LumbarviewError):
    """A measurement could not be computed from its inputs."""


class Cancelled(LumbarviewError):
    """The user (or a newer request) cancelled the work; not a failure, never an issue."""
