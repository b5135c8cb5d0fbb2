"""`gpt`: the normal transformer baseline. Question in, answer tokens out, no thinking.

Training: teacher forcing on [question][answer], cross-entropy on the answer positions only.
Evaluation: greedy decoding with the KV cache.

`--opt aux=trace`: intermediate targets without feedback (Bai et al. 2025's auxiliary running-sum
loss). Linear heads read the reference trace off the hidden states and their cross-entropy is added
to the answer's; nothing is fed back and evaluation is plain gpt. Where the heads read (`aux_at`):

    aligned   trace step j at question position Lq - T + j (T = trace length): on multiadd the
              running sum s_(j+2) at operand x_(j+2), the last one (the answer) at the last operand;
              one shared head, since every position asks the same question (the sum so far)
    last      every step at the last question position, one head per trace step
    auto      aligned when the trace has one step per question token after the first (running sums
              or products: T = Lq - 1), else last

The default (`aux=none`) builds no heads, so gpt's weights, behaviour and run ids are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from solvers.base import Prediction, Solver, SolverOptions, TaskShape, TensorBatch, register_solver
from solvers.core import CoreConfig, Transformer
from solvers.errors import SolverError
from solvers.padding import masked_greedy_decode, trimmed_tail_hidden


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


@dataclass(frozen=True)
class GPTOptions(SolverOptions):
    """gpt's options: only the auxiliary trace targets (off by default)."""

    LATE: ClassVar[tuple[str, ...]] = ("aux", "aux_at", "aux_weight", "aux_layer", "pad")

    aux: Literal["none", "trace"] = "none"
    """Intermediate targets without feedback: trace = linear heads trained to predict the reference trace
    from the hidden states (Bai et al. 2025); nothing is fed back, evaluation is plain gpt."""
    aux_at: Literal["auto", "aligned", "last"] = "auto"
    """Where the aux heads read: aligned (trace step j at question position Lq - T + j, one shared head),
    last (all steps at the last question position, one head per step), auto (aligned when T = Lq - 1)."""
    aux_weight: float = 1.0
    """Weight of the auxiliary cross-entropy added to the answer's."""
    aux_layer: int = -1
    """Which block's output the aux heads read (1..layers; -1 = the last)."""
    pad: Literal["attend", "trim"] = "attend"
    """Question PAD tokens: attend (ordinary tokens) or trim (masked as keys and not computed: each batch
    trimmed around them, positions kept; solvers/padding.py)."""

    def validate(self) -> None:
        if self.aux == "none" and (self.aux_at, self.aux_weight, self.aux_layer) != ("auto", 1.0, -1):
            raise SolverError("--aux-at, --aux-weight and --aux-layer apply only with --opt aux=trace")
        if not 0 < self.aux_weight <= 100:
            raise SolverError(f"--aux-weight={self.aux_weight} is out of range; valid: > 0 and <= 100")
        if self.aux_layer != -1 and self.aux_layer < 1:
            raise SolverError(f"--aux-layer={self.aux_layer} is not valid; valid: 1..layers, or -1 for the last")

    def resolved(self, shape: TaskShape) -> GPTOptions:
        if self.aux == "none" or self.aux_at != "auto":
            return self
        import dataclasses

        return dataclasses.replace(self, aux_at=aux_position(shape))


def aux_position(shape: TaskShape) -> str:
    """`auto`'s choice: aligned when the trace has one step per question token after the first."""
    return "aligned" if shape.trace_len >= 1 and shape.trace_len == shape.question_len - 1 else "last"


