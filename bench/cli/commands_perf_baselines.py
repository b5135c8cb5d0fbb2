"""`bench perf looped` and `bench perf baselines`: the step cost of the issue-31 baselines against gpt
(bench/perf/baselines.py)."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import perf_app
from bench.errors import UserError, user_errors_exit

MAX_ROUNDS = 16  # looped's default max_thoughts


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")


@perf_app.command("looped")
@user_errors_exit
def perf_looped_command(
    rounds: str = typer.Option("1,2,4,8", "--rounds", "-r", help="Iterations r to measure, comma-separated (1..16)."),
    task: str = typer.Option("multiadd", "--task", help="Task whose batch is used."),
    max_value: Optional[int] = typer.Option(100, "--max", help="The task's scale."),
    assignments: Optional[list[str]] = typer.Option(None, "--set",
                                                    help="Task parameter key=value; repeatable (default for multiadd: "
                                                         "terms=4)."),
    batch: int = typer.Option(256, "--batch", help="Problems per step."),
    repeats: int = typer.Option(5, "--repeats", help="Timed steps per solver and r (median reported)."),
    d_model: int = typer.Option(128, "--d-model", help="Transformer width."),
    layers: int = typer.Option(2, "--layers", help="Blocks in looped's stack (gpt gets r x this)."),
    inject: bool = typer.Option(False, "--inject", help="Time looped with input injection."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
) -> None:
    """FLOPs and seconds of a looped training step (an L-block stack applied r times, shared weights)
    against gpt with r x L blocks on the same batch: recurrence against plain depth at equal compute.

    Example: bench perf looped --rounds 1,2,4,8 --task multiadd --max 100 --set terms=4
    """
    import torch

    from bench.perf.baselines import looped_step_cost
    from bench.sweep.plan import parse_budgets
    from tasks import parse_assignments

    budgets = list(parse_budgets(rounds, "--rounds"))
    if not budgets or any(not 1 <= r <= MAX_ROUNDS for r in budgets):
        raise UserError(f"--rounds {rounds!r}: iterations must be in 1..{MAX_ROUNDS}")
    _check_format(fmt)
    if not 1 <= batch <= 65536 or not 1 <= repeats <= 1000:
        raise UserError(f"--batch {batch} / --repeats {repeats}: valid: batch 1..65536, repeats 1..1000")
    if not 1 <= layers <= 16 or not 1 <= d_model <= 4096 or d_model % 4:
        raise UserError(f"--layers {layers} / --d-model {d_model}: valid: layers 1..16, d_model 4..4096 divisible by 4 "
                        "heads")
    params = parse_assignments(assignments)
    if task == "multiadd":
        params.setdefault("terms", "4")
    if threads is not None:
        torch.set_num_threads(threads)
    rows = looped_step_cost(budgets, task, max_value, params, batch, d_model, layers, 4, inject, repeats)
    if fmt == "json":
        print(json.dumps(rows))
        return
    table = Table(title=f"training step: looped (r x {layers} blocks, shared) vs gpt (r x {layers} blocks), batch "
                        f"{batch}, cpu")
    for column in ("r", "blocks", "looped GFLOP", "gpt GFLOP", "FLOP ratio", "looped ms", "gpt ms", "time ratio",
                   "params looped / gpt"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["r"]), str(row["blocks"]), f"{row['looped_flops'] / 1e9:.2f}",
                      f"{row['gpt_flops'] / 1e9:.2f}",
                      f"{row['flop_ratio']:.2f}x", f"{1000 * row['looped_s']:.0f}", f"{1000 * row['gpt_s']:.0f}",
                      f"{row['time_ratio']:.2f}x", f"{row['looped_params']:,} / {row['gpt_params']:,}")
    Console(highlight=False).print(table)


@perf_app.command("baselines")
@user_errors_exit
def perf_baselines_command(
    task: str = typer.Option("multiadd", "--task", help="Task (with a reference trace: cot and aux need one)."),
    max_value: Optional[int] = typer.Option(100, "--max", help="The task's scale."),
    assignments: Optional[list[str]] = typer.Option(None, "--set",
                                                    help="Task parameter key=value; repeatable (default for multiadd: "
                                                         "terms=4)."),
    layers: int = typer.Option(2, "--layers", help="Transformer blocks (every solver)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """FLOPs of one training step of gpt, gpt --opt aux=trace, cot, looped (r = 4, injection) and the
    imitation thinker at their defaults for a task (bench run's batch), counted as `bench tune` counts
    them; multiply by a run's steps for its total.

    Example: bench perf baselines --task multiadd --max 100 --set terms=4
    """
    from bench.perf.baselines import baseline_flops
    from tasks import parse_assignments

    _check_format(fmt)
    if not 1 <= layers <= 16:
        raise UserError(f"--layers {layers} out of range; valid: 1..16")
    params = parse_assignments(assignments)
    if task == "multiadd":
        params.setdefault("terms", "4")
    rows = baseline_flops(task, max_value, params, layers)
    if fmt == "json":
        print(json.dumps(rows))
        return
    table = Table(title=f"one training step, FLOPs counted by torch: {task} max={max_value} "
                        f"{' '.join(f'{k}={v}' for k, v in params.items())}")
    for column in ("solver", "batch", "GFLOP a step", "vs gpt"):
        table.add_column(column, justify="right" if column != "solver" else "left")
    for row in rows:
        if row["flops"] is None:
            table.add_row(row["solver"], "-", "refused", row["refused"])
        else:
            table.add_row(row["solver"], str(row["batch"]), f"{row['flops'] / 1e9:.2f}", f"{row['ratio']:.2f}x")
    Console(highlight=False).print(table)
