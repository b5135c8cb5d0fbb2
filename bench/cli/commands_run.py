"""`bench run`, `bench show`, `bench solvers`: train one solver on one task and read the result."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.cli import app
from bench.cli.options import ResultsOption
from bench.errors import UserError, user_errors_exit
from bench.run.records import shown_state
from bench.config import SOLVER_FLAGS, command_options, configs_from, parse_run_option, run_option_types, run_options
from bench.run.store import (
    RunDir,
    RunLock,
    RunLocked,
    check_writable,
    find_run,
    load_checkpoint,
    readable_root,
    results_root,
)
from tasks.registry import parse_assignments

console = Console()
err_console = Console(stderr=True)



def collect_solver_options(named: dict[str, Any], generic: list[str] | None) -> dict[str, Any]:
    """Dedicated solver options given on the command line (not None) plus `--opt key=value` ones."""
    options = {key: value for key, value in named.items() if value is not None}
    for key, value in parse_assignments(generic).items():
        options[key.replace("-", "_")] = value
    return options


def check_stored_files(stored: RunDir, force: bool) -> None:
    """Read what `start_run` and the result display will read of an existing run folder, so that a
    bad spec, status, curve, evaluation or checkpoint is one line before any other output (every read
    is validated: bench/run/records.py; start_run checks again, for other callers)."""
    if not stored.exists():
        return
    stored.read("spec.json")
    finished = stored.status().get("state") == "finished"
    if finished and not force:  # the stored result will be shown
        stored.read("curve.json")
        stored.read("evaluation.json")
    elif not force and stored.file("checkpoint.pt").exists():  # it will resume from the checkpoint
        load_checkpoint(stored.file("checkpoint.pt"))


def check_init_source(root: Any, init: str) -> str:
    """The run id for --init: a finished run whose checkpoint loads (one line otherwise, up front)."""
    source = find_run(root, init)
    if source.status().get("state") != "finished":
        raise UserError(f"--init {init}: that run has not finished")
    load_checkpoint(source.file("checkpoint.pt"))
    return source.run_id


def train_progress(total: int, quiet: bool) -> tuple[Progress | None, Any]:
    if quiet:
        return None, None
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("acc {task.fields[acc]}"),
        TextColumn("{task.fields[rate]} steps/s"),
        TextColumn("eta {task.fields[eta]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    return progress, progress.add_task("train", total=total, loss="-", acc="-", rate="-", eta="-")


# `bench run`'s run options: every field of bench/config.py's dataclasses but monitor_size (it
# follows --eval-size), then the solver flags (--thoughts, --estimator, ...: bench.config.SOLVER_FLAGS,
# from the solvers' Options); flags, types, defaults and help come from the fields.
RUN_FLAGS = [name for name in run_options() if name != "monitor_size"] + list(SOLVER_FLAGS)
RUN_FLAG_OVERRIDES = {
    "batch": {"default": None, "help": "Problems per step (default: the solver's for the task; 256 except "
              "thinkers on long rollouts, see `bench solvers`)."},
}


@app.command()
@user_errors_exit
@command_options(RUN_FLAGS, RUN_FLAG_OVERRIDES)
def run(
    set_params: Optional[list[str]] = typer.Option(
        None, "--set", help="Task parameter key=value (repeatable), e.g. --set terms=6."
    ),
    opt: Optional[list[str]] = typer.Option(
        None, "--opt", help="Any other solver option key=value (repeatable); see `bench solvers`."
    ),
    force: bool = typer.Option(
        False,
        help="Retrain even if this exact spec has finished (the stored result stays until the new one is complete).",
    ),
    wait: bool = typer.Option(
        False,
        "--wait",
        help="If another process is training this exact spec, wait for it instead of stopping (exit 2).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    log: Optional[str] = typer.Option(
        None,
        "--log",
        envvar="THINKBENCH_LOG",
        help="Also log the training curves to: tensorboard (events in RUN/tensorboard/, `tensorboard --logdir "
        "results/runs`; needs the tensorboard extra) and/or wandb (Weights & Biases: the spec as config, the run id "
        "as name, curves and the final evaluation; WANDB_MODE=offline works without an account; needs the wandb "
        "extra), comma-separated. Sweeps and experiments: set $THINKBENCH_LOG.",
    ),
    results: Optional[str] = ResultsOption,
    **config: Any,
) -> None:
    """Train a solver on a task and report held-out accuracy by problem size.

    Example: bench run --task add --solver gpt --max 100
    """
    from bench.run.listeners import loggers
    from bench.run.train import RunInterrupted, resolve_run, start_run

    listeners = loggers(log)  # an unknown logger or a missing extra: one line before anything else
    root = results_root(results)
    # The solver flags and --opt: option values for the solver (typed here by typer, or text that
    # resolve_run parses); everything else: the run options of bench/config.py's dataclasses.
    solver_options = collect_solver_options({name: config.pop(name) for name in SOLVER_FLAGS}, opt)
    types = run_option_types()
    values = {name: parse_run_option(f"--{name.replace('_', '-')}", value, types[name])
              for name, value in config.items() if value is not None}
    values.setdefault("batch", 0)  # 0 = the solver's default for the task (resolve_run)
    choice, train, model, optim = configs_from(values)
    init_id = check_init_source(root, choice["init"]) if choice.get("init") else None
    steps = train.steps
    # Task, solver and options are resolved once, here, and handed on: training builds no second task.
    resolved = resolve_run(choice["task"], choice.get("max"), parse_assignments(set_params), choice["solver"],
                           solver_options, model, optim, train, choice["device"], init_id)
    spec = resolved.spec
    stored = RunDir(root, spec.run_id)
    check_stored_files(stored, force)
    if stored.exists() and (force or stored.status().get("state") != "finished"):  # it will be written
        check_writable(stored.path, "run folder")
    holder = None if wait else RunLock(root, spec.run_id).held_by()
    if holder:  # refused before any other output; start_run takes the lock for real
        raise RunLocked(
            f"run {spec.run_id} is being trained by {holder}; wait for it with --wait, or stop that process"
        )
    err_console.print(f"run [bold]{spec.run_id}[/]: {spec.solver} on {spec.task} {spec.task_params} ({spec.device})")
    if resolved.batch_note:
        err_console.print(f"[dim]defaults: {resolved.batch_note}[/]")
    progress, bar = train_progress(steps, quiet)
    last: dict[str, Any] = {"time": None, "step": 0, "shown": False}

    def on_progress(step: int, metrics: dict[str, Any]) -> None:
        import time

        if not last["shown"]:  # drawn from the first step: a refusal before training is one line alone
            assert progress is not None
            progress.start()
            last["shown"] = True
        now = time.perf_counter()
        if last["time"] is None:
            last["time"], last["step"] = now, step
        # Measured from the end of the first step (its warm-up is not the run's pace), evaluations
        # included: the eta is the remaining steps at the pace so far (an early stop ends sooner).
        rate = (step - last["step"]) / (now - last["time"]) if now > last["time"] else 0.0
        eta = f"{int((steps - step) / rate) // 60}:{int((steps - step) / rate) % 60:02d}" if rate > 0 else "-"
        accuracy = metrics.get("accuracy")
        assert progress is not None
        progress.update(
            bar,
            completed=step,
            loss=f"{metrics.get('loss', float('nan')):.3f}",
            acc="-" if accuracy is None else f"{accuracy:.3f}",
            rate="-" if rate == 0 else f"{rate:.1f}",
            eta=eta,
        )

    try:
        run_dir, status, cached = start_run(spec, root, force, on_progress if progress is not None else None, wait=wait,
                                             notify=lambda line: err_console.print(line), listeners=listeners,
                                             resolved=resolved)
    except RunInterrupted as stop:
        err_console.print(str(stop))
        raise typer.Exit(130) from None
    finally:
        if last["shown"] and progress is not None:
            progress.stop()
    if cached:
        err_console.print("already finished: showing the stored result (use --force to retrain)")
    show_run(run_dir.run_id, root)


def show_run(run_id: str, root: Any) -> None:
    """Print a run's spec, curve summary and evaluation tables."""
    run_dir = find_run(root, run_id)
    spec = run_dir.read("spec.json")
    status = run_dir.status()
    curve = run_dir.read("curve.json", [])
    evaluation = run_dir.read("evaluation.json")
    header = Table(title=f"run {run_dir.run_id}", show_header=False)
    header.add_row("task", f"{spec['task']} {spec['task_params']}")
    header.add_row("solver", f"{spec['solver']} {spec['solver_options'] or ''}")
    header.add_row("model", f"{spec['model']}")
    header.add_row(
        "train",
        f"steps {spec['train']['steps']}, batch {spec['train']['batch']}, lr {spec['optim']['lr']}, "
        f"wd {spec['optim']['weight_decay']}, seed {spec['train']['seed']}, device {spec['device']}",
    )
    state = shown_state(status)
    if state == "stale":
        state = f"stale (was running as pid {status['pid']}, now gone; run it again to resume)"
    elif state == "running" and status.get("pid"):
        state = f"running (pid {status['pid']} on {status.get('host')})"
    header.add_row("state", f"{state} at step {status.get('step')} ({status.get('elapsed') or 0:.1f} s training)")
    if status.get("parameters"):
        header.add_row("parameters", f"{status['parameters']:,}")
    if status.get("flops_per_step"):
        header.add_row(
            "compute",
            f"{status['flops_per_step']:.3g} FLOPs per step, "
            f"{status['flops_per_step'] * status.get('step', 0):.3g} in training",
        )
    if status.get("steps_to_target"):
        header.add_row(
            "monitor",
            f"early stop: monitor accuracy reached {spec['train']['target']} at step {status['steps_to_target']}",
        )
    if status.get("monitor_accuracy") is not None:
        header.add_row(
            "monitor accuracy",
            f"{status['monitor_accuracy']:.4f} on {status.get('monitor_n', '?')} distinct monitor problems "
            "(model selection only)",
        )
    console.print(header)
    if curve:
        points = curve if len(curve) <= 6 else [curve[i * (len(curve) - 1) // 5] for i in range(6)]
        table = Table(title="training curve")
        for column in ("step", "loss", "accuracy", "elapsed s"):
            table.add_column(column, justify="right")
        for row in points:
            table.add_row(
                str(row["step"]),
                f"{row['loss'] if row.get('loss') is not None else float('nan'):.4f}",
                f"{row['accuracy']:.3f}",
                f"{row['elapsed']:.1f}",
            )
        console.print(table)
    if evaluation:
        print_evaluation(evaluation)
    console.print(f"[dim]files: {run_dir.path}[/]")


def print_evaluation(evaluation: dict[str, Any]) -> None:
    from bench.run.train import SMALL_TEST_SPLIT

    final = evaluation["final"]
    overall = final["overall"]
    budget = f" at {final['thoughts']} thoughts" if final.get("thoughts") is not None else ""
    console.print(
        f"[bold]test accuracy{budget}: {overall['accuracy']:.4f}[/] "
        f"(95% CI {overall['low']:.4f}-{overall['high']:.4f}, n={overall['n']} distinct test problems)"
    )
    space = final.get("test_split")
    if space:
        whole = "the whole test split" if space.get("exhaustive") else "a sample of the test split"
        console.print(f"test set: {space.get('distinct')} distinct problems, {whole}")
        if space.get("exhaustive") and int(space.get("distinct", 0)) < SMALL_TEST_SPLIT:
            console.print(f"[yellow]warning: the test split holds only {space.get('distinct')} distinct problems; "
                          f"an accuracy on so few means little (use a larger --max)[/]")
    for key, rows in final["by"].items():
        table = Table(title=f"accuracy by {key}")
        for column in (key, "n", "accuracy", "95% CI"):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(
                str(row["bucket"]), str(row["n"]), f"{row['accuracy']:.3f}", f"{row['low']:.3f}-{row['high']:.3f}"
            )
        console.print(table)
    if evaluation.get("budgets"):
        table = Table(title="accuracy by thought budget")
        for column in ("thoughts", "n", "accuracy", "95% CI"):
            table.add_column(column, justify="right")
        for entry in evaluation["budgets"]:
            o = entry["overall"]
            table.add_row(
                str(entry["thoughts"]), str(o["n"]), f"{o['accuracy']:.3f}", f"{o['low']:.3f}-{o['high']:.3f}"
            )
        console.print(table)
    for key, value in (evaluation.get("diagnostics") or {}).items():
        console.print(f"{key}: {value}")


@app.command()
@user_errors_exit
def show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    results: Optional[str] = ResultsOption,
    errors: bool = typer.Option(
        False,
        "--errors",
        help="List the test problems it answered wrong, with the reference (from answers.json; no checkpoint needed).",
    ),
    limit: int = typer.Option(20, "--limit", help="--errors: list at most this many (0: all)."),
) -> None:
    """Print a stored run: spec, training curve summary, evaluation by size and depth."""
    if limit < 0:
        raise UserError(f"--limit={limit} must be >= 0")
    if errors:
        show_errors(run_id, readable_root(results), limit)
        return
    show_run(run_id, readable_root(results))


def show_errors(run_id: str, root: Any, limit: int) -> None:
    """`bench show RUN --errors`: the wrong answers of the final evaluation beside the reference."""
    from rich.markup import escape

    from bench.analysis.errors import brief, wrong_answers

    run_dir = find_run(root, run_id)
    rows, n = wrong_answers(run_dir)
    console.print(
        f"run {run_dir.run_id}: {len(rows)} of {n} test problems answered wrong"
        + (f" (first {limit})" if limit and len(rows) > limit else "")
    )
    table = Table()
    for column in ("#", "problem", "answer", "reference"):
        table.add_column(column, overflow="fold")
    for row in rows[: limit or None]:
        table.add_row(
            str(row["index"]),
            escape(brief(row["problem"])),
            escape(brief(row["answer"], 40)),
            escape(brief(row["reference"], 40)),
        )
    if rows:
        console.print(table)


@app.command()
@user_errors_exit
def solvers() -> None:
    """List the solver families, how their names compose, and their options with defaults."""
    from solvers.base import solver_families
    from solvers.options import BUDGET_HELP, budget_range

    # The thought budget is one option of every solver that thinks: its doc once, its range per solver.
    table = Table(title="solvers", caption=f"--thoughts: {BUDGET_HELP}", caption_justify="left")
    for column in ("names", "what", "options (default)"):
        table.add_column(column)
    for family in solver_families():
        hints = typing.get_type_hints(family.cls.Options)
        options = []
        for field in dataclasses.fields(family.cls.Options):
            kind = hints[field.name]
            if kind is bool and field.name in _flag_names(family):
                continue
            shown = field.default if field.default is not dataclasses.MISSING else "required"
            shown = family.cls.Options.AUTO.get(field.name, shown)  # defaults chosen per task
            if field.name == "thoughts" and budget_range(family.cls.Options):
                shown = "{}; {}..{}".format(shown, *budget_range(family.cls.Options))
            options.append(f"--{field.name.replace('_', '-')} ({shown})")
        table.add_row("\n".join(family.examples), family.summary, "\n".join(options) or "-")
    console.print(table)


def _flag_names(family: Any) -> set[str]:
    """Boolean fields set by the solver's name (e.g. blind, super), not by options."""
    names: set[str] = set()
    for example in family.examples:
        parsed = family.parse(example)
        if parsed:
            names |= set(parsed[1])
    return names
