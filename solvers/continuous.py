"""`continuous`: the model thinks in its own hidden states (Coconut, Hao et al. 2024; the notes'
'stop on an earlier layer and return the residual stream vector').

    [question] <bot> h1 .. hK <eot> [answer]

h1 is the hidden state of layer `think_layer` at the <bot> position; h(i+1) is that state at the
position of h(i). Each h is fed back as the next position's input embedding (through a learned
projection if `projection`), K times, with gradients through every step (backprop through time);
ordinary tokens keep their embeddings. The K recurrent steps use the KV cache: each is one new
position, never a re-run of the prefix. Then the answer is decoded as usual (teacher forcing in
training, greedy with the cache at evaluation).

Options beyond the plain loop:
- `blind` (or the name `continuous_blind`): <eot> and answer positions may not attend to the
  question's or <bot>'s positions, only to the thoughts (see thought_layout.blind_mask for what a
  single-model mask does and does not hide: the thoughts' deeper layers still read the question).
- `curriculum S`: Coconut's stages. Stage 0 trains on [question] <bot> <eot> [reference trace as
  tokens] [answer]; stage s replaces the first s/S of the trace with s*K/S continuous thoughts;
  stage S is the plain layout above. `stage_steps` training steps per stage, `reset_optimizer`
  starts a fresh AdamW at each stage as Coconut does. Evaluation always uses the final layout, so
  the harness's early stop cannot fire on a model that still reasons in tokens.
- `stop_head`: variable-length thinking. A linear head reads the state that would be fed back
  next and says 'stop'; thinking ends at the first stop, capped at the budget. It is trained to
  say stop exactly where the answer decoded at that point is already right, and the answer is
  trained at every exit 0..K (mean loss), so every exit is a usable answer.
- `vary_thoughts`: train each step at a budget drawn from 0..K.

Logged: the norm of the fed-back vectors against the mean norm of the token embeddings (fed-back
states that grow without bound are a known failure), in the training metrics and in diagnostics().
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from solvers.base import ModelConfig, Prediction, SolverError, TaskShape, TensorBatch, register_solver
from solvers.continuous_options import ContinuousOptions, think_layer_problem
from solvers.core import CoreConfig, KVCache, Transformer
from solvers.gpt import answer_loss
from solvers.thought_layout import ThoughtBudgetSolver, blind_mask, resolve_budget, sample_budget


def _parse_name(typed: str) -> tuple[str, dict[str, bool]] | None:
    if typed == "continuous":
        return "continuous", {}
    if typed == "continuous_blind":
        return "continuous_blind", {"blind": True}
    return None


@register_solver(
    parse=_parse_name,
    examples=("continuous", "continuous_blind"),
    summary="continuous thoughts: a layer's hidden state fed back as the next input, K times, trained through time",
)
class ContinuousSolver(ThoughtBudgetSolver):
    """Continuous thoughts fed back as input embeddings."""

    Options = ContinuousOptions

    @classmethod
    def supports(cls, shape: TaskShape, options: ContinuousOptions) -> str | None:
        if options.curriculum and shape.trace_len == 0:
            return "--curriculum needs the task's reference traces, and this task has none"
        return None

    @classmethod
    def check_run(cls, shape: TaskShape, model: ModelConfig, options: ContinuousOptions, train: Any) -> str | None:
        return think_layer_problem(model.layers, options.think_layer) or super().check_run(shape, model, options, train)

    def __init__(self, shape, model, optim, options: ContinuousOptions) -> None:  # type: ignore[no-untyped-def]
        super().__init__(shape, model, optim, options)
        problem = think_layer_problem(model.layers, options.think_layer)  # make_solver has checked supports
        if problem:
            raise SolverError(problem)
        self.layer = options.think_layer if options.think_layer >= 0 else model.layers + 1 + options.think_layer
        self.bot_id, self.eot_id = shape.vocab_size, shape.vocab_size + 1
        self.trace_offset = shape.vocab_size + 2  # trace token t (TRACE_PAD included) is id trace_offset + t
        trace_tokens = shape.trace_vocab_size if options.curriculum else 0
        trace_positions = shape.trace_len if options.curriculum else 0
        length = shape.question_len + 2 + options.max_thoughts + trace_positions + shape.answer_len
        self.net = Transformer(
            CoreConfig.from_model(model, vocab_size=shape.vocab_size + 2 + trace_tokens, max_len=length)
        )
        self.project: nn.Linear | None = None
        if options.projection:
            self.project = nn.Linear(model.d_model, model.d_model)
            with torch.no_grad():  # identity at first: the projection learns a correction
                self.project.weight.copy_(torch.eye(model.d_model))
                self.project.bias.zero_()
        # normalize at the last block reuses the model's own final LayerNorm (no new parameters).
        self.thought_ln = (
            nn.LayerNorm(model.d_model) if options.normalize == "final" and self.layer != model.layers else None
        )
        self.stop = nn.Linear(model.d_model, 1) if options.stop_head else None
        # Training steps taken, saved with the model so a resumed curriculum resumes its stage.
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.build_optimizer()

    # ---- the thought loop ---------------------------------------------------------------------------
    def feed(self, state: torch.Tensor) -> torch.Tensor:
        """The input vector for the next position from a hidden state (B, C) -> (B, C)."""
        if self.options.normalize == "final":
            state = self.net.ln_f(state) if self.thought_ln is None else self.thought_ln(state)
        elif self.options.normalize == "embedding":
            scale = self.net.tok_emb.weight[1 : self.shape.vocab_size].detach().norm(dim=-1).mean()
            state = F.layer_norm(state, state.shape[-1:]) * (scale / state.shape[-1] ** 0.5)
        return state if self.project is None else self.project(state)

    def _token(self, token_id: int, batch: int, device: torch.device) -> torch.Tensor:
        return torch.full((batch, 1), token_id, dtype=torch.long, device=device)

    def _start(self, questions: torch.Tensor) -> tuple[KVCache, torch.Tensor]:
        """Run [question] <bot>; the cache and the hidden state at <bot> (B, C)."""
        prefix = torch.cat([questions, self._token(self.bot_id, questions.shape[0], questions.device)], dim=1)
        _, cache, hidden = self.net(prefix, hidden_layer=self.layer, compute_logits=False)
        return cache, hidden[:, -1]

    def _step(self, vector: torch.Tensor, cache: KVCache) -> tuple[KVCache, torch.Tensor]:
        """Feed one thought vector (B, C) as one new cached position; the new cache and hidden state."""
        _, cache, hidden = self.net(
            inputs_embeds=vector[:, None], cache=cache, hidden_layer=self.layer, compute_logits=False
        )
        return cache, hidden[:, -1]

    def _mask(self, t_new: int, t_total: int, first_blind: int, device: torch.device) -> torch.Tensor | None:
        if not self.options.blind:
            return None
        return blind_mask(t_new, t_total, self.shape.question_len + 1, first_blind, device)  # question and <bot>

    def tail_logits(
        self, questions: torch.Tensor, k: int, targets: torch.Tensor, cached: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Teacher-forced logits for `targets` (B, Lt) after [question] <bot> h1..hk <eot>.

        Returns (logits (B, Lt, V), the k fed-back vectors, each (B, C), in the graph).
        cached=False re-runs the whole prefix for every thought (the reference the cache must match).
        """
        B, q_len, device = questions.shape[0], questions.shape[1], questions.device
        tail = torch.cat([self._token(self.eot_id, B, device), targets[:, :-1]], dim=1)  # (B, Lt)
        eot_at = q_len + 1 + k
        fed: list[torch.Tensor] = []
        if not cached:
            embeds = self.net.embed_tokens(torch.cat([questions, self._token(self.bot_id, B, device)], dim=1))
            for _ in range(k):
                _, _, hidden = self.net(inputs_embeds=embeds, hidden_layer=self.layer, compute_logits=False)
                fed.append(self.feed(hidden[:, -1]))
                embeds = torch.cat([embeds, fed[-1][:, None]], dim=1)
            x = torch.cat([embeds, self.net.embed_tokens(tail)], dim=1)
            logits, _, _ = self.net(inputs_embeds=x, attn_mask=self._mask(x.shape[1], x.shape[1], eot_at, device))
            return logits[:, eot_at:], fed
        if k == 0:
            sequence = torch.cat([questions, self._token(self.bot_id, B, device), tail], dim=1)
            T = sequence.shape[1]
            logits, _, _ = self.net(sequence, attn_mask=self._mask(T, T, eot_at, device))
            return logits[:, eot_at:], fed
        cache, state = self._start(questions)
        for i in range(k):
            fed.append(self.feed(state))
            if i < k - 1:
                cache, state = self._step(fed[-1], cache)
        # The last thought rides in one pass with the tail: K+1 sequential passes in all.
        x = torch.cat([fed[-1][:, None], self.net.embed_tokens(tail)], dim=1)  # (B, 1 + Lt, C)
        t_total = cache[0][0].shape[2] + x.shape[1]
        logits, _, _ = self.net(inputs_embeds=x, cache=cache, attn_mask=self._mask(x.shape[1], t_total, eot_at, device))
        return logits[:, 1:], fed

    # ---- training -------------------------------------------------------------------------------------
    def stage(self, steps: int | None = None) -> int:
        """Curriculum stage at a step count (the current one by default); S = all continuous."""
        S = self.options.curriculum
        if not S:
            return 0
        steps = int(self.steps_done) if steps is None else steps
        return min(steps // self.options.stage_steps, S)

    def train_step(self, batch: TensorBatch) -> dict[str, float]:
        steps = int(self.steps_done)
        if self.options.reset_optimizer and steps > 0 and self.stage(steps) != self.stage(steps - 1):
            self.build_optimizer()  # Coconut: fresh optimizer state at each new stage
        metrics = super().train_step(batch)
        self.steps_done += 1
        return metrics

    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        if self.options.stop_head:
            return self._exit_loss(batch)
        questions, answers = batch.questions, batch.answers
        metrics: dict[str, float] = {}
        if self.options.curriculum:
            stage, S, trace_len = self.stage(), self.options.curriculum, self.shape.trace_len
            k = stage * (self.options.thoughts // S)
            remaining = batch.traces[:, (stage * trace_len) // S :] + self.trace_offset  # trace still in tokens
            targets = torch.cat([remaining, answers], dim=1)
            metrics["stage"] = float(stage)
        else:
            k = sample_budget(self.options)
            targets = answers
        logits, fed = self.tail_logits(questions, k, targets)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
        answer_len = answers.shape[1]
        exact = (logits[:, -answer_len:].argmax(-1) == answers).all(dim=1).float()
        metrics.update({"train_acc": float(exact.mean()), "thoughts": float(k), **self._norm_metrics(fed)})
        return loss, metrics

    def _exit_loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """stop_head training: the answer at every exit 0..k, and the stop head told where it is right."""
        assert self.stop is not None
        questions, answers = batch.questions, batch.answers
        k = sample_budget(self.options)
        B, device = questions.shape[0], questions.device
        tail = torch.cat([self._token(self.eot_id, B, device), answers[:, :-1]], dim=1)
        cache, state = self._start(questions)
        fed: list[torch.Tensor] = []
        answer_losses, stop_logits, right = [], [], []
        for i in range(k + 1):
            past = cache[0][0].shape[2]  # = q_len + 1 + i: <eot> would go here
            logits, _, _ = self.net(
                tail, cache=cache, attn_mask=self._mask(tail.shape[1], past + tail.shape[1], past, device)
            )
            exit_loss, exact = answer_loss(logits, answers)
            answer_losses.append(exit_loss)
            right.append(exact)
            if i < k:
                # The head reads the state but does not shape it: thinking is trained by the answers.
                stop_logits.append(self.stop(state.detach()).squeeze(-1))
                fed.append(self.feed(state))
                cache, state = self._step(fed[-1], cache)
        loss = torch.stack(answer_losses).mean()
        metrics = {"train_acc": float(right[-1].mean()), "thoughts": float(k), **self._norm_metrics(fed)}
        if stop_logits:
            stop_logit = torch.stack(stop_logits, dim=1).float()  # (B, k)
            stop_target = torch.stack(right[:k], dim=1)  # stop after i thoughts iff that answer is right
            stop_loss = F.binary_cross_entropy_with_logits(stop_logit, stop_target)
            loss = loss + stop_loss
            metrics["stop_loss"] = float(stop_loss.detach())
        return loss, metrics

    @torch.no_grad()
    def token_embedding_norm(self) -> float:
        """Mean L2 norm of the task's token embeddings (PAD excluded): the scale fed-back vectors meet."""
        return float(self.net.tok_emb.weight[1 : self.shape.vocab_size].float().norm(dim=-1).mean())

    @torch.no_grad()
    def _norm_metrics(self, fed: list[torch.Tensor]) -> dict[str, float]:
        token_norm = self.token_embedding_norm()
        if not fed:
            return {"token_norm": token_norm}
        thought_norm = float(torch.stack(fed, dim=1).float().norm(dim=-1).mean())
        return {"thought_norm": thought_norm, "token_norm": token_norm, "norm_ratio": thought_norm / token_norm}

    # ---- inference ------------------------------------------------------------------------------------
    def _decode(self, cache: KVCache, steps: int) -> torch.Tensor:
        """Greedy tokens after <eot> from a cache ending in the last thought; (B, steps)."""
        B, device = cache[0][0].shape[0], cache[0][0].device
        past = cache[0][0].shape[2]  # <eot> goes here
        token = self._token(self.eot_id, B, device)
        out = []
        for j in range(steps):
            total = past + j + 1
            logits, cache, _ = self.net(token, cache=cache, attn_mask=self._mask(1, total, past, device))
            token = logits[:, -1].argmax(dim=-1, keepdim=True)
            out.append(token)
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def think(self, questions: torch.Tensor, k: int) -> tuple[KVCache, list[torch.Tensor], torch.Tensor]:
        """k thoughts with the cache: (cache, fed-back vectors, thoughts used per problem (B,)).
        With a stop head, a problem's thinking ends at its first 'stop' (the cache still holds all k;
        `predict` cuts each problem's cache to its own length)."""
        cache, state = self._start(questions)
        used = torch.full((questions.shape[0],), k, dtype=torch.long, device=questions.device)
        fed: list[torch.Tensor] = []
        for i in range(k):
            if self.stop is not None:
                stops = (self.stop(state).squeeze(-1) > 0) & (used == k)
                used = torch.where(stops, torch.full_like(used, i), used)
            fed.append(self.feed(state))
            cache, state = self._step(fed[-1], cache)
        return cache, fed, used

    @torch.no_grad()
    def predict(self, questions: torch.Tensor, thoughts: int | None = None) -> Prediction:
        self.eval()
        k = resolve_budget(thoughts, self.options)
        cache, _, used = self.think(questions, k)
        answer_len = self.shape.answer_len
        if self.stop is None:
            return Prediction(self._decode(cache, answer_len))
        answers = torch.zeros((questions.shape[0], answer_len), dtype=torch.long, device=questions.device)
        q_len = questions.shape[1]
        for n in torch.unique(used).tolist():  # at most k+1 groups, each decoded from its own prefix
            rows = used == n
            length = q_len + 1 + n
            trimmed = [(keys[rows, :, :length], values[rows, :, :length]) for keys, values in cache]
            answers[rows] = self._decode(trimmed, answer_len)
        return Prediction(answers)

    @torch.no_grad()
    def diagnostics(self, task: Any, held_out: Any, device: torch.device | str) -> dict[str, Any]:
        """Fed-back norms per thought step up to max_thoughts (against the token-embedding norm),
        thoughts used with a stop head, the curriculum stage reached."""
        self.eval()
        questions = torch.from_numpy(np.asarray(held_out.questions[:512])).to(device=device, dtype=torch.long)
        k = self.options.max_thoughts
        _, fed, _ = self.think(questions, k)
        token_norm = self.token_embedding_norm()
        by_step = [round(float(v.float().norm(dim=-1).mean()), 4) for v in fed]
        trained = by_step[: self.options.thoughts]
        out: dict[str, Any] = {
            "think_layer": self.layer,
            "token_embedding_norm": round(token_norm, 4),
            "fed_back_norm_by_step": by_step,
            "fed_back_norm_ratio": round(float(np.mean(trained)) / token_norm, 3) if trained else None,
        }
        if self.stop is not None:
            _, _, used = self.think(questions, self.options.thoughts)
            counts = torch.bincount(used, minlength=self.options.thoughts + 1).tolist()
            out["thoughts_used_mean"] = round(float(used.float().mean()), 3)
            out["thoughts_used_histogram"] = counts
        if self.options.curriculum:
            out["curriculum_stage"] = f"{self.stage()}/{self.options.curriculum}"
        return out
