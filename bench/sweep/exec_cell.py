"""One sweep cell, the unit every executor runs: `execute_cell` (an ordinary `start_run` into the
shared results store, torch limited to its share of the cores; it never raises), and `run_in_process`,
the executor for --jobs 1. Executors report through `on_event(kind, run_id, data)` (bench/sweep/executors.py)."""

from __future__ import annotations

import os
import signal
import time
import traceback
from pathlib import Path
from typing import Any, Callable

EventHandler = Callable[[str, str, dict[str, Any]], None]
StopCheck = Callable[[], bool]

PROGRESS_INTERVAL = 0.25  # seconds between progress messages from one worker
WATCH_INTERVAL = 0.5  # seconds between checks that a worker's parent (or a Ray cell's driver) is alive


def execute_cell(
    spec_json: dict[str, Any],
    root: str,
    threads: int | None,
    report: Callable[[str, str, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run one cell to the end (or to an interrupt). Never raises: failures come back as a result."""
    import torch

    from bench.errors import USER_ERRORS
    from bench.run.listeners import loggers_from_env
    from bench.run.spec import RunSpec
    from bench.run.train import RunInterrupted, start_run

    began = time.perf_counter()
    spec = RunSpec.from_json(spec_json)
    run_id = spec.run_id
    if threads:
        torch.set_num_threads(threads)
    last = {"time": 0.0, "signalled": False}

    def on_progress(step: int, metrics: dict[str, Any]) -> None:
        now = time.perf_counter()
        if should_stop is not None and not last["signalled"] and should_stop():
            # Interrupt ourselves: start_run's handler checkpoints at the step boundary and stops.
            last["signalled"] = True
            os.kill(os.getpid(), signal.SIGINT)
        if report is not None and now - last["time"] >= PROGRESS_INTERVAL:
            last["time"] = now
            report("step", run_id, {"step": step, "accuracy": metrics.get("accuracy")})

    if should_stop is not None and should_stop():
        return {"outcome": "not started", "status": {}, "error": None, "wall": 0.0}
    if report is not None:
        report("start", run_id, {"pid": os.getpid()})
    try:
        # $THINKBENCH_LOG (e.g. tensorboard) reaches the cells through the environment the workers inherit
        _, status, cached = start_run(spec, Path(root), on_progress=on_progress, listeners=loggers_from_env())
        outcome = "skipped" if cached else "trained"
        return {"outcome": outcome, "status": status, "error": None, "wall": time.perf_counter() - began}
    except RunInterrupted as stop:
        return {"outcome": "interrupted", "status": {"state": "interrupted", "step": stop.step}, "error": None,
                "wall": time.perf_counter() - began}
    except KeyboardInterrupt:  # a second interrupt, or Ray's cancel outside the main thread
        return {"outcome": "interrupted", "status": {"state": "interrupted"}, "error": None,
                "wall": time.perf_counter() - began}
    except USER_ERRORS as exc:
        return {"outcome": "failed", "status": {}, "error": str(exc).splitlines()[0],
                "wall": time.perf_counter() - began}
    except Exception as exc:  # one cell's crash must not take the sweep down; its traceback comes back
        return {"outcome": "failed", "status": {}, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "wall": time.perf_counter() - began}


# ---- in this process (--jobs 1) -------------------------------------------------------------------


def run_in_process(cells: list[dict[str, Any]], root: Path, threads: int | None, on_event: EventHandler,
                   stop: StopCheck) -> None:
    """One cell after another in this process: no start-up cost, and Ctrl-C goes straight to the run."""
    import torch

    previous = torch.get_num_threads()
    interrupted = False
    try:
        for spec_json in cells:
            run_id = cell_run_id(spec_json)
            if interrupted or stop():
                on_event("done", run_id, {"outcome": "not started", "status": {}, "error": None, "wall": 0.0})
                continue
            result = execute_cell(spec_json, str(root), threads, on_event)
            # Ctrl-C during a run is caught by the run itself (it checkpoints): stop the sweep too.
            interrupted = result["outcome"] == "interrupted"
            on_event("done", run_id, result)
    finally:
        torch.set_num_threads(previous)  # the caller (a test, a notebook) keeps its own setting


def cell_run_id(spec_json: dict[str, Any]) -> str:
    from bench.run.spec import RunSpec

    return RunSpec.from_json(spec_json).run_id
