"""Train one run: build task and solver from a spec, train with progress, evaluate, checkpoint, resume.

Reproducibility: the model init is seeded by the run's seed; the batch at step s and every random
draw inside step s are seeded by (seed, s). A run resumed from a checkpoint therefore replays the
same steps an uninterrupted run would have taken (bit-identical on CPU).

Crash safety: a checkpoint is written atomically at every evaluation; Ctrl-C (SIGINT) or SIGTERM is
noted and acted on at the next step boundary: checkpoint, status "interrupted", exit. Running the
same spec again continues from the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from bench.run.build import (  # noqa: F401 (the run API)
    ResolvedRun, build, build_spec, default_batch, model_task, resolve_device, resolve_run,
)
from bench.errors import UserError
from bench.run.evaluate import autocast_for, evaluate, quick_accuracy  # noqa: F401 (autocast_for: the run API)
from bench.run.precision import precision_context
from bench.run.facts import float_path_facts, flops_per_step
from bench.run.spec import RunSpec, TrainConfig
from bench.run.listeners import ListenerFactory, Listeners, ProgressListener, StoreListener
from bench.run.store import (
    RunDir,
    RunLock,
    check_writable,
    load_checkpoint,
    recover_run,
    replace_run,
    restore_solver,
    retrain_path,
)
from solvers.base import Solver, TensorBatch, set_learning_rate
from tasks.base import Batch, Task, stream_rng

EVAL_SEED = 2**31 - 1  # the monitor and test problems are the same for every training seed
# Fewer distinct test problems than this and an accuracy means little: `bench run` warns.
SMALL_TEST_SPLIT = 200


class RunInterrupted(Exception):
    """Raised after an interrupted run has been checkpointed."""

    def __init__(self, run_id: str, step: int) -> None:
        super().__init__(f"run {run_id} interrupted at step {step}; run the same command again to resume")
        self.run_id, self.step = run_id, step


def warm_start(solver: Solver, source: dict[str, torch.Tensor]) -> list[str]:
    """Copy matching tensors from another run's model; a tensor whose first dimension is smaller
    (a vocabulary that grew with thought tokens) fills the leading rows. Returns what was copied."""
    copied = []
    own = solver.state_dict()
    with torch.no_grad():
        for name, tensor in source.items():
            if name not in own:
                continue
            target = own[name]
            if target.shape == tensor.shape:
                target.copy_(tensor)
            elif (
                target.dim() == tensor.dim()
                and target.shape[1:] == tensor.shape[1:]
                and tensor.shape[0] <= target.shape[0]
            ):
                target[: tensor.shape[0]].copy_(tensor)
            else:
                continue
            copied.append(name)
    if not copied:
        raise UserError("--init: the source run's model shares no tensors with this solver (different size?)")
    return copied


def environment_facts(device: str) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "git_commit": commit,
        **float_path_facts(),  # what decides the floating-point path (bench/run/facts.py)
    }


@contextmanager
def deferred_interrupts() -> Iterator[dict[str, bool]]:
    """Turn SIGINT/SIGTERM into a flag checked at step boundaries (a second Ctrl-C stops at once)."""
    flag = {"stop": False}
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    in_main_thread = True
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. inside a worker): no handlers, no deferral
        in_main_thread = False
    try:
        yield flag
    finally:
        if in_main_thread:
            for sig, old in previous.items():
                signal.signal(sig, old)


@dataclass
class TrainingState:
    step: int = 0
    curve: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    elapsed: float = 0.0
    steps_to_target: int | None = None

    def to_checkpoint(self, solver: Solver) -> dict[str, Any]:
        return {
            "solver": solver.checkpoint(),
            "step": self.step,
            "elapsed": self.elapsed,
            "steps_to_target": -1 if self.steps_to_target is None else self.steps_to_target,
        }


ProgressCallback = Callable[[int, dict[str, Any]], None]  # (step, metrics): a ProgressListener


def fixed_training_set(task: Task, cfg: TrainConfig) -> Batch | None:
    if cfg.train_size <= 0:
        return None
    return task.sample(stream_rng(cfg.seed, "trainset"), cfg.train_size, "train")


def training_batch(task: Task, cfg: TrainConfig, step: int, fixed: Batch | None) -> Batch:
    rng = stream_rng(cfg.seed, "train", step)
    if fixed is None:
        return task.sample(rng, cfg.batch, "train")
    return fixed.take(rng.integers(0, len(fixed), size=cfg.batch))


def held_out_problems(task: Task, cfg: TrainConfig) -> Batch:
    """The test set: up to eval_size distinct problems of the test split (all of them if fewer)."""
    return evaluation_set(task, cfg)[0]


def evaluation_set(task: Task, cfg: TrainConfig) -> tuple[Batch, bool]:
    """(distinct test problems, whether that is the whole test split); the reported number."""
    return task.distinct_problems(stream_rng(EVAL_SEED, "test"), cfg.eval_size, "test")


def monitor_set(task: Task, cfg: TrainConfig) -> Batch:
    """Distinct problems of the monitor split, disjoint from the test split: early stopping and
    model selection look only at these."""
    return task.distinct_problems(stream_rng(EVAL_SEED, "monitor"), cfg.monitor_size, "monitor")[0]


def run_training(
    spec: RunSpec,
    run_dir: RunDir,
    on_progress: ProgressCallback | None = None,
    stop_after_steps: int | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    notify: Callable[[str], None] | None = None,
    listeners: Sequence[ListenerFactory] = (),
    resolved: ResolvedRun | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run in `run_dir` to completion; returns the final status record.

    The loop reports to its listeners (bench/run/listeners.py): the store first, then `on_progress`
    as a ProgressListener, then one listener per factory in `listeners` (e.g. TensorBoard).
    stop_after_steps: stop like an interrupt after this many steps in this call (tests use it to
    prove that resuming gives the same result as not stopping).
    resolved: the spec's task and options as `resolve_run` made them (not built again).
    """
    cfg = spec.train
    task, solver = build(spec, resolved)
    device = torch.device(spec.device)
    state = TrainingState()
    checkpoint_path = run_dir.file("checkpoint.pt")
    if checkpoint_path.exists():
        saved = restore_solver(solver, checkpoint_path)
        state.step, state.elapsed = int(saved["step"]), float(saved["elapsed"])
        state.steps_to_target = None if int(saved["steps_to_target"]) < 0 else int(saved["steps_to_target"])
        state.curve = [row for row in run_dir.read("curve.json", []) if row["step"] <= state.step]
        if notify is not None:
            notify(f"resuming run {run_dir.run_id} from step {state.step}")
    elif init_state is not None:
        warm_start(solver, init_state)

    run_dir.write("environment.json", environment_facts(spec.device))
    held_out, exhaustive = evaluation_set(task, cfg)
    monitor = monitor_set(task, cfg)
    fixed = fixed_training_set(task, cfg)
    parameters = solver.num_parameters()

    store = StoreListener(run_dir, solver, state)
    save = store.save
    events = Listeners([store, *([ProgressListener(on_progress)] if on_progress is not None else []),
                        *(factory(run_dir) for factory in listeners)])
    events.on_start(run_dir.run_id, state.step)
    steps_this_call = 0
    reached = state.steps_to_target is not None
    last_metrics: dict[str, Any] = {}
    with deferred_interrupts() as interrupt:
        tick = time.perf_counter()
        while state.step < cfg.steps and not reached:
            step = state.step
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            batch = TensorBatch.from_numpy(training_batch(task, cfg, step, fixed), device)
            set_learning_rate(solver.optimizer, solver.optim_config.lr_factor(step))
            with precision_context(device, cfg.precision):
                last_metrics = solver.train_step(batch)
            state.step = step + 1
            steps_this_call += 1
            now = time.perf_counter()
            state.elapsed += now - tick
            tick = now
            if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
                with precision_context(device, cfg.precision):
                    accuracy = quick_accuracy(solver, task, monitor, device)
                state.curve.append(
                    {
                        "step": state.step,
                        **_rounded(last_metrics),
                        "accuracy": accuracy,
                        "elapsed": round(state.elapsed, 3),
                    }
                )
                if accuracy >= cfg.target:
                    state.steps_to_target, reached = state.step, True
                events.on_eval(state.curve[-1])  # the store checkpoints here
                tick = time.perf_counter()  # evaluation and checkpoint time is not training time
            events.on_step(
                state.step, {**last_metrics, "accuracy": state.curve[-1]["accuracy"] if state.curve else None}
            )
            if interrupt["stop"] or (stop_after_steps is not None and steps_this_call >= stop_after_steps):
                events.on_end("interrupted", {"state": "interrupted", "step": state.step, "elapsed": state.elapsed})
                raise RunInterrupted(run_dir.run_id, state.step)

    # Final evaluation: all test problems, at the trained budget and at every extra budget. The
    # monitor accuracy of the final model is kept apart: it is what model selection may look at.
    with precision_context(device, cfg.precision):
        final = evaluate(solver, task, held_out, device, answers_file=run_dir.file("answers.json"))
    final["test_split"] = {"distinct": len(held_out), "exhaustive": exhaustive}
    # The loop always scores the monitor set at its last step; score again only if that row is missing
    # (a crash between the checkpoint and the curve write, then a resume with nothing left to train).
    last = state.curve[-1] if state.curve else None
    monitor_accuracy = (
        last["accuracy"] if last and last["step"] == state.step else quick_accuracy(solver, task, monitor, device)
    )
    with precision_context(device, cfg.precision):
        budgets = [evaluate(solver, task, held_out, device, thoughts=k) for k in cfg.eval_thoughts]
        extras = solver.diagnostics(task, held_out, device)
    run_dir.write("evaluation.json", {"final": final, "budgets": budgets, "diagnostics": extras})
    save("finished")
    status = {
        "state": "finished",
        "step": state.step,
        "elapsed": round(state.elapsed, 3),
        "accuracy": final["overall"]["accuracy"],
        "low": final["overall"]["low"],
        "high": final["overall"]["high"],
        "n": final["overall"]["n"],
        "correct": final["overall"]["correct"],
        "reached_target": final["overall"]["accuracy"] >= cfg.target,
        "monitor_accuracy": monitor_accuracy,
        "monitor_n": len(monitor),
        "steps_to_target": state.steps_to_target,
        "parameters": parameters,
        "flops_per_step": flops_per_step(spec, resolved),  # so analysis never rebuilds a model to count compute
    }
    events.on_end("finished", status)  # the store writes the status record
    return status


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()}


