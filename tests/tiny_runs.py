"""A tiny real training run shared by the thinker tests (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import time
from typing import Any

import torch

from solvers.base import TensorBatch
from tasks.base import stream_rng


def train_on_small_addition(solver: Any, task: Any, max_steps: int, stop_at: float) -> tuple[float, int, float]:
    """Train `solver` on fresh batches of 64 training problems, scoring greedy answers on 400 fixed
    training-split questions every 100 steps; stop once they reach `stop_at`. Scored on training
    questions: this tests that the loop learns, not generalisation (small moduli have few pairs).
    Returns (last accuracy, steps run, seconds)."""
    seen = task.sample(stream_rng(7, "train"), 400, "train")
    start, accuracy, step = time.perf_counter(), 0.0, 0
    for step in range(max_steps):
        torch.manual_seed(step)
        solver.train_step(TensorBatch.from_numpy(task.sample(stream_rng(0, "train", step), 64), "cpu"))
        if step % 100 == 99:
            answers = solver.predict(torch.from_numpy(seen.questions)).answers.numpy()
            accuracy = float(task.verify_batch(seen.questions, answers).mean())
            if accuracy >= stop_at:
                break
    return accuracy, step + 1, time.perf_counter() - start
