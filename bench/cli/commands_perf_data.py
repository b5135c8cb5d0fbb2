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
from tasks import make_task, parse_assignments, task_class, task_names


def parse_task_list(items: list[str] | None) -> list[str] | None:
    """`--tasks add,graph` or `--tasks add --tasks graph`; unknown names fail with the valid list."""
    names = [part.strip() for item in items or [] for part in item.split(",") if part.strip()]
    for name in names:
        task_class(name)  # raises a one-line TaskError naming the valid tasks
    return list(dict.fromkeys(names)) or None


def parse_scales(text: str | None) -> list[int] | None:
    """`--scales 4,8,16` as integers; a one-line error naming the bad entry."""
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            values.append(int(part.strip()))
        except ValueError:
            raise UserError(f"--scales entry {part.strip()!r} is not an integer; valid: comma-separated integers such "
                            "as 4,8,16") from None
    return values or None


@perf_app.command("data")
@user_errors_exit
def perf_data_command(
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="Tasks to measure, comma-separated; default: all."),
    seconds: float = typer.Option(1.0, "--seconds", help="Measuring time per task and scale."),
    batch: int = typer.Option(256, "--batch", help="Problems per sample() call, as in a training step."),
    scales: Optional[str] = typer.Option(
        None, "--scales",
        help="Scales (--max values) to measure instead of the default and a large one, comma-separated: 4,8,16,32."
    ),
    assignments: Optional[list[str]] = typer.Option(
        None, "--set", help="Task parameter key=value for every task measured; repeatable."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Measure data generation: problems per second and tokens per problem, per task, at default and
    at a large scale (or at --scales).

    Example: bench perf data --tasks perm --scales 4,8,16,32 --set group=A5
    """
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")
    if not 0 < seconds <= 60:
        raise UserError(f"--seconds {seconds} out of range; valid: more than 0, at most 60")
    if not 1 <= batch <= 100_000:
        raise UserError(f"--batch {batch} out of range; valid: 1..100000")
    names, chosen_scales, overrides = parse_task_list(tasks), parse_scales(scales), parse_assignments(assignments)
    if chosen_scales or overrides:  # what the user typed must build: one-line error (exit 2), not an error row
        for name in names or task_names():
            for scale in chosen_scales or [None]:
                make_task(name, scale, overrides)
    rows = data_throughput(names, seconds=seconds, batch=batch, scales=chosen_scales, overrides=overrides)
    if fmt == "json":
        print(json.dumps(rows))
        return
    table = Table(title=f"data generation, batch {batch}, ~{seconds:g} s per row")
    table.add_column("task", style="bold", no_wrap=True)
    table.add_column("scale", no_wrap=True)
    table.add_column("problems/s", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("trace", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", no_wrap=True)
    for row in rows:
        scale = f"{row['scale_param']}={row['scale']}" if row["scale"] is not None else "default"
        target = row["target"]
        if row["error"]:
            table.add_row(row["task"], scale, "-", "", "", "", row["error"])
            continue
        rate = row["problems_per_s"]
        verdict = "" if target is None else ("ok" if rate >= target else "below target")
        table.add_row(row["task"], scale, f"{rate:,.0f}", str(row["tokens"]), str(row["trace_tokens"]),
                      f"{target:,}" if target else "", verdict)
    Console(highlight=False).print(table)
