"""How a training run reports: one listener interface, several listeners.

`run_training` calls every listener, in order, at fixed points of the loop:

    on_start(run_id, step)   before the first step of this call (step > 0: resumed from a checkpoint)
    on_step(step, metrics)   after every training step: the solver's metrics (loss, train_acc, ...) and
                             "accuracy", the last monitor accuracy (None before the first evaluation)
    on_eval(row)             after each monitor evaluation: the curve row (step, metrics, accuracy, elapsed)
    on_end(state, status)    "interrupted" or "finished", with the run's status record

The store (`StoreListener`: checkpoint, curve and status) is always first, so the others only see
what is already safe on disk; a progress callback (`bench run`'s bar, a sweep's progress) becomes a
`ProgressListener`; `--log tensorboard` adds a `TensorBoardListener`, `--log wandb` a `WandbListener`
(Weights & Biases; offline with WANDB_MODE=offline). Listeners observe and never
change what a run computes, so none of them is part of the spec or the run id.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import TYPE_CHECKING, Any, Callable, Sequence

from bench.errors import UserError
from bench.run.records import owner
from bench.run.store import RunDir, atomic_torch_save

if TYPE_CHECKING:
    from solvers.base import Solver

TENSORBOARD_DIR = "tensorboard"  # inside the run folder: `tensorboard --logdir results/runs` shows every run
LOG_ENV = "THINKBENCH_LOG"  # the --log default; also how sweeps and experiments turn logging on


class TrainingListener:
    """Hears a training run. Every hook is a no-op here: a listener overrides the ones it needs."""

    def on_start(self, run_id: str, step: int) -> None:
        """Before the first step of this call; `step` > 0 when resuming from a checkpoint."""

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        """After every training step (`step` steps done): the step's metrics and the last monitor accuracy."""

    def on_eval(self, row: dict[str, Any]) -> None:
        """After a monitor evaluation: the training curve's new row."""

    def on_end(self, state: str, status: dict[str, Any]) -> None:
        """Once, when the call ends: state "interrupted" or "finished", and the status record."""


ListenerFactory = Callable[[RunDir], TrainingListener]  # what start_run takes: a listener for the run's folder


