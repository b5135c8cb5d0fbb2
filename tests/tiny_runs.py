"""Tiny real training runs shared by the learning tests (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from solvers.base import TensorBatch
from tasks.base import stream_rng


def train_on_small_addition(solver: Any, task: Any, max_steps: int, stop_at: float,
                            seed: int = 0) -> tuple[float, int, float]:
    """Train `solver` on fresh batches of 64 training problems (data stream `seed`), scoring greedy
    answers on 400 fixed training-split questions every 100 steps; stop once they reach `stop_at`. Scored
    on training questions: this tests that the loop learns, not generalisation (small moduli have few
    pairs). Returns (last accuracy, steps run, seconds)."""
    seen = task.sample(stream_rng(7, "train"), 400, "train")
    start, accuracy, step = time.perf_counter(), 0.0, 0
    for step in range(max_steps):
        torch.manual_seed(step + 1_000_003 * seed)
        solver.train_step(TensorBatch.from_numpy(task.sample(stream_rng(seed, "train", step), 64), "cpu"))
        if step % 100 == 99:
            answers = solver.predict(torch.from_numpy(seen.questions)).answers.numpy()
            accuracy = float(task.verify_batch(seen.questions, answers).mean())
            if accuracy >= stop_at:
                break
    return accuracy, step + 1, time.perf_counter() - start


# ---- learning tests: one seed to vary, one line to report the margin -----------------------------------
# A test that asserts a learning outcome is marked `@pytest.mark.learning`, takes its seed from
# learning_seed() and prints what it reached with report_margin(). `scripts/learning_margins.sh` reruns
# every such test over seeds and ATen's CPU kernels (other CPUs' floating-point paths) and tabulates the
# printed values, so the margin written beside each test can be measured again.


def learning_seed() -> int:
    """0, or THINKBENCH_TEST_SEED when scripts/learning_margins.sh measures margins over seeds."""
    return int(os.environ.get("THINKBENCH_TEST_SEED", "0"))


def report_margin(name: str, reached: float, asserted: float) -> None:
    """One line that scripts/learning_margins.sh collects (seen with pytest -s)."""
    print(f"\nmargin {name} seed={learning_seed()} reached={reached:.3f} asserts>={asserted}")


# gpt sorting 4 values in [0, 10): learned fully and early, unlike add at a small modulus (add mod 50 with
# this model is a lottery over seeds: test accuracy 0.04-0.92 at 1,000 steps, since its train split is too
# small to generalise from). Sorting is per position, so the 65 held-out multisets follow from the rest.
LEARNS = ["--task", "sort", "--max", "10", "--set", "length=4", "--solver", "gpt", "--d-model", "64", "--layers", "1",
          "--heads", "4", "--lr", "0.003", "--batch", "128", "--steps", "600", "--eval-every", "600", "--eval-size",
          "400",
          "--target", "0.8", "--device", "cpu"]


def learning_spec(**train: Any) -> Any:
    """LEARNS as a RunSpec (seed learning_seed() unless given)."""
    from bench.run.build import build_spec
    from bench.run.spec import TrainConfig
    from solvers.config import ModelConfig, OptimConfig

    settings = {"steps": 600, "batch": 128, "eval_every": 600, "eval_size": 400, "target": 0.8,
                "seed": learning_seed(), **train}
    return build_spec("sort", 10, {"length": 4}, "gpt", {}, ModelConfig(64, 1, 4), OptimConfig(lr=3e-3),
                      TrainConfig(**settings), "cpu")
