"""Slurm through submitit (--executor slurm; slurm-local: submitit's local executor, for a machine
without Slurm): one job array per sweep, parameters from $THINKBENCH_SLURM, progress read from each
cell's status.json."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from bench.sweep.exec_cell import EventHandler, StopCheck, cell_run_id, execute_cell

SLURM_ENV = "THINKBENCH_SLURM"  # submitit parameters for --executor slurm, e.g. "slurm_partition=gpu,timeout_min=120"
SLURM_DEFAULT_CPUS = 4  # cpus_per_task (and torch threads) of a Slurm cell unless $THINKBENCH_SLURM sets it
SLURM_POLL_S = 1.0  # seconds between looks at the jobs and at their cells' status files


def slurm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("submitit") is not None


def require_slurm(local: bool = False, root: Path | None = None, label: str = "sweep") -> None:
    """Before a sweep draws anything: a one-line UserError when submitit is missing (naming the extra),
    when Slurm is not here (--executor slurm), or when $THINKBENCH_SLURM names what submitit does not
    take. `root`: check the parameters with a real executor in the sweep's submitit folder."""
    from bench.errors import UserError

    if not slurm_available():
        raise UserError("--executor slurm needs submitit: pip install -e '.[slurm]' (or pip install 'submitit>=1.5')")
    if root is not None:
        slurm_executor(root, label, local, slurm_parameters())


def slurm_executor(root: Path, label: str, local: bool, parameters: dict[str, Any]) -> Any:
    """submitit's executor for a sweep (Slurm, or its local executor), its parameters set; one-line
    UserErrors for a machine without Slurm and for parameters submitit refuses."""
    import submitit

    from bench.errors import UserError
    from bench.sweep.plan import SWEEPS_DIR

    folder = root / SWEEPS_DIR / f"{label}.slurm"  # submitit's pickles and logs, beside the sweep record
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="local" if local else "slurm")
    except RuntimeError as exc:  # no srun: not a Slurm node
        raise UserError(f"--executor slurm: {str(exc).splitlines()[0]} (--executor slurm-local runs the jobs on this "
                        "machine)") from None
    try:
        executor.update_parameters(**parameters)
    except Exception as exc:  # submitit names a bad parameter with NameError, ValueError or TypeError
        raise UserError(f"${SLURM_ENV}: {str(exc).strip().splitlines()[0]}") from None
    return executor


def slurm_parameters() -> dict[str, Any]:
    """submitit's parameters from $THINKBENCH_SLURM ("name=value,..." with submitit's own names, e.g.
    slurm_partition=gpu,timeout_min=120,cpus_per_task=8,gpus_per_node=1,slurm_account=lab). Numbers
    become numbers; a malformed item is a one-line UserError (unknown names: when submitting)."""
    from bench.errors import UserError

    parameters: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in os.environ.get(SLURM_ENV, "").split(","))):
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"${SLURM_ENV}: {item!r} is not name=value (e.g. slurm_partition=gpu,timeout_min=120)")
        value: Any = text.strip()
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                continue
        parameters[key.strip()] = value
    return parameters


def slurm_cpus() -> int:
    """The CPUs (and torch threads) each Slurm cell asks for."""
    cpus = slurm_parameters().get("cpus_per_task", SLURM_DEFAULT_CPUS)
    return cpus if isinstance(cpus, int) and cpus > 0 else SLURM_DEFAULT_CPUS


