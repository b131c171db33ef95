"""Interleaved timing for the benchmarks: baseline and subject alternate (A B A B ...), so that
a shared machine's slow minute hurts both sides alike; every figure is printed with its spread.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """Repeated timings of one thing, in seconds (or a ratio)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def quartiles(self) -> tuple[float, float]:
        if len(self.values) < 4:
            return self.low, self.high
        q = statistics.quantiles(self.values, n=4, method="inclusive")
        return q[0], q[2]

    def text(self, unit: str = "s") -> str:
        q1, q3 = self.quartiles()
        if unit == "x":
            return (f"{self.median:8.2f}x  (min {self.low:.2f}, IQR {q1:.2f}-{q3:.2f}, max "
                    f"{self.high:.2f}; n={len(self.values)})")
        return (f"{self.median:8.4f} s  (min {self.low:.4f}, IQR {q1:.4f}-{q3:.4f}, max "
                f"{self.high:.4f}; n={len(self.values)})")


def interleaved(subjects: Mapping[str, Callable[[], object]], rounds: int,
                warmup: bool = True) -> dict[str, Figure]:
    """Time each subject once per round, in turn (A B C A B C ...), after one untimed call each
    when ``warmup`` (the page cache and imports are then warm for all of them)."""
    if warmup:
        for fn in subjects.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(rounds):
        for name, fn in subjects.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: Figure(tuple(values)) for name, values in times.items()}


def ratios(baseline: Figure, subject: Figure) -> Figure:
    """Per-round speed-up (baseline time / subject time): rounds pair neighbours in time."""
    return Figure(tuple(b / s for b, s in zip(baseline.values, subject.values, strict=True)))


def machine_note() -> str:
    """Cores and load: the figures of a shared machine mean little without them."""
    try:
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = "unknown"
    return f"{os.cpu_count()} cores, load average {load}"


def commit_note() -> str:
    """The commit the benchmark runs on (and whether the tree differs from it): a figure is
    only worth quoting with the code that produced it."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "commit unknown (no git)"
    if not head:
        return "commit unknown (not a git checkout)"
    return f"commit {head}" + (" with uncommitted changes" if dirty else "")


def header(name: str) -> str:
    """The first line every benchmark prints: what ran, on which commit, on what machine."""
    return f"{name}: {commit_note()}; {machine_note()}"
