"""Interleaved timing for the benchmarks: baseline and subject alternate (A B A B ...), so that
a shared machine's slow minute hurts both sides alike; every figure is printed with its spread.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


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
