"""`looped`: recurrent depth. One block stack applied r times with shared weights (the Universal
Transformer; looped transformers, Saunshi et al. 2025; recurrent depth, Geiping et al. 2025).

    e = token + position embeddings
    x_1 = stack(e),   x_(i+1) = stack(x_i [+ e with `inject`]),   logits = head(ln_f(x_r))

r is the thought budget (`--thoughts`, the pause/continuous convention: default 4, 0..max_thoughts;
r = 0 reads the embeddings alone), so `bench sweep --thoughts` and `--eval-thoughts` read accuracy
against r as they do against K. A step costs r times a `layers`-deep pass: `bench perf looped`
measures it against `gpt` at r x layers (depth without recurrence, the fourth baseline).

Training: teacher forcing on [question][answer], cross-entropy on the answer positions, at r or,
with `vary_thoughts`, at r drawn per step uniformly from 1..r (Geiping's recipe samples the
recurrence per step; uniform here, so every depth up to r is trained). Evaluation: greedy decoding
with a KV cache that holds every (iteration, layer)'s keys and values.

The blocks are solvers/core.py's; this module runs them itself (the core's forward runs its stack
once), so the core is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from solvers.base import Prediction, TensorBatch, register_solver
from solvers.core import CoreConfig, KVCache, Transformer
from solvers.gpt import answer_loss
from solvers.thought_layout import ThoughtBudgetOptions, ThoughtBudgetSolver, resolve_budget


@dataclass(frozen=True)
class LoopedOptions(ThoughtBudgetOptions):
    """r (--thoughts: the shared thought budget, 4 x 2 layers = 8 blocks of compute by default), its
    limit (--max-thoughts), per-step r, and input injection."""

    vary_thoughts: bool = False
    """Train each step at r drawn uniformly from 1..r (Geiping et al.'s per-step recurrence), so every depth
    is trained."""
    inject: bool = False
    """Input injection: add the input embeddings to the stream before every iteration after the first."""


@register_solver("looped", summary="recurrent depth: the block stack applied r = --thoughts times with shared weights")
class LoopedSolver(ThoughtBudgetSolver):
    """One block stack applied r times with shared weights."""

    Options = LoopedOptions

    def __init__(self, shape, model, optim, options: LoopedOptions) -> None:  # type: ignore[no-untyped-def]
        super().__init__(shape, model, optim, options)
        self.net = Transformer(CoreConfig.from_model(model, shape.vocab_size, shape.question_len + shape.answer_len))
        self.build_optimizer()

    def forward_looped(
        self,
        tokens: torch.Tensor,
        r: int,
        cache: KVCache | None = None,
        last_only: bool = False,
        start: int | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """Logits (B, T, V) (or (B, 1, V) with last_only) and the new cache (r x layers entries,
        iteration-major) for new positions `tokens` (B, T) after `cache`, numbered from `start`
        (default: the cache's length; at r = 0 the cache is empty, so decoding passes it)."""
        net = self.net
        T = tokens.shape[1]
        if start is None:
            start = 0 if not cache else cache[0][0].shape[2]
        if start + T > net.cfg.max_len:
            raise ValueError(f"sequence of {start + T} positions exceeds max_len={net.cfg.max_len}")
        embedded = net.tok_emb(tokens) + net.pos_emb(torch.arange(start, start + T, device=tokens.device))
        x, present = self.run_stack(embedded, r, cache)
        if last_only:
            x = x[:, -1:]
        return net.head(net.ln_f(x)), present

    def run_stack(self, embedded: torch.Tensor, r: int, cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """The block stack applied r times to embedded inputs (B, T, C) (with injection if set):
        the last iteration's output (B, T, C) and the new cache, iteration-major."""
        x = embedded
        present: KVCache = []
        layers = len(self.net.blocks)
        for iteration in range(r):
            if iteration and self.options.inject:
                x = x + embedded
            for index, block in enumerate(self.net.blocks):
                x, kv = block(x, cache[iteration * layers + index] if cache else None, None)
                present.append(kv)
        return x, present

    def sample_r(self) -> int:
        """This step's r: the trained one, or uniform in 1..r with vary_thoughts (seeded per step by the harness)."""
        r = self.options.thoughts
        if not self.options.vary_thoughts or r <= 1:
            return r
        return int(torch.randint(1, r + 1, (1,)).item())

    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        q_len = batch.questions.shape[1]
        r = self.sample_r()
        sequence = torch.cat([batch.questions, batch.answers], dim=1)
        net = self.net
        # Unembed only the answer-predicting positions, as gpt does.
        embedded = net.tok_emb(sequence[:, :-1]) + net.pos_emb(
            torch.arange(sequence.shape[1] - 1, device=sequence.device)
        )
        x, _ = self.run_stack(embedded, r)
        answer_logits = net.head(net.ln_f(x[:, q_len - 1 :]))
        loss, exact = answer_loss(answer_logits, batch.answers)
        return loss, {"train_acc": float(exact.mean()), "thoughts": float(r)}

    @torch.no_grad()
    def predict(self, questions: torch.Tensor, thoughts: int | None = None) -> Prediction:
        self.eval()
        r = resolve_budget(thoughts, self.options)
        logits, cache = self.forward_looped(questions, r, last_only=True)
        out, position = [], questions.shape[1]
        for step in range(self.shape.answer_len):
            token = logits[:, -1].argmax(-1, keepdim=True)
            out.append(token)
            if step + 1 < self.shape.answer_len:
                logits, cache = self.forward_looped(token, r, cache, start=position)
                position += 1
        return Prediction(torch.cat(out, dim=1))
