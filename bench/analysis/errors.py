"""Error analysis from a run record, no checkpoint needed: the test problems a run answered wrong,
with its answer and the reference (`bench show RUN --errors`). The test problems are rebuilt from the
spec (the same for every seed) and checked against the record's `problems_sha256` (answers.json)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from bench.errors import UserError
from bench.run.store import RunDir


def wrong_answers(run_dir: RunDir) -> tuple[list[dict[str, Any]], int]:
    """(the wrong answers as {"index", "problem", "answer", "reference"}, test problems scored)."""
    from bench.run.build import model_task
    from bench.run.evaluate import problems_hash
    from bench.run.spec import RunSpec
    from bench.run.train import evaluation_set

    record = run_dir.read("answers.json")
    if record is None:
        state = run_dir.status().get("state")
        why = ("it has not finished" if state != "finished"
               else "it was recorded before answers were stored (answers.json)")
        raise UserError(f"run {run_dir.run_id} has no per-problem answers: {why}; `bench recheck {run_dir.run_id}` "
                        "retrains it with them")
    spec = RunSpec.from_json(run_dir.read("spec.json"))
    task = model_task(spec.task, None, spec.task_params, spec.model)
    problems, _ = evaluation_set(task, spec.train_config)
    if problems_hash(task, problems.questions) != record["problems_sha256"] or len(problems) != record["n"]:
        raise UserError(f"run {run_dir.run_id}: this checkout generates other test problems than the record answered "
                        "(the task's generator changed); its answers cannot be matched to questions")
    rows = []
    for index, (right, answer) in enumerate(zip(record["correct"], record["answers"])):
        if right == "1":
            continue
        rows.append({
            "index": index,
            "problem": task.problem_json(problems.questions[index]),
            "answer": task.answer_json(np.asarray(answer, dtype=np.int64)),
            "reference": task.answer_json(problems.answers[index]),
        })
    return rows, int(record["n"])


def brief(value: Any, width: int = 100) -> str:
    """Compact JSON, cut to `width` characters."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
