"""The task contract: a seeded generator, an independent verifier, reference traces, text rendering.

Tasks know nothing of torch or of solvers. A batch is integer numpy arrays:

    questions (n, question_len)   token ids in [0, vocab_size)
    answers   (n, answer_len)     token ids in [0, vocab_size); short answers end in PAD
    traces    (n, trace_len)      reference-trace ids in [0, trace_vocab_size); short traces end in TRACE_PAD
    meta      {"size": (n,), "depth": (n,), ...}   per-problem integers

Token id 0 is PAD in both alphabets. Every task also speaks a structured JSON form (the problem as
plain numbers and lists) so that `bench verify` can check answers from any solver, inside
thinkbench or not: `verify` works on that structured form, never on the generator's stored answer.

Three disjoint splits by construction: train, monitor (early stopping and model selection) and test
(the reported number). Every question is assigned to one split by a hash of its *canonical form*
(`Task.canonical_questions`: the unordered pair for `add`, the multiset for `multiadd` and `sort`), so
trivially equivalent problems (a + b and b + a) never straddle splits, and `sample` keeps only
questions of the split asked for. Different seeds therefore never leak test problems into training.
`distinct_problems` draws a split's distinct problems (one per canonical form), exhaustively where the
split is small.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

PAD = 0
TRACE_PAD = 0
Split = Literal["train", "monitor", "test"]
SPLITS: tuple[str, ...] = ("train", "monitor", "test")
SPLIT_BUCKETS = 10  # hash buckets: one is the test split, one the monitor split, eight train

_MAX_REJECTION_ROUNDS = 200
_STALE_ROUNDS_FOR_EXHAUSTED = 8


def is_int(value: Any) -> bool:
    """A JSON integer: an int that is not a bool (json gives true/false as bool, a subclass of int)."""
    return isinstance(value, int) and not isinstance(value, bool)


class TaskError(ValueError):
    """Bad task input (unknown task, parameter or value). Its message is one line for the user."""


@dataclass(frozen=True)
class Batch:
    """A batch of problems as integer arrays (see the module docstring for shapes)."""

    questions: np.ndarray
    answers: np.ndarray
    traces: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.questions.shape[0])

    def take(self, index: np.ndarray | slice) -> Batch:
        return Batch(
            self.questions[index],
            self.answers[index],
            self.traces[index],
            {k: v[index] for k, v in self.meta.items()},
        )

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        first = batches[0]
        return Batch(
            np.concatenate([b.questions for b in batches]),
            np.concatenate([b.answers for b in batches]),
            np.concatenate([b.traces for b in batches]),
            {k: np.concatenate([b.meta[k] for b in batches]) for k in first.meta},
        )


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-mixed integer hash, identical on every machine."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def question_hash(questions: np.ndarray) -> np.ndarray:
    """A 64-bit hash per question row (vectorised), used to assign problems to splits."""
    h = np.full(questions.shape[0], 0x9E3779B97F4A7C15, dtype=np.uint64)
    for column in questions.T.astype(np.uint64):
        with np.errstate(over="ignore"):
            h = _mix64(h ^ (column + np.uint64(0x632BE59BD9B4E019)))
    return h


def checked_split(split: str) -> str:
    """`split` as one of SPLITS ("eval", the older name of the held-out split, means "test"), or a
    one-line TaskError naming the valid ones."""
    split = "test" if split == "eval" else split
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return split


def split_ids(canonical: np.ndarray) -> np.ndarray:
    """Per row of canonical questions: 0 = train, 1 = monitor, 2 = test."""
    bucket = question_hash(canonical) % np.uint64(SPLIT_BUCKETS)
    return np.where(bucket == 0, 2, np.where(bucket == 1, 1, 0)).astype(np.int64)


def split_of(questions: np.ndarray, split: Split = "test") -> np.ndarray:
    """Boolean mask: True where a (canonical) question belongs to `split`."""
    return split_ids(questions) == SPLITS.index(split)


class Task(ABC):
    """One task family at fixed parameters. Subclasses register with `@register_task("name")`.

    Subclasses set `Params` (a frozen dataclass whose fields have defaults and one-line docstrings
    in `describe`), `scale_param` (the field `--max` sets), and implement the abstract methods.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type]
    scale_param: ClassVar[str]
    scale_help: ClassVar[str] = ""
    # Plain-words descriptions of each parameter, for `bench tasks` and error messages.
    param_help: ClassVar[dict[str, str]] = {}
    # Parameters added after runs were stored: param_dict (and so a run's id) names them only when
    # they differ from their default, so the ids of the runs made before them stay valid.
    late_params: ClassVar[tuple[str, ...]] = ()
    # One line for `bench tasks`: which parameter drives which difficulty (serial depth, width, answer mix).
    # Shortcut floors (`bench floors`): a task may also define surface_floors(train, test) -> (name,
    # correct per test problem, how) triples, numpy only (tasks/surface.py has fitting helpers).
    difficulty_help: ClassVar[str] = ""

    def __init__(self, params: Any) -> None:
        self.params = params
        self.validate()

    # ---- parameters -------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise TaskError (one line) if a parameter is out of range. Override and call super()."""

    @property
    def scale(self) -> int:
        return int(getattr(self.params, self.scale_param))

    def param_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self.params)
        defaults = dataclasses.asdict(self.Params())
        return {k: v for k, v in values.items() if k not in self.late_params or v != defaults[k]}

    # ---- shapes and vocabularies --------------------------------------------------------------
    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of question/answer token ids (PAD=0 included)."""

    @property
    @abstractmethod
    def question_len(self) -> int: ...

    @property
    @abstractmethod
    def answer_len(self) -> int: ...

    @property
    @abstractmethod
    def trace_vocab_size(self) -> int:
        """Size of the reference-trace alphabet (TRACE_PAD=0 included)."""

    @property
    @abstractmethod
    def trace_len(self) -> int: ...

    # ---- generation -------------------------------------------------------------------------
    @abstractmethod
    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        """n fresh problems, ignoring splits. Vectorised or pooled: never a training bottleneck."""

    def code_features(self, batch: Batch) -> dict[str, np.ndarray]:
        """Named features of each problem, (n,) or (n, ...) integer arrays, that an invented thought
        language might encode (`bench inspect --code` probes for them). Default: each question
        token, the answer, and each reference-trace token."""
        features = {f"question token {j + 1}": batch.questions[:, j] for j in range(batch.questions.shape[1])}
        features["answer"] = batch.answers
        features.update({f"trace token {i + 1}": batch.traces[:, i] for i in range(batch.traces.shape[1])})
        return features

    def canonical_questions(self, questions: np.ndarray) -> np.ndarray:
        """One row per question that is equal for trivially equivalent problems (e.g. a + b and
        b + a). Splits are assigned by hashing this form. Default: the question itself."""
        return questions

    def split_mask(self, questions: np.ndarray, split: Split) -> np.ndarray:
        """Boolean mask: True where a question belongs to `split` (by its canonical form)."""
        return split_of(self.canonical_questions(questions), split)

    def sample(self, rng: np.random.Generator, n: int, split: Split = "train") -> Batch:
        """n problems of one split; the same rng state gives the same problems on any machine."""
        split = checked_split(split)
        kept: list[Batch] = []
        have = 0
        for _ in range(_MAX_REJECTION_ROUNDS):
            # monitor and test keep ~1/10 of candidates each, train ~8/10: oversample accordingly.
            need = n - have
            draw = need * (SPLIT_BUCKETS + 2) if split != "train" else need + need // 4 + 8
            candidates = self.generate(rng, draw)
            chosen = candidates.take(np.flatnonzero(self.split_mask(candidates.questions, split))[:need])
            kept.append(chosen)
            have += len(chosen)
            if have >= n:
                return Batch.concat(kept) if len(kept) > 1 else kept[0]
        raise TaskError(
            f"task {self.name} at {self.scale_param}={self.scale} has too few distinct problems to "
            f"fill the {split} split; use a larger --max"
        )

    def distinct_problems(self, rng: np.random.Generator, n: int, split: Split) -> tuple[Batch, bool]:
        """Up to n problems of `split`, no two with the same canonical form.

        Returns (problems, exhaustive): exhaustive is True when the split holds fewer than n
        distinct problems and (as far as repeated drawing can tell) all of them were found. Used for
        the monitor and test sets, so that an interval's n counts distinct problems.
        """
        split = checked_split(split)
        seen: set[bytes] = set()
        kept: list[Batch] = []
        have, stale_rounds = 0, 0
        for _ in range(_MAX_REJECTION_ROUNDS):
            candidates = self.generate(rng, max(4 * n, 256))
            index = np.flatnonzero(self.split_mask(candidates.questions, split))
            canonical = self.canonical_questions(candidates.questions[index])
            fresh = []
            for row, key in zip(index, np.ascontiguousarray(canonical)):
                digest = key.tobytes()
                if digest not in seen:
                    seen.add(digest)
                    fresh.append(row)
                    if have + len(fresh) >= n:
                        break
            if fresh:
                kept.append(candidates.take(np.asarray(fresh)))
                have += len(fresh)
                stale_rounds = 0
            else:
                stale_rounds += 1
            if have >= n:
                return Batch.concat(kept) if len(kept) > 1 else kept[0], False
            # Many rounds of >= 4n draws without a new problem: the split is (almost surely) exhausted.
            if stale_rounds >= _STALE_ROUNDS_FOR_EXHAUSTED:
                break
        if not kept:
            raise TaskError(
                f"task {self.name} at {self.scale_param}={self.scale} has no problems in the {split} "
                f"split; use a larger --max"
            )
        return (Batch.concat(kept) if len(kept) > 1 else kept[0]), True

    # ---- structured form, verification, rendering ----------------------------------------------
    @abstractmethod
    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        """The problem as plain JSON fields (e.g. {"operands": [3, 4], "modulus": 10})."""

    @abstractmethod
    def answer_json(self, answer: np.ndarray) -> Any:
        """An answer's token row as JSON (an int, a list, or None for no-path / UNSAT)."""

    @abstractmethod
    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        """Is `answer` right for `problem`? Independent of the generator; any right answer passes.
        Must not raise on malformed answers: return False."""

    @abstractmethod
    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        """A problem, an answer and optionally a trace, as text a person reads."""

    def verify_json_within(self, problem: dict[str, Any], answer: Any, time_limit: float) -> bool | None:
        """`verify_json` given `time_limit` seconds: None when it could not decide in time. Tasks
        whose verification searches (sat's UNSAT claims) override it; the others are polynomial."""
        return self.verify_json(problem, answer)

    def verify(self, question: np.ndarray, answer: np.ndarray) -> bool:
        """Token-level verification of one problem (decodes, then `verify_json`)."""
        try:
            candidate = self.answer_json(answer)
        except (ValueError, IndexError, KeyError):
            return False
        return self.verify_json(self.problem_json(question), candidate)

    def verify_batch(self, questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
        """Boolean array, one per row. Override with a vectorised version where the task allows."""
        return np.array([self.verify(q, a) for q, a in zip(questions, answers)], dtype=bool)

    def trace_json(self, trace: np.ndarray) -> list[Any]:
        """A reference trace's token row as JSON values. Default: token t means value t - 1."""
        return [int(t) - 1 for t in trace if t != TRACE_PAD]

    def check_problem_json(self, problem: dict[str, Any]) -> None:
        """Raise TaskError if a structured problem is malformed (used by `bench verify`)."""

    def record(self, batch: Batch, i: int) -> dict[str, Any]:
        """Problem i of a batch as one JSONL object: task, params, problem fields, answer, trace, meta."""
        return {
            "task": self.name,
            "params": self.param_dict(),
            **self.problem_json(batch.questions[i]),
            "answer": self.answer_json(batch.answers[i]),
            "trace": self.trace_json(batch.traces[i]),
            "meta": {k: int(v[i]) for k, v in batch.meta.items()},
        }

    def to_jsonl(self, batch: Batch) -> str:
        return "".join(json.dumps(self.record(batch, i)) + "\n" for i in range(len(batch)))


def stream_rng(seed: int, stream: str, step: int | None = None) -> np.random.Generator:
    """An independent numpy generator for (seed, stream[, step]); the same on every machine.

    Per-step generators make the batch at step s a pure function of (seed, s), so a resumed run
    sees exactly the data an uninterrupted one would have seen.
    """
    stream_id = int.from_bytes(stream.encode()[:8].ljust(8, b"\0"), "little")
    key = [seed, stream_id] if step is None else [seed, stream_id, step]
    return np.random.default_rng(np.random.SeedSequence(key))
