"""`cot`: explicit chain of thought in one stream (the supervised scratchpad of Nye et al. 2021; the
"CoT" row of Coconut's and Deng et al.'s tables).

    [question] t1 .. tT [answer]          t = the task's reference trace, as tokens of the same model

Trace token v is model token `vocab_size + v` (the trace alphabet, PAD included, appended to the
task's vocabulary), so trace and answer tokens never share ids. Training: teacher forcing on the
whole stream, cross-entropy on the trace and the answer positions (not the question). Evaluation:
the model writes its own trace greedily, then the answer, which sees the question and the trace
(causal attention, not blind). The thought budget is the trace length T; a task without a trace is
refused.

How it differs from `think_fixed_blind_super_clean --estimator imitate` (the imitation thinker):
that thinker writes its thoughts in a separate thought vocabulary after a <bot> token, its answerer
is blind (may not see the question, only the thoughts), and training takes two passes (the thinking
policy on the trace, then the answer given the thoughts). `cot` is one model, one vocabulary, one
teacher-forced pass, and an answer that may also read the question.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from solvers.base import ModelConfig, Prediction, Solver, TaskShape, TensorBatch, register_solver
from solvers.core import CoreConfig, Transformer
from solvers.errors import SolverError


@register_solver(
    "cot", summary="explicit chain of thought in one stream: question, the reference trace, answer (not blind)"
)
class CoTSolver(Solver):
    """Explicit chain of thought: trained teacher-forced on question, trace, answer."""

    uses_traces = True  # refused (one line) on a task without a reference trace

    @classmethod
    def check_run(cls, shape: TaskShape, model: ModelConfig, options, train) -> str | None:  # type: ignore[no-untyped-def]
        other = [k for k in train.eval_thoughts if k != shape.trace_len]
        if other:
            return (f"--eval-thoughts {','.join(map(str, other))}: cot's thought budget is the trace length; "
                    f"valid: {shape.trace_len}")
        return None

    def __init__(self, shape, model, optim, options) -> None:  # type: ignore[no-untyped-def]
        super().__init__(shape, model, optim, options)
        self.trace_offset = shape.vocab_size  # trace token v is model token vocab_size + v
        length = shape.question_len + shape.trace_len + shape.answer_len
        self.net = Transformer(
            CoreConfig.from_model(model, vocab_size=shape.vocab_size + shape.trace_vocab_size, max_len=length)
        )
        self.build_optimizer()

    def thought_budget(self) -> int | None:
        return self.shape.trace_len

    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        q_len, T = batch.questions.shape[1], batch.traces.shape[1]
        targets = torch.cat([batch.traces + self.trace_offset, batch.answers], dim=1)  # (B, T + La)
        sequence = torch.cat([batch.questions, targets], dim=1)
        _, _, hidden = self.net(sequence[:, :-1], hidden_layer=self.net.cfg.layers, compute_logits=False)
        logits = self.net.head(self.net.ln_f(hidden[:, q_len - 1 :])).float()  # predicts trace, then answer
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        right = logits.argmax(-1) == targets
        metrics = {
            "train_acc": float(right[:, T:].all(dim=1).float().mean()),  # the answer, given the reference trace
            "trace_match": float(right[:, :T].float().mean()) if T else 1.0,
        }
        return loss, metrics

    @torch.no_grad()
    def diagnostics(self, task: Any, held_out: Any, device: Any, limit: int = 2000) -> dict[str, Any]:
        """On held-out problems: agreement of the model's own trace with the reference per position,
        and whether the answer uses the trace (accuracy with its own trace vs a random one)."""
        self.eval()
        n = min(limit, len(held_out))
        batch = TensorBatch.from_numpy(held_out.take(slice(0, n)), device)
        own = self.predict(batch.questions)
        assert own.thoughts is not None
        gen = torch.Generator(device="cpu").manual_seed(0)
        random_trace = torch.randint(1, self.shape.trace_vocab_size, own.thoughts.shape, generator=gen).to(
            own.thoughts.device
        )
        random_answers = self.decode(batch.questions, random_trace).answers
        q_np = batch.questions.cpu().numpy()
        own_acc = float(np.mean(task.verify_batch(q_np, own.answers.cpu().numpy())))
        out: dict[str, Any] = {
            "thoughts": self.shape.trace_len,
            "trace_match_per_position": [
                round(float(x), 4) for x in (own.thoughts == batch.traces).float().mean(0).tolist()
            ],
            "trace_exact": round(float((own.thoughts == batch.traces).all(1).float().mean()), 4),
        }
        random_acc = float(np.mean(task.verify_batch(q_np, random_answers.cpu().numpy())))
        out.update({"accuracy_own_thoughts": round(own_acc, 4), "accuracy_random_thoughts": round(random_acc, 4),
                    "usefulness": round(own_acc - random_acc, 4)})
        return out

    @torch.no_grad()
    def predict(self, questions: torch.Tensor, thoughts: int | None = None) -> Prediction:
        self.eval()
        T = self.shape.trace_len
        if thoughts is not None and thoughts != T:
            raise SolverError(f"cot's thought budget is the trace length; asked for {thoughts}, valid: {T}")
        return self.decode(questions)

    def decode(self, questions: torch.Tensor, trace: torch.Tensor | None = None) -> Prediction:
        """Greedy trace (or the given one, (B, T) in the trace alphabet, teacher-forced) then greedy
        answer; each position restricted to its alphabet (trace ids at trace positions, task ids at
        answer positions), so an answer is always a task token."""
        T, V = self.shape.trace_len, self.trace_offset
        total = T + self.shape.answer_len
        if trace is not None:
            logits, cache, _ = self.net(torch.cat([questions, trace + V], dim=1))
            out, first = [trace + V], T
        else:
            logits, cache, _ = self.net(questions)
            out, first = [], 0
        for step in range(first, total):
            last = logits[:, -1]
            token = last[:, V:].argmax(-1, keepdim=True) + V if step < T else last[:, :V].argmax(-1, keepdim=True)
            out.append(token)
            if step + 1 < total:
                logits, cache, _ = self.net(token, cache=cache)
        stream = torch.cat(out, dim=1)  # (B, T + La)
        return Prediction(stream[:, T:], stream[:, :T] - V)  # thoughts in the trace alphabet
