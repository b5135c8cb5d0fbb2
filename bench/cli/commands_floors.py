"""`bench floors`: the accuracy of cheap predictors (shortcut floors) on a task's test split."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import app
from bench.errors import UserError, user_errors_exit
from tasks import make_task, parse_assignments, task_names

MAX_FLOOR_PROBLEMS = 100_000
FLOORS_HELP = (
    "Shortcut floors: what predictors that never solve the problem score on the test split.\n\n"
    "Majority answer, majority per size bucket, and the task's surface rules (graph: isolated endpoint; sat: clause "
    "and literal counts, a logistic regression on size statistics; sort: copy the input; add, multiadd: the sum "
    "without the modulus; perm: the last element, the product of the last r; parity: the last r bits, the majority "
    "bit; mult: no carries). graph and sat score the answer's kind (path / no path, SAT / UNSAT); the others the "
    "whole answer. Read a solver's accuracy against the best floor.\n\n"
    "Example: bench floors --task graph --max 16"
)


@app.command("floors", help=FLOORS_HELP)
@user_errors_exit
def floors_command(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task name (see `bench tasks`)."),
    max_value: Optional[int] = typer.Option(None, "--max", help="The task's scale; default: the task's own."),
    assignments: Optional[list[str]] = typer.Option(None, "--set", help="Parameter override key=value; repeatable."),
    n: int = typer.Option(2000, "-n", "--n",
                          help="Eval-split problems scored (as many train problems fit the predictors)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the problems drawn."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Shortcut floors; the help text is FLOORS_HELP (one paragraph a line there: typer keeps line breaks)."""
    from bench.analysis.floors import measure_floors

    if task is None:
        raise UserError(f"missing --task; valid: {', '.join(task_names())}")
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")
    if not 10 <= n <= MAX_FLOOR_PROBLEMS:
        raise UserError(f"-n {n} out of range; valid: 10..{MAX_FLOOR_PROBLEMS}")
    if seed < 0:
        raise UserError(f"--seed {seed} out of range; valid: a non-negative integer")
    problem_task = make_task(task, max_value, parse_assignments(assignments))
    floors = measure_floors(problem_task, n, seed)
    if fmt == "json":
        print(json.dumps({
            "task": problem_task.name, "params": problem_task.param_dict(), "n": n, "seed": seed,
            "floors": [floor.as_dict() for floor in floors],
        }))
        return
    settings = " ".join(f"{k}={v}" for k, v in problem_task.param_dict().items())
    table = Table(
        title=f"shortcut floors: {problem_task.name} {settings}, {n} test-split problems (seed {seed})",
        caption="fitted on as many train-split problems; graph and sat: accuracy on the answer's kind",
    )
    table.add_column("predictor", style="bold", no_wrap=True)
    table.add_column("accuracy", justify="right")
    table.add_column("how")
    for floor in floors:
        table.add_row(floor.name, f"{floor.accuracy:.3f}", floor.note)
    Console(highlight=False).print(table)