class Listeners(TrainingListener):
    """Several listeners heard as one, in order."""

    def __init__(self, listeners: Sequence[TrainingListener]) -> None:
        self.listeners = list(listeners)

    def on_start(self, run_id: str, step: int) -> None:
        for listener in self.listeners:
            listener.on_start(run_id, step)

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.on_step(step, metrics)

    def on_eval(self, row: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.on_eval(row)

    def on_end(self, state: str, status: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.on_end(state, status)


class StoreListener(TrainingListener):
    """The results store: status "running" at the start; checkpoint, curve and status at every
    evaluation and when interrupted; the final status record at the end. `state` is the loop's
    TrainingState (step, curve, elapsed, steps_to_target), read when saving."""

    def __init__(self, run_dir: RunDir, solver: Solver, state: Any) -> None:
        self.run_dir, self.solver, self.state = run_dir, solver, state

    def save(self, state_name: str) -> None:
        state = self.state
        atomic_torch_save(self.run_dir.file("checkpoint.pt"), state.to_checkpoint(self.solver))
        self.run_dir.write("curve.json", state.curve)
        self.run_dir.write("status.json", {"state": state_name, "step": state.step, "elapsed": state.elapsed,
                                           **(owner() if state_name == "running" else {})})

    def on_start(self, run_id: str, step: int) -> None:
        # pid and host: a "running" run whose owner is gone is shown as stale (bench.run.records.shown_state)
        self.run_dir.write("status.json",
                           {"state": "running", "step": self.state.step, "elapsed": self.state.elapsed, **owner()})

    def on_eval(self, row: dict[str, Any]) -> None:
        self.save("running")

    def on_end(self, state: str, status: dict[str, Any]) -> None:
        if state == "interrupted":
            self.save("interrupted")
        else:  # the loop saved the final checkpoint beside evaluation.json; the record is written last
            self.run_dir.write("status.json", status)


class ProgressListener(TrainingListener):
    """A plain per-step callback `(step, metrics)` as a listener (the progress bars use this)."""

    def __init__(self, callback: Callable[[int, dict[str, Any]], None]) -> None:
        self.callback = callback

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        self.callback(step, metrics)


class TensorBoardListener(TrainingListener):
    """Training curves as TensorBoard events in RUN/tensorboard/: train/<metric> every step,
    monitor/accuracy at every evaluation, test/accuracy at the end."""

    def __init__(self, run_dir: RunDir) -> None:
        self.log_dir = run_dir.path / TENSORBOARD_DIR
        self.writer: Any = None

    def on_start(self, run_id: str, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if step == 0:  # training from scratch (also --force): events of an earlier attempt would mix in
            shutil.rmtree(self.log_dir, ignore_errors=True)
        # A resumed run replays the steps after its checkpoint (step): purge_step drops the events an
        # earlier attempt logged after it, so each step keeps one value.
        self.writer = SummaryWriter(str(self.log_dir), purge_step=step + 1 if step else None)

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            if name != "accuracy" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"train/{name}", value, step)

    def on_eval(self, row: dict[str, Any]) -> None:
        self.writer.add_scalar("monitor/accuracy", row["accuracy"], row["step"])

    def on_end(self, state: str, status: dict[str, Any]) -> None:
        if state == "finished" and status.get("accuracy") is not None:
            self.writer.add_scalar("test/accuracy", status["accuracy"], status["step"])
        self.writer.close()


WANDB_PROJECT_ENV = "WANDB_PROJECT"  # W&B's own variable; the project is "thinkbench" when unset


class WandbListener(TrainingListener):
    """The run in Weights & Biases: config = the run spec, name = the run id, train/<metric> every
    step, monitor/accuracy at every evaluation, and at the end test/accuracy (with its interval) in
    the summary and the final evaluation as tables (test/by_<bucket>, test/budgets). W&B's own
    settings apply (WANDB_MODE=offline needs no account and no network; WANDB_PROJECT, WANDB_ENTITY);
    its files go to $WANDB_DIR, else into the run folder (RUN/wandb/). Each call of a run (a resume,
    a --force retrain) is its own W&B run under the same name and group, so steps never go backwards."""

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir
        self.run: Any = None

    def on_start(self, run_id: str, step: int) -> None:
        import wandb

        spec = self.run_dir.read("spec.json")  # written by start_run before training begins
        where = None if os.environ.get("WANDB_DIR") else str(self.run_dir.path)
        try:
            self.run = wandb.init(project=os.environ.get(WANDB_PROJECT_ENV, "thinkbench"), name=run_id, group=run_id,
                                  config={**spec, "run_id": run_id, "resumed_from_step": step}, dir=where,
                                  reinit="create_new", settings=wandb.Settings(console="off"))
        except Exception as exc:  # no login, no network, a bad setting: one line, and the run stays resumable
            lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            raise UserError(
                f"--log wandb: {lines[0]} (WANDB_MODE=offline logs without an account or network)") from None

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        values = {f"train/{name}": value for name, value in metrics.items()
                  if name != "accuracy" and isinstance(value, (int, float)) and not isinstance(value, bool)}
        self.run.log(values, step=step)

    def on_eval(self, row: dict[str, Any]) -> None:
        self.run.log({"monitor/accuracy": row["accuracy"]}, step=row["step"])

    def on_end(self, state: str, status: dict[str, Any]) -> None:
        import wandb

        evaluation = self.run_dir.read("evaluation.json") if state == "finished" else None
        if evaluation is not None:
            final = evaluation["final"]
            tables = {f"test/by_{name}": wandb.Table(columns=["bucket", "n", "correct", "accuracy", "low", "high"],
                                                     data=[[r["bucket"], r["n"], r["correct"], r["accuracy"], r["low"],
                                                            r["high"]] for r in rows])
                      for name, rows in final.get("by", {}).items()}
            if evaluation.get("budgets"):
                tables["test/budgets"] = wandb.Table(columns=["thoughts", "n", "accuracy", "low", "high"],
                                                     data=[[b.get("thoughts"), b["overall"]["n"],
                                                            b["overall"]["accuracy"], b["overall"]["low"],
                                                            b["overall"]["high"]] for b in evaluation["budgets"]])
            self.run.log({"test/accuracy": final["overall"]["accuracy"], **tables}, step=status["step"])
            for key in ("accuracy", "low", "high", "n", "monitor_accuracy", "steps_to_target", "reached_target"):
                if key in status:
                    self.run.summary[f"test/{key}" if key in ("accuracy", "low", "high", "n") else key] = status[key]
        self.run.summary["state"] = state
        # An interrupted run shows as failed in W&B; its resume is a new W&B run in the same group.
        self.run.finish(exit_code=0 if state == "finished" else 1)


LOGGERS: dict[str, ListenerFactory] = {"tensorboard": TensorBoardListener, "wandb": WandbListener}
# Each logger's Python package and the extra that installs it.
_NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}


def loggers(names: str | Sequence[str] | None, where: str = "--log") -> list[ListenerFactory]:
    """Listener factories for `--log` names ("tensorboard", "wandb", comma-separated or a list; None or "" for
    none). An unknown name, or a logger whose package is missing, is a one-line UserError."""
    if names is None or isinstance(names, str):
        names = [part.strip() for part in (names or "").split(",") if part.strip()]
    factories = []
    for name in names:
        if name not in LOGGERS:
            raise UserError(f"{where} {name!r} is not one of: {', '.join(sorted(LOGGERS))}")
        package, extra = _NEEDS[name]
        if importlib.util.find_spec(package) is None:
            raise UserError(f"{where} {name} needs the {extra} extra: pip install -e '.[{extra}]'")
        factories.append(LOGGERS[name])
    return factories


def loggers_from_env() -> list[ListenerFactory]:
    """The loggers $THINKBENCH_LOG names (sweep and experiment cells read it; none when unset)."""
    return loggers(os.environ.get(LOG_ENV), f"${LOG_ENV}")
