"""Fuzz lumbarview's loaders in worker subprocesses (a native crash kills a worker, not the run).

Usage (from the repository root, with the project's Python)::

    python -m tests.fuzz.harness [--minutes N] [--target T ...] [--seed S] [--workers N]
    python -m tests.fuzz.harness --count 200            # deterministic: 200 inputs per target
    python -m tests.fuzz.harness --replay tests/fuzz/findings [--replay DIR ...]

An input is a pure function of (seed, target, index): each worker builds it from the target's
seed corpus with :mod:`tests.fuzz.mutators`, so the parent can rebuild whichever input a worker
was reading when it died or hung. Outcomes (see :func:`classify`): success, a ``LoadError`` or
issues are fine; anything else is a FAILURE: another exception (signature: type and innermost
lumbarview frame), a native crash (signal; confirmed by rerunning the input alone in a fresh
worker), a hang (no answer within ``--timeout`` seconds, confirmed likewise), or memory beyond
the worker's address-space cap (``--mem-mb``, RLIMIT_AS).

Failures whose signature is listed in tests/fuzz/findings/findings.md are "known" (open
findings, waiting for their fix); anything else is "new", and the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import random
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzz import mutators
from tests.fuzz.targets import CORPUS, ENVELOPE, TARGETS, Ctx, Target, place_input, seeds, split_envelope, suffix_of

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FINDINGS = HERE / "findings"
FINDINGS_MD = FINDINGS / "findings.md"
LAYOUT_NAMES = ("sudirman", "unidata", "spider", "aisslab", "bids")


# ================================================================================================
# Inputs
# ================================================================================================
_CORPUS_CACHE: dict[str, list[tuple[str, bytes]]] = {}


def corpus(target: str) -> list[tuple[str, bytes]]:
    found = _CORPUS_CACHE.get(target)
    if found is None:
        found = _CORPUS_CACHE[target] = [(p.name, p.read_bytes()) for p in seeds(target)]
    return found


def make_input(target: Target, seed: int, index: int) -> tuple[str, bytes]:
    """Input ``index`` of ``target`` for run ``seed``: (file name, bytes)."""
    items = corpus(target.name)
    if not items:
        raise SystemExit(f"fuzz: no seed corpus for {target.name}; run python -m tests.fuzz.make_corpus")
    rng = random.Random(f"{seed}:{target.name}:{index}")
    name, data = items[rng.randrange(len(items))]
    if target.envelope:
        key, body = split_envelope(data)
        kind = target.kind or mutators.kind_for_name(key or name)
        pool = [split_envelope(d)[1] for n, d in items if suffix_of(split_envelope(d)[0] or n) == suffix_of(key or "")]
        body = mutators.mutate(body, rng, pool, kind)
        return name, ENVELOPE + (key or "").encode() + b"\n" + body
    kind = target.kind or mutators.kind_for_name(name)
    return name, mutators.mutate(data, rng, [d for _, d in items], kind)


def read_input_file(path: Path) -> tuple[str, bytes]:
    """(name, bytes) of a stored input. ``NAME.lvgz`` holds NAME gzipped: a finding that needs a
    big but repetitive file (a 200,000-character CSV cell) stays a few hundred bytes in git."""
    if path.name.endswith(".lvgz"):
        return path.name[: -len(".lvgz")], gzip.decompress(path.read_bytes())
    return path.name, path.read_bytes()


# ================================================================================================
# Worker side
# ================================================================================================
def signature(exc: BaseException) -> str:
    """``Type@path/in/lumbarview.py:function`` of the innermost lumbarview frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/lumbarview/" in f.filename.replace(os.sep, "/")]
    frame = ours[-1] if ours else (frames[-1] if frames else None)
    where = "?" if frame is None else f"{_short(frame.filename)}:{frame.name}"
    return f"{type(exc).__name__}@{where}"


def _short(filename: str) -> str:
    text = filename.replace(os.sep, "/")
    i = text.rfind("/lumbarview/")
    return text[i + 1:] if i >= 0 else Path(text).name


