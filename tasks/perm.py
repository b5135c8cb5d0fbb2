"""`perm`: the word problem of a finite group: k group elements, answer their product (left to right).

The cleanest task whose serial depth is known from theory, each group with a control of the same
size. For a non-solvable group (A5, S5) the word problem is NC1-complete (Barrington 1989): no
constant-depth transformer solves it at every k unless TC0 = NC1, so its depth must grow with k
(log k with parallel scans, k with a left-to-right fold). For a solvable group (A4xZ5) it lies in
ACC0, and for an abelian one (Z60) it is a modular sum. A5, A4xZ5 and Z60 all have order 60, so
they compare at one vocabulary size, as Merrill et al. 2024 ("The illusion of state") do; Liu et al.
2023 ("Transformers learn shortcuts to automata") and Li et al. 2024 ("Chain of thought empowers
transformers to solve inherently serial problems") report what plain and chain-of-thought
transformers reach on them.

Groups (`group`, see tasks/groups.py): Sn (n <= 6), An (n <= 6), Zn (n <= 1000) and direct
products such as A4xZ5, each a set of permutations; element i is token i + 1 (token 1 = the
identity), PAD = 0.

Question: x_0 .. x_(k-1), one token each. Answer: one token, the product x_0 x_1 ... x_(k-1), applied
left to right (first x_0, then x_1, ...: point p goes to x_(k-1)(...x_1(x_0(p)))).

Reference trace: the running product, aligned with the question positions (0-based):

    trace step i = x_0 x_1 ... x_i   (i = 0 .. k-1: the product of elements 0..i)

so trace step 0 is x_0 itself and the last step is the answer. This is the per-position target of
the "tagging" set-up of Liu et al. and Merrill et al. (the state of the automaton after each input),
and a blind answerer can read the answer off the last thought. Trace tokens are element tokens.

Serial depth: `depth` = k - 1 (the products a left-to-right fold performs); `size` = k. Which
complexity class that depth belongs to is the group's (the parameter), not the problem's.

Splits: for an abelian group any reordering of the question has the same answer, so the canonical
form is the multiset of elements; for the others the sequence itself.

Structured form (`bench sample --format jsonl`, `bench verify`): {"group": "A5", "elements": [[array
form], ...]} where an array form lists the images of points 0..d-1; the answer is an array form.
The verifier composes the permutations with its own loop, never the group's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.base import PAD, Batch, Task, TaskError, is_int
from tasks.groups import GROUP_HELP, Group, make_group
from tasks.registry import register_task

MAX_LENGTH = 256
RECENCY_WINDOWS = (2, 3, 4)


@dataclass(frozen=True)
class PermParams:
    max: int = 8
    """Number of elements k (the serial depth)."""
    group: str = "A5"
    """The group: Sn, An, Zn or a direct product such as A4xZ5."""


@register_task("perm")
class PermTask(Task):
    Params = PermParams
    scale_param = "max"
    scale_help = "number of elements k: the product of k group elements"
    difficulty_help = (
        "max (k elements) drives serial depth; group sets the complexity class at one vocabulary: "
        "A5 (non-solvable, NC1-complete), A4xZ5 (solvable), Z60 (abelian), all of order 60"
    )
    param_help = {
        "max": f"number of elements k (the scale, 1..{MAX_LENGTH}): the serial depth",
        "group": f"the group: {GROUP_HELP}",
    }

    def validate(self) -> None:
        p = self.params
        if not is_int(p.max) or not 1 <= p.max <= MAX_LENGTH:
            raise TaskError(f"perm: max={p.max!r} out of range; valid: 1..{MAX_LENGTH}")
        self.group: Group = make_group(p.group)

    @property
    def vocab_size(self) -> int:
        return self.group.order + 1

    @property
    def question_len(self) -> int:
        return self.params.max

    @property
    def answer_len(self) -> int:
        return 1

    @property
    def trace_vocab_size(self) -> int:
        return self.group.order + 1

    @property
    def trace_len(self) -> int:
        return self.params.max

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        k, table = self.params.max, self.group.table
        elements = rng.integers(0, self.group.order, size=(n, k), dtype=np.int64)
        running = np.empty((n, k), dtype=np.int64)
        state = np.zeros(n, dtype=np.int64)  # the identity
        for i in range(k):  # the left-to-right fold, vectorised over problems
            state = table[state, elements[:, i]]
            running[:, i] = state
        meta = {"size": np.full(n, k, dtype=np.int64), "depth": np.full(n, k - 1, dtype=np.int64)}
        return Batch(elements + 1, state[:, None] + 1, running + 1, meta)

    def canonical_questions(self, questions: np.ndarray) -> np.ndarray:
        """The multiset for an abelian group (every order has the same product), else the sequence."""
        return np.sort(questions, axis=1) if self.group.abelian else questions

    def verify_batch(self, questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
        state = np.zeros(len(questions), dtype=np.int64)
        for column in questions.T:
            state = self.group.table[state, column - 1]
        return answers[:, 0] == state + 1

    # ---- shortcut floors (bench floors) --------------------------------------------------------
    def surface_floors(self, train: Batch, test: Batch) -> list[tuple[str, np.ndarray, str]]:
        """The last element, and the product of the last r elements (recency: a model attending to a
        window instead of the whole word)."""
        answer = test.answers[:, 0] - 1
        elements = test.questions - 1
        floors = [("last element", elements[:, -1] == answer, "answer the last element")]
        for r in RECENCY_WINDOWS:
            if r >= self.params.max:
                break
            state = np.zeros(len(test), dtype=np.int64)
            for column in elements[:, -r:].T:
                state = self.group.table[state, column]
            floors.append((f"last {r} elements", state == answer, f"the product of the last {r} elements only"))
        return floors

    # ---- structured form -------------------------------------------------------------------------
    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        return {"group": self.params.group, "elements": [list(self.group.elements[int(t) - 1]) for t in question]}

    def answer_json(self, answer: np.ndarray) -> Any:
        token = int(answer[0])
        return None if token == PAD or token > self.group.order else list(self.group.elements[token - 1])

    def trace_json(self, trace: np.ndarray) -> list[Any]:
        return [list(self.group.elements[int(t) - 1]) for t in trace if t != PAD]

    def check_problem_json(self, problem: dict[str, Any]) -> None:
        name = problem.get("group")
        if not isinstance(name, str) or len(name) > 100:
            raise TaskError(f"perm: 'group' must be a group name ({GROUP_HELP}), got {str(name)[:80]!r}")
        group = make_group(name)
        elements = problem.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_LENGTH:
            raise TaskError(
                f"perm: 'elements' must be a list of 1..{MAX_LENGTH} permutations, got {str(elements)[:80]}")
        for element in elements:
            if not isinstance(element,
                              list) or not all(is_int(x) for x in element) or tuple(element) not in group.index:
                raise TaskError(f"perm: {str(element)[:80]} is not an element of {group.name} (array forms on "
                                f"{group.degree} points)")

    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        if not isinstance(answer, list) or not all(is_int(x) for x in answer):
            return False
        elements = problem["elements"]
        product = list(range(len(elements[0])))  # the identity
        for element in elements:  # first the product so far, then this element
            product = [element[image] for image in product]
        return answer == product

    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        name = self.group.element_name
        word = " · ".join(name(int(t) - 1) for t in question)
        token = int(answer[0])
        shown = name(token - 1) if 0 < token <= self.group.order else "?"
        text = f"{self.params.group}: {word} = {shown}"
        if trace is not None:
            text += "   trace (running product): " + "  ".join(name(int(t) - 1) for t in trace if t != PAD)
        return text
