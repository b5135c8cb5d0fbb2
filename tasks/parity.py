"""`parity`: n bits, answer their parity (the XOR of all of them).

The word problem of Z2: a serial fold of n steps that a transformer finds hard to learn from the
answer alone (Hahn 2020; Kim and Suzuki 2024 and Wen et al. 2024 show that a chain of thought
writing the running parity makes it learnable). A companion to `perm` (the same fold over Z2).

Tokens: PAD = 0, bit b is token b + 1. Question: the n bits. Answer: one token, the parity.
Reference trace: the running parity, aligned with the question positions:

    trace step i = b_0 xor ... xor b_i   (i = 0 .. n-1)

so step 0 is the first bit and the last step is the answer; trace tokens are bit tokens.

Serial depth: `depth` = n - 1 (the XORs of a left-to-right fold); `size` = n; meta `ones` counts
the ones.

Splits: by the sequence itself, not the multiset. Every order of the same bits has the same answer,
but the multiset of n bits is only the count of ones: splitting by it would put whole Hamming
weights in the test split, a shift of distribution rather than held-out problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.base import PAD, Batch, Task, TaskError, is_int
from tasks.registry import register_task

MAX_BITS = 256
RECENCY_WINDOWS = (1, 2, 4)


@dataclass(frozen=True)
class ParityParams:
    max: int = 16
    """Number of bits n (the serial depth)."""


@register_task("parity")
class ParityTask(Task):
    Params = ParityParams
    scale_param = "max"
    scale_help = "number of bits n"
    difficulty_help = "max (n bits) drives serial depth: n - 1 XORs; a 2-way answer (majority floor ~0.5)"
    param_help = {"max": f"number of bits n (the scale, 2..{MAX_BITS})"}

    def validate(self) -> None:
        if not is_int(self.params.max) or not 2 <= self.params.max <= MAX_BITS:
            raise TaskError(f"parity: max={self.params.max!r} out of range; valid: 2..{MAX_BITS}")

    @property
    def vocab_size(self) -> int:
        return 3

    @property
    def question_len(self) -> int:
        return self.params.max

    @property
    def answer_len(self) -> int:
        return 1

    @property
    def trace_vocab_size(self) -> int:
        return 3

    @property
    def trace_len(self) -> int:
        return self.params.max

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        length = self.params.max
        bits = rng.integers(0, 2, size=(n, length), dtype=np.int64)
        running = np.bitwise_xor.accumulate(bits, axis=1)  # the fold: state_i = state_(i-1) xor b_i
        meta = {
            "size": np.full(n, length, dtype=np.int64),
            "depth": np.full(n, length - 1, dtype=np.int64),
            "ones": bits.sum(axis=1),
        }
        return Batch(bits + 1, running[:, -1:] + 1, running + 1, meta)

    def verify_batch(self, questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
        return answers[:, 0] == (questions - 1).sum(axis=1) % 2 + 1

    # ---- shortcut floors (bench floors) --------------------------------------------------------
    def surface_floors(self, train: Batch, test: Batch) -> list[tuple[str, np.ndarray, str]]:
        """The parity of the last r bits (recency), and the majority bit."""
        bits, answer = test.questions - 1, test.answers[:, 0] - 1
        floors = []
        for r in RECENCY_WINDOWS:
            if r < self.params.max:
                floors.append((f"last {r} bits", bits[:, -r:].sum(axis=1) % 2 == answer,
                               f"the parity of the last {r} bits only"))
        majority_bit = (2 * bits.sum(axis=1) > bits.shape[1]).astype(np.int64)
        floors.append(("majority bit", majority_bit == answer, "1 iff more than half the bits are 1"))
        return floors

    # ---- structured form -------------------------------------------------------------------------
    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        return {"bits": [int(t) - 1 for t in question]}

    def answer_json(self, answer: np.ndarray) -> Any:
        token = int(answer[0])
        return None if token == PAD else token - 1

    def check_problem_json(self, problem: dict[str, Any]) -> None:
        bits = problem.get("bits")
        if not isinstance(bits,
                          list) or not 1 <= len(bits) <= MAX_BITS or not all(is_int(b) and b in (0, 1) for b in bits):
            raise TaskError(f"parity: 'bits' must be a list of 1..{MAX_BITS} zeros and ones, got {str(bits)[:80]}")

    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        parity = 0
        for bit in problem["bits"]:
            parity ^= bit
        return is_int(answer) and answer == parity

    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        bits = "".join(str(int(t) - 1) for t in question)
        shown = self.answer_json(answer)
        text = f"parity({bits}) = {shown if shown is not None else '?'}"
        if trace is not None:
            text += "   trace (running parity): " + "".join(str(int(t) - 1) for t in trace if t != PAD)
        return text