def start_run(
    spec: RunSpec,
    root: Path,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    stop_after_steps: int | None = None,
    wait: bool = False,
    notify: Callable[[str], None] | None = None,
    listeners: Sequence[ListenerFactory] = (),
    resolved: ResolvedRun | None = None,
) -> tuple[RunDir, dict[str, Any], bool]:
    """Run a spec under `root` unless it already finished. Returns (run dir, status, was_cached).

    One process per run: the run's lock is held throughout (another holder is a one-line RunLocked
    error, or with `wait` a wait for it). `force` on a finished run retrains beside it and replaces
    it only once the new result is complete, so a kill during the retrain loses no finished result.
    `notify` receives one-line messages (waiting for the lock, resuming from step N); `listeners`
    make extra training listeners (bench/run/listeners.py: `loggers(["tensorboard"])`); `resolved`
    is the spec's resolution by `resolve_run` (`bench run`), so training builds no second task.
    """
    run_dir = RunDir(root, spec.run_id)
    if not force and run_dir.exists() and run_dir.read("spec.json") == spec.to_json():
        status = run_dir.status()
        if status.get("state") == "finished":  # served without the lock: a cached result writes nothing
            return run_dir, status, True
    with RunLock(root, spec.run_id).acquire(wait, notify):
        recover_run(root, spec.run_id)
        target, start_over = run_dir, False
        if run_dir.exists():
            stored = run_dir.read("spec.json")
            if stored != spec.to_json():
                raise UserError(f"{run_dir.path} holds a different spec than its id says; move it away")
            status = run_dir.status()
            if status.get("state") == "finished":
                if not force:
                    return run_dir, status, True
                target = RunDir(root, spec.run_id, retrain_path(root, spec.run_id))
            else:
                start_over = force  # unfinished: no finished result to keep, so start over in place
        check_writable(target.path, "run folder")  # before any training, not at its first checkpoint
        for name in ("checkpoint.pt", "curve.json", "evaluation.json", "status.json") if start_over else ():
            run_dir.file(name).unlink(missing_ok=True)
        target.write("spec.json", spec.to_json())
        init_state = None
        if spec.init:
            from bench.run.store import find_run

            source = find_run(root, spec.init)
            if source.status().get("state") != "finished":
                raise UserError(f"--init {spec.init}: that run has not finished")
            init_state = load_checkpoint(source.file("checkpoint.pt"))["solver"]["model"]
        status = run_training(spec, target, on_progress, stop_after_steps, init_state, notify, listeners, resolved)
        if target is not run_dir:
            replace_run(run_dir.path, target.path)
    return run_dir, status, False
