"""`bench perf continuous`: the cost of a `continuous` training step against a `gpt` step.

Both solvers train on random tokens of the same total input length and batch, in one process,
timed alternately (so a busy machine slows both alike): `continuous` with a question of Lq tokens,
<bot>, K thoughts and <eot> before an La-token answer; `gpt` with a question long enough that its
input has the same number of positions. The continuous step costs K+1 sequential passes (the last
thought rides with the answer); the issue's aim is at most 2x a gpt step for K = 4.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import perf_app
from bench.errors import UserError, user_errors_exit


def step_cost(
    thoughts: list[int],
    batch: int = 256,
    question_len: int = 2,
    answer_len: int = 1,
    vocab: int = 101,
    d_model: int = 128,
    layers: int = 2,
    heads: int = 4,
    repeats: int = 20,
    device: str = "cpu",
    cached: bool = True,
) -> list[dict[str, Any]]:
    """Median seconds per training step of `continuous` (K thoughts) and of `gpt` on the same total
    length, and their ratio, one row per K. cached=False times the uncached reference rollout."""
    import torch

    from solvers.base import ModelConfig, OptimConfig, TaskShape, TensorBatch
    from solvers.continuous import ContinuousOptions, ContinuousSolver
    from solvers.gpt import GPTSolver

    model, optim = ModelConfig(d_model, layers, heads), OptimConfig()
    rows = []
    for k in thoughts:
        torch.manual_seed(0)
        total = question_len + 2 + k + answer_len - 1  # input positions of the continuous step
        shape_c = TaskShape(vocab, question_len, answer_len, 0, 0)
        shape_g = TaskShape(vocab, total - answer_len + 1, answer_len, 0, 0)
        cont = ContinuousSolver(shape_c, model, optim, ContinuousOptions(thoughts=k, max_thoughts=max(k, 16))).to(device)
        gpt = GPTSolver(shape_g, model, optim, None).to(device)
        if not cached:
            uncached = cont.tail_logits

            def reference(questions, kk, targets, cached=True):  # type: ignore[no-untyped-def]
                return uncached(questions, kk, targets, cached=False)

            cont.tail_logits = reference  # type: ignore[method-assign]

        def batch_for(shape: TaskShape) -> TensorBatch:
            return TensorBatch(
                torch.randint(1, vocab, (batch, shape.question_len), device=device),
                torch.randint(1, vocab, (batch, shape.answer_len), device=device),
                torch.zeros((batch, 0), dtype=torch.long, device=device),
            )

        b_c, b_g = batch_for(shape_c), batch_for(shape_g)
        times: dict[str, list[float]] = {"continuous": [], "gpt": []}
        for _ in range(3):  # warm-up
            cont.train_step(b_c)
            gpt.train_step(b_g)
        for _ in range(repeats):
            for name, solver, b in (("continuous", cont, b_c), ("gpt", gpt, b_g)):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                solver.train_step(b)
                if device == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
        c, g = statistics.median(times["continuous"]), statistics.median(times["gpt"])
        rows.append({"thoughts": k, "positions": total, "batch": batch, "continuous_s": c, "gpt_s": g, "ratio": c / g})
    return rows


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

    from bench.sweep.plan import parse_budgets

    budgets = list(parse_budgets(thoughts, "--thoughts"))
    if not budgets or any(not 0 <= k <= 64 for k in budgets):
        raise UserError(f"--thoughts {thoughts!r}: budgets must be in 0..64")
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise UserError(f"--device {device!r} is not available here; valid: cpu" + (", cuda" if torch.cuda.is_available() else ""))
    if not 1 <= batch <= 65536 or not 1 <= repeats <= 1000:
        raise UserError("--batch must be in 1..65536 and --repeats in 1..1000")
    if threads is not None:
        torch.set_num_threads(threads)
    rows = step_cost(budgets, batch=batch, d_model=d_model, layers=layers, heads=4, repeats=repeats, device=device, cached=not uncached)
    if fmt == "json":
        print(json.dumps(rows))
        return
    table = Table(title=f"training step: continuous vs gpt, same positions, batch {batch}, {device}, median of {repeats}")
    for column in ("K", "positions", "continuous ms", "gpt ms", "ratio"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["thoughts"]), str(row["positions"]), f"{1000 * row['continuous_s']:.1f}",
                      f"{1000 * row['gpt_s']:.1f}", f"{row['ratio']:.2f}x")
    Console(highlight=False).print(table)
