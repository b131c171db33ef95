"""A one-line progress bar on stderr: cases done/total, cases per second, time left."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """Redrawn in place (at most every ``min_interval_s``); ``finish()`` ends the line."""

    def __init__(self, total: int, stream: IO[str], *, width: int = 30, min_interval_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(0, total)
        self.stream = stream
        self.width = width
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.start = clock()
        self.done = 0
        self.failed = 0
        self._last_draw = float("-inf")

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        filled = int(self.width * self.done / self.total) if self.total else self.width
        left = _clock((self.total - self.done) / rate) if rate > 0 and self.done < self.total else "--:--"
        failed = f"  {self.failed} failed" if self.failed else ""
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} cases  "
                f"{rate:.2f} cases/s  {left} left{failed}")

    def update(self, done: int, failed: int = 0) -> None:
        self.done, self.failed = done, failed
        now = self.clock()
        if now - self._last_draw >= self.min_interval_s or done >= self.total:
            self._last_draw = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\r" + self.line() + "\n")
        self.stream.flush()
