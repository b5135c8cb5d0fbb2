"""`add`: (a + b) mod m with a, b in [0, m); numbers are single tokens.

The research notes' first toy task. It is parallelisable (a single-token answer is limited by
residual-stream width, not depth), so it is a weak test of serial reasoning, and a good sanity check.

Tokens (`encoding`): PAD=0 and
- number (the default): the number v is token v + 1; the question is `a b`, the answer one token.
- digits: the standard arithmetic set-up of Lee et al. 2023 ("Teaching arithmetic to small
  transformers"): the digit d is token d + 1 (vocabulary base + 1); the question is a's digits then
  b's, most significant first, each zero-padded to the D digits that numbers below m need; the
  answer is (a + b) mod m as D digits, most significant first, or least significant first with
  `answer_order=lsb` (Lee et al.'s "reversed" format, which they find far easier to learn). The
  problems, their splits (same canonical form), the trace, the depth and the structured JSON form
  are those of the number encoding: only the tokens differ. With m = base^D this is D-digit
  addition with the carry out of the top digit dropped.
Reference trace (`trace`), least significant first, value v is trace token v + 1:
- digits: the answer's digits in `base`, the notes' thought scheme. Digit i needs the carry into
  column i, which no earlier thought states: a thought is as hard as the sum up to it.
- columns: the column sums of a + b, c_i = a_i + b_i + carry_i in [0, 2 base), whose carry out
  (c_i >= base) the next thought reads off this token; the last column keeps its carry, so the
  columns spell a + b, and the answer is that mod m.
Serial depth: the longest chain of consecutive carries in a + b.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tasks.base import PAD, Batch, Task, TaskError, is_int
from tasks.registry import register_task


@dataclass(frozen=True)
class AddParams:
    max: int = 100
    """Modulus m: operands and answer lie in [0, m)."""
    base: int = 10
    """Base of the reference trace's digits."""
    trace: Literal["digits", "columns"] = "digits"
    """Reference trace: the answer's digits, or the column sums of a + b (digit plus carry)."""
    encoding: Literal["number", "digits"] = "number"
    """Question and answer tokens: one token per number, or one per digit in `base`."""
    answer_order: Literal["msb", "lsb"] = "msb"
    """With encoding=digits: the answer's digits most or least significant first."""


def num_digits(max_value: int, base: int) -> int:
    """Digits needed to write every number in [0, max_value) in `base` (at least one)."""
    digits, reach = 1, base
    while reach < max_value:
        digits, reach = digits + 1, reach * base
    return digits


