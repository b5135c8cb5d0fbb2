"""`multiadd`: (x_1 + ... + x_k) mod m with each x_i in [0, m); numbers are single tokens.

A serial version of `add`: the research notes ask whether a model that is width-bound on one
modular addition can split k of them over thinking steps.

Tokens: PAD=0, the number v is token v + 1. The question is the k operands; the answer is one token.
Reference trace: the running partial sums mod m, one per step,

    s_1 = x_1,   s_i = (s_{i-1} + x_i) mod m   for i = 2..k,   trace = s_2 .. s_k

so the trace has k - 1 tokens (s is trace token s + 1, trace vocabulary m + 1) and its last token
is the answer: a blind answerer can read the answer off the trace.

Serial depth: each of the k - 1 steps is one addition whose digit-serial cost is the longest carry
chain of s_{i-1} + x_i in `base` (as in `add`), so

    depth = (k - 1) + sum over steps of longest_carry_chain(s_{i-1}, x_i)

It grows with the number of terms and, through the carries, with the modulus. Meta also records
`size` = k and `carries` = the carry-chain sum alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.add import ModularSumForm, longest_carry_chain, num_digits
from tasks.base import PAD, Batch, Task, TaskError, is_int
from tasks.registry import register_task

MAX_MODULUS = 1_000_000
MAX_TERMS = 32


@dataclass(frozen=True)
class MultiAddParams:
    max: int = 100
    """Modulus m: operands and answer lie in [0, m)."""
    terms: int = 4
    """Number of operands k."""
    base: int = 10
    """Base in which carries are counted for the serial-depth measure."""


@register_task("multiadd")
class MultiAddTask(ModularSumForm, Task):
    Params = MultiAddParams
    scale_param = "max"
    scale_help = "modulus m: k operands in [0, m)"
    difficulty_help = "terms drives serial depth (k - 1 running sums); max (the modulus) drives carries and width"
    param_help = {
        "max": "modulus m (the scale)",
        "terms": f"number of operands k (2..{MAX_TERMS})",
        "base": "base in which carries are counted for the depth measure",
    }

    def validate(self) -> None:
        p = self.params
        if not is_int(p.max) or not 2 <= p.max <= MAX_MODULUS:
            raise TaskError(f"multiadd: max={p.max!r} out of range; valid: 2..{MAX_MODULUS}")
        if not is_int(p.terms) or not 2 <= p.terms <= MAX_TERMS:
            raise TaskError(f"multiadd: terms={p.terms!r} out of range; valid: 2..{MAX_TERMS}")
        if not is_int(p.base) or not 2 <= p.base <= 64:
            raise TaskError(f"multiadd: base={p.base!r} out of range; valid: 2..64")

    @property
    def vocab_size(self) -> int:
        return self.params.max + 1

    @property
    def question_len(self) -> int:
        return self.params.terms

    @property
    def answer_len(self) -> int:
        return 1

    @property
    def trace_vocab_size(self) -> int:
        return self.params.max + 1

    @property
    def trace_len(self) -> int:
        return self.params.terms - 1

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        m, k, base = self.params.max, self.params.terms, self.params.base
        operands = rng.integers(0, m, size=(n, k), dtype=np.int64)
        digits = num_digits(m, base) + 1  # one more: s + x < 2m may carry out of the top digit
        partial = operands[:, 0]
        partial_sums = np.empty((n, k - 1), dtype=np.int64)
        carries = np.zeros(n, dtype=np.int64)
        for step in range(1, k):  # loop over terms, vectorised over problems
            term = operands[:, step]
            carries += longest_carry_chain(partial, term, base, digits)
            partial = (partial + term) % m
            partial_sums[:, step - 1] = partial
        meta = {
            "size": np.full(n, k, dtype=np.int64),
            "depth": (k - 1) + carries,
            "carries": carries,
        }
        return Batch(operands + 1, partial[:, None] + 1, partial_sums + 1, meta)

    # ---- structured form: ModularSumForm (shared with add) -----------------------------------
    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        operands = " + ".join(str(int(t) - 1) for t in question)
        shown = self.answer_json(answer)
        text = f"{operands} (mod {self.params.max}) = {shown if shown is not None else '?'}"
        if trace is not None:
            sums = [str(int(t) - 1) for t in trace if t != PAD]
            text += f"   trace (running sums mod {self.params.max}): {' '.join(sums)}"
        return text