def run_slurm(cells: list[dict[str, Any]], root: Path, jobs: int, threads: int, on_event: EventHandler, stop: StopCheck,
              local: bool = False, label: str = "sweep") -> None:
    """Cells as Slurm jobs through submitit: one job array holding every cell, at most `jobs` running
    at once (slurm_array_parallelism), each asking for `threads` CPUs (one GPU for CUDA cells). Each
    job runs `execute_cell` into the same results folder, which must be on a filesystem the nodes
    share; a stopped or failed sweep resumes like any other (finished cells are skipped).

    `local`: submitit's LocalExecutor instead of Slurm (`--executor slurm-local`): the same jobs as
    subprocesses of this machine, at most `jobs` at a time, to try a sweep (and test this path)
    where there is no cluster. Progress: a cell's status.json (its step at each evaluation);
    stopping cancels the jobs (SIGTERM to each: scancel, or the local controller), and a run checkpoints
    on either signal at its next step boundary, as `bench run` does. (A terminal's Ctrl-C also reaches
    the local executor's controller, in this process group, which then prints a traceback and stops its
    cell within a second: the cell resumes from its last checkpoint.)"""
    from bench.errors import UserError

    from bench.run.store import RunDir

    require_slurm()
    parameters = {"timeout_min": 24 * 60, "cpus_per_task": threads, "name": f"thinkbench-{label}"[:64],
                  "slurm_array_parallelism": jobs, **slurm_parameters()}
    if any(spec_json.get("device") == "cuda" for spec_json in cells) and "gpus_per_node" not in parameters:
        parameters["gpus_per_node"] = 1
    executor = slurm_executor(root, label, local, parameters)
    threads = int(parameters["cpus_per_task"])
    waiting = list(cells)
    running: dict[str, Any] = {}  # run id -> submitit job
    seen: dict[str, int] = {}  # run id -> last step reported (-1: started)
    stopping = False

    def submit(batch: list[dict[str, Any]]) -> None:
        try:
            if local:  # the local executor runs every submitted job at once: hand it `jobs` at a time
                submitted = [executor.submit(execute_cell, spec_json, str(root), threads) for spec_json in batch]
            else:
                with executor.batch():  # one array job (sbatch --array) for the whole sweep
                    submitted = [executor.submit(execute_cell, spec_json, str(root), threads) for spec_json in batch]
        except Exception as exc:  # sbatch missing or refusing (a bad partition): one line, nothing left running
            for job in running.values():
                job.cancel(check=False)
            raise UserError(f"--executor {'slurm-local' if local else 'slurm'}: cannot submit "
                            f"({str(exc).strip().splitlines()[-1]})") from None
        for spec_json, job in zip(batch, submitted):
            running[cell_run_id(spec_json)] = job

    def progress(run_id: str) -> None:
        try:
            status = RunDir(root, run_id).status()
        except Exception:  # a file being replaced, or unreadable: the next poll looks again
            return
        if status.get("state") == "running":
            if run_id not in seen:
                seen[run_id] = -1
                on_event("start", run_id, {})
            step = int(status.get("step", 0))
            if step > seen[run_id]:
                seen[run_id] = step
                on_event("step", run_id, {"step": step, "accuracy": None})

    if not local:
        submit(waiting)
        waiting = []
    while waiting or running:
        if stop() and not stopping:
            stopping = True
            for job in running.values():
                controller = getattr(job, "_process", None) if local else None
                if controller is not None:  # the local controller forwards SIGTERM to the cell and waits for it
                    controller.send_signal(signal.SIGTERM)
                else:  # scancel: Slurm sends SIGTERM (the local executor's cancel would SIGKILL after 1 s)
                    job.cancel(check=False)
            for spec_json in waiting:
                on_event("done", cell_run_id(spec_json),
                         {"outcome": "not started", "status": {}, "error": None, "wall": 0.0})
            waiting = []
        if local and waiting and len(running) < jobs and not stopping:
            free = jobs - len(running)
            submit(waiting[:free])
            waiting = waiting[free:]
        for run_id, job in list(running.items()):
            if not job.done():
                progress(run_id)
                continue
            del running[run_id]
            try:
                result = job.result()
            except Exception as exc:  # the job died (killed, out of time, cancelled before it began)
                outcome = "interrupted" if stopping else "failed"
                lines = [line for line in str(exc).strip().splitlines() if line.strip()]
                result = {"outcome": outcome, "status": {},
                          "error": None if stopping
                          else f"job {job.job_id}: {lines[-1] if lines else type(exc).__name__}",
                          "wall": 0.0}
            on_event("done", run_id, result)
        if running or waiting:
            time.sleep(SLURM_POLL_S)
