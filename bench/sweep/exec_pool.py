"""A local process pool (--jobs N): cells on spawned worker processes, each in its own process group.

Dying with the parent: a pool worker whose parent is gone (kill -9, a crash) must not keep training
(an immediate rerun would train the same cells twice, and the worker would block on its dead parent
forever). Each worker asks Linux for SIGTERM when its parent dies (PR_SET_PDEATHSIG through ctypes)
and, on every platform, runs a watchdog thread that notices the parent's pid is gone: the running
cell checkpoints at its next step boundary (SIGTERM is deferred by the run) and the worker exits,
at the latest GRACE_S seconds later. A Ray cell on the driver's host stops the same way when the
driver's pid is gone (Ray itself cleans up a local cluster whose driver died).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.sweep.exec_cell import WATCH_INTERVAL, EventHandler, StopCheck, cell_run_id, execute_cell

GRACE_S = 30.0  # after the parent died: time to checkpoint before the worker exits regardless
PR_SET_PDEATHSIG = 1


_worker: dict[str, Any] = {}


def _parent_death_signal(sig: int) -> bool:
    """Ask Linux to send `sig` when our parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int) -> None:
    """Make this worker stop when process `parent` is gone (see the module docstring)."""
    signalled = _parent_death_signal(signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_INTERVAL)
        _worker["orphan"] = True
        if not signalled:  # the kernel did not send it: interrupt the running cell ourselves
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    if os.getppid() != parent:  # died before the signal was set up
        os.kill(os.getpid(), signal.SIGTERM)


def _init_worker(queue: Any, stop_event: Any, threads: int, parent: int) -> None:
    # Own process group: the terminal's Ctrl-C goes to the parent only, which stops us via the event
    # (a second SIGINT from the terminal would abort a run before it checkpoints).
    try:
        os.setpgrp()
    except (AttributeError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    _worker.update(queue=queue, stop=stop_event, threads=threads, parent=parent)


def _pool_cell(spec_json: dict[str, Any], root: str) -> dict[str, Any]:
    queue, stop_event = _worker["queue"], _worker["stop"]

    def report(kind: str, run_id: str, data: dict[str, Any]) -> None:
        queue.put((kind, run_id, data))

    result = execute_cell(spec_json, root, _worker["threads"], report, stop_event.is_set)
    if _worker.get("orphan") or os.getppid() != _worker["parent"]:  # checkpointed; nobody is left to take the result
        os._exit(1)
    return result


def run_pool(cells: list[dict[str, Any]], root: Path, jobs: int, threads: int, on_event: EventHandler,
             stop: StopCheck) -> None:
    """Cells on `jobs` spawned worker processes (spawn: safe with torch and with threads)."""
    import multiprocessing as mp
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = mp.get_context("spawn")
    events = context.Queue()
    stop_event = context.Event()

    def drain() -> None:
        while True:
            try:
                kind, run_id, data = events.get_nowait()
            except queue_module.Empty:
                return
            on_event(kind, run_id, data)

    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                             initargs=(events, stop_event, threads, os.getpid())) as pool:
        futures = {pool.submit(_pool_cell, spec_json, str(root)): cell_run_id(spec_json) for spec_json in cells}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                if stop() and not stop_event.is_set():
                    stop_event.set()
                    for future in pending:
                        future.cancel()  # not yet handed to a worker
                drain()
                for future in done:
                    run_id = futures[future]
                    if future.cancelled():
                        result = {"outcome": "not started", "status": {}, "error": None, "wall": 0.0}
                    elif future.exception() is not None:  # a worker died (killed, out of memory)
                        exc = future.exception()
                        result = {"outcome": "failed", "status": {},
                                  "error": f"worker died: {type(exc).__name__}: {exc}", "wall": 0.0}
                    else:
                        result = future.result()
                    on_event("done", run_id, result)
        finally:
            stop_event.set()  # whatever happened here, no worker starts another cell
            drain()