def digits_lsb_first(values: np.ndarray, base: int, count: int) -> np.ndarray:
    """(n,) -> (n, count) base-`base` digits, least significant first."""
    powers = base ** np.arange(count, dtype=np.int64)
    return (values[:, None] // powers[None, :]) % base


def column_sums(a: np.ndarray, b: np.ndarray, base: int, count: int) -> np.ndarray:
    """(n,), (n,) -> (n, count) column sums of a + b, least significant first: a_i + b_i + carry_i.
    Each lies in [0, 2 base); the last keeps its carry out, so sum(c_i mod base * base**i for i <
    count - 1) + c_last * base**(count - 1) == a + b when a, b < base**count."""
    da, db = digits_lsb_first(a, base, count), digits_lsb_first(b, base, count)
    columns = np.empty_like(da)
    carry = np.zeros(len(a), dtype=np.int64)
    for position in range(count):  # loop over digits, vectorised over problems
        columns[:, position] = da[:, position] + db[:, position] + carry
        carry = (columns[:, position] >= base).astype(np.int64)
    return columns


def longest_carry_chain(a: np.ndarray, b: np.ndarray, base: int, count: int) -> np.ndarray:
    """Length of the longest run of consecutive digit positions that emit a carry in a + b."""
    carries = column_sums(a, b, base, count) >= base  # (n, count): column i carries out
    run = np.zeros(len(a), dtype=np.int64)
    longest = np.zeros(len(a), dtype=np.int64)
    for position in range(count):  # loop over digits, vectorised over problems
        run = np.where(carries[:, position], run + 1, 0)
        longest = np.maximum(longest, run)
    return longest


class ModularSumForm:
    """The structured form shared by `add` and `multiadd`: {"operands": [...], "modulus": m}, and an
    answer that is one number token (value v is token v + 1), the operands' sum mod m."""

    name: str
    params: Any

    def operand_values(self, questions: np.ndarray) -> np.ndarray:
        """(n, question_len) tokens -> (n, operands) numbers."""
        return questions.astype(np.int64) - 1

    def answer_values(self, answers: np.ndarray) -> np.ndarray:
        """(n, answer_len) tokens -> (n,) numbers; -1 where a row is not a number."""
        return answers[:, 0].astype(np.int64) - 1

    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        return {"operands": [int(v) for v in self.operand_values(question[None])[0]], "modulus": self.params.max}

    def answer_json(self, answer: np.ndarray) -> Any:
        value = int(self.answer_values(np.asarray(answer)[None])[0])
        return None if value < 0 else value

    def check_problem_json(self, problem: dict[str, Any]) -> None:
        operands, modulus = problem.get("operands"), problem.get("modulus")
        if not is_int(modulus) or modulus < 1:
            raise TaskError(f"{self.name}: 'modulus' must be a positive integer, got {modulus!r}")
        if not isinstance(operands, list) or not operands or not all(is_int(x) for x in operands):
            raise TaskError(f"{self.name}: 'operands' must be a non-empty list of integers, got {operands!r}")
        if not all(0 <= x < modulus for x in operands):
            raise TaskError(f"{self.name}: 'operands' must lie in [0, {modulus}), got {operands!r}")

    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        return is_int(answer) and answer == sum(problem["operands"]) % problem["modulus"]

    def verify_batch(self, questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
        expected = self.operand_values(questions).sum(axis=1) % self.params.max
        return self.answer_values(answers) == expected

    def surface_floors(self, train: Batch, test: Batch) -> list[tuple[str, np.ndarray, str]]:
        """Shortcut floor (`bench floors`): the operands' sum without the modulus."""
        # decoded by the task: add's digit encoding spreads a number over several tokens
        plain_sum = self.operand_values(test.questions).sum(axis=1)
        return [("sum without the modulus", plain_sum == self.answer_values(test.answers), "the operands' plain sum")]

    def canonical_questions(self, questions: np.ndarray) -> np.ndarray:
        """The operands as a multiset (sorted): a + b and b + a are one problem for the splits. As
        number tokens (value + 1) in every encoding, so a problem falls in one split in all of them."""
        return np.sort(self.operand_values(questions) + 1, axis=1)


@register_task("add")
class AddTask(ModularSumForm, Task):
    Params = AddParams
    scale_param = "max"
    scale_help = "modulus m: a, b in [0, m)"
    param_help = {
        "max": "modulus m (the scale)",
        "base": "base of the trace digits",
        "trace": "reference trace: digits (of the answer) or columns (sums of a + b with their carries)",
        "encoding": "number (one token per number) or digits (one per digit in base, Lee et al. 2023)",
        "answer_order": "with encoding=digits: msb (most significant digit first) or lsb (reversed)",
    }
    late_params = ("trace", "encoding", "answer_order")
    difficulty_help = (
        "max (the modulus) drives width: one answer token out of m (encoding=number) or D digits "
        "(encoding=digits); base changes the trace and the digit tokens"
    )

    def validate(self) -> None:
        p = self.params
        if not 2 <= p.max <= 1_000_000:
            raise TaskError(f"add: max={p.max} out of range; valid: 2..1000000")
        if not 2 <= p.base <= 64:
            raise TaskError(f"add: base={p.base} out of range; valid: 2..64")
        if p.trace not in ("digits", "columns"):
            raise TaskError(f"add: trace={p.trace!r} is not valid; valid: digits, columns")
        if p.encoding not in ("number", "digits"):
            raise TaskError(f"add: encoding={p.encoding!r} is not valid; valid: number, digits")
        if p.answer_order not in ("msb", "lsb"):
            raise TaskError(f"add: answer_order={p.answer_order!r} is not valid; valid: msb, lsb")
        if p.answer_order == "lsb" and p.encoding != "digits":
            raise TaskError("add: answer_order=lsb needs encoding=digits (a number token has no digit order)")

    @property
    def digit_encoded(self) -> bool:
        return self.params.encoding == "digits"

    @property
    def digits(self) -> int:
        """D: the digits every number in [0, m) needs in `base`."""
        return num_digits(self.params.max, self.params.base)

    @property
    def vocab_size(self) -> int:
        return self.params.base + 1 if self.digit_encoded else self.params.max + 1

    @property
    def question_len(self) -> int:
        return 2 * self.digits if self.digit_encoded else 2

    @property
    def answer_len(self) -> int:
        return self.digits if self.digit_encoded else 1

    def operand_values(self, questions: np.ndarray) -> np.ndarray:
        if not self.digit_encoded:
            return super().operand_values(questions)
        d = self.digits
        powers = self.params.base ** np.arange(d - 1, -1, -1, dtype=np.int64)  # most significant first
        digits = questions.astype(np.int64).reshape(len(questions), 2, d) - 1
        return digits @ powers

    def answer_values(self, answers: np.ndarray) -> np.ndarray:
        if not self.digit_encoded:
            return super().answer_values(answers)
        digits = answers.astype(np.int64) - 1
        if self.params.answer_order == "msb":
            digits = digits[:, ::-1]
        powers = self.params.base ** np.arange(self.digits, dtype=np.int64)
        valid = np.all((digits >= 0) & (digits < self.params.base), axis=1) & (digits.shape[1] == self.digits)
        return np.where(valid, digits @ powers if digits.shape[1] == self.digits else 0, -1)

    @property
    def trace_vocab_size(self) -> int:
        values = self.params.base if self.params.trace == "digits" else 2 * self.params.base
        return values + 1

    @property
    def trace_len(self) -> int:
        return num_digits(self.params.max, self.params.base)

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        m, base = self.params.max, self.params.base
        a = rng.integers(0, m, size=n, dtype=np.int64)
        b = rng.integers(0, m, size=n, dtype=np.int64)
        total = (a + b) % m
        digits = num_digits(m, base)
        questions = np.stack([a, b], axis=1) + 1
        answers = total[:, None] + 1
        if self.digit_encoded:
            questions = np.concatenate([digits_lsb_first(a, base, digits)[:, ::-1],
                                        digits_lsb_first(b, base, digits)[:, ::-1]], axis=1) + 1
            answers = digits_lsb_first(total, base, digits) + 1
            if self.params.answer_order == "msb":
                answers = answers[:, ::-1]
            questions, answers = np.ascontiguousarray(questions), np.ascontiguousarray(answers)
        if self.params.trace == "digits":
            traces = digits_lsb_first(total, base, digits) + 1
        else:
            traces = column_sums(a, b, base, digits) + 1
        operand_digits = np.maximum(num_digits_each(np.maximum(a, b), base), 1)
        meta = {
            "size": operand_digits,
            "depth": longest_carry_chain(a, b, base, digits + 1),
        }
        return Batch(questions, answers, traces, meta)

    def code_features(self, batch: Batch) -> dict[str, np.ndarray]:
        """The operands, the answer, its digits (least significant first) and the carries of a + b."""
        a, b = self.operand_values(batch.questions).T
        m, base = self.params.max, self.params.base
        count = num_digits(m, base)
        total = (a + b) % m
        features = {"a": a, "b": b, "answer": total}
        answer_digits = digits_lsb_first(total, base, count)
        features.update({f"answer digit {i + 1}": answer_digits[:, i] for i in range(count)})
        carries = column_sums(a, b, base, count) >= base
        features.update({f"carry out of column {i + 1}": carries[:, i].astype(np.int64) for i in range(count - 1)})
        return features

    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        a, b = (int(v) for v in self.operand_values(question[None])[0])
        shown = self.answer_json(answer)
        text = f"{a} + {b} (mod {self.params.max}) = {shown if shown is not None else '?'}"
        if self.digit_encoded:
            tokens = " ".join("".join(str(int(t) - 1) for t in row) for row in np.split(question, 2))
            order = "least" if self.params.answer_order == "lsb" else "most"
            text += (f"   (digit tokens: {tokens} = {''.join(str(int(t) - 1) if t != PAD else '_' for t in answer)}, "
                     f"answer {order} significant first)")
        if trace is not None:
            values = " ".join(str(int(t) - 1) for t in trace if t != PAD)
            kind = "digits" if self.params.trace == "digits" else "column sums with carries"
            text += f"   trace (base {self.params.base} {kind}, least significant first): {values}"
        return text


def num_digits_each(values: np.ndarray, base: int) -> np.ndarray:
    """Number of base-`base` digits of each value (0 has one digit)."""
    count = np.ones(len(values), dtype=np.int64)
    rest = values // base
    while np.any(rest > 0):
        count += rest > 0
        rest //= base
    return count
