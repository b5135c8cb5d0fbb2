"""`mult`: n x n digit multiplication, digits as tokens, least significant digit first.

The standard set-up of the implicit chain-of-thought papers (Deng et al. 2023, "Implicit chain of
thought reasoning via knowledge distillation"; Deng et al. 2024, "From explicit CoT to implicit
CoT"): a plain transformer fails at 4 x 4 and beyond without a chain of thought; with it, or with
the thought internalised, it reaches 9 x 9 and more. Answers are exact matches of all 2n digits.

Tokens: PAD = 0, digit d is token d + 1 (base 10). Question: the n digits of a, then the n digits of
b, each least significant first; both operands have exactly n digits (the top digit is 1..9).
Answer: the 2n digits of a * b, least significant first (a leading zero where the product has
2n - 1 digits).

Reference trace (the papers' format, digit tokens, least significant first):

    p_0,  p_1 s_1,  p_2 s_2,  ...,  p_(n-1) s_(n-1)

where p_j = a * b_j (the partial product by digit j of b, n + 1 digits, unshifted: the shift by j
places is implied by j) and s_j = p_0 + p_1 * 10 + ... + p_j * 10^j (the running sum, n + j + 1
digits). The last running sum is the answer, so a blind answerer can read it off the trace. Trace
length 2.5 n^2 + n/2 - 1 (41 tokens at n = 4, 2575 at n = 32).

Serial depth: `depth` = (n - 1) + the longest carry chain of each running-sum addition s_(j-1) +
p_j * 10^j, summed (as `multiadd` counts its additions); `size` = n; meta `carries` holds the sum
alone.

Splits: the unordered pair {a, b} (a * b = b * a). Structured form: {"operands": [a, b]} as
integers, the answer an integer; the verifier multiplies Python integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.base import PAD, Batch, Task, TaskError, is_int
from tasks.registry import register_task

BASE = 10
MAX_DIGITS = 32


@dataclass(frozen=True)
class MultParams:
    max: int = 4
    """Digits n of each operand."""


def trace_length(n: int) -> int:
    """n partial products of n + 1 digits and n - 1 running sums of n + j + 1 digits."""
    return n * (n + 1) + sum(n + j + 1 for j in range(1, n))


def partial_products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, n) digits of a and b, least significant first -> (N, n, n + 1): a * b_j for each j, digits
    least significant first (schoolbook: each column's carry feeds the next)."""
    count, n = a.shape
    products = a[:, None, :] * b[:, :, None]  # (N, j, i): a_i * b_j, at most 81
    out = np.empty((count, n, n + 1), dtype=np.int64)
    carry = np.zeros((count, n), dtype=np.int64)
    for i in range(n):  # loop over digits of a, vectorised over problems and j
        column = products[:, :, i] + carry
        out[:, :, i], carry = column % BASE, column // BASE
    out[:, :, n] = carry
    return out


