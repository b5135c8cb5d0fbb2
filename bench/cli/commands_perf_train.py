"""`bench perf train`: tokens/s of the project's GPT training step against a plain-PyTorch reference."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import perf_app
from bench.errors import UserError, user_errors_exit
from bench.perf.config import REFERENCES, PerfTrainConfig

_DEFAULTS = PerfTrainConfig()


@perf_app.command("train")
@user_errors_exit
def perf_train_command(
    task: str = typer.Option(_DEFAULTS.task, "--task", "-t", help="Task whose batches both sides train on."),
    max_value: int = typer.Option(_DEFAULTS.max_value, "--max", "-m", help="The task's scale (add: modulus)."),
    d_model: int = typer.Option(_DEFAULTS.d_model, "--d-model", help="Width of both models."),
    layers: int = typer.Option(_DEFAULTS.layers, "--layers", help="Blocks of both models."),
    heads: int = typer.Option(_DEFAULTS.heads, "--heads", help="Attention heads (must divide --d-model)."),
    batch: int = typer.Option(_DEFAULTS.batch, "--batch", help="Problems per step."),
    steps: int = typer.Option(_DEFAULTS.steps, "--steps", help="Timed steps per side per round."),
    rounds: int = typer.Option(_DEFAULTS.rounds, "--rounds", help="Interleaved rounds (medians are reported)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    reference: str = typer.Option(_DEFAULTS.reference, "--reference", help="encoder (torch's TransformerEncoderLayer) or blocks (hand-written)."),
    profile: bool = typer.Option(False, "--profile", help="Also print torch.profiler's top ops for both sides."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="Also time the project under --precision bf16 and print the roofline."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's own choice)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Time a GPT training step of the project against a plain-PyTorch model of the same shape.

    Example: bench perf train --d-model 128 --layers 2 --batch 256 --threads 1

    Also times the project under --precision bf16 (--no-bf16: not) and prints the bf16/fp32 ratio and the
    roofline: the step's GFLOP/s as a share of this machine's own measured matmul peak per precision.
    """
    from bench.perf.train import measure_train_throughput, profile_sides
    from bench.run.train import resolve_device
    from solvers.base import ModelConfig

    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not valid; valid: table, json")
    if reference not in REFERENCES:
        raise UserError(f"--reference {reference!r} is not valid; valid: {', '.join(REFERENCES)}")
    for name, value, high in (("batch", batch, 1_000_000), ("steps", steps, 100_000), ("rounds", rounds, 1000)):
        if not 1 <= value <= high:
            raise UserError(f"--{name} {value} out of range; valid: 1..{high}")
    if threads is not None:
        if not 1 <= threads <= 1024:
            raise UserError(f"--threads {threads} out of range; valid: 1..1024")
        import torch

        torch.set_num_threads(threads)
    ModelConfig(d_model, layers, heads).validate()
    cfg = PerfTrainConfig(
        task=task, max_value=max_value, d_model=d_model, layers=layers, heads=heads, batch=batch, steps=steps,
        rounds=rounds, device=resolve_device(device), reference=reference,  # type: ignore[arg-type]
        compare_bf16=bf16,
    )
    result = measure_train_throughput(cfg)
    if fmt == "json":
        print(json.dumps(result))
    else:
        table = Table(
            title=f"train step: {task} max={max_value}, {layers}L d{d_model} {heads}h, "
            f"batch {batch} x {result['tokens_per_step'] // batch} tokens, {cfg.device} {result['threads']} threads"
        )
        for column in ("side", "tokens/s", "parameters"):
            table.add_column(column, justify="right" if column != "side" else "left")
        table.add_row("project (gpt train_step)", f"{result['project_tokens_per_s']:,.0f}", f"{result['parameters']['project']:,}")
        table.add_row(f"reference ({reference})", f"{result['reference_tokens_per_s']:,.0f}", f"{result['parameters']['reference']:,}")
        if bf16:
            table.add_row("project, --precision bf16", f"{result['project_bf16_tokens_per_s']:,.0f}", f"{result['parameters']['project']:,}")
        console = Console(highlight=False)
        console.print(table)
        spread = result["rounds"]["ratio"]
        console.print(
            f"ratio project/reference: [bold]{result['ratio']:.2f}[/] (median of {rounds} interleaved rounds; "
            f"range {min(spread):.2f}-{max(spread):.2f}; aim >= 1.0)"
        )
        if bf16:
            ms, gflops, peak, share = result["step_ms"], result["gflops"], result["matmul_peak_gflops"], result["roofline_share"]
            console.print(f"bf16/fp32: [bold]{result['bf16_ratio']:.2f}x[/] (step {ms['fp32']:.1f} -> {ms['bf16']:.1f} ms, "
                          f"median of per-round ratios)")
            for p in ("fp32", "bf16"):
                console.print(f"roofline {p}: {result['gflop_per_step']:.2f} GFLOP a step at {gflops[p]:,.1f} GFLOP/s = "
                              f"[bold]{100 * share[p]:.0f}%[/] of this CPU's measured {p} matmul rate ({peak[p]:,.0f} GFLOP/s at "
                              f"{' x '.join(map(str, result['matmul_peak_shape'][:2]))} @ {' x '.join(map(str, result['matmul_peak_shape'][1:]))})")
    if profile:
        for side, text in profile_sides(cfg).items():
            Console(highlight=False, stderr=True).print(f"[bold]{side}[/]")
            print(text, file=sys.stderr)
