"""`bench perf continuous`: the cost of a `continuous` training step against a `gpt` step; the
measurement is bench/perf/continuous.py (`step_cost`), this command parses, calls and prints."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import perf_app
from bench.errors import UserError, user_errors_exit


@perf_app.command("continuous")
@user_errors_exit
def perf_continuous_command(
    thoughts: str = typer.Option("0,2,4,8", "--thoughts", "-k", help="Budgets K to measure, comma-separated."),
    batch: int = typer.Option(256, "--batch", help="Problems per step."),
    repeats: int = typer.Option(20, "--repeats", help="Timed steps per solver and K (median reported)."),
    d_model: int = typer.Option(128, "--d-model"),
    layers: int = typer.Option(2, "--layers"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    uncached: bool = typer.Option(False, "--uncached", help="Time the uncached reference rollout instead."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
) -> None:
    """Time a continuous training step with K thoughts against a gpt step on the same total length."""
    import torch

    from bench.perf.continuous import step_cost
    from bench.sweep.plan import parse_budgets

    budgets = list(parse_budgets(thoughts, "--thoughts"))
    if not budgets or any(not 0 <= k <= 64 for k in budgets):
        raise UserError(f"--thoughts {thoughts!r}: budgets must be in 0..64")
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise UserError(f"--device {device!r} is not available here; valid: cpu"
                        + (", cuda" if torch.cuda.is_available() else ""))
    if not 1 <= batch <= 65536 or not 1 <= repeats <= 1000:
        raise UserError("--batch must be in 1..65536 and --repeats in 1..1000")
    if threads is not None:
        torch.set_num_threads(threads)
    rows = step_cost(budgets, batch=batch, d_model=d_model, layers=layers, heads=4, repeats=repeats, device=device,
                     cached=not uncached)
    if fmt == "json":
        print(json.dumps(rows))
        return
    table = Table(title=f"training step: continuous vs gpt, same positions, batch {batch}, {device}, median of "
                        f"{repeats}")
    for column in ("K", "positions", "continuous ms", "gpt ms", "ratio"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["thoughts"]), str(row["positions"]), f"{1000 * row['continuous_s']:.1f}",
                      f"{1000 * row['gpt_s']:.1f}", f"{row['ratio']:.2f}x")
    Console(highlight=False).print(table)
