"""`import thinkbench`: the Python API (bench/api.py), for researchers who train their own models on the
benchmark's tasks or run its solvers from a notebook. README "From Python" shows it at work."""

from bench.api import (
    ProblemSet,
    RunResult,
    TaskStream,
    UserError,
    create_dataset,
    hf_dataset,
    load_run,
    make_task,
    run,
    score_answer,
    task_names,
)

__all__ = ["make_task", "create_dataset", "score_answer", "ProblemSet", "TaskStream", "hf_dataset", "run", "load_run",
           "RunResult", "task_names", "UserError"]
