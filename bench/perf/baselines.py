"""Step cost of the baselines against `gpt`: FLOPs counted by torch, seconds timed alternately.

`looped_step_cost`: a `looped` step at r iterations of an L-block stack against a `gpt` step with
r x L blocks on the same batch (the same compute shape, the weights not shared). `baseline_flops`:
FLOPs of one training step of each of the issue-31 baselines and the imitation thinker on a task, as
`bench tune` counts them, so total FLOPs = steps x this.
"""

from __future__ import annotations

import statistics
import time
from typing import Any


def train_step_flops(solver: Any, batch: Any) -> int:
    """Floating-point operations of one training step (forward, backward, update), counted by torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    counter = FlopCounterMode(display=False)
    with counter:
        solver.train_step(batch)
    return int(counter.get_total_flops())


def looped_step_cost(
    rounds: list[int],
    task: str = "multiadd",
    max_value: int | None = 100,
    task_params: dict[str, Any] | None = None,
    batch: int = 256,
    d_model: int = 128,
    layers: int = 2,
    heads: int = 4,
    inject: bool = False,
    repeats: int = 5,
) -> list[dict[str, Any]]:
    """One row per r: FLOPs, median seconds and parameters of a looped step (r x `layers`, shared)
    and of a gpt step with r x `layers` blocks, on one batch of the task (CPU)."""
    import numpy as np
    import torch

    from bench.run.build import model_task
    from solvers.base import ModelConfig, OptimConfig, TaskShape, TensorBatch
    from solvers.gpt import GPTSolver
    from solvers.looped import LoopedOptions, LoopedSolver

    model = ModelConfig(d_model, layers, heads)
    the_task = model_task(task, max_value, dict(task_params or {}), model)
    shape = TaskShape.of(the_task)
    data = TensorBatch.from_numpy(the_task.generate(np.random.default_rng(0), batch), "cpu")
    rows = []
    for r in rounds:
        torch.manual_seed(0)
        looped = LoopedSolver(shape, model, OptimConfig(),
                              LoopedOptions(thoughts=r, max_thoughts=max(r, 16), inject=inject))
        deep = GPTSolver(shape, ModelConfig(d_model, max(1, r * layers), heads), OptimConfig(), None)
        flops = {"looped": train_step_flops(looped, data), "gpt": train_step_flops(deep, data)}
        times: dict[str, list[float]] = {"looped": [], "gpt": []}
        for _ in range(repeats):  # alternate, so a busy machine slows both alike
            for name, solver in (("looped", looped), ("gpt", deep)):
                start = time.perf_counter()
                solver.train_step(data)
                times[name].append(time.perf_counter() - start)
        seconds = {name: statistics.median(values) for name, values in times.items()}
        rows.append({
            "r": r, "blocks": r * layers, "batch": batch,
            "looped_flops": flops["looped"], "gpt_flops": flops["gpt"], "flop_ratio": flops["looped"] / flops["gpt"],
            "looped_s": seconds["looped"], "gpt_s": seconds["gpt"], "time_ratio": seconds["looped"] / seconds["gpt"],
            "looped_params": looped.num_parameters(), "gpt_params": deep.num_parameters(),
        })
    return rows


BASELINES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("gpt", "gpt", {}),
    ("gpt aux=trace", "gpt", {"aux": "trace"}),
    ("cot", "cot", {}),
    ("looped r=4 inject", "looped", {"thoughts": 4, "inject": True}),
    ("thinker (imitate)", "think_fixed_blind_super_clean", {"estimator": "imitate"}),
)


def baseline_flops(task: str, max_value: int | None, task_params: dict[str, Any],
                   layers: int = 2) -> list[dict[str, Any]]:
    """FLOPs of one training step of each baseline at its defaults (bench run's batch), with the ratio
    to gpt's; a solver that refuses the task gets a row with its reason."""
    from bench.config import TrainConfig
    from bench.run.build import Refused, build_spec
    from bench.run.facts import flops_per_step
    from solvers.base import ModelConfig, OptimConfig

    rows: list[dict[str, Any]] = []
    for label, solver, options in BASELINES:
        try:
            spec = build_spec(task, max_value, dict(task_params), solver, dict(options), ModelConfig(layers=layers),
                              OptimConfig(), TrainConfig(batch=0), device="cpu")
        except Refused as refused:
            rows.append({"solver": label, "flops": None, "ratio": None, "refused": str(refused)})
            continue
        rows.append({"solver": label, "flops": flops_per_step(spec), "batch": spec.train.batch})
    gpt = rows[0]["flops"]
    for row in rows:
        if row["flops"] is not None:
            row["ratio"] = row["flops"] / gpt
    return rows
