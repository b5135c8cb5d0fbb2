"""`sort`: n values in [0, max) to be written out ascending; numbers are single tokens.

Tokens: PAD=0, the value v is token v + 1. The question is the n values; the answer is n tokens.

Reference trace: bottom-up merge sort. Pass p (p = 1, 2, ..., ceil(log2 n)) merges adjacent
sorted runs of width 2^(p-1) into runs of width 2^p; the trace is the whole list after each pass,
flattened:

    values 5 3 9 1 7 2      pass 1: 3 5 | 1 9 | 2 7
                            pass 2: 1 3 5 9 | 2 7
                            pass 3: 1 2 3 5 7 9          trace = 3 5 1 9 2 7  1 3 5 9 2 7  1 2 3 5 7 9

Why this trace: every pass depends on the one before (a chain of ceil(log2 n) steps), its length
n * ceil(log2 n) stays bounded (384 tokens at n = 64, where per-insertion snapshots would take
~n^2/2), and its last pass is the answer, so a blind answerer that sees only the thoughts can still
answer. Trace tokens are value tokens (value v is trace token v + 1, trace vocabulary max + 1).

Serial depth: the number of inversions (pairs i < j with x_i > x_j), i.e. the swaps insertion or
bubble sort performs. Which parameter drives which difficulty: `length` (n) drives the serial
depth (about n(n-1)/4 inversions and ceil(log2 n) merge passes), so it is the axis for scaling
studies (`bench compare --frontier --axis length`, `bench plot --axis length`); `--max` is the
value range (vocabulary size), and depth barely moves with it once values rarely tie (the mean
goes from C(n,2)/4 at max=2 to about C(n,2)/2 * (1 - 1/max)). Meta also records `size` = n and
`passes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.base import PAD, Batch, Task, TaskError, is_int
from tasks.registry import register_task

MAX_VALUE_RANGE = 1_000_000
MAX_LENGTH = 64


@dataclass(frozen=True)
class SortParams:
    max: int = 100
    """Value range: values lie in [0, max)."""
    length: int = 8
    """Number of values n."""


def num_merge_passes(length: int) -> int:
    """Passes of bottom-up merge sort over `length` values: ceil(log2 length), at least one."""
    return max(1, (length - 1).bit_length())


def merge_sort_passes(values: np.ndarray) -> np.ndarray:
    """(N, n) -> (N, passes, n): the list after each pass of bottom-up merge sort.

    Merging two adjacent sorted runs gives their union in order, so pass p is the list with each
    block of width 2^p sorted; numpy sorts all blocks of all problems at once. The list is padded to
    a multiple of the width with a value larger than any other: the padding sits at the end of the
    last block, sorts to its end, and is cut off again.
    """
    count, length = values.shape
    passes = num_merge_passes(length)
    sentinel = np.iinfo(np.int64).max
    out = np.empty((count, passes, length), dtype=values.dtype)
    current = values
    for p in range(passes):
        width = 2 ** (p + 1)
        padded_len = -(-length // width) * width
        padded = np.full((count, padded_len), sentinel, dtype=np.int64)
        padded[:, :length] = current
        blocks = np.sort(padded.reshape(count, padded_len // width, width), axis=2)
        current = blocks.reshape(count, padded_len)[:, :length]
        out[:, p] = current
    return out


def count_inversions(values: np.ndarray) -> np.ndarray:
    """(N, n) -> (N,): pairs i < j with values[i] > values[j], per row."""
    inversions = np.zeros(values.shape[0], dtype=np.int64)
    for i in range(values.shape[1] - 1):  # loop over positions, vectorised over problems
        inversions += (values[:, i : i + 1] > values[:, i + 1 :]).sum(axis=1)
    return inversions


@register_task("sort")
class SortTask(Task):
    Params = SortParams
    scale_param = "max"
    scale_help = "value range: n values in [0, max)"
    difficulty_help = (
        "length drives serial depth (inversions ~ n^2/4, log2 n merge passes): use --axis length for "
        "frontiers and plots; max is the value range (vocabulary), depth barely moves with it"
    )
    param_help = {
        "max": "value range (the --max scale: vocabulary size; serial depth hardly changes with it)",
        "length": f"number of values n (2..{MAX_LENGTH}): drives serial depth; scale axis via --axis length",
    }

    def validate(self) -> None:
        p = self.params
        if not is_int(p.max) or not 2 <= p.max <= MAX_VALUE_RANGE:
            raise TaskError(f"sort: max={p.max!r} out of range; valid: 2..{MAX_VALUE_RANGE}")
        if not is_int(p.length) or not 2 <= p.length <= MAX_LENGTH:
            raise TaskError(f"sort: length={p.length!r} out of range; valid: 2..{MAX_LENGTH}")

    @property
    def vocab_size(self) -> int:
        return self.params.max + 1

    @property
    def question_len(self) -> int:
        return self.params.length

    @property
    def answer_len(self) -> int:
        return self.params.length

    @property
    def trace_vocab_size(self) -> int:
        return self.params.max + 1

    @property
    def trace_len(self) -> int:
        return self.params.length * num_merge_passes(self.params.length)

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        m, length = self.params.max, self.params.length
        values = rng.integers(0, m, size=(n, length), dtype=np.int64)
        passes = merge_sort_passes(values)
        meta = {
            "size": np.full(n, length, dtype=np.int64),
            "depth": count_inversions(values),
            "passes": np.full(n, passes.shape[1], dtype=np.int64),
        }
        return Batch(values + 1, passes[:, -1] + 1, passes.reshape(n, -1) + 1, meta)

    def surface_floors(self, train: Batch, test: Batch) -> list[tuple[str, np.ndarray, str]]:
        """Shortcut floor (`bench floors`): the input copied as it is."""
        same_shape = test.questions.shape == test.answers.shape
        copy = np.all(test.questions == test.answers, axis=1) if same_shape else np.zeros(len(test), bool)
        return [("copy the input", copy, "answer the values in the order given")]

    # ---- structured form -------------------------------------------------------------------
    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        return {"values": [int(t) - 1 for t in question]}

    def answer_json(self, answer: np.ndarray) -> Any:
        # A short answer ends in PAD; dropping it leaves a list that verify rejects for its length.
        return [int(t) - 1 for t in answer if t != PAD]

    def check_problem_json(self, problem: dict[str, Any]) -> None:
        values = problem.get("values")
        if not isinstance(values, list) or not all(is_int(x) for x in values):
            raise TaskError(f"sort: 'values' must be a list of integers, got {str(values)[:80]}")
        if not 2 <= len(values) <= MAX_LENGTH or not all(0 <= x < MAX_VALUE_RANGE for x in values):
            raise TaskError(
                f"sort: 'values' must hold 2..{MAX_LENGTH} integers in [0, {MAX_VALUE_RANGE}), got {len(values)} values"
            )

    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        if not isinstance(answer, list) or not all(is_int(x) for x in answer):
            return False
        return answer == sorted(problem["values"])

    def canonical_questions(self, questions: np.ndarray) -> np.ndarray:
        """The input as a multiset (sorted): every permutation of one multiset has the same answer,
        so all of them fall in one split."""
        return np.sort(questions, axis=1)

    def verify_batch(self, questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
        if answers.shape[1] != questions.shape[1]:
            return np.zeros(questions.shape[0], dtype=bool)
        return np.all(answers == np.sort(questions, axis=1), axis=1)

    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        values = " ".join(str(int(t) - 1) for t in question)
        shown = self.answer_json(answer)
        text = f"sort [{values}] = [{' '.join(map(str, shown))}]"
        if trace is not None:
            length = self.params.length
            passes = []
            for p in range(num_merge_passes(length)):
                row = [int(t) - 1 for t in trace[p * length : (p + 1) * length]]
                width = 2 ** (p + 1)
                runs = [" ".join(map(str, row[i : i + width])) for i in range(0, length, width)]
                passes.append(" | ".join(runs))
            text += "   trace (merge sort passes): " + "  /  ".join(f"[{p}]" for p in passes)
        return text
