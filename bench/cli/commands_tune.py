"""`bench tune`: the same small search for every solver, selected on the monitor split."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import app
from bench.cli.options import ResultsOption, split_assignment
from bench.errors import UserError, user_errors_exit
from bench.sweep.plan import split_values

console = Console()
err_console = Console(stderr=True)


def parse_space(items: list[str] | None) -> dict[str, list[str]]:
    """--space name=v1,v2 (repeatable) -> {name: [values]}; none given -> the default space."""
    from bench.sweep.plan import normalise_name
    from bench.sweep.tune import DEFAULT_SPACE

    if not items:
        return {k: [str(v) for v in values] for k, values in DEFAULT_SPACE.items()}
    space: dict[str, list[str]] = {}
    for item in items:
        key, text = split_assignment(item, "--space", "name=v1,v2,...")
        space[normalise_name(key)] = split_values(text, f"--space {key}")
    return space


def _number(value: Any, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def tune_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("solver", "scale", "selected", "monitor", "test (95% CI)", "ok", "train s", "search s",
                   "GFLOP/step"):
        table.add_column(column, justify="left" if column in ("solver", "selected") else "right")
    for r in rows:
        table.add_row(
            r["solver"], str(r["scale"]), " ".join(f"{k}={v}" for k, v in r["selected"].items()),
            _number(r["monitor_accuracy"], "{:.3f}"),
            f"{_number(r['test_accuracy'], '{:.3f}')} "
            f"({_number(r['test_low'], '{:.2f}')}-{_number(r['test_high'], '{:.2f}')})",
            f"{r['seeds_at_target']}/{r['seeds']}", _number(r["train_seconds"], "{:.0f}"),
            _number(r["search_seconds"], "{:.0f}"), _number(r.get("flops_per_step", 0) / 1e9, "{:.2f}"),
        )
    return table


def tune_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| task | scale | solver | selected | monitor | test | 95% CI | seeds at target | train s | search s | "
             "GFLOP/step | total TFLOP | params |",
             "|---|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['scale']} | {r['solver']} | {' '.join(f'{k}={v}' for k, v in r['selected'].items())} "
            f"| {r['monitor_accuracy']:.3f} | {r['test_accuracy']:.3f} | {r['test_low']:.3f}-{r['test_high']:.3f} | "
            f"{r['seeds_at_target']}/{r['seeds']} | {r['train_seconds']:.0f} | {r['search_seconds']:.0f} | "
            f"{r.get('flops_per_step', 0) / 1e9:.2f} | {r.get('train_flops', 0) / 1e12:.1f} | {r['parameters']:,} |"
        )
    return "\n".join(lines) + "\n"


@app.command()
@user_errors_exit
def tune(
    task: str = typer.Option(..., "--task", "-t", help="Task name."),
    solver: str = typer.Option("gpt", "--solver", "-s",
                               help="Solvers to tune, comma-separated; each gets the same search."),
    max_values: Optional[str] = typer.Option(None, "--max", "-m",
                                             help="Scales, comma-separated (default: the task's)."),
    space: Optional[list[str]] = typer.Option(None, "--space",
                                              help="A search axis name=v1,v2 (repeatable). Default: "
                                                   "lr=0.0003,0.001,0.003 x weight_decay=0,1.0 x "
                                                   "weight_init=gpt2,pytorch."),
    set_values: Optional[list[str]] = typer.Option(None, "--set",
                                                   help="Any setting fixed for every solver, name=value (repeatable), "
                                                        "e.g. thoughts=4."),
    seeds: str = typer.Option("0", "--seeds", help="Seeds per configuration, e.g. 0-2."),
    steps: int = typer.Option(2000, help="Training steps per configuration (the same for every solver)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Runs at once (default: one per core)."),
    name: Optional[str] = typer.Option(None,
                                       help="Name for the record under results/tune/ (default: a hash of the runs)."),
    output: str = typer.Option("table", "--format", help="table, markdown or json."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    results: Optional[str] = ResultsOption,
) -> None:
    """Tune every solver with the same search; select on the monitor split; report test accuracy and compute.

    Example: bench tune --task add --max 200 --solver gpt,pause,continuous --space lr=0.0003,0.001,0.003 --seeds 0-1
    """
    from bench.cli.sweep_view import run_and_show
    from bench.run.store import atomic_write_json, results_root
    from bench.sweep.tune import add_compute, collect_trials, select, tune_grid

    if output not in ("table", "markdown", "json"):
        raise UserError(f"--format {output!r} is not valid; valid: table, markdown, json")
    if steps < 1:
        raise UserError(f"--steps={steps} must be at least 1")
    root = results_root(results)
    fixed: dict[str, list[Any]] = {"task": [task], "solver": split_values(solver, "--solver"),
                                   "seed": split_values(seeds, "--seeds"), "steps": [steps]}
    if max_values is not None:
        fixed["max"] = split_values(max_values, "--max")
    for item in set_values or []:
        key, text = split_assignment(item, "--set", "name=value")
        fixed[key.replace("-", "_")] = [text.strip()]
    search = parse_space(space)
    grid = tune_grid(fixed, search, name)
    swept = run_and_show(grid, root, jobs, "local", None, quiet, dry_run)  # the frontier: every report's one rule
    if swept is None:
        return
    expansion, label = swept.expansion, swept.name
    rows = select(collect_trials(root, expansion.cells, list(search)))
    if not rows:
        raise UserError("no tuning run has finished yet; run the same command again to resume")
    add_compute(rows, expansion.cells)
    record = {"name": label, "space": search, "fixed": fixed, "rows": rows}
    atomic_write_json(root / "tune" / f"{label}.json", record)
    if output == "json":
        print(json.dumps(rows, indent=1))
    elif output == "markdown":
        print(tune_markdown(rows), end="")
    else:
        console.print(tune_table(rows, f"tuned: {label} (selected on the monitor split; test accuracy reported)"))
    err_console.print(f"[dim]tune record: {root / 'tune' / f'{label}.json'}[/]")
    if swept.stopped:
        err_console.print("tuning interrupted; run the same command again to resume")
        raise typer.Exit(130)
