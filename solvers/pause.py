"""`pause`: K learned pause tokens between question and answer, the control for `continuous`.

    [question] p p .. p [answer]        p = one extra token id, the same at every pause position

The pauses carry no information from the model (their inputs are fixed), only extra positions to
compute in: comparing `pause` with `continuous` at the same K separates 'more compute' from 'more
serial communication' (Pfau et al. 2024: fillers help only parallelisable problems). K = 0 is `gpt`
with one unused token id.

Training: teacher forcing, cross-entropy on the answer positions. Evaluation: greedy decoding with
the KV cache after the pauses, at the trained budget or any other one up to `max_thoughts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from solvers.base import Prediction, TensorBatch, register_solver
from solvers.core import CoreConfig, Transformer
from solvers.gpt import answer_loss, greedy_decode
from solvers.thought_layout import ThoughtBudgetOptions, ThoughtBudgetSolver, resolve_budget, sample_budget


@dataclass(frozen=True)
class PauseOptions(ThoughtBudgetOptions):
    """K pause tokens: only the budget options (thoughts, max_thoughts, vary_thoughts)."""


@register_solver("pause", summary="K learned pause tokens between question and answer: more compute, no communication")
class PauseSolver(ThoughtBudgetSolver):
    """K learned pause tokens between question and answer."""

    Options = PauseOptions

    def __init__(self, shape, model, optim, options: PauseOptions) -> None:  # type: ignore[no-untyped-def]
        super().__init__(shape, model, optim, options)
        self.pause_id = shape.vocab_size  # one id after the task's tokens
        length = shape.question_len + options.max_thoughts + shape.answer_len
        self.net = Transformer(CoreConfig.from_model(model, vocab_size=shape.vocab_size + 1, max_len=length))
        self.build_optimizer()

    def with_pauses(self, questions: torch.Tensor, k: int) -> torch.Tensor:
        """[question] followed by k pause tokens (B, Lq + k)."""
        pauses = torch.full((questions.shape[0], k), self.pause_id, dtype=questions.dtype, device=questions.device)
        return torch.cat([questions, pauses], dim=1)

    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        k = sample_budget(self.options)
        prefix = self.with_pauses(batch.questions, k)  # (B, Lq + k)
        sequence = torch.cat([prefix, batch.answers], dim=1)
        logits, _, _ = self.net(sequence[:, :-1])
        answer_logits = logits[:, prefix.shape[1] - 1 :]  # positions whose next token is an answer token
        loss, exact = answer_loss(answer_logits, batch.answers)
        return loss, {"train_acc": float(exact.mean()), "thoughts": float(k)}

    @torch.no_grad()
    def predict(self, questions: torch.Tensor, thoughts: int | None = None) -> Prediction:
        self.eval()
        k = resolve_budget(thoughts, self.options)
        return Prediction(greedy_decode(self.net, self.with_pauses(questions, k), self.shape.answer_len))