def running_sums(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, n) digits of a and b -> (N, n, 2n): the digits of s_j = a * (b mod BASE^(j+1)) for each j,
    least significant first. Column k of s_j before carrying is the sum of a_(k-i) b_i over i <= j,
    a cumulative sum over j; one carry pass over the columns then serves every j at once. Built
    column-major, (2n, n, N), so that each step of the carry loop reads one contiguous block."""
    count, n = a.shape
    placed = np.zeros((2 * n, n, count), dtype=np.int64)
    a_t = a.T  # (n, N)
    for j in range(n):  # row j: a * b_j shifted by j places, column by column (no carries yet)
        placed[j : j + n, j] = a_t * b[:, j]
    columns = np.cumsum(placed, axis=1)
    digits = np.empty_like(columns)
    carry = np.zeros((n, count), dtype=np.int64)
    for k in range(2 * n):  # loop over columns, vectorised over j and problems
        total = columns[k] + carry
        digits[k], carry = total % BASE, total // BASE
    return np.ascontiguousarray(digits.transpose(2, 1, 0))


def addition_carry_chains(sums: np.ndarray, partial: np.ndarray) -> np.ndarray:
    """Per problem: the longest run of consecutive carrying columns of each addition s_(j-1) + p_j *
    BASE^j (j = 1 .. n-1), summed over j. sums (N, n, 2n), partial (N, n, n + 1)."""
    count, n, width = sums.shape
    columns = np.zeros((width, n - 1, count), dtype=np.int64)  # column-major, as in running_sums
    columns += sums[:, :-1].transpose(2, 1, 0)  # s_(j-1)
    for j in range(1, n):
        columns[j : j + n + 1, j - 1] += partial[:, j].T  # + p_j BASE^j
    carry = np.zeros((n - 1, count), dtype=np.int64)
    run = np.zeros_like(carry)
    longest = np.zeros_like(carry)
    for k in range(width):  # loop over columns, vectorised over additions and problems
        carry = (columns[k] + carry >= BASE).astype(np.int64)
        run = (run + 1) * carry
        np.maximum(longest, run, out=longest)
    return longest.sum(axis=0)


def digits_to_int(digits: list[int]) -> int:
    """Least-significant-first digits -> the integer (Python ints: no overflow at 64 digits)."""
    return sum(d * BASE**i for i, d in enumerate(digits))


@register_task("mult")
class MultTask(Task):
    Params = MultParams
    scale_param = "max"
    scale_help = "digits n: an n-digit by n-digit product"
    difficulty_help = (
        "max (digits n) drives serial depth: n running sums with carry chains; exact match of all "
        "2n answer digits (majority floor ~0)"
    )
    param_help = {"max": f"digits n of each operand (the scale, 1..{MAX_DIGITS})"}

    def validate(self) -> None:
        if not is_int(self.params.max) or not 1 <= self.params.max <= MAX_DIGITS:
            raise TaskError(f"mult: max={self.params.max!r} out of range; valid: 1..{MAX_DIGITS}")

    @property
    def vocab_size(self) -> int:
        return BASE + 1

    @property
    def question_len(self) -> int:
        return 2 * self.params.max

    @property
    def answer_len(self) -> int:
        return 2 * self.params.max

    @property
    def trace_vocab_size(self) -> int:
        return BASE + 1

    @property
    def trace_len(self) -> int:
        return trace_length(self.params.max)

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        digits = self.params.max
        operands = rng.integers(0, BASE, size=(n, 2, digits), dtype=np.int64)
        operands[:, :, -1] = rng.integers(1, BASE, size=(n, 2))  # exactly n digits: the top one is 1..9
        a, b = operands[:, 0], operands[:, 1]
        partial = partial_products(a, b)  # (N, n, n + 1)
        sums = running_sums(a, b)  # (N, n, 2n)
        carries = addition_carry_chains(sums, partial)
        pieces = [partial[:, 0]]
        for j in range(1, digits):
            pieces += [partial[:, j], sums[:, j, : digits + j + 1]]
        meta = {
            "size": np.full(n, digits, dtype=np.int64),
            "depth": (digits - 1) + carries,
            "carries": carries,
        }
        questions = operands.reshape(n, 2 * digits) + 1
        return Batch(questions, sums[:, -1] + 1, np.concatenate(pieces, axis=1) + 1, meta)

    def canonical_questions(self, questions: np.ndarray) -> np.ndarray:
        """The unordered pair: the smaller operand first (a * b = b * a)."""
        n = self.params.max
        a, b = questions[:, :n], questions[:, n:]
        difference = (a - b)[:, ::-1]  # most significant first: the first difference decides
        first = np.argmax(difference != 0, axis=1)
        a_larger = difference[np.arange(len(questions)), first] > 0
        return np.where(a_larger[:, None], np.concatenate([b, a], axis=1), questions)

    # ---- shortcut floors (bench floors) --------------------------------------------------------
    def surface_floors(self, train: Batch, test: Batch) -> list[tuple[str, np.ndarray, str]]:
        """Column sums without carries: right exactly when no column of the product carries."""
        n = self.params.max
        a, b = test.questions[:, :n] - 1, test.questions[:, n:] - 1
        columns = np.zeros((len(test), 2 * n), dtype=np.int64)
        for i in range(n):
            columns[:, i : i + n] += a[:, i : i + 1] * b
        no_carry = np.all(columns % BASE == test.answers - 1, axis=1)
        return [("no carries", no_carry, "each digit the column sum of digit products mod 10")]

    # ---- structured form -------------------------------------------------------------------------
    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        n = self.params.max
        digits = [int(t) - 1 for t in question]
        return {"operands": [digits_to_int(digits[:n]), digits_to_int(digits[n:])]}

    def answer_json(self, answer: np.ndarray) -> Any:
        if any(t == PAD or t > BASE for t in answer):
            return None  # a digit missing or not a digit: no number
        return digits_to_int([int(t) - 1 for t in answer])

    def trace_json(self, trace: np.ndarray) -> list[Any]:
        return [int(t) - 1 for t in trace if t != PAD]

    def check_problem_json(self, problem: dict[str, Any]) -> None:
        operands = problem.get("operands")
        if (
            not isinstance(operands, list) or len(operands) != 2
            or not all(is_int(x) and 0 <= x < BASE**MAX_DIGITS for x in operands)
        ):
            raise TaskError(f"mult: 'operands' must be two integers in [0, 10^{MAX_DIGITS}), got {str(operands)[:80]}")

    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        a, b = problem["operands"]
        return is_int(answer) and answer == a * b

    def verify_batch(self, questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
        return np.array([self.verify(q, a) for q, a in zip(questions, answers)], dtype=bool)

    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        n = self.params.max
        a, b = self.problem_json(question)["operands"]
        shown = self.answer_json(answer)
        text = f"{a} * {b} = {shown if shown is not None else '?'}"
        text += f"   (tokens, least significant first: {''.join(str(int(t) - 1) for t in question[:n])} * "
        text += (f"{''.join(str(int(t) - 1) for t in question[n:])} = "
                 f"{''.join(str(int(t) - 1) for t in answer if t != PAD)})")
        if trace is not None:
            values = [str(int(t) - 1) for t in trace if t != PAD]
            pieces, at = [], 0
            for j in range(n):
                piece = "".join(values[at : at + n + 1])
                at += n + 1
                if j:
                    piece += " (" + "".join(values[at : at + n + j + 1]) + ")"
                    at += n + j + 1
                pieces.append(piece)
            text += "\n  trace (partial products and (running sums), least significant first): " + " + ".join(pieces)
        return text