@register_solver(
    "gpt",
    summary="the normal transformer baseline: question in, answer out, no thoughts "
    "(--opt aux=trace: trace targets, no feedback)",
)
class GPTSolver(Solver):
    """The normal transformer baseline."""

    Options = GPTOptions

    @classmethod
    def supports(cls, shape: TaskShape, options: GPTOptions) -> str | None:  # type: ignore[override]
        if options is not None and options.pad == "trim" and options.aux == "trace":
            return "--opt pad=trim does not combine with aux=trace (the aux heads read question positions)"
        if options is not None and options.aux == "trace":
            if shape.trace_len == 0:
                return "--opt aux=trace needs the task's reference traces, and this task has none"
            if options.aux_at == "aligned" and shape.trace_len > shape.question_len:
                return (f"--opt aux_at=aligned needs a trace no longer than the question "
                        f"({shape.trace_len} > {shape.question_len} tokens); use aux_at=last")
        return None

    @classmethod
    def check_run(cls, shape, model, options, train):  # type: ignore[no-untyped-def]
        if options is not None and options.aux == "trace" and options.aux_layer > model.layers:
            return f"--aux-layer={options.aux_layer} exceeds --layers={model.layers}; valid: 1..{model.layers} or -1"
        return None

    def __init__(self, shape, model, optim, options) -> None:  # type: ignore[no-untyped-def]
        options = options if options is not None else GPTOptions()
        super().__init__(shape, model, optim, options)
        self.net = Transformer(CoreConfig.from_model(model, shape.vocab_size, shape.question_len + shape.answer_len))
        if options.aux == "trace":  # built after the core, so the core's init draws are gpt's own
            at = options.aux_at if options.aux_at != "auto" else aux_position(shape)
            self.aux_at = at
            self.aux_layer = model.layers if options.aux_layer == -1 else options.aux_layer
            count = 1 if at == "aligned" else shape.trace_len
            self.aux_norm = nn.LayerNorm(model.d_model)
            self.aux_heads = nn.ModuleList(nn.Linear(model.d_model, shape.trace_vocab_size) for _ in range(count))
        self.build_optimizer()

    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        q_len = batch.questions.shape[1]
        sequence = torch.cat([batch.questions, batch.answers], dim=1)  # (B, Lq + La)
        aux = self.options.aux == "trace"
        # Unembed only the positions whose next token is an answer token: the head over the whole
        # sequence is wasted work (measured ~10% of a step at add's shapes).
        if self.options.pad == "trim":  # no work on question PADs (solvers/padding.py); aux is refused
            # hidden holds only the positions from q_len - 1 on (those that read out answer tokens)
            hidden, q_len = trimmed_tail_hidden(self.net, sequence[:, :-1], q_len), 1
        elif not aux:
            _, _, hidden = self.net(sequence[:, :-1], hidden_layer=self.net.cfg.layers, compute_logits=False)
        else:
            hidden, probe = self.hidden_pair(sequence[:, :-1])
        answer_logits = self.net.head(self.net.ln_f(hidden[:, q_len - 1 :]))
        loss, exact = answer_loss(answer_logits, batch.answers)
        metrics = {"train_acc": float(exact.mean())}
        if aux:
            aux_loss, match = self.trace_loss(probe[:, :q_len], batch.traces)
            loss = loss + self.options.aux_weight * aux_loss
            metrics.update({"aux_loss": float(aux_loss.detach()), "aux_match": match})
        return loss, metrics

    def hidden_pair(self, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the last block's output, the aux layer's output), both (B, T, C), from one pass."""
        if self.aux_layer == self.net.cfg.layers:
            _, _, hidden = self.net(sequence, hidden_layer=self.aux_layer, compute_logits=False)
            return hidden, hidden
        # The aux heads read an earlier block: catch its output with a hook on the same forward pass.
        captured: list[torch.Tensor] = []
        handle = self.net.blocks[self.aux_layer - 1].register_forward_hook(lambda _m, _i, out: captured.append(out[0]))
        try:
            _, _, hidden = self.net(sequence, hidden_layer=self.net.cfg.layers, compute_logits=False)
        finally:
            handle.remove()
        return hidden, captured[0]

    def trace_loss(self, probe: torch.Tensor, traces: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Cross-entropy of the aux heads on the reference trace (B, T) from question hidden states
        (B, Lq, C); also the share of trace tokens the heads get right."""
        T = traces.shape[1]
        states = self.aux_norm(probe)
        if self.aux_at == "aligned":
            logits = self.aux_heads[0](states[:, probe.shape[1] - T :])  # (B, T, Vt)
        else:
            last = states[:, -1]
            logits = torch.stack([head(last) for head in self.aux_heads], dim=1)  # (B, T, Vt)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), traces.reshape(-1))
        return loss, float((logits.argmax(-1) == traces).float().mean())

    @torch.no_grad()
    def predict(self, questions: torch.Tensor, thoughts: int | None = None) -> Prediction:
        self.eval()
        if self.options.pad == "trim":
            return Prediction(masked_greedy_decode(self.net, questions, self.shape.answer_len))
        return Prediction(greedy_decode(self.net, questions, self.shape.answer_len))
