"""Where a sweep's cells run: in this process, in a local process pool, as Ray tasks, or as Slurm jobs
(submitit; `slurm-local` runs the same jobs through submitit's local executor, for a machine without Slurm).

Every executor runs the same function on a cell, `execute_cell`: an ordinary `start_run` into the
shared results store, with torch limited to its share of the cores. Executors report through one
callback, `on_event(kind, run_id, data)`, called in the calling process only (workers never draw
progress bars; they send their progress back):

    ("start", run_id, {})                    a cell began training (or resuming)
    ("step", run_id, {"step", "accuracy"})   progress, a few times a second at most
    ("done", run_id, result)                 result: {"outcome", "status", "error", "wall"}

Outcomes: trained, skipped (already finished), interrupted, failed, not started.

Stopping: `stop()` is polled; once it returns True no new cell starts, and running cells checkpoint
at their next step boundary and end as "interrupted" (resumable). Local pool workers run in their
own process group, so a terminal's Ctrl-C reaches only the parent, which tells them through an
event; Ray tasks are cancelled with `ray.cancel`, which interrupts them the same way.

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
import traceback
from pathlib import Path
from typing import Any, Callable

EventHandler = Callable[[str, str, dict[str, Any]], None]
StopCheck = Callable[[], bool]

PROGRESS_INTERVAL = 0.25  # seconds between progress messages from one worker
WATCH_INTERVAL = 0.5  # seconds between checks that a worker's parent is alive
GRACE_S = 30.0  # after the parent died: time to checkpoint before the worker exits regardless
PR_SET_PDEATHSIG = 1
EXECUTORS = ("local", "ray", "slurm", "slurm-local")
SLURM_ENV = "THINKBENCH_SLURM"  # submitit parameters for --executor slurm, e.g. "slurm_partition=gpu,timeout_min=120"
SLURM_DEFAULT_CPUS = 4  # cpus_per_task (and torch threads) of a Slurm cell unless $THINKBENCH_SLURM sets it
SLURM_POLL_S = 1.0  # seconds between looks at the jobs and at their cells' status files


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
        return {"outcome": "interrupted", "status": {"state": "interrupted"}, "error": None, "wall": time.perf_counter() - began}
    except USER_ERRORS as exc:
        return {"outcome": "failed", "status": {}, "error": str(exc).splitlines()[0], "wall": time.perf_counter() - began}
    except Exception as exc:  # one cell's crash must not take the sweep down; its traceback comes back
        return {"outcome": "failed", "status": {}, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "wall": time.perf_counter() - began}


# ---- in this process (--jobs 1) -------------------------------------------------------------------


def run_in_process(cells: list[dict[str, Any]], root: Path, threads: int | None, on_event: EventHandler, stop: StopCheck) -> None:
    """One cell after another in this process: no start-up cost, and Ctrl-C goes straight to the run."""
    import torch

    previous = torch.get_num_threads()
    interrupted = False
    try:
        for spec_json in cells:
            run_id = _run_id(spec_json)
            if interrupted or stop():
                on_event("done", run_id, {"outcome": "not started", "status": {}, "error": None, "wall": 0.0})
                continue
            result = execute_cell(spec_json, str(root), threads, on_event)
            # Ctrl-C during a run is caught by the run itself (it checkpoints): stop the sweep too.
            interrupted = result["outcome"] == "interrupted"
            on_event("done", run_id, result)
    finally:
        torch.set_num_threads(previous)  # the caller (a test, a notebook) keeps its own setting


# ---- a local process pool (--jobs N) --------------------------------------------------------------

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


def run_pool(cells: list[dict[str, Any]], root: Path, jobs: int, threads: int, on_event: EventHandler, stop: StopCheck) -> None:
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
        futures = {pool.submit(_pool_cell, spec_json, str(root)): _run_id(spec_json) for spec_json in cells}
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
                        result = {"outcome": "failed", "status": {}, "error": f"worker died: {type(exc).__name__}: {exc}", "wall": 0.0}
                    else:
                        result = future.result()
                    on_event("done", run_id, result)
        finally:
            stop_event.set()  # whatever happened here, no worker starts another cell
            drain()


# ---- Ray (--executor ray) -------------------------------------------------------------------------


def _ray_cell(spec_json: dict[str, Any], root: str, threads: int, queue: Any, driver: dict[str, Any]) -> dict[str, Any]:
    from bench.run.records import owner, pid_alive

    def report(kind: str, run_id: str, data: dict[str, Any]) -> None:
        try:
            queue.put_nowait((kind, run_id, data))
        except Exception:  # progress is best-effort; the result still comes back
            pass

    same_host = driver.get("host") == owner()["host"]
    checked = {"time": 0.0, "gone": False}

    def driver_gone() -> bool:  # on the driver's host: stop (checkpoint) once the driver is gone
        now = time.monotonic()
        if same_host and not checked["gone"] and now - checked["time"] >= WATCH_INTERVAL:
            checked["time"], checked["gone"] = now, not pid_alive(int(driver["pid"]))
        return checked["gone"]

    return execute_cell(spec_json, root, threads, report, driver_gone)


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def connect_ray(address: str | None) -> int:
    """Join the Ray cluster at `address` (or $RAY_ADDRESS, or start a local one); returns its CPUs."""
    from bench.errors import UserError

    if not ray_available():
        raise UserError("--executor ray needs Ray: pip install 'thinkbench[ray]' (or pip install 'ray>=2.9')")
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserError(f"--executor ray: cannot reach a Ray cluster at {address or 'the default address'} ({str(exc).splitlines()[0]})") from None
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_ray(cells: list[dict[str, Any]], root: Path, jobs: int, threads: int, on_event: EventHandler, stop: StopCheck) -> None:
    """Cells as Ray tasks, at most `jobs` at a time, each asking Ray for `threads` CPUs (one GPU for
    CUDA cells). Ray places them; the results store must be a folder every node can write to."""
    import ray
    from ray.util.queue import Empty, Queue

    from bench.run.records import owner

    events = Queue(actor_options={"num_cpus": 0})
    remote = ray.remote(_ray_cell)
    driver = owner()
    waiting = list(cells)
    running: dict[Any, str] = {}
    stopping = False

    def drain() -> None:
        while True:
            try:
                batch = events.get_nowait_batch(events.qsize())
            except Empty:
                return
            if not batch:
                return
            for kind, run_id, data in batch:
                on_event(kind, run_id, data)

    try:
        while waiting or running:
            if stop() and not stopping:
                stopping = True
                for ref in running:
                    ray.cancel(ref)  # raises KeyboardInterrupt in the task: it ends as interrupted
            while waiting and len(running) < jobs and not stopping:
                spec_json = waiting.pop(0)
                options: dict[str, Any] = {"num_cpus": threads}
                if spec_json.get("device") == "cuda":
                    options["num_gpus"] = 1
                running[remote.options(**options).remote(spec_json, str(root), threads, events, driver)] = _run_id(spec_json)
            if stopping:
                for spec_json in waiting:
                    on_event("done", _run_id(spec_json), {"outcome": "not started", "status": {}, "error": None, "wall": 0.0})
                waiting.clear()
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.2) if running else ([], [])
            drain()
            for ref in done:
                run_id = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    result = {"outcome": "interrupted", "status": {}, "error": None, "wall": 0.0}
                except ray.exceptions.RayError as exc:
                    result = {"outcome": "failed", "status": {}, "error": f"ray: {str(exc).splitlines()[0]}", "wall": 0.0}
                on_event("done", run_id, result)
    finally:
        drain()
        events.shutdown()


# ---- Slurm through submitit (--executor slurm, slurm-local) -----------------------------------------


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
        raise UserError(f"--executor slurm: {str(exc).splitlines()[0]} (--executor slurm-local runs the jobs on this machine)") from None
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
            raise UserError(f"--executor {'slurm-local' if local else 'slurm'}: cannot submit ({str(exc).strip().splitlines()[-1]})") from None
        for spec_json, job in zip(batch, submitted):
            running[_run_id(spec_json)] = job

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
                on_event("done", _run_id(spec_json), {"outcome": "not started", "status": {}, "error": None, "wall": 0.0})
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
                result = {"outcome": outcome, "status": {}, "error": None if stopping else f"job {job.job_id}: {lines[-1] if lines else type(exc).__name__}",
                          "wall": 0.0}
            on_event("done", run_id, result)
        if running or waiting:
            time.sleep(SLURM_POLL_S)


def _run_id(spec_json: dict[str, Any]) -> str:
    from bench.run.spec import RunSpec

    return RunSpec.from_json(spec_json).run_id
