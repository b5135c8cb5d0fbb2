"""`bench perf data`: problems generated per second per task, at default and large scale."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import perf_app
from bench.errors import UserError, user_errors_exit
from bench.perf.data import data_throughput
from tasks import task_class


def parse_task_list(items: list[str] | None) -> list[str] | None:
    """`--tasks add,graph` or `--tasks add --tasks graph`; unknown names fail with the valid list."""
    names = [part.strip() for item in items or [] for part in item.split(",") if part.strip()]
    for name in names:
        task_class(name)  # raises a one-line TaskError naming the valid tasks
    return list(dict.fromkeys(names)) or None


@perf_app.command("data")
@user_errors_exit
def perf_data_command(
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="Tasks to measure, comma-separated; default: all."),
    seconds: float = typer.Option(1.0, "--seconds", help="Measuring time per task and scale."),
    batch: int = typer.Option(256, "--batch", help="Problems per sample() call, as in a training step."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Measure data generation: problems per second per task, at default and at a large scale."""
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")
    if not 0 < seconds <= 60:
        raise UserError(f"--seconds {seconds} out of range; valid: more than 0, at most 60")
    if not 1 <= batch <= 100_000:
        raise UserError(f"--batch {batch} out of range; valid: 1..100000")
    rows = data_throughput(parse_task_list(tasks), seconds=seconds, batch=batch)
    if fmt == "json":
        print(json.dumps(rows))
        return
    table = Table(title=f"data generation, batch {batch}, ~{seconds:g} s per row")
    table.add_column("task", style="bold", no_wrap=True)
    table.add_column("scale", no_wrap=True)
    table.add_column("problems/s", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", no_wrap=True)
    for row in rows:
        scale = f"{row['scale_param']}={row['scale']}" if row["scale"] is not None else "default"
        target = row["target"]
        if row["error"]:
            table.add_row(row["task"], scale, "-", "", row["error"])
            continue
        rate = row["problems_per_s"]
        verdict = "" if target is None else ("ok" if rate >= target else "below target")
        table.add_row(row["task"], scale, f"{rate:,.0f}", f"{target:,}" if target else "", verdict)
    Console(highlight=False).print(table)
