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
    reference: str = typer.Option(_DEFAULTS.reference, "--reference",
                                  help="encoder (torch's TransformerEncoderLayer) or blocks (hand-written)."),
    profile: bool = typer.Option(False, "--profile", help="Also print torch.profiler's top ops for every side."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="Also time the project under --precision bf16 and "
                              "print the roofline."),
    trim: bool = typer.Option(True, "--trim/--no-trim", help="With bf16: also time bf16 with gpt's --opt pad=trim "
                              "(question PADs masked and not computed)."),
    threads: Optional[str] = typer.Option(None, "--threads", help="torch threads, or a list timed interleaved in "
                                          "every round, e.g. 1,2 (default: torch's own choice)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Time a GPT training step of the project against a plain-PyTorch model of the same shape.

    Example: bench perf train --task graph --max 6 --threads 1,2

    Also times the project under --precision bf16 (--no-bf16: not) and under bf16 with --opt pad=trim
    (--no-trim: not), and prints their ratios to fp32 and the roofline: each step's GFLOP/s as a share
    of this machine's own measured matmul peak per precision. --threads 1,2 times every side at both
    thread counts in every round and prints the figures per count.
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
    thread_counts = parse_threads(threads)
    ModelConfig(d_model, layers, heads).validate()
    cfg = PerfTrainConfig(
        task=task, max_value=max_value, d_model=d_model, layers=layers, heads=heads, batch=batch, steps=steps,
        rounds=rounds, device=resolve_device(device), reference=reference,  # type: ignore[arg-type]
        compare_bf16=bf16, trim=trim, threads=thread_counts,
    )
    result = measure_train_throughput(cfg)
    if fmt == "json":
        print(json.dumps(result))
    else:
        for count, figures in result["by_threads"].items():
            _print_table(result, figures, cfg, int(count))
    if profile:
        for side, text in profile_sides(cfg).items():
            Console(highlight=False, stderr=True).print(f"[bold]{side}[/]")
            print(text, file=sys.stderr)


def parse_threads(text: str | None) -> tuple[int, ...]:
    """`--threads 1` or `--threads 1,2` -> (1,) or (1, 2); None -> () (torch's own choice)."""
    if text is None:
        return ()
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or any(not 1 <= count <= 1024 for count in counts) or len(set(counts)) != len(counts):
        raise UserError(f"--threads {text!r} is not valid; valid: distinct counts in 1..1024, e.g. 1 or 1,2")
    return counts


def _print_table(result: dict, figures: dict, cfg: PerfTrainConfig, threads: int) -> None:
    """One thread count's table, ratios and roofline lines."""
    batch = cfg.batch
    table = Table(
        title=f"train step: {cfg.task} max={cfg.max_value}, {cfg.layers}L d{cfg.d_model} {cfg.heads}h, "
        f"batch {batch} x {result['tokens_per_step'] // batch} tokens, {cfg.device} {threads} threads"
    )
    for column in ("side", "tokens/s", "parameters"):
        table.add_column(column, justify="right" if column != "side" else "left")
    parameters = f"{result['parameters']['project']:,}"
    table.add_row("project (gpt train_step)", f"{figures['project_tokens_per_s']:,.0f}", parameters)
    table.add_row(f"reference ({cfg.reference})", f"{figures['reference_tokens_per_s']:,.0f}",
                  f"{result['parameters']['reference']:,}")
    if cfg.compare_bf16:
        table.add_row("project, --precision bf16", f"{figures['project_bf16_tokens_per_s']:,.0f}", parameters)
    if "bf16_trim_ratio" in figures:
        table.add_row("project, bf16 + --opt pad=trim", f"{figures['project_bf16_trim_tokens_per_s']:,.0f}", parameters)
    console = Console(highlight=False)
    console.print(table)
    spread = figures["rounds"]["ratio"]
    console.print(
        f"ratio project/reference: [bold]{figures['ratio']:.2f}[/] (median of {cfg.rounds} interleaved rounds; "
        f"range {min(spread):.2f}-{max(spread):.2f}; aim >= 1.0)"
    )
    if not cfg.compare_bf16:
        return
    ms, gflops = figures["step_ms"], figures["gflops"]
    peak, share = figures["matmul_peak_gflops"], figures["roofline_share"]
    console.print(f"bf16/fp32: [bold]{figures['bf16_ratio']:.2f}x[/] (step {ms['fp32']:.1f} -> {ms['bf16']:.1f} ms, "
                  f"median of per-round ratios)")
    if "bf16_trim_ratio" in figures:
        console.print(f"bf16 + pad=trim / fp32: [bold]{figures['bf16_trim_ratio']:.2f}x[/] "
                      f"(step {ms['bf16_trim']:.1f} ms; "
                      f"computes {100 * result['trim_kept_share']:.0f}% of the positions)")
    shape = result["matmul_peak_shape"]
    for p in ("fp32", "bf16"):
        console.print(f"roofline {p}: {figures['gflop_per_step']:.2f} GFLOP a step at {gflops[p]:,.1f} GFLOP/s = "
                      f"[bold]{100 * share[p]:.0f}%[/] of this CPU's measured {p} matmul rate "
                      f"({peak[p]:,.0f} GFLOP/s at "
                      f"{' x '.join(map(str, shape[:2]))} @ {' x '.join(map(str, shape[1:]))})")
    if "bf16_trim_ratio" in figures:
        console.print(f"roofline bf16 + pad=trim: {figures['trim_gflop_per_step']:.2f} GFLOP a step = "
                      f"[bold]{100 * figures['trim_roofline_share']:.0f}%[/] of the bf16 matmul rate")
