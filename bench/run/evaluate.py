"""Held-out evaluation: accuracy with a 95% Wilson interval, overall and per size / depth bucket,
at one or several thought budgets, scored by the task's own verifier."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.stats import wilson_interval
from solvers.base import Solver
from tasks.base import Batch, Task


def predict_answers(
    solver: Solver, questions: np.ndarray, device: torch.device, thoughts: int | None = None, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray | None]:
    """Greedy answers (and thoughts, for discrete thinkers) for many questions, in chunks."""
    answers, thought_rows = [], []
    for start in range(0, len(questions), chunk):
        q = torch.from_numpy(questions[start : start + chunk]).to(device=device, dtype=torch.long)
        with autocast_for(device):
            prediction = solver.predict(q, thoughts=thoughts)
        answers.append(prediction.answers.cpu().numpy())
        if prediction.thoughts is not None:
            thought_rows.append(prediction.thoughts.cpu().numpy())
    return np.concatenate(answers), (np.concatenate(thought_rows) if thought_rows else None)


def autocast_for(device: torch.device) -> Any:
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def accuracy_summary(correct: np.ndarray) -> dict[str, Any]:
    n, hits = int(correct.size), int(correct.sum())
    low, high = wilson_interval(hits, n)
    return {"n": n, "correct": hits, "accuracy": hits / n if n else 0.0, "low": low, "high": high}


def bucket_table(correct: np.ndarray, keys: np.ndarray) -> list[dict[str, Any]]:
    """Accuracy per distinct key (e.g. serial depth), sorted by key."""
    rows = []
    for key in np.unique(keys):
        rows.append({"bucket": int(key), **accuracy_summary(correct[keys == key])})
    return rows


def evaluate(
    solver: Solver, task: Task, problems: Batch, device: torch.device, thoughts: int | None = None
) -> dict[str, Any]:
    """Score `solver` on `problems`: overall, by each meta key (size, depth, ...)."""
    answers, _ = predict_answers(solver, problems.questions, device, thoughts)
    correct = task.verify_batch(problems.questions, answers)
    return {
        "thoughts": thoughts if thoughts is not None else solver.thought_budget(),
        "overall": accuracy_summary(correct),
        "by": {key: bucket_table(correct, values) for key, values in problems.meta.items()},
    }


def quick_accuracy(solver: Solver, task: Task, problems: Batch, device: torch.device) -> float:
    """Overall accuracy only, for periodic monitoring during training."""
    answers, _ = predict_answers(solver, problems.questions, device)
    return float(task.verify_batch(problems.questions, answers).mean())
