"""How a question is laid out for a model: the task's tokens, plus query and separator positions.

A task's question is its raw tokens (`add`: the two numbers `a b`). A model reads it better with a
*query position* at the end, an `=`-like token whose output predicts the first answer token, and
(measured on `add`, see results/experiments/baseline-recipe) with a separator after every question
token, which gives each operand a position of its own to attend from:

    plain      a b          the task's tokens as they are
    query      a b =        one query token at the end
    separated  a = b =      the query token after every question token

The query token is one new id, `vocab_size` of the task. `PromptedTask` wraps any task so that the
harness, the solvers and the evaluation all see the laid-out question, while splits, verification
and rendering use the task's own tokens (the extra positions are stripped first). No torch here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.base import Batch, Split, Task, TaskError

PROMPT_STYLES: tuple[str, ...] = ("plain", "query", "separated")


def check_prompt_style(style: str) -> str:
    if style not in PROMPT_STYLES:
        raise TaskError(f"prompt {style!r} is not valid; valid: {', '.join(PROMPT_STYLES)}")
    return style


class PromptedTask(Task):
    """A task whose questions carry query (and separator) tokens; everything else is the task's."""

    def __init__(self, task: Task, style: str) -> None:
        self.inner = task
        self.style = check_prompt_style(style)
        self.params = task.params
        self.name = task.name
        self.Params = task.Params  # type: ignore[misc]
        self.scale_param = task.scale_param  # type: ignore[misc]
        self.query_token = task.vocab_size

    # ---- layout -------------------------------------------------------------------------------
    def raw_positions(self) -> np.ndarray:
        """Indices of the task's own tokens inside a laid-out question."""
        n = self.inner.question_len
        if self.style == "separated":
            return np.arange(n) * 2
        return np.arange(n)

    def lay_out(self, questions: np.ndarray) -> np.ndarray:
        """(n, question_len) task questions -> (n, self.question_len) laid-out questions."""
        if self.style == "plain":
            return questions
        rows = questions.shape[0]
        query = np.full((rows, 1), self.query_token, dtype=questions.dtype)
        if self.style == "query":
            return np.concatenate([questions, query], axis=1)
        out = np.full((rows, 2 * questions.shape[1]), self.query_token, dtype=questions.dtype)
        out[:, 0::2] = questions
        return out

    def strip(self, questions: np.ndarray) -> np.ndarray:
        """Laid-out questions -> the task's own question tokens."""
        return questions[..., self.raw_positions()]

    def _wrap(self, batch: Batch) -> Batch:
        return Batch(self.lay_out(batch.questions), batch.answers, batch.traces, batch.meta)

    # ---- the Task contract, delegated -----------------------------------------------------------
    def validate(self) -> None:
        self.inner.validate()

    @property
    def vocab_size(self) -> int:
        return self.inner.vocab_size + (0 if self.style == "plain" else 1)

    @property
    def question_len(self) -> int:
        n = self.inner.question_len
        return {"plain": n, "query": n + 1, "separated": 2 * n}[self.style]

    @property
    def answer_len(self) -> int:
        return self.inner.answer_len

    @property
    def trace_vocab_size(self) -> int:
        return self.inner.trace_vocab_size

    @property
    def trace_len(self) -> int:
        return self.inner.trace_len

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        return self._wrap(self.inner.generate(rng, n))

    def sample(self, rng: np.random.Generator, n: int, split: Split = "train") -> Batch:
        return self._wrap(self.inner.sample(rng, n, split))

    def distinct_problems(self, rng: np.random.Generator, n: int, split: Split) -> tuple[Batch, bool]:
        batch, exhaustive = self.inner.distinct_problems(rng, n, split)
        return self._wrap(batch), exhaustive

    def canonical_questions(self, questions: np.ndarray) -> np.ndarray:
        return self.inner.canonical_questions(self.strip(questions))

    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        return self.inner.problem_json(self.strip(question))

    def code_features(self, batch: Batch) -> dict[str, np.ndarray]:
        return self.inner.code_features(Batch(self.strip(batch.questions), batch.answers, batch.traces, batch.meta))

    def answer_json(self, answer: np.ndarray) -> Any:
        return self.inner.answer_json(answer)

    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        return self.inner.verify_json(problem, answer)

    def verify(self, question: np.ndarray, answer: np.ndarray) -> bool:
        return self.inner.verify(self.strip(question), answer)

    def verify_batch(self, questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
        return self.inner.verify_batch(self.strip(questions), answers)

    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        return self.inner.render(self.strip(question), answer, trace)

    def trace_json(self, trace: np.ndarray) -> list[Any]:
        return self.inner.trace_json(trace)

    def param_dict(self) -> dict[str, Any]:
        return self.inner.param_dict()

    @property
    def scale(self) -> int:
        return self.inner.scale
