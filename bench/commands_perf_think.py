"""`bench perf think`: the cost of a `think_fixed` training step with K thoughts relative to a `gpt`
step on the same total sequence length and batch, measured in one process, interleaved."""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import perf_app
from bench.errors import UserError, user_errors_exit


def think_step_cost(
    thoughts: tuple[int, ...] = (2, 4, 8), batch: int = 256, rounds: int = 5, steps: int = 5,
    d_model: int = 128, layers: int = 2, solver: str = "think_fixed", group: int = 1,
) -> list[dict[str, Any]]:
    """Seconds per training step for `solver` (G rollouts per question) and for `gpt` on a question
    padded by K + 2 tokens, so both see [question] + K + 2 + [answer] positions per row."""
    import dataclasses

    import torch

    from solvers.base import ModelConfig, TaskShape, TensorBatch, make_solver
    from tasks.base import stream_rng
    from tasks.registry import make_task

    task = make_task("add", 100)
    shape = TaskShape.of(task)
    model = ModelConfig(d_model=d_model, layers=layers, heads=4)
    rows = []
    for K in thoughts:
        torch.manual_seed(0)
        options: dict[str, Any] = {"thoughts": K, "group": group}
        if group < 2:
            options["baseline"] = "batch"
        thinker = make_solver(solver, shape, model, options=options)
        gpt = make_solver("gpt", dataclasses.replace(shape, question_len=shape.question_len + K + 2), model)
        data = task.sample(stream_rng(0, "train", 0), batch)
        think_batch = TensorBatch.from_numpy(data, "cpu")
        pad = torch.full((batch, K + 2), 1, dtype=torch.long)  # any tokens: only the length matters
        gpt_batch = TensorBatch(torch.cat([think_batch.questions, pad], dim=1), think_batch.answers, think_batch.traces)
        timings: dict[str, list[float]] = {"think": [], "gpt": []}
        for model_name, s, b in (("think", thinker, think_batch), ("gpt", gpt, gpt_batch)):
            s.train_step(b)  # warm-up
        for _ in range(rounds):  # interleaved, so that load from other processes hits both alike
            for model_name, s, b in (("think", thinker, think_batch), ("gpt", gpt, gpt_batch)):
                start = time.perf_counter()
                for _ in range(steps):
                    s.train_step(b)
                timings[model_name].append((time.perf_counter() - start) / steps)
        think_s, gpt_s = min(timings["think"]), min(timings["gpt"])
        rows.append({
            "solver": solver, "thoughts": K, "group": group, "batch": batch,
            "length": shape.question_len + K + 2 + shape.answer_len,
            "think_ms": round(1000 * think_s, 2), "gpt_ms": round(1000 * gpt_s, 2), "ratio": round(think_s / gpt_s, 3),
        })
    return rows


@perf_app.command("think")
@user_errors_exit
def perf_think_command(
    thoughts: str = typer.Option("2,4,8", "--thoughts", help="Thought budgets K to measure, comma-separated."),
    batch: int = typer.Option(256, "--batch", help="Problems per step (both solvers)."),
    rounds: int = typer.Option(5, "--rounds", help="Interleaved timing rounds; the best round counts."),
    solver: str = typer.Option("think_fixed", "--solver", help="Thinker to time (any think_* name)."),
    group: int = typer.Option(1, "--group", help="Rollouts per question for the thinker (1 = same rows as gpt)."),
    d_model: int = typer.Option(128, "--d-model", help="Transformer width."),
    layers: int = typer.Option(2, "--layers", help="Transformer blocks."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Time a thinker's training step against a gpt step of the same total length and batch."""
    from bench.sweep import parse_budgets

    budgets = parse_budgets(thoughts, "--thoughts")
    if not budgets or min(budgets) < 1:
        raise UserError(f"--thoughts {thoughts!r}: give budgets >= 1, e.g. 2,4,8")
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")
    for name, value, low in (("--batch", batch, 1), ("--rounds", rounds, 1), ("--group", group, 1)):
        if value < low:
            raise UserError(f"{name}={value} must be at least {low}")
    rows = think_step_cost(budgets, batch, rounds, 5, d_model, layers, solver, group)
    if fmt == "json":
        print(json.dumps(rows))
        return
    table = Table(title=f"{solver} step vs gpt step, same length and batch ({batch}), G={group}; aim: ratio <= 1.5")
    for column in ("K", "length", "think ms", "gpt ms", "ratio"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["thoughts"]), str(row["length"]), f"{row['think_ms']:.1f}", f"{row['gpt_ms']:.1f}", f"{row['ratio']:.2f}")
    Console(highlight=False).print(table)
