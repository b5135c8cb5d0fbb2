"""`gpt`: the normal transformer baseline. Question in, answer tokens out, no thinking.

Training: teacher forcing on [question][answer], cross-entropy on the answer positions only.
Evaluation: greedy decoding with the KV cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from solvers.base import Prediction, Solver, TensorBatch, register_solver
from solvers.core import CoreConfig, Transformer


def greedy_decode(model: Transformer, prefix: torch.Tensor, steps: int, **forward_kwargs) -> torch.Tensor:
    """Append `steps` greedy tokens to `prefix` (B, T) using the KV cache; returns them (B, steps)."""
    logits, cache, _ = model(prefix, **forward_kwargs)
    out = []
    for step in range(steps):
        next_token = logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        out.append(next_token)
        if step + 1 < steps:
            logits, cache, _ = model(next_token, cache=cache)
    return torch.cat(out, dim=1)


def answer_loss(logits: torch.Tensor, answers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of answer tokens given the logits that predict them (B, La, V), (B, La).
    Also returns per-problem exact-match (all answer tokens right) as a float tensor."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), answers.reshape(-1))
    exact = (logits.argmax(-1) == answers).all(dim=1).float()
    return loss, exact


@register_solver("gpt", summary="the normal transformer baseline: question in, answer out, no thoughts")
class GPTSolver(Solver):
    """The normal transformer baseline."""

    def __init__(self, shape, model, optim, options) -> None:  # type: ignore[no-untyped-def]
        super().__init__(shape, model, optim, options)
        self.net = Transformer(
            CoreConfig(
                vocab_size=shape.vocab_size,
                max_len=shape.question_len + shape.answer_len,
                d_model=model.d_model,
                layers=model.layers,
                heads=model.heads,
                init=model.weight_init,
            )
        )
        self.build_optimizer()

    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        q_len = batch.questions.shape[1]
        sequence = torch.cat([batch.questions, batch.answers], dim=1)  # (B, Lq + La)
        # Unembed only the positions whose next token is an answer token: the head over the whole
        # sequence is wasted work (measured ~10% of a step at add's shapes).
        _, _, hidden = self.net(sequence[:, :-1], hidden_layer=self.net.cfg.layers, compute_logits=False)
        answer_logits = self.net.head(self.net.ln_f(hidden[:, q_len - 1 :]))
        loss, exact = answer_loss(answer_logits, batch.answers)
        return loss, {"train_acc": float(exact.mean())}

    @torch.no_grad()
    def predict(self, questions: torch.Tensor, thoughts: int | None = None) -> Prediction:
        self.eval()
        return Prediction(greedy_decode(self.net, questions, self.shape.answer_len))
