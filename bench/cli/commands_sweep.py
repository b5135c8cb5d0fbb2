"""`bench sweep`: run a grid of settings (size x thought budget x seed x anything), resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.cli import app
from bench.config import command_options, run_options
from bench.errors import UserError, user_errors_exit
from bench.sweep.plan import Grid, split_values

console = Console()
err_console = Console(stderr=True)

# Run options as flags, each a comma-separated list (a list of more than one is an axis): every field of
# bench/config.py's dataclasses (flag, help) but seed (--seeds) and eval_thoughts (one list of budgets).
LIST_FLAGS = [name for name in run_options() if name not in ("seed", "eval_thoughts")]


def split_assignment(item: str, option: str, form: str) -> tuple[str, str]:
    """'name=text' -> (name, text), or a one-line UserError saying that `option` expects `form`."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{option} expects {form}, got {item!r}")
    return key.strip(), text


def grid_from_cli(values: dict[str, Optional[str]], grid: list[str] | None, sets: list[str] | None,
                  eval_thoughts: Optional[str], name: Optional[str]) -> Grid:
    out = Grid(name=name)
    for key in values:
        text = values.get(key)
        if text is not None:
            out.set(key, split_values(str(text), f"--{key.replace('_', '-')}"))
    for item in grid or []:
        key, text = split_assignment(item, "--grid", "name=v1,v2,...")
        if key.replace("-", "_") == "eval_thoughts":
            raise UserError("--grid eval_thoughts=... is ambiguous (budgets are a list); use --eval-thoughts 0,2,4, or a list of lists in a sweep file")
        out.set(key, split_values(text, f"--grid {key}"))
    for item in sets or []:
        key, text = split_assignment(item, "--set", "name=value")
        out.set(key, [text.strip()])
    if eval_thoughts is not None:
        out.set("eval_thoughts", [eval_thoughts])
    return out


@app.command()
@user_errors_exit
@command_options(LIST_FLAGS, as_text=True)
def sweep(
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="A sweep file (TOML, see experiments/); command-line settings override it."),
    thoughts: Optional[str] = typer.Option(None, "--thoughts", "-k", help="Thought budgets, e.g. 2,4 (only solvers with a thought budget)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds, e.g. 0-4 or 0,1,2."),
    grid: Optional[list[str]] = typer.Option(None, "--grid", help="Any setting as an axis, name=v1,v2 (repeatable): run options, task parameters, solver options."),
    set_values: Optional[list[str]] = typer.Option(None, "--set", help="Any setting fixed, name=value (repeatable)."),
    eval_thoughts: Optional[str] = typer.Option(None, "--eval-thoughts", help="Also evaluate thinkers at these budgets, e.g. 0,2,4,8."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Cells at once (default: one per core; on Ray, the cluster's CPUs)."),
    executor: str = typer.Option("local", "--executor", help="local (this machine) or ray (a Ray cluster; pip install 'thinkbench\\[ray]')."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)."),
    name: Optional[str] = typer.Option(None, help="Sweep name for results/sweeps/NAME.json (default: the file's name, or a hash of the cells)."),
    min_rate: float = typer.Option(0.5, "--min-rate", help="Frontier: share of seeds that must reach the target at a scale."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    results: Optional[str] = typer.Option(None, "--results", help="Results folder (default: ./results or $THINKBENCH_RESULTS)."),
    **settings: Optional[str],
) -> None:
    """Run every cell of a grid as an ordinary run; finished cells are skipped, so a stopped sweep resumes.
    Each run option takes a comma-separated list of values; a list of more than one is an axis.

    Example: bench sweep --task add --solver gpt,think_fixed_blind_super --max 50,100,200 --thoughts 2,4 --seeds 0-4
    """
    from bench.sweep.executors import EXECUTORS
    from bench.run.store import results_root
    from bench.sweep.plan import load_toml

    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r} is not valid; valid: {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs={jobs} must be at least 1")
    if not 0.0 < min_rate <= 1.0:
        raise UserError(f"--min-rate={min_rate} must be in (0, 1]")
    root = results_root(results)
    cli = grid_from_cli({**settings, "thoughts": thoughts, "seeds": seeds}, grid, set_values, eval_thoughts, name)
    plan = cli
    if file is not None:
        from_file = load_toml(file)
        from_file.name = from_file.name or file.stem
        plan = from_file.merged(cli)
    result = run_plan(plan, root, jobs, executor, ray_address, quiet, min_rate, dry_run)
    if result is None:
        return
    _, _, counts = result
    if stopped(counts):
        err_console.print("sweep interrupted; run the same command again to resume")
        raise typer.Exit(130)
    if counts.get("failed"):
        raise typer.Exit(1)


def run_plan(plan: Grid, root: Path, jobs: int | None, executor: str, ray_address: str | None, quiet: bool,
             min_rate: float, dry_run: bool, train: bool = True,
             before_training: Callable[[str], None] | None = None) -> tuple[Any, str, dict[str, int]] | None:
    """What `bench sweep` and `bench experiment` share: expand the plan (printing refused cells), list
    it and stop on a dry run (returns None), else write its record and, when `train`, run its cells and
    print the summary. Returns (expansion, sweep name, outcome counts; empty when not trained)."""
    from bench.sweep.plan import count_outcomes, expand, sweep_name, write_record

    expansion = expand(plan, root)
    label = sweep_name(plan, expansion.cells)
    for line in expansion.refused:
        err_console.print(f"[yellow]skipped[/]: {line}")
    if dry_run:
        print_cells(expansion)
        return None
    record = write_record(root, label, plan, expansion)  # an unwritable sweeps/ is one line, before training
    if before_training is not None:  # e.g. the experiment's report folder must be writable
        before_training(label)
    counts: dict[str, int] = {}
    if train:
        from bench.sweep.plan import execute

        display = None if quiet else (lambda finished: SweepProgress(expansion, finished))
        outcomes = execute(expansion, root, jobs, executor, ray_address, label, err_console.print, display)
        print_summary(expansion, outcomes, root, min_rate)
        err_console.print(f"[dim]sweep record: {record}[/]")
        counts = count_outcomes(outcomes)
    return expansion, label, counts


def stopped(counts: dict[str, int]) -> bool:
    """Some cells were interrupted or never started: running the same command again resumes them."""
    return bool(counts.get("interrupted") or counts.get("not started"))


class SweepProgress:
    """The rich progress display of a sweep: one overall bar, one bar per running cell. A listener for
    bench.sweep.execute (called with each start/step/done event) and a context that shows it."""

    def __init__(self, expansion: Any, already_finished: int) -> None:
        cells = expansion.cells
        self.names = {c.run_id: c.label([k for k in expansion.varying if k != "device"]) for c in cells}
        self.steps = {c.run_id: c.spec.train.steps for c in cells}
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=err_console, transient=False,
        )
        self.overall = self.progress.add_task("[bold]cells", total=len(cells), completed=already_finished, info="")
        self.done, self.failed = already_finished, 0
        self.rows: dict[str, Any] = {}

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, kind: str, run_id: str, data: dict[str, Any]) -> None:
        progress = self.progress
        if kind == "start" and run_id not in self.rows:
            self.rows[run_id] = progress.add_task(f"  {run_id} {self.names.get(run_id, '')}", total=self.steps.get(run_id), info="")
        elif kind == "step" and run_id in self.rows:
            accuracy = data.get("accuracy")
            progress.update(self.rows[run_id], completed=data["step"], info="" if accuracy is None else f"acc {accuracy:.3f}")
        elif kind == "done":
            if run_id in self.rows:
                progress.remove_task(self.rows.pop(run_id))
            self.done += data["outcome"] not in ("interrupted", "not started")
            self.failed += data["outcome"] == "failed"
            progress.update(self.overall, completed=self.done, info=f"{self.failed} failed" if self.failed else "")


