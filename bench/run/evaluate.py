"""Held-out evaluation: accuracy with a 95% Wilson interval, overall and per size / depth bucket,
at one or several thought budgets, scored by the task's own verifier.

The final evaluation also keeps every test problem's answer in RUN/answers.json (compact JSON, no
pickle): {"problems_sha256", "n", "thoughts", "answers": [[token, ...], ...], "correct": "0110..."},
so paired comparisons (bench.stats.paired_permutation_test) and error analyses (`bench show RUN
--errors`) need no checkpoint. `problems_sha256` hashes the test questions in the task's own layout
(prompt positions stripped), so two runs answered the same problems exactly when the hashes agree."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
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
    """bf16 autocast on CUDA; on CPU nothing of its own (a run's --precision context around it applies)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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


def problems_hash(task: Task, questions: np.ndarray) -> str:
    """sha256 of the questions in the task's own token layout (a prompt's extra positions stripped)."""
    strip = getattr(task, "strip", None)
    raw = np.ascontiguousarray(strip(questions) if strip is not None else questions, dtype=np.int64)
    return hashlib.sha256(f"{raw.shape}".encode() + raw.tobytes()).hexdigest()


def answers_record(task: Task, problems: Batch, answers: np.ndarray, correct: np.ndarray,
                   thoughts: int | None) -> dict[str, Any]:
    """What answers.json holds (see the module docstring)."""
    return {
        "problems_sha256": problems_hash(task, problems.questions),
        "n": int(len(correct)),
        "thoughts": thoughts,
        "answers": np.asarray(answers, dtype=np.int64).reshape(len(correct), -1).tolist(),
        "correct": "".join("1" if c else "0" for c in np.asarray(correct, dtype=bool)),
    }


def evaluate(
    solver: Solver, task: Task, problems: Batch, device: torch.device, thoughts: int | None = None,
    answers_file: Path | None = None,
) -> dict[str, Any]:
    """Score `solver` on `problems`: overall, by each meta key (size, depth, ...). With `answers_file`,
    every problem's answer is written there too (compact JSON, atomically)."""
    from bench.run.store import atomic_write_bytes

    answers, _ = predict_answers(solver, problems.questions, device, thoughts)
    correct = task.verify_batch(problems.questions, answers)
    if answers_file is not None:
        record = answers_record(task, problems, answers, correct,
                                thoughts if thoughts is not None else solver.thought_budget())
        # one answer per line: a diff of two records reads problem by problem, and the file stays small
        body = ",\n".join(json.dumps(row, separators=(",", ":")) for row in record.pop("answers"))
        head = json.dumps(record, sort_keys=True, separators=(",", ":"))[:-1]
        atomic_write_bytes(answers_file, f'{head},"answers":[\n{body}\n]}}\n'.encode())
    return {
        "thoughts": thoughts if thoughts is not None else solver.thought_budget(),
        "overall": accuracy_summary(correct),
        "by": {key: bucket_table(correct, values) for key, values in problems.meta.items()},
    }


def quick_accuracy(solver: Solver, task: Task, problems: Batch, device: torch.device) -> float:
    """Overall accuracy only, for periodic monitoring during training."""
    answers, _ = predict_answers(solver, problems.questions, device)
    return float(task.verify_batch(problems.questions, answers).mean())
