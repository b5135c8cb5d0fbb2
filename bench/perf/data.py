"""Data-generation throughput: problems per second per task, at the default and at a large scale.

Training draws a fresh batch every step, so generation must stay well ahead of the model. Targets
from the task-registry issue: >= 20,000 problems/s for add, multiadd and sort, >= 2,000/s for graph
and sat, on 2 CPU cores; the serial tasks: >= 20,000/s for perm and parity at k, n <= 32, >= 1,000/s for
mult at n = 32 (its trace alone is 2,575 tokens there, 2.6 million trace tokens a second at that
rate; a gpt training step at n = 32 costs about 1.3 s of CPU at batch 256, five times the batch's
generation). Each row also gives the
tokens of one problem: question + answer (what a plain model reads and writes) and the reference
trace (what a chain of thought adds).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from tasks import Task, TaskError, make_task, stream_rng, task_class, task_names

# Large but realistic scales for the tasks we know; a task not listed is measured at default only.
LARGE_SCALES: dict[str, int] = {
    "add": 1000, "multiadd": 1000, "sort": 1000, "graph": 32, "sat": 12, "perm": 32, "parity": 32, "mult": 32,
}
TARGETS: dict[str, int] = {
    "add": 20_000, "multiadd": 20_000, "sort": 20_000, "graph": 2_000, "sat": 2_000,
    "perm": 20_000, "parity": 20_000, "mult": 1_000,
}


@dataclass(frozen=True)
class Throughput:
    task: str
    scale_param: str
    scale: int
    problems_per_s: float
    problems: int
    seconds: float
    tokens: int = 0
    """Question plus answer tokens of one problem."""
    trace_tokens: int = 0
    """Reference-trace tokens of one problem."""


def measure_task(task: Task, seconds: float = 1.0, batch: int = 256, seed: int = 0) -> Throughput:
    """Steady-state rate of `task.sample` (train split, as training draws it) over ~`seconds`.

    One warm-up batch is not timed, so a task's lazily built pool or cache is paid once, as in a
    long training run; at least one timed batch always runs.
    """
    rng = stream_rng(seed, "perf")
    task.sample(rng, batch, "train")
    problems, start = 0, time.perf_counter()
    while True:
        problems += len(task.sample(rng, batch, "train"))
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return Throughput(task.name, task.scale_param, task.scale, problems / elapsed, problems, elapsed,
                      task.question_len + task.answer_len, task.trace_len)


def scales_for(name: str) -> list[int | None]:
    """Scales to measure: the default (None) and, where known, a large one."""
    cls = task_class(name)
    default = getattr(cls.Params(), cls.scale_param)
    large = LARGE_SCALES.get(name)
    return [None] if large is None or large == default else [None, large]


def data_throughput(
    names: list[str] | None = None,
    seconds: float = 1.0,
    batch: int = 256,
    scales: list[int] | None = None,
    overrides: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per (task, scale): Throughput fields plus "target" and "error" (a scale the task
    rejects). `scales` replaces each task's default-and-large pair; `overrides` are `--set` values
    (the same for every task measured)."""
    rows: list[dict[str, Any]] = []
    for name in names or task_names():
        for scale in scales or scales_for(name):
            target = TARGETS.get(name)
            try:
                result = measure_task(make_task(name, scale, overrides), seconds=seconds, batch=batch)
            except TaskError as exc:
                cls = task_class(name)
                rows.append({"task": name, "scale_param": cls.scale_param, "scale": scale, "target": target,
                             "problems_per_s": None, "error": str(exc)})
                continue
            rows.append({**asdict(result), "target": target, "error": None})
    return rows