def classify(target: Target, path: Path, ctx: Ctx) -> tuple[str, str | None, str | None]:
    """(outcome, signature, detail): outcome "ok", "rejected" (a LoadError) or "failure"."""
    from lumbarview.core.errors import LoadError

    try:
        target.run(path, ctx)
    except LoadError:
        return "rejected", None, None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        if isinstance(exc, MemoryError):
            return "failure", "memory:" + signature(exc), "MemoryError (over the worker's address-space cap)"
        return "failure", signature(exc), f"{type(exc).__name__}: {str(exc)[:300]}"
    return "ok", None, None


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


#: The volume budget fuzzed inputs run under (LUMBARVIEW_MAX_VOLUME_MB in the workers), and
#: what one input may take at its peak: the decoded volume, one working copy of it (a rescale,
#: the inflated bytes beside the array) and a 100 MB margin. Above that, an allocation escaped
#: the budgets: an "alloc" failure, even when the address-space cap did not stop it.
FUZZ_VOLUME_MB = 256
ALLOC_MARGIN_MB = 100


def allowance_kb() -> int:
    return (2 * FUZZ_VOLUME_MB + ALLOC_MARGIN_MB) * 1024


def _status_kb(field: str) -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_peak() -> bool:
    """Reset this process's peak resident size (Linux: ``5`` into ``/proc/self/clear_refs``), so
    that the peak of one input can be measured; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def run_batch(cmd: dict[str, Any], ctx: Ctx) -> None:
    """One batch, in a child forked for it: events on stdout, "done" at the end."""
    target = TARGETS[cmd["target"]]
    counts: dict[str, int] = defaultdict(int)
    guarded: set[str] = set()
    t0 = time.perf_counter()
    indices = range(cmd["start"], cmd["start"] + cmd["count"]) if cmd["cmd"] == "fuzz" else range(len(cmd["paths"]))
    stop_after = float(cmd.get("max_seconds") or 0)
    next_i = None
    peak_input_kb = 0
    if target.setup is not None:  # what every input of the batch shares (the viewer), not measured per input
        target.setup(ctx)
    for i in indices:
        if stop_after and time.perf_counter() - t0 > stop_after:
            next_i = i  # the batch ran long (slow inputs): hand the rest back
            break
        if cmd["cmd"] == "fuzz":
            try:
                name, data = make_input(target, cmd["seed"], i)
            except Exception as exc:  # a mutator bug: the harness's own, not a finding
                _emit({"ev": "note", "i": i, "text": f"mutator error on {target.name} input {i}: "
                       f"{signature(exc)} {exc}"})
                counts["skipped"] += 1
                continue
        else:
            name, data = read_input_file(Path(cmd["paths"][i]))
        _emit({"ev": "start", "i": i})
        ctx.guarded.clear()
        try:
            path = place_input(target, data, name, ctx)
        except OSError as exc:
            _emit({"ev": "note", "i": i, "text": f"could not place the input: {exc}"})
            counts["skipped"] += 1
            continue
        if path is None:
            counts["skipped"] += 1
            continue
        measured = _reset_peak()
        base_kb = _status_kb("VmRSS")
        outcome, sig, detail = classify(target, path, ctx)
        grown_kb = _status_kb("VmHWM") - base_kb if measured else 0
        peak_input_kb = max(peak_input_kb, grown_kb)
        short = next((e for e in ctx.guarded if isinstance(e, MemoryError)), None)
        if outcome != "failure" and short is not None:  # "not enough memory" where a budget should refuse
            outcome, sig, detail = "failure", "memory:" + signature(short), "MemoryError (caught by a last-line guard)"
        elif outcome != "failure" and grown_kb > allowance_kb():
            outcome, sig = "failure", f"alloc:{target.name}"
            detail = (f"the input took {grown_kb / 1024:,.0f} MB at its peak, more than the {FUZZ_VOLUME_MB} MB "
                      f"volume budget twice plus {ALLOC_MARGIN_MB} MB")
        counts[outcome] += 1
        if outcome == "failure":
            _emit({"ev": "fail", "i": i, "sig": sig, "detail": detail})
        elif cmd["cmd"] == "files":
            _emit({"ev": "pass", "i": i, "outcome": outcome})
        guarded.update("guarded:" + signature(e) for e in ctx.guarded)
    _emit({"ev": "done", "counts": counts, "rss_kb": _rss_kb(), "seconds": time.perf_counter() - t0,
           "guarded": sorted(guarded), "next": next_i, "input_peak_kb": peak_input_kb})


def worker_main(mem_mb: int) -> None:
    """A fork server: imports the loaders once, then runs each batch in a forked child, so that
    a native crash costs a fork (milliseconds), not a new interpreter. The child has the
    address-space cap; a child that dies is reported as a "died" event with its signal."""
    import faulthandler
    import resource
    import warnings

    faulthandler.enable(file=sys.stderr, all_threads=False)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    warnings.simplefilter("ignore")
    import logging

    for name in ("pydicom", "PIL"):  # their log lines about damaged files would flood stderr
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    scratch_root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    scratch = Path(tempfile.mkdtemp(prefix="lvfuzz-w", dir=scratch_root))
    layouts = os.environ.get("LVFUZZ_LAYOUTS")
    import lumbarview.core.labels
    import lumbarview.io.annotations
    import lumbarview.io.dicom.assemble
    import lumbarview.io.dicom.scan
    import lumbarview.io.mesh
    import lumbarview.io.volume
    import lumbarview.model.flags
    import lumbarview.services.open_dataset
    import lumbarview.services.open_study  # noqa: F401 - imported once, before "ready"

    for t in TARGETS:  # the seeds too
        corpus(t)
    _emit({"ev": "ready"})
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: one batch, then gone
                code = 0
                try:
                    if mem_mb > 0:
                        with contextlib.suppress(ValueError, OSError):
                            resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
                    run_batch(cmd, Ctx(scratch=scratch, layouts=Path(layouts) if layouts else None))
                except BaseException:
                    traceback.print_exc()
                    code = 3
                finally:
                    with contextlib.suppress(BaseException):
                        sys.stdout.flush()
                        sys.stderr.flush()
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if os.WIFSIGNALED(status):
                _emit({"ev": "died", "rc": -os.WTERMSIG(status)})
            elif os.WEXITSTATUS(status) != 0:
                _emit({"ev": "died", "rc": os.WEXITSTATUS(status)})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ================================================================================================
# Parent side
# ================================================================================================
@dataclass
class Job:
    target: str
    cmd: str  # "fuzz" or "files"
    start: int = 0
    count: int = 0
    paths: list[str] = field(default_factory=list)
    confirm: str | None = None  # "crash" / "hang": rerun of one suspect input, in a fresh worker
    confirm_of: dict[str, Any] | None = None
    remainder: bool = False  # the rest of a batch that was cut short (dropped after a timed run's end)


def _faulthandler_sig(text: str) -> str:
    """Innermost lumbarview frame of the last faulthandler dump in a worker's stderr."""
    dump = text[text.rfind("Fatal Python error"):] if "Fatal Python error" in text else text[-8000:]
    for m in re.finditer(r'File "([^"]+)", line \d+ in (\S+)', dump):
        if "/lumbarview/" in m.group(1):
            return f"{_short(m.group(1))}:{m.group(2)}"
    return "?"


