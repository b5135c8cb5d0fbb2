"""The measurement behind `bench perf think`: a thinker's whole training step at its defaults against
gpt steps, in one process, interleaved (so load from other processes hits every side alike).

What is timed: `solver.train_step` on a real task batch at fp32 (and, beside it, under
`--precision bf16`, the ratio and each one's share of the machine's measured matmul peak): the B x G rollouts, the
rewards, the thinking and answering losses, the backward pass and the
optimizer update. K, G and the batch are the solver's defaults for the task (solvers/think_options.py)
unless given. The ratio's denominator, "gpt on the same positions", is a gpt step on B x G rows
whose sequences are as long as a rollout's, [question] <bot> K thoughts <eot> [answer] (the question
padded by K + 2 tokens); the table also gives the ratio to a plain gpt step on the B problems.
A fresh model's policy is diffuse, so its rollouts share few prefixes: this is the expensive start
of a run (later steps share more and cost less).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch


def _synced(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def think_step_cost(
    solver: str = "think_fixed_blind_super_clean", task_name: str = "add", max_value: int | None = 100,
    thoughts: int | None = None, group: int | None = None, batch: int | None = None, rounds: int = 3,
    steps: int = 2, d_model: int = 128, layers: int = 2, device: str = "cpu", profile: bool = False,
    credit: str | None = None, bf16: bool = True, estimator: str | None = None,
    task_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Milliseconds per training step of `solver`, of gpt on B x G rows of the rollout's length, and
    of gpt on the B problems; the best round of each counts. profile: also a torch.profiler table of
    the thinker's steps (returned under "profile"). bf16: also the thinker under `--precision bf16` (a
    twin with the same init), its ratio to the fp32 step, and the roofline of both (GFLOP/s against
    this machine's measured matmul peak per precision; bench/perf/train.py)."""
    from bench.perf.train import matmul_peak, step_flops
    from bench.run.evaluate import autocast_for
    from bench.run.precision import precision_context
    from bench.run.train import default_batch
    from solvers.base import ModelConfig, TaskShape, TensorBatch, make_options, make_solver, resolve_solver
    from tasks.base import stream_rng
    from tasks.registry import make_task

    task = make_task(task_name, max_value, task_params or {})
    shape = TaskShape.of(task)
    cls, canonical, flags = resolve_solver(solver)
    given = {k: v for k, v in {"thoughts": thoughts, "group": group, "credit": credit, "estimator": estimator}.items()
             if v is not None}
    options = make_options(cls, canonical, flags, given)
    options = options.resolved(shape)
    B = batch if batch is not None else default_batch(cls, shape, options)[0]
    model = ModelConfig(d_model=d_model, layers=layers, heads=4)
    torch.manual_seed(0)
    own = {k: v for k, v in dataclasses.asdict(options).items() if k not in flags}
    thinker = make_solver(solver, shape, model, options=own).to(device)
    K, G = thinker.K, thinker.G
    data = task.sample(stream_rng(0, "train", 0), B)
    think_batch = TensorBatch.from_numpy(data, device)
    pad_shape = dataclasses.replace(shape, question_len=shape.question_len + K + 2)
    wide = make_solver("gpt", pad_shape, model).to(device)  # B x G rows of the rollout's length
    plain = make_solver("gpt", shape, model).to(device)
    pad = torch.ones(B * G, K + 2, dtype=torch.long, device=device)  # any tokens: only the length matters
    wide_batch = TensorBatch(
        torch.cat([think_batch.questions.repeat_interleave(G, 0), pad], dim=1),
        think_batch.answers.repeat_interleave(G, 0), think_batch.traces.repeat_interleave(G, 0),
    )
    sides = [("think", thinker, think_batch, "fp32"), ("gpt_same_positions", wide, wide_batch, "fp32"),
             ("gpt", plain, think_batch, "fp32")]
    if bf16:
        torch.manual_seed(0)
        twin = make_solver(solver, shape, model, options=own).to(device)
        sides.append(("think_bf16", twin, think_batch, "bf16"))
        flops = step_flops(thinker, think_batch)
    autocast = autocast_for(torch.device(device))
    with autocast:
        for _, s, b, precision in sides:
            with precision_context(device, precision):
                s.train_step(b)  # warm-up
        _synced(device)
        timings: dict[str, list[float]] = {name: [] for name, _, _, _ in sides}
        for _ in range(rounds):
            for name, s, b, precision in sides:
                _synced(device)
                start = time.perf_counter()
                with precision_context(device, precision):
                    for _ in range(steps):
                        s.train_step(b)
                _synced(device)
                timings[name].append((time.perf_counter() - start) / steps)
        table = None
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
            with torch_profile(activities=activities) as prof:
                for _ in range(steps):
                    thinker.train_step(think_batch)
                _synced(device)
            sort_by = "cuda_time_total" if device == "cuda" else "self_cpu_time_total"
            table = prof.key_averages().table(sort_by=sort_by, row_limit=20)
    best = {name: min(values) for name, values in timings.items()}
    extra: dict[str, Any] = {}
    if bf16:
        # The roof at the model's MLP shape over the B problems' rows (best of several, as the steps' best round).
        roof_shape = (B * (shape.question_len + K + 2 + shape.answer_len), d_model, 4 * d_model)
        peaks = {p: matmul_peak(torch.device(device), dtype, roof_shape)
                 for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
        gflops = {"fp32": flops / best["think"] / 1e9, "bf16": flops / best["think_bf16"] / 1e9}
        extra = {"think_bf16_ms": round(1000 * best["think_bf16"], 2),
                 "bf16_ratio": round(best["think"] / best["think_bf16"], 3),  # > 1: bf16 is faster
                 "gflop_per_step": round(flops / 1e9, 3),
                 "roofline_share": {p: round(gflops[p] / peaks[p], 4) for p in peaks},
                 "matmul_peak_gflops": {p: round(v, 1) for p, v in peaks.items()}}
    return {
        "solver": thinker.name, "task": task_name, "max": max_value, "device": device,
        "thoughts": K, "group": G, "batch": B, "credit": options.credit,
        "length": shape.question_len + K + 2 + shape.answer_len,
        "think_ms": round(1000 * best["think"], 2),
        "gpt_same_positions_ms": round(1000 * best["gpt_same_positions"], 2),
        "gpt_ms": round(1000 * best["gpt"], 2),
        "ratio": round(best["think"] / best["gpt_same_positions"], 3),
        "ratio_to_gpt_batch": round(best["think"] / best["gpt"], 3),
        "profile": table,
        **extra,
    }
