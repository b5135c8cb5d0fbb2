"""thinkbench from Python: the small, stable surface (re-exported as `import thinkbench`).

For researchers who train their own models on the benchmark's tasks (reasoning-gym's habits:
`create_dataset(name, size, seed)` and `score_answer(answer, entry)`), and who run the benchmark's
own solvers from a notebook:

    make_task(name, max=None, **params)                    a task with its parameters (tasks.Task)
    create_dataset(name, size, seed=0, split="train", ...)  seeded problems of one split, as dicts
    score_answer(answer, entry)                            1.0 when the task's verifier accepts it, else 0.0
    TaskStream(task, batch_size, seed=0, ...)              a torch IterableDataset of token batches
    hf_dataset(name, size, seed=0, ...)                    the three splits as a Hugging Face DatasetDict
    run(task, solver="gpt", ..., **settings)               train (or serve the stored result of) one run
    load_run(run_id)                                       a stored run's result

An entry holds the problem in the structured JSON form `bench sample --format jsonl` writes and
`bench verify` reads: "question" (the problem's fields), "answer", "trace", "depth" (the serial-depth
measure), "size", "meta", "params", "task", "split". The same seed draws the same problems as
`bench sample --seed S --split SPLIT -n SIZE`. Bad input raises a ValueError (`bench.errors.UserError`,
a task's `TaskError`, a solver's `SolverError`): one line naming the value and the valid ones, as on
the command line.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional, overload

import torch

from bench.analysis.verify import DEFAULT_TIME_LIMIT  # seconds per check, as `bench verify` (sat UNSAT: a proof search)
from bench.config import LIMITS
from bench.errors import UserError
from tasks import Batch, Task, stream_rng, task_names
from tasks import make_task as _make_task
from tasks.base import checked_split

MAX_PROBLEMS = 1_000_000  # per split, as `bench sample -n`

__all__ = ["make_task", "create_dataset", "score_answer", "ProblemSet", "TaskStream", "hf_dataset", "run", "load_run",
           "RunResult", "task_names", "UserError"]



def make_task(name: str, max: Optional[int] = None, **params: Any) -> Task:  # noqa: A002 (the CLI's --max)
    """A task by name (see `task_names()`), its scale `max` (the task's own default when None) and any
    other parameter by name, e.g. `make_task("sort", max=100, length=6)`. Values may be typed or text."""
    return _make_task(name, max, params)


def _entry(task: Task, batch: Batch, i: int, split: str) -> dict[str, Any]:
    record = task.record(batch, i)
    problem = {k: v for k, v in record.items() if k not in ("task", "params", "answer", "trace", "meta")}
    return {"task": task.name, "split": split, "question": problem, "answer": record["answer"],
            "trace": record["trace"],
            "depth": record["meta"]["depth"], "size": record["meta"]["size"], "meta": record["meta"],
            "params": record["params"]}


class ProblemSet(Sequence[dict[str, Any]]):
    """`size` seeded problems of one split as entries (dicts); `score_answer` checks an answer."""

    def __init__(self, task: Task, size: int, seed: int = 0, split: str = "train") -> None:
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_PROBLEMS:
            raise UserError(f"size={size!r} out of range; valid: 1..{MAX_PROBLEMS:,}")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= LIMITS["seed"]:
            raise UserError(f"seed={seed!r} out of range; valid: 0..{LIMITS['seed']}")
        self.task, self.seed, self.split = task, seed, checked_split(split)
        # The stream `bench sample` draws from: the same seed and split give the same problems.
        self.batch = task.sample(stream_rng(seed, split), size, self.split)  # type: ignore[arg-type]
        self.entries = [_entry(task, self.batch, i, self.split) for i in range(size)]

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self.entries[index]

    def score_answer(self, answer: Any, entry: dict[str, Any], time_limit: float = DEFAULT_TIME_LIMIT) -> float:
        """1.0 when the task's verifier accepts `answer` for `entry`, else 0.0 (see `score_answer`)."""
        return _score(self.task, answer, entry, time_limit)


def create_dataset(name: str, size: int, seed: int = 0, split: str = "train", max: Optional[int] = None,  # noqa: A002
                   **params: Any) -> ProblemSet:
    """`size` problems of task `name` from split "train", "monitor" or "test" (disjoint by construction),
    drawn from `seed`: `create_dataset("add", 100, seed=0, max=200)`. Other task parameters by name."""
    return ProblemSet(make_task(name, max, **params), size, seed, split)


@functools.lru_cache(maxsize=None)
def _verifier(name: str) -> Task:
    # Verification reads only the problem's own fields (as `bench verify`), so the default task will do.
    return _make_task(name)


def _score(task: Task, answer: Any, entry: dict[str, Any], time_limit: float) -> float:
    if isinstance(answer, str):  # a model's text: the answer in its JSON form ("12", "[3, 5]", "null")
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError:
            return 0.0
    verdict = task.verify_json_within(entry["question"], answer, time_limit)
    return 1.0 if verdict else 0.0  # None (could not decide in time) is never right


def score_answer(answer: Any, entry: dict[str, Any], time_limit: float = DEFAULT_TIME_LIMIT) -> float:
    """1.0 when the task's own verifier accepts `answer` for the problem in `entry`, else 0.0. The
    verifier never looks at the stored answer: any shortest path, any satisfying assignment scores
    1.0. `answer` is the JSON form of an entry's "answer" (an int, a list, None), or that as text; text
    that is not JSON, or a check that runs past `time_limit` seconds, scores 0.0."""
    problem = entry.get("question") if isinstance(entry, dict) else None
    if isinstance(problem, str):  # a row of hf_dataset / `bench sample --format hf`: the problem as JSON text
        try:
            problem = json.loads(problem)
        except json.JSONDecodeError:
            problem = None
    if not isinstance(entry, dict) or entry.get("task") not in task_names() or not isinstance(problem, dict):
        raise UserError("entry must be a dict from create_dataset or hf_dataset with a \"task\" among "
                        f"{', '.join(task_names())} and a \"question\"")
    return _score(_verifier(entry["task"]), answer, {**entry, "question": problem}, time_limit)


SPLITS = ("train", "monitor", "test")
HF_EXTRA = "pip install -e '.[hf]' (or pip install 'datasets>=2.14')"


def hf_dataset(name: str, size: int, seed: int = 0, max: Optional[int] = None, **params: Any) -> Any:  # noqa: A002
    """A `datasets.DatasetDict` with splits "train", "monitor" and "test", `size` problems each: the
    entries of `create_dataset` for each split, one column per field (task, split, question, answer,
    trace, depth, size, meta, params), with question, answer and trace as JSON text. A row is an entry
    `score_answer` takes as it is. Needs the optional `hf` extra."""
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        raise UserError(f"the Hugging Face format needs the hf extra: {HF_EXTRA}")
    import datasets

    task = make_task(name, max, **params)
    # question, answer and trace as JSON text: one column type for every task (a trace may mix numbers
    # and words, an answer may be null), read back with json.loads; score_answer takes such rows as they are.
    as_text = ("question", "answer", "trace")
    return datasets.DatasetDict({
        split: datasets.Dataset.from_list([{k: json.dumps(v) if k in as_text else v for k, v in entry.items()}
                                           for entry in ProblemSet(task, size, seed, split)])
        for split in SPLITS})


class TaskStream(torch.utils.data.IterableDataset):
    """Endless (or `steps` long) batches of one split as token tensors: {"questions" (B, Lq),
    "answers" (B, La), "traces" (B, Lt): int64, and every meta field (B,), e.g. "depth"}.

    Batch s is drawn from `stream_rng(seed, split, s)` alone, so it is the same on every machine, a
    restart at `start=s` continues the stream exactly, and DataLoader workers share the steps out
    (worker w of W yields steps w, w + W, ...). Token ids are the task's: PAD = 0, vocabulary
    `task.vocab_size`, trace alphabet `task.trace_vocab_size`."""

    def __init__(self, task: Task, batch_size: int, seed: int = 0, split: str = "train", steps: Optional[int] = None,
                 start: int = 0) -> None:
        super().__init__()
        if not 1 <= batch_size <= LIMITS["batch"]:
            raise UserError(f"batch_size={batch_size} out of range; valid: 1..{LIMITS['batch']:,}")
        if not 0 <= seed <= LIMITS["seed"]:
            raise UserError(f"seed={seed} out of range; valid: 0..{LIMITS['seed']}")
        if steps is not None and steps < 0 or start < 0:
            raise UserError(f"steps={steps}, start={start}: valid are non-negative integers (steps None: endless)")
        self.task, self.batch_size, self.seed, self.split = task, batch_size, seed, checked_split(split)
        self.steps, self.start = steps, start

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """Batch number `step` of the stream."""
        problems = self.task.sample(stream_rng(self.seed, self.split, step), self.batch_size, self.split)  # type: ignore[arg-type]
        tensors = {"questions": problems.questions, "answers": problems.answers, "traces": problems.traces,
                   **problems.meta}
        return {name: torch.as_tensor(values, dtype=torch.long) for name, values in tensors.items()}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = torch.utils.data.get_worker_info()
        offset, stride = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        step = self.start + offset
        while self.steps is None or step < self.start + self.steps:
            yield self.batch(step)
            step += stride


# ---- runs -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A stored run: its id and folder, spec, status ("finished", "interrupted", ...), and once
    finished the test accuracy with its 95% Wilson interval and the full evaluation record."""

    run_id: str
    path: Path
    spec: dict[str, Any]
    status: dict[str, Any]
    evaluation: Optional[dict[str, Any]]
    curve: list[dict[str, Any]]

    @property
    def state(self) -> str:
        return str(self.status.get("state", "new"))

    @property
    def accuracy(self) -> Optional[float]:
        """Final test accuracy (None until the run finished)."""
        return self.status.get("accuracy")

    @property
    def interval(self) -> Optional[tuple[float, float]]:
        """The accuracy's 95% Wilson interval (None until the run finished)."""
        return (self.status["low"], self.status["high"]) if "low" in self.status else None


def load_run(run_id: str, results: str | os.PathLike[str] | None = None) -> RunResult:
    """A stored run by id (or a unique prefix) under `results` (default: ./results or $THINKBENCH_RESULTS).
    Every file is read through the validated reader (bench/run/records.py)."""
    from bench.run.store import find_run, readable_root

    run_dir = find_run(readable_root(results), run_id)
    return RunResult(run_dir.run_id, run_dir.path, run_dir.read("spec.json"), run_dir.status(),
                     run_dir.read("evaluation.json"), run_dir.read("curve.json", []))


def run(task: str, solver: str = "gpt", max: Optional[int] = None, params: Optional[dict[str, Any]] = None,  # noqa: A002
        options: Optional[dict[str, Any]] = None, results: str | os.PathLike[str] | None = None,
        log: str | Sequence[str] | None = None, force: bool = False, **settings: Any) -> RunResult:
    """Train `solver` on `task` as `bench run` does and return the stored result; a spec that already
    finished is served from the store, not retrained (`force=True` retrains). `params`: task
    parameters; `options`: solver options (`bench solvers`); `settings`: any run option by its name
    (steps, batch, seed, d_model, layers, lr, eval_size, ... as `bench run --help` lists them);
    `log`: "tensorboard" and/or "wandb". The run id is the one `bench run` gives the same settings."""
    from bench.config import configs_from, parse_run_option, run_option_types
    from bench.run.listeners import loggers
    from bench.run.store import find_run, results_root
    from bench.run.train import resolve_run, start_run

    types = run_option_types()
    unknown = sorted(set(settings) - set(types))
    if unknown:
        raise UserError(f"unknown run setting {unknown[0]!r}; valid: {', '.join(sorted(types))}")
    values = {"task": task, "solver": solver, "max": max, **settings}
    values = {name: parse_run_option(name, value, types[name]) for name, value in values.items() if value is not None}
    values.setdefault("batch", 0)  # 0 = the solver's default for the task, as `bench run` without --batch
    listeners = loggers(log, "log")
    root = results_root(results)
    choice, train, model, optim = configs_from(values)
    # a unique prefix will do, as on the CLI
    init = find_run(root, choice["init"]).run_id if choice.get("init") else None
    # resolved once (the task built once), as `bench run` does
    resolved = resolve_run(choice["task"], choice.get("max"), dict(params or {}), choice["solver"],
                           dict(options or {}), model, optim, train, choice.get("device", "auto"), init)
    run_dir, _, _ = start_run(resolved.spec, root, force, listeners=listeners, resolved=resolved)
    return load_run(run_dir.run_id, root)