class Worker:
    def __init__(self, wid: int, opts: argparse.Namespace, layouts: Path | None, logdir: Path) -> None:
        self.wid = wid
        env = dict(os.environ)
        env.update({"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "MKL_NUM_THREADS": "1", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
                    "PYTHONHASHSEED": "0", "LUMBARVIEW_CACHE_DIR": str(logdir / "cache"),
                    "LUMBARVIEW_MAX_VOLUME_MB": str(FUZZ_VOLUME_MB), "QT_QPA_PLATFORM": "offscreen",
                    "VTK_DEFAULT_OPENGL_WINDOW": "vtkOSOpenGLRenderWindow", "LUMBARVIEW_NO_DIALOGS": "1",
                    "LUMBARVIEW_WORKSPACE": str(logdir / "workspace")})
        if layouts is not None:
            env["LVFUZZ_LAYOUTS"] = str(layouts)
        self.stderr_path = logdir / f"worker{wid}-{time.monotonic_ns()}.err"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.harness", "--worker", "--mem-mb", str(opts.mem_mb)],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            start_new_session=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.ready = False
        self.used = False
        self.sent = time.monotonic()
        self.job: Job | None = None
        self.current: int | None = None
        self.started = time.monotonic()
        self.spawned = time.monotonic()
        self.peak_kb = 0

    def send(self, job: Job, seed: int, max_seconds: float = 0.0) -> None:
        self.job = job
        self.used = True
        self.sent = time.monotonic()
        self.current = None
        self.started = time.monotonic()
        msg = {"cmd": job.cmd, "target": job.target, "seed": seed, "start": job.start, "count": job.count,
               "paths": job.paths, "max_seconds": max_seconds}
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def events(self) -> tuple[list[dict[str, Any]], bool]:
        """(complete events read, eof)."""
        assert self.proc.stdout is not None
        eof = False
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            self.buffer += chunk
        out = []
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out, eof

    def kill(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.wait()

    def wait(self) -> int:
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        self._stderr.close()
        return rc

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Failure:
    target: str
    sig: str
    kind: str  # "exception", "memory", "crash", "hang"
    detail: str
    count: int = 0
    source: dict[str, Any] = field(default_factory=dict)  # {"seed","i"} or {"path"}
    known: bool = False
    saved: str | None = None


@dataclass
class Stats:
    inputs: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak_kb: int = 0
    input_peak_kb: int = 0  # the largest growth of resident memory one input caused
    hangs: int = 0
    unconfirmed: int = 0
    guarded: set[str] = field(default_factory=set)


def known_signatures() -> set[tuple[str, str]]:
    """(target, signature) of the open findings listed in findings.md (table rows
    ``| target | signature | file | what |``)."""
    out = set()
    if FINDINGS_MD.is_file():
        for line in FINDINGS_MD.read_text(encoding="utf-8").splitlines():
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            if len(cells) >= 3 and cells[0] in TARGETS:
                out.add((cells[0], cells[1]))
    return out


def prepare_layouts(names: tuple[str, ...], where: Path) -> Path:
    """The small phantom layouts, written once per run for the layout target."""
    from lumbarview.phantom.layouts import Sizes, write_all

    root = where / "layouts"
    write_all(root, sizes=Sizes.small(), layouts=names)
    for p in root.rglob("*"):  # the loaders must never write into a dataset
        if p.is_file():
            p.chmod(0o444)
    return root


class Run:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.targets = [TARGETS[t] for t in opts.target] if opts.target else list(TARGETS.values())
        self.stats: dict[str, Stats] = {t.name: Stats() for t in self.targets}
        self.failures: dict[tuple[str, str], Failure] = {}
        self.known = known_signatures()
        self.work = Path(tempfile.mkdtemp(prefix="lvfuzz-run-"))
        self.out = Path(opts.out) if opts.out else self.work / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.layouts: Path | None = None
        self.queue: list[Job] = []
        self.next_index: dict[str, int] = {t.name: 0 for t in self.targets}
        self.rate: dict[str, float] = {t.name: 5.0 for t in self.targets}
        self.notes: list[str] = []

    # -- scheduling ------------------------------------------------------------------------------
    def count_for(self, target: str) -> int:
        """Inputs for ``target`` in a counted run (``--count``, or ``--count-for target=N``)."""
        for item in self.opts.count_for or []:
            name, _, n = item.partition("=")
            if name == target:
                return int(n)
        return int(self.opts.count or 0)

    def _next_job(self, deadline: float | None) -> Job | None:
        if deadline is not None and time.monotonic() >= deadline:
            self.queue = [j for j in self.queue if not j.remainder]
        if self.queue:
            return self.queue.pop(0)
        if self.opts.replay and self.opts.count is None:
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None
        live = [t for t in self.targets
                if self.opts.count is None or self.next_index[t.name] < self.count_for(t.name)]
        if not live:
            return None
        # equal time per target: the one that had least so far (fast targets run more inputs)
        t = min(live, key=lambda t: (self.stats[t.name].seconds, t.name))
        n = max(1, min(2000, int(self.rate[t.name] * self.opts.batch_seconds)))
        if self.opts.count is not None:
            n = min(n, self.count_for(t.name) - self.next_index[t.name])
        job = Job(t.name, "fuzz", self.next_index[t.name], n)
        self.next_index[t.name] += n
        # account the batch's expected time now, so that the other worker picks another target
        self.stats[t.name].seconds += n / max(self.rate[t.name], 1e-3)
        job.confirm_of = {"expected": n / max(self.rate[t.name], 1e-3)}
        return job

    def _replay_jobs(self) -> None:
        for folder in self.opts.replay:
            root = Path(folder)
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".md"
                           and "_base" not in p.parts and not p.name.startswith("."))
            by_target: dict[str, list[str]] = defaultdict(list)
            for p in files:
                name = next((part for part in p.relative_to(root.parent).parts if part in TARGETS), None)
                if name is None or (self.opts.target and name not in self.opts.target):
                    continue
                by_target[name].append(str(p.resolve()))
            for name, paths in sorted(by_target.items()):
                for i in range(0, len(paths), 25):
                    self.queue.append(Job(name, "files", paths=paths[i:i + 25]))

    # -- results ---------------------------------------------------------------------------------
    def _input_of(self, job: Job, i: int) -> tuple[str, bytes, dict[str, Any]]:
        if job.cmd == "files":
            p = Path(job.paths[i])
            name, data = read_input_file(p)
            return name, data, {"path": str(p)}
        name, data = make_input(TARGETS[job.target], self.opts.seed, i)
        return name, data, {"seed": self.opts.seed, "i": i}

    def _record(self, job: Job, i: int, sig: str, kind: str, detail: str) -> None:
        key = (job.target, sig)
        f = self.failures.get(key)
        if f is None:
            name, data, source = self._input_of(job, i)
            f = self.failures[key] = Failure(job.target, sig, kind, detail, 0, source,
                                             known=key in self.known)
            folder = self.out / "failures" / job.target
            folder.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha1(sig.encode()).hexdigest()[:8]
            suffix = suffix_of(name)
            stem = name[: len(name) - len(suffix)] if suffix else name
            saved = folder / f"{stem}-{kind}-{digest}{suffix}"
            saved.write_bytes(data)
            f.saved = str(saved)
            tag = "known" if f.known else "NEW"
            print(f"fuzz: {tag} {kind} in {job.target}: {sig} ({detail[:160]}) -> {saved}", flush=True)
        f.count += 1

    def _confirm(self, job: Job, i: int, why: str) -> None:
        """A worker died or hung on input ``i``: rerun it alone in a fresh worker."""
        if job.cmd == "files":
            one = Job(job.target, "files", paths=[job.paths[i]], confirm=why, confirm_of={"i": i, "job": job})
        else:
            one = Job(job.target, "fuzz", i, 1, confirm=why, confirm_of={"i": i, "job": job})
        self.queue.insert(0, one)

    @staticmethod
    def _rest(job: Job, i: int | None) -> Job | None:
        """What is left of ``job`` after input ``i`` (all of it when None)."""
        if job.confirm:
            return None
        if job.cmd == "fuzz":
            start = job.start if i is None else i + 1
            if start < job.start + job.count:
                return Job(job.target, "fuzz", start, job.start + job.count - start, remainder=True)
            return None
        rest = job.paths if i is None else job.paths[i + 1:]
        return Job(job.target, "files", paths=rest) if rest else None

    def _requeue_rest(self, job: Job, i: int | None) -> None:
        rest = self._rest(job, i)
        if rest is not None:
            self.queue.insert(0, rest)

    def _on_death(self, w: Worker, rc: int, hang: bool) -> None:
        job = w.job
        assert job is not None
        i = w.current
        st = self.stats[job.target]
        if i is None:  # died between inputs: nothing to blame, and the batch is dropped (no loop)
            self.notes.append(f"worker exited with {rc} outside an input ({job.target}, batch {job.start}+"
                              f"{job.count}); the batch was dropped")
            return
        if job.confirm is None:
            # the inputs of the batch before the one that died, and that one (the child's own
            # counts died with it); the batch's time likewise
            st.inputs += (i - job.start if job.cmd == "fuzz" else i) + 1
            expected = (job.confirm_of or {}).get("expected", 0.0)
            st.seconds += time.monotonic() - w.sent - expected
            if not hang:  # a crash whose signature was confirmed before is just counted again
                sig = self._crash_sig(w, rc)
                if (job.target, sig) in self.failures:
                    self.failures[(job.target, sig)].count += 1
                    self._requeue_rest(job, i)
                    return
            self._confirm(job, i, "hang" if hang else "crash")
            self._requeue_rest(job, i)
            return
        original = job.confirm_of["job"] if job.confirm_of else job
        j = job.confirm_of["i"] if job.confirm_of else i
        if hang:
            st.hangs += 1
            self._record(original, j, "hang", "hang", f"no answer within {self.opts.timeout * 2:.0f} s")
        else:
            sig = self._crash_sig(w, rc)
            self._record(original, j, sig, "crash", f"the worker died ({sig.split('@')[0]})")

    @staticmethod
    def _crash_sig(w: Worker, rc: int) -> str:
        try:
            sig_name = signal.Signals(-rc).name if rc < 0 else f"exit{rc}"
        except ValueError:
            sig_name = f"signal{-rc}"
        return f"{sig_name}@{_faulthandler_sig(w.stderr_text())}"

    def _on_event(self, w: Worker, ev: dict[str, Any]) -> None:
        kind = ev.get("ev")
        if kind == "ready":
            w.ready = True
        elif kind == "start":
            w.current = ev["i"]
            w.started = time.monotonic()
        elif kind == "fail":
            assert w.job is not None
            sig = ev["sig"]
            kind = "memory" if sig.startswith(("memory:", "alloc:")) else "exception"
            self._record(w.job, ev["i"], sig, kind, ev.get("detail") or "")
        elif kind == "pass" and self.opts.verbose:
            assert w.job is not None
            print(f"  ok {ev['outcome']:8s} {w.job.paths[ev['i']]}")
        elif kind == "note":
            self.notes.append(str(ev.get("text")))
        elif kind == "died":  # the batch's child died; the fork server lives on
            if w.job is not None:
                self._on_death(w, int(ev["rc"]), hang=False)
            w.job = None
            w.current = None
        elif kind == "done":
            self._on_done(w, ev)
            w.peak_kb = max(w.peak_kb, int(ev["rss_kb"]))
            w.job = None
            w.current = None

    def _on_done(self, w: Worker, ev: dict[str, Any]) -> None:
        job = w.job
        assert job is not None
        st = self.stats[job.target]
        n = sum(ev["counts"].values())
        if not job.confirm:  # a confirmation reruns an input already counted
            st.inputs += n
        for k, v in ev["counts"].items():
            st.counts[k] += v
        st.peak_kb = max(st.peak_kb, int(ev["rss_kb"]))
        st.input_peak_kb = max(st.input_peak_kb, int(ev.get("input_peak_kb", 0)))
        st.guarded.update(ev.get("guarded", []))
        if job.cmd == "fuzz" and not job.confirm:
            expected = (job.confirm_of or {}).get("expected", 0.0)
            st.seconds += float(ev["seconds"]) - expected
            if n:
                self.rate[job.target] = 0.5 * self.rate[job.target] + 0.5 * n / max(float(ev["seconds"]), 1e-3)
        else:
            st.seconds += float(ev["seconds"])
        if ev.get("next") is not None:
            rest = self._rest(job, int(ev["next"]) - 1)
            if rest is not None:
                self.queue.append(rest)
        if job.confirm:
            st.unconfirmed += 1
            self.notes.append(f"{job.target}: a {job.confirm} did not reproduce alone (input {job.start}"
                              f"{' ' + job.paths[0] if job.paths else ''}); counted as unconfirmed")

    # -- main loop -------------------------------------------------------------------------------
    def run(self) -> int:
        t0 = time.monotonic()
        wanted = {t.name for t in self.targets}
        if "layout" in wanted or "session" in wanted:
            names = tuple(self.opts.layouts.split(",")) if self.opts.layouts else LAYOUT_NAMES
            if "session" in wanted and "sudirman" not in names:
                names = (*names, "sudirman")  # the session target restores into it
            self.layouts = prepare_layouts(names, self.work)
        if self.opts.replay:
            self._replay_jobs()
        deadline = None if self.opts.count is not None or self.opts.replay else t0 + self.opts.minutes * 60
        logdir = self.work / "logs"
        logdir.mkdir()
        sel = selectors.DefaultSelector()

        def spawn(wid: int) -> Worker:
            w = Worker(wid, self.opts, self.layouts, logdir)
            assert w.proc.stdout is not None
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            return w

        def retire(w: Worker, kill: bool = False) -> int:
            assert w.proc.stdout is not None
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(w.proc.stdout)
            rc = w.kill() if kill else w.wait()
            if w.job is not None:
                st = self.stats[w.job.target]
                st.peak_kb = max(st.peak_kb, w.peak_kb)
            return rc

        workers = [spawn(wid) for wid in range(self.opts.workers)]
        last_progress = time.monotonic()
        try:
            while True:
                exhausted = False
                for w in workers:
                    if not (w.ready and w.job is None):
                        continue
                    job = self._next_job(deadline)
                    if job is None:
                        exhausted = True
                        continue
                    w.send(job, self.opts.seed, 0.0 if job.confirm else self.opts.batch_seconds * 4)
                if exhausted and not self.queue and all(w.job is None for w in workers):
                    break
                for key, _ in sel.select(timeout=0.5):
                    w = key.data
                    events, eof = w.events()
                    for ev in events:
                        self._on_event(w, ev)
                    if eof:
                        rc = retire(w)
                        if w.job is not None:
                            self._on_death(w, rc, hang=False)
                        elif not w.ready:
                            raise SystemExit(f"fuzz: a worker failed to start:\n{w.stderr_text()[-3000:]}")
                        else:
                            self.notes.append(f"worker {w.wid} exited idle with {rc}")
                        workers[workers.index(w)] = spawn(w.wid)
                now = time.monotonic()
                if self.opts.progress and now - last_progress >= self.opts.progress:
                    last_progress = now
                    done = sum(st.inputs for st in self.stats.values())
                    print(f"fuzz: {now - t0:5.0f} s, {done:,} inputs, {len(self.failures)} distinct failures",
                          flush=True)
                for idx, w in enumerate(workers):
                    limit = self.opts.timeout * (2 if w.job is not None and w.job.confirm else 1)
                    if w.job is not None and w.current is not None and now - w.started > limit:
                        retire(w, kill=True)
                        self._on_death(w, -9, hang=True)
                        workers[idx] = spawn(w.wid)
                    elif not w.ready and now - w.spawned > 180:
                        raise SystemExit("fuzz: a worker did not start within 180 s")
        except (KeyboardInterrupt, SystemExit):
            self.notes.append("interrupted: the figures cover the inputs run until then")
        finally:
            for w in workers:
                retire(w, kill=True)
        return self.report(time.monotonic() - t0)

    # -- report ----------------------------------------------------------------------------------
    def report(self, seconds: float) -> int:
        rows = []
        total = 0
        for t in self.targets:
            st = self.stats[t.name]
            fails = [f for f in self.failures.values() if f.target == t.name]
            new = sum(not f.known for f in fails)
            total += st.inputs
            rate = st.inputs / st.seconds if st.seconds > 0 else 0.0
            rows.append((t.name, st.inputs, rate, len(fails), new, st.hangs, st.peak_kb / 1024,
                         st.counts.get("rejected", 0), len(st.guarded), st.input_peak_kb / 1024))
        print(f"\nfuzz: {total:,} inputs in {seconds:,.0f} s (seed {self.opts.seed}, {self.opts.workers} workers, "
              f"{self.opts.timeout:.0f} s per input, {self.opts.mem_mb} MB address space)")
        print(f"{'target':14s} {'inputs':>9s} {'exec/s':>8s} {'failures':>8s} {'new':>4s} {'hangs':>5s} "
              f"{'peak MB':>8s} {'input MB':>8s} {'rejected':>8s} {'guarded':>7s}")
        for name, n, rate, nf, new, hangs, mb, rej, g, input_mb in rows:
            print(f"{name:14s} {n:9,d} {rate:8.1f} {nf:8d} {new:4d} {hangs:5d} {mb:8.0f} {input_mb:8.0f} {rej:8d} "
                  f"{g:7d}")
        print(f"(input MB: the largest growth of resident memory one input caused; above "
              f"{allowance_kb() // 1024} MB, twice the {FUZZ_VOLUME_MB} MB volume budget plus {ALLOC_MARGIN_MB} MB, "
              "it is an alloc failure)")
        if self.failures:
            print("\ndistinct failures:")
            for f in sorted(self.failures.values(), key=lambda f: (f.target, f.sig)):
                print(f"  [{'known' if f.known else 'NEW'}] {f.target}: {f.sig} x{f.count} - {f.detail[:120]}"
                      f"\n      input: {f.saved}")
        guarded = {(t, g) for t, st in self.stats.items() for g in st.guarded}
        if guarded:
            print("\nbare exceptions caught by ImageStack's last-line guard (a LoadError reached the user; "
                  "not failures):")
            for t, g in sorted(guarded):
                print(f"  {t}: {g}")
        for note in self.notes[:20]:
            print(f"note: {note}")
        summary = {
            "seconds": seconds, "seed": self.opts.seed, "total_inputs": total,
            "targets": {r[0]: {"inputs": r[1], "execs_per_s": r[2], "failures": r[3], "new": r[4], "hangs": r[5],
                               "peak_rss_mb": r[6], "rejected": r[7], "input_peak_mb": r[9]} for r in rows},
            "failures": [f.__dict__ for f in self.failures.values()],
            "guarded": sorted(f"{t}: {g}" for t, g in guarded), "notes": self.notes,
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print(f"summary: {self.out / 'summary.json'}")
        if self.opts.minimise:
            self.minimise_all()
        shutil.rmtree(self.work / "layouts", ignore_errors=True)
        shutil.rmtree(self.work / "logs", ignore_errors=True)
        new = [f for f in self.failures.values() if not f.known]
        if self.opts.strict:
            return 1 if self.failures else 0
        return 1 if new else 0

    # -- minimisation ----------------------------------------------------------------------------
    def minimise_all(self) -> None:
        from tests.fuzz.minimise import minimise

        for f in self.failures.values():
            if f.saved is None:
                continue
            print(f"minimising {f.target} {f.sig} ...", flush=True)
            path = minimise(f.target, Path(f.saved), f.sig, self.opts, self.layouts)
            print(f"  -> {path} ({path.stat().st_size:,} bytes)", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.harness", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3.0, help="duration of a timed run (default 3)")
    p.add_argument("--count", type=int, default=None, help="inputs per target instead of a duration (deterministic)")
    p.add_argument("--count-for", action="append", metavar="TARGET=N", help="--count for one target")
    p.add_argument("--target", action="append", choices=sorted(TARGETS), help="only this target (repeatable)")
    p.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per input before it is a hang (default 10)")
    p.add_argument("--mem-mb", type=int, default=3072, help="address-space cap of a worker in MB (default 3072)")
    p.add_argument("--batch-seconds", type=float, default=2.0, help="target duration of one worker batch")
    p.add_argument("--replay", action="append", help="run every file under this folder through its target")
    p.add_argument("--layouts", default=None, help="comma-separated phantom layouts for the layout target")
    p.add_argument("--out", default=None, help="where failing inputs and summary.json go")
    p.add_argument("--minimise", action="store_true", help="delta-debug each failing input after the run")
    p.add_argument("--strict", action="store_true", help="exit 1 on any failure, known or new")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines (0: none)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.worker:
        worker_main(opts.mem_mb)
        return 0
    if not any(CORPUS.glob("*/*")):
        print("fuzz: the seed corpus is missing; run python -m tests.fuzz.make_corpus", file=sys.stderr)
        return 2
    def _terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    return Run(opts).run()


if __name__ == "__main__":
    sys.exit(main())
