"""Shrink a failing input while it keeps failing the same way (a simple delta-debugging pass).

Each candidate is run in a worker subprocess (kept alive between candidates; a crash costs a
restart), so crashes and hangs can be minimised like exceptions. Bounded by a time and a
number of checks; the smallest input found so far is kept.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import tempfile
import time
from pathlib import Path

from tests.fuzz.targets import ENVELOPE, TARGETS, split_envelope


class SingleRunner:
    """Runs one file at a time through a target in a (re)started worker."""

    def __init__(self, opts: argparse.Namespace, layouts: Path | None) -> None:
        from tests.fuzz.harness import Worker

        self._worker_cls = Worker
        self.opts = opts
        self.layouts = layouts
        self.logdir = Path(tempfile.mkdtemp(prefix="lvfuzz-min-"))
        (self.logdir / "cache").mkdir()
        self.w: Worker | None = None

    def _events(self, deadline: float) -> tuple[list[dict[str, object]], bool, bool]:
        import selectors

        assert self.w is not None and self.w.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.w.proc.stdout, selectors.EVENT_READ)
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return [], False, True
            sel.select(timeout=min(remaining, 0.5))
        finally:
            sel.close()
        events, eof = self.w.events()
        return events, eof, False

    def check(self, target: str, path: Path) -> str | None:
        """The failure signature of ``path`` (None: it passes)."""
        from tests.fuzz.harness import _faulthandler_sig

        if self.w is None:
            self.w = self._worker_cls(0, self.opts, self.layouts, self.logdir)
            start = time.monotonic()
            while not self.w.ready:
                events, eof, _ = self._events(start + 180)
                if eof:
                    raise SystemExit("minimise: the worker failed to start")
                self.w.ready = any(e.get("ev") == "ready" for e in events)
        w = self.w
        from tests.fuzz.harness import Job

        w.send(Job(target, "files", paths=[str(path)]), 0)
        deadline = time.monotonic() + self.opts.timeout
        sig: str | None = None
        while True:
            events, eof, timed_out = self._events(deadline)
            for ev in events:
                if ev.get("ev") == "fail":
                    sig = str(ev["sig"])
                elif ev.get("ev") == "done":
                    w.job = None
                    return sig
                elif ev.get("ev") == "died":  # the forked child died; the fork server lives on
                    w.job = None
                    rc = int(ev["rc"])  # type: ignore[call-overload]
                    name = signal.Signals(-rc).name if rc < 0 else f"exit{rc}"
                    return f"{name}@{_faulthandler_sig(w.stderr_text())}"
            if eof:
                rc = w.wait()
                self.w = None
                name = signal.Signals(-rc).name if rc < 0 else f"exit{rc}"
                return f"{name}@{_faulthandler_sig(w.stderr_text())}"
            if timed_out:
                w.kill()
                self.w = None
                return "hang"

    def close(self) -> None:
        if self.w is not None:
            self.w.kill()
            self.w = None


def ddmin(data: bytes, still_fails: callable, max_checks: int, deadline: float) -> bytes:  # type: ignore[valid-type]
    """Remove chunks (halving their size) while ``still_fails(candidate)``."""
    n = 2
    checks = 0
    while len(data) >= 2 and checks < max_checks and time.monotonic() < deadline:
        chunk = math.ceil(len(data) / n)
        reduced = False
        for start in range(0, len(data), chunk):
            candidate = data[:start] + data[start + chunk:]
            checks += 1
            if still_fails(candidate):
                data, n, reduced = candidate, max(n - 1, 2), True
                break
            if checks >= max_checks or time.monotonic() >= deadline:
                break
        if not reduced:
            if n >= len(data):
                break
            n = min(len(data), n * 2)
    return data


def minimise(target: str, path: Path, sig: str, opts: argparse.Namespace, layouts: Path | None,
             seconds: float = 90.0, max_checks: int = 400) -> Path:
    """Write ``<stem>.min<suffix>`` beside ``path``: the smallest input found that fails with
    ``sig`` (for hangs: only a few checks, each costs the timeout)."""
    envelope = TARGETS[target].envelope
    raw = path.read_bytes()
    key, body = split_envelope(raw) if envelope else (None, raw)
    work = Path(tempfile.mkdtemp(prefix="lvfuzz-mincand-")) / path.name
    runner = SingleRunner(opts, layouts)
    if sig == "hang":
        max_checks = min(max_checks, 12)

    def wrap(b: bytes) -> bytes:
        return ENVELOPE + (key or "").encode() + b"\n" + b if envelope else b

    def still_fails(candidate: bytes) -> bool:
        work.write_bytes(wrap(candidate))
        return runner.check(target, work) == sig

    try:
        if not still_fails(body):
            return path  # does not reproduce alone: keep as is
        small = ddmin(body, still_fails, max_checks, time.monotonic() + seconds)
    finally:
        runner.close()
    name = path.name
    dot = name.find(".", 1)
    out = path.with_name(f"{name[:dot]}.min{name[dot:]}" if dot > 0 else f"{name}.min")
    out.write_bytes(wrap(small))
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.minimise")
    p.add_argument("target", choices=sorted(TARGETS))
    p.add_argument("path")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--mem-mb", type=int, default=3072)
    p.add_argument("--seconds", type=float, default=90.0)
    p.add_argument("--layouts", default=None, help="folder of prepared phantom layouts (layout target)")
    opts = p.parse_args()
    runner = SingleRunner(opts, Path(opts.layouts) if opts.layouts else None)
    sig = runner.check(opts.target, Path(opts.path))
    runner.close()
    if sig is None:
        print(json.dumps({"path": opts.path, "passes": True}))
        return
    out = minimise(opts.target, Path(opts.path), sig, opts, Path(opts.layouts) if opts.layouts else None,
                   seconds=opts.seconds)
    print(json.dumps({"sig": sig, "minimised": str(out), "bytes": out.stat().st_size}))


if __name__ == "__main__":
    main()
