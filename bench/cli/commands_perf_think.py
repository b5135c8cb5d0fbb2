"""`bench perf think`: a thinker's whole training step at its task defaults against gpt (bench/perf/think.py)."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import perf_app
from bench.errors import UserError, user_errors_exit

DEFAULT_SOLVERS = "think_fixed_blind_super_clean"


@perf_app.command("think")
@user_errors_exit
def perf_think_command(
    solver: str = typer.Option(DEFAULT_SOLVERS, "--solver",
                               help="Thinkers to time, comma-separated (any think_* names)."),
    task: str = typer.Option("add", "--task", help="Task whose batches and defaults are used."),
    max_value: Optional[int] = typer.Option(100, "--max", help="The task's scale."),
    thoughts: Optional[str] = typer.Option(None, "--thoughts",
                                           help="Thought budgets K, comma-separated (default: the solver's for the "
                                                "task)."),
    group: Optional[int] = typer.Option(None, "--group",
                                        help="Rollouts per question G (default: the solver's for the task)."),
    batch: Optional[int] = typer.Option(None, "--batch",
                                        help="Problems per step B (default: the solver's for the task, as bench run)."),
    credit: Optional[str] = typer.Option(None, "--credit",
                                         help="Clean reward's credit: position (default), truncate or sequence (see "
                                              "bench solvers)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (bf16 autocast on CUDA, as bench run)."),
    rounds: int = typer.Option(3, "--rounds", help="Interleaved timing rounds; the best round counts."),
    steps: int = typer.Option(2, "--steps", help="Timed steps per side per round."),
    d_model: int = typer.Option(128, "--d-model", help="Transformer width."),
    layers: int = typer.Option(2, "--layers", help="Transformer blocks."),
    profile: bool = typer.Option(False, "--profile",
                                 help="Also print a torch.profiler summary of the thinker's steps."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16",
                              help="Also time the thinker under --precision bf16 (ratio and roofline)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's own choice)."),
    estimator: Optional[str] = typer.Option(None, "--estimator",
                                            help="The thinker's estimator, e.g. imitate (default: the solver's)."),
    settings: Optional[list[str]] = typer.Option(None, "--set",
                                                 help="A task parameter, name=value (repeatable), e.g. terms=4."),
) -> None:
    """Time a thinker's whole training step (B x G rollouts, rewards, both losses, the update) at the
    solver's default K, G and batch for the task.

    ratio = thinker step / gpt step on the same positions: B x G rows as long as a rollout
    (question, <bot>, K thoughts, <eot>, answer). "vs gpt B" = thinker step / gpt step on the B
    problems alone. The aim (issue 14): ratio <= 2.5 on a CPU, <= 2 on a GPU. The model is fresh,
    so its rollouts share few prefixes: the costliest steps of a run.
    """
    from bench.perf.think import think_step_cost
    from bench.sweep.plan import parse_budgets
    from bench.run.train import resolve_device

    names = [name.strip() for name in solver.split(",") if name.strip()]
    if not names or any(not name.startswith("think") for name in names):
        raise UserError(f"--solver {solver!r}: give think_* solver names, e.g. {DEFAULT_SOLVERS}")
    budgets: list[Any] = [None]
    if thoughts is not None:
        budgets = list(parse_budgets(thoughts, "--thoughts"))
        if not budgets or min(budgets) < 1:
            raise UserError(f"--thoughts {thoughts!r}: give budgets >= 1, e.g. 2,4,8")
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {device!r} is not valid; valid: cpu, cuda")
    resolve_device(device)
    for name, value in (("--batch", batch), ("--rounds", rounds), ("--steps", steps), ("--group", group)):
        if value is not None and value < 1:
            raise UserError(f"{name}={value} must be at least 1")
    if threads is not None:
        if not 1 <= threads <= 1024:
            raise UserError(f"--threads {threads} out of range; valid: 1..1024")
        import torch

        torch.set_num_threads(threads)
    from tasks.registry import parse_assignments

    task_params = parse_assignments(settings)  # text: make_task types each value
    rows = [
        think_step_cost(name, task, max_value, k, group, batch, rounds, steps, d_model, layers, device, profile, credit,
                        bf16,
                        estimator, task_params)
        for name in names for k in budgets
    ]
    if fmt == "json":
        print(json.dumps([{k: v for k, v in row.items() if k != "profile"} for row in rows]))
        return
    table = (Table(title=f"thinker step vs gpt step on the same positions (B x G rows), {task} max {max_value}, "
                         f"{device}"))
    for column in ("solver", "credit", "K", "G", "B", "think ms", "gpt BxG ms", "ratio", "gpt B ms", "vs gpt B"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["solver"], str(row["credit"]), str(row["thoughts"]), str(row["group"]), str(row["batch"]),
                      f"{row['think_ms']:.1f}",
                      f"{row['gpt_same_positions_ms']:.1f}", f"{row['ratio']:.2f}", f"{row['gpt_ms']:.1f}",
                      f"{row['ratio_to_gpt_batch']:.1f}")
    console = Console(highlight=False)
    console.print(table)
    for row in rows if bf16 else []:
        share = row["roofline_share"]
        console.print(f"{row['solver']} K={row['thoughts']}: bf16 step {row['think_bf16_ms']:.1f} ms, "
                      f"[bold]{row['bf16_ratio']:.2f}x[/] "
                      f"the fp32 step; roofline ({row['gflop_per_step']:.2f} GFLOP a step): fp32 "
                      f"{100 * share['fp32']:.0f}%, "
                      f"bf16 {100 * share['bf16']:.0f}% of this CPU's measured matmul peak")
    for row in rows:
        if row["profile"]:
            console.print(f"[bold]{row['solver']} K={row['thoughts']}: where the step's time goes[/]")
            print(row["profile"])
