"""The program's worker pools, by name, each created once on first use and sized from the CPU
count once: every module that runs work in parallel asks here instead of keeping a module-global
pool of its own (two pools of four threads each on a two-core machine would fight).

``thread_pool(name)`` and ``process_pool(name)`` return the shared pool of that name; a process
pool whose worker died (:class:`~concurrent.futures.process.BrokenProcessPool`) is dropped with
:func:`reset_process_pool` and the next call makes a new one.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

CPUS = max(1, os.cpu_count() or 1)

#: Workers per pool name (at most the CPU count, at least one).
_THREADS = {"reformat": min(4, CPUS)}
_PROCESSES = {"decode": min(2, CPUS)}

_lock = threading.Lock()
_threads: dict[str, ThreadPoolExecutor] = {}
_processes: dict[str, ProcessPoolExecutor] = {}


def thread_pool(name: str) -> ThreadPoolExecutor:
    """The shared thread pool ``name`` (``reformat``...); idle threads cost nothing and are joined
    at interpreter exit."""
    with _lock:
        pool = _threads.get(name)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=max(1, _THREADS.get(name, min(2, CPUS))),
                                      thread_name_prefix=f"lumbarview-{name}")
            _threads[name] = pool
        return pool


def process_pool(name: str) -> ProcessPoolExecutor:
    """The shared process pool ``name`` (``decode``...), started with "spawn": the parent may run
    Qt and thread pools, which fork does not copy safely."""
    with _lock:
        pool = _processes.get(name)
        if pool is None:
            pool = ProcessPoolExecutor(max_workers=max(1, _PROCESSES.get(name, 1)),
                                       mp_context=multiprocessing.get_context("spawn"))
            _processes[name] = pool
        return pool


def reset_process_pool(name: str, broken: ProcessPoolExecutor) -> None:
    """Drop ``broken`` (a worker died) so the next :func:`process_pool` call starts a new one."""
    with _lock:
        if _processes.get(name) is broken:
            del _processes[name]
    broken.shutdown(wait=False, cancel_futures=True)