def print_cells(expansion: Any) -> None:
    table = Table(title=f"{len(expansion.cells)} cells")
    columns = [k for k in expansion.varying] or ["solver"]
    table.add_column("run id")
    for column in columns:
        table.add_column(column)
    for cell in expansion.cells:
        table.add_row(cell.run_id, *(str(cell.settings.get(k, "-")) for k in columns))
    console.print(table)


def print_summary(expansion: Any, outcomes: dict[str, dict[str, Any]], root: Path, min_rate: float) -> None:
    """Per configuration (seeds pooled): accuracy, success rate; then the frontier and AUC."""
    from bench.analysis.frontier import config_columns, frontier_table, run_table, seed_summary
    from bench.sweep.plan import typed_setting

    runs = run_table(root, [c.run_id for c in expansion.cells])
    if runs.empty:
        console.print("no finished cells yet")
        return
    by = config_columns(runs)
    summary = seed_summary(runs, by, min_rate)
    total_seeds = {}
    for cell in expansion.cells:
        key = tuple(show(typed_setting(cell.spec, k)) for k in by) + (show(typed_setting(cell.spec, "max")),)
        total_seeds[key] = total_seeds.get(key, 0) + 1
    table = Table(title="sweep summary (over seeds)")
    widths = {"scale": 5, "seeds": 5, "acc": 5, "95% CI": 9, "success": 7}
    for column in [*by, "scale", "seeds", "acc", "95% CI", "success"]:
        table.add_column(column, justify="right" if column in widths else "left", min_width=widths.get(column),
                         overflow="ellipsis" if column in widths else "fold")
    for row in summary.itertuples(index=False):
        values = row._asdict()
        key = tuple(show(values[k]) for k in by) + (show(values["scale"]),)
        table.add_row(
            *(show(values[k]) for k in by), show(values["scale"]), f"{values['seeds']}/{total_seeds.get(key, values['seeds'])}",
            f"{values['accuracy']:.3f}", f"{values['low']:.2f}-{values['high']:.2f}", f"{values['success_rate']:.2f}",
        )
    console.print(table)
    if runs["scale"].nunique() > 1:
        frontier = frontier_table(runs, by, min_rate)
        table = Table(title=f"frontier: largest scale where >= {min_rate:.0%} of seeds reach the target")
        for column in [*by, "frontier", "AUC", "success rate by scale"]:
            table.add_column(column, min_width={"frontier": 8, "AUC": 5}.get(column), overflow="fold")
        for row in frontier.itertuples(index=False):
            values = row._asdict()
            reached = f"< {show(min_scale(runs))}" if values["frontier"] != values["frontier"] else show(values["frontier"])
            table.add_row(*(show(values[k]) for k in by), reached, f"{values['auc']:.3f}", values["rates"])
        console.print(table)


def min_scale(runs: Any) -> Any:
    return runs["scale"].min()


def show(value: Any) -> str:
    """A table cell: '-' for a setting a solver does not have (NaN in pandas), 2 not 2.0."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
