"""The cost of a `continuous` training step against a `gpt` step (`bench perf continuous` shows it).

Both solvers train on random tokens of the same total input length and batch, in one process,
timed alternately (so a busy machine slows both alike): `continuous` with a question of Lq tokens,
<bot>, K thoughts and <eot> before an La-token answer; `gpt` with a question long enough that its
input has the same number of positions. The continuous step costs K+1 sequential passes (the last
thought rides with the answer); the issue's aim is at most 2x a gpt step for K = 4.
"""

from __future__ import annotations

import statistics
import time
from typing import Any


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
        cont = ContinuousSolver(shape_c, model, optim,
                                ContinuousOptions(thoughts=k, max_thoughts=max(k, 16))).to(device)
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
