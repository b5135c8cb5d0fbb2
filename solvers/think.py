"""`think[_fixed][_blind][_split][_super][_clean][_search]`: discrete thinkers trained by RL.

Token layout (the research notes'): `[question] <bot> t1 .. tK <eot> [answer]`. Thought tokens have
their own ids after the task's vocabulary: `<bot>` = V, `<eot>` = V + 1, thought j = V + 2 + j. The
thought alphabet is the task's reference-trace alphabet under `super` (so that reference traces are
thoughts), else `--opt thought_vocab=N` tokens.

Flags (any order parses to the canonical order below; `clean` without `super` is refused):
- fixed:  exactly K thoughts. Without it the thinker ends its thoughts with its own `<eot>`
          (capped at K); slots after `<eot>` are masked out of every later position's attention.
- blind:  the answer is computed from the thoughts alone: a second pass over `<bot> t1..tK <eot>
          [answer]` that never contains the question. (An attention mask on the answer rows alone
          would leak the question through the thought positions' hidden states at layers >= 2.)
- split:  two core transformers: `net` thinks, `answer_net` answers.
- super:  the answering policy trains by cross-entropy on the reference trace as its thoughts; the
          thinking policy learns from reward to produce thoughts the answerer can read.
- clean:  reward = the sampled thoughts equal the reference trace (per-position credit: position i
          scores 1 when t1..ti all match).
- search: best-of-G over sampled thoughts (scored by the reward), and the best rollout of each
          question, where it beats its group, becomes a supervised target for the thinking policy.

`--opt estimator=imitate` (with super) replaces the RL by cross-entropy on the reference thoughts:
supervised chain of thought, the control that says what RL on the same trace leaves on the table.

Why the defaults are what they are (the measurements behind G, the baselines, the entropy bonus and
the rewards): docs/THINKERS.md.

Parameter names: the thinking transformer is `net`, as in `gpt`, so `--init <gpt run>` warm-starts
it (its vocabulary and positions grow; the harness copies the leading rows); `answer_net` (split)
starts fresh.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from solvers import rl
from solvers.base import (
    ModelConfig,
    OptimConfig,
    Prediction,
    Solver,
    SolverError,
    TaskShape,
    TensorBatch,
    register_solver,
)
from solvers.think_options import EXAMPLES, FLAGS, STRAIGHT_THROUGH, ThinkOptions, parse_think_name, step_defaults
from solvers.core import CoreConfig, Transformer, causal_mask
from solvers.rollout import Rollout, distinct_rows, head_columns, rollout_diagnostics
from solvers.rollout import rollout as sample_rollout
from solvers.think_targets import imitation_loss, search_loss

def _ce_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per row, summed over the row's tokens: (N, L, V), (N, L) -> (N,)."""
    N, L, V = logits.shape  # flat rows: cross-entropy over a transposed (N, V, L) view was 3x slower
    per_token = F.cross_entropy(logits.float().reshape(N * L, V), targets.reshape(N * L), reduction="none")
    return per_token.view(N, L).sum(dim=1)


@register_solver(
    parse=parse_think_name,
    examples=EXAMPLES,
    summary="discrete thinkers: question, <bot>, thoughts, <eot>, answer; thoughts trained by RL; flags "
    + ", ".join(FLAGS)
    + " in any order",
)
class ThinkSolver(Solver):
    """Discrete thinkers trained by RL."""

    Options = ThinkOptions
    MAX_EXTRA_THOUGHTS = 16  # evaluation budgets may exceed the trained K by 3K + 16 positions

    def __init__(self, shape: TaskShape, model: ModelConfig, optim: OptimConfig, options: ThinkOptions) -> None:
        super().__init__(shape, model, optim, options)
        o = options
        self.defaults = step_defaults(shape, o)
        self.K, self.G = self.defaults.thoughts, self.defaults.group
        self.max_thoughts = 4 * self.K + self.MAX_EXTRA_THOUGHTS
        self.V = shape.vocab_size
        self.bot, self.eot, self.thought0 = self.V, self.V + 1, self.V + 2
        self.thought_vocab = shape.trace_vocab_size if o.super else o.thought_vocab
        # The policy's actions: thoughts, plus <eot> (action 0, contiguous with them) when not fixed.
        self.action_lo = self.thought0 if o.fixed else self.eot
        self.action_hi = self.thought0 + self.thought_vocab
        self.reward_kind = o.reward_kind
        length = shape.question_len + self.max_thoughts + 2 + shape.answer_len
        cfg = CoreConfig.from_model(model, vocab_size=self.thought0 + self.thought_vocab, max_len=length)
        self.net = Transformer(cfg)
        if o.split:
            self.answer_net = Transformer(cfg)
        if o.baseline == "value":
            self.value_head = nn.Sequential(nn.LayerNorm(model.d_model), nn.Linear(model.d_model, 1))
        self.build_optimizer()

    @classmethod
    def supports(cls, shape: TaskShape, options: ThinkOptions) -> str | None:
        if options.super and shape.trace_len == 0:  # super teaches the answerer from the reference traces
            return "super needs the task's reference traces, and this task has none"
        return super().supports(shape, options)

    @classmethod
    def default_batch(cls, shape: TaskShape, options: ThinkOptions) -> tuple[int, str]:
        """The batch a run uses when `--batch` is not given, and why (K, G and batch: step_defaults)."""
        chosen = step_defaults(shape, options)
        return chosen.batch, f"K = {chosen.thoughts}, {chosen.why}"

    # ---- set-up ---------------------------------------------------------------------------------
    @property
    def answerer(self) -> Transformer:
        return self.answer_net if self.options.split else self.net

    def thought_budget(self) -> int:
        return self.K

    def build_optimizer(self) -> None:
        """The thinking transformer (and value head) may have its own learning rate (--think-lr)."""
        lr = self.optim_config.lr
        think_lr = self.options.think_lr or lr
        thinker = {id(p) for p in self.net.parameters()} | {
            id(p) for p in getattr(self, "value_head", nn.Identity()).parameters()
        }
        groups = []
        for is_thinker in (True, False):
            params = [p for p in self.parameters() if (id(p) in thinker) == is_thinker]
            group_lr = think_lr if is_thinker else lr
            for decay in (True, False):
                chosen = [p for p in params if (p.dim() >= 2) == decay]
                if chosen:
                    wd = self.optim_config.weight_decay if decay else 0.0
                    groups.append({"params": chosen, "weight_decay": wd, "lr": group_lr})
        self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98))

    # ---- pieces of a rollout --------------------------------------------------------------------------
    def reference_thoughts(self, traces: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference trace as K thought slots: (ids (B, K), valid (B, K)). Fixed: every trace
        token is a thought (TRACE_PAD included); otherwise the trace ends at its first pad."""
        B = traces.shape[0]
        index = torch.zeros(B, K, dtype=torch.long, device=traces.device)
        n = min(K, traces.shape[1])
        index[:, :n] = traces[:, :n]
        if self.options.fixed:
            return self.thought0 + index, torch.ones(B, K, dtype=torch.bool, device=traces.device)
        valid = torch.cumprod((index != 0).long(), dim=1).bool()
        if n < K:
            valid[:, n:] = False
        return torch.where(valid, self.thought0 + index, torch.full_like(index, self.eot)), valid

    def rollout(
        self, questions: torch.Tensor, K: int, G: int, mode: str, epsilon: float = 0.0, want_hidden: bool = False,
        reference: torch.Tensor | None = None,
    ) -> Rollout:
        """K thoughts per question, G times, as one prefix-tree batch (solvers/rollout.py); rows end at
        their first thought off `reference` when it is given (credit truncate)."""
        return sample_rollout(self, questions, K, G, mode, epsilon, want_hidden, reference)

    def _inputs(
        self,
        net: Transformer,
        prefix: torch.Tensor,
        ids: torch.Tensor,
        soft: torch.Tensor | None,
        suffix: torch.Tensor,
        params: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """Forward arguments for prefix + thought slots + suffix, as tokens or, with straight-through
        one-hots, as embeddings (so the gradient reaches the thinker through the slots)."""
        tokens = torch.cat([prefix, ids, suffix], dim=1)
        if soft is None:
            return {"tokens": tokens}
        weight = params["tok_emb.weight"] if params is not None else net.tok_emb.weight
        embeds = F.embedding(tokens, weight)
        slots = soft.to(weight.dtype) @ weight[self.action_lo : self.action_hi]  # (N, K, C)
        start = prefix.shape[1]
        return {"inputs_embeds": torch.cat([embeds[:, :start], slots, embeds[:, start + ids.shape[1] :]], dim=1)}

    def _key_mask(
        self, prefix_len: int, valid: torch.Tensor, suffix_len: int, rows: int | None = None
    ) -> torch.Tensor | None:
        """Causal mask that also hides slots after a stop (None when every slot is valid)."""
        if self.options.fixed or bool(valid.all()):
            return None
        N = valid.shape[0]
        ones = torch.ones(N, prefix_len, dtype=torch.bool, device=valid.device)
        key_ok = torch.cat([ones, valid, torch.ones(N, suffix_len, dtype=torch.bool, device=valid.device)], dim=1)
        T = key_ok.shape[1]
        rows = T if rows is None else rows
        return causal_mask(rows, T, valid.device)[None, None] & key_ok[:, None, None, :]

    def answer_logits(
        self, questions: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor, answers: torch.Tensor,
        soft: torch.Tensor | None = None, frozen: bool = False,
    ) -> torch.Tensor:
        """The answering policy on given thoughts, teacher-forced: answer logits (N, La, V). Blind:
        the question is not in the sequence at all. frozen: the answerer's weights are used without taking
        gradients (the straight-through gradient then reaches only the thinker). Identical rows (G rollouts that
        agree, or blind rows with the same thoughts and answer) are computed once."""
        net = self.answerer
        bot_col = torch.full_like(answers[:, :1], self.bot)
        prefix = bot_col if self.options.blind else torch.cat([questions, bot_col], dim=1)
        suffix = torch.cat([torch.full_like(answers[:, :1], self.eot), answers[:, :-1]], dim=1)
        rows, inverse = None, None
        if soft is None:
            # Rows that agree on what the answer positions read (the answer's last token is read by
            # nobody) get the same logits: blind add with La = 1 needs one row per distinct thought string.
            rows, inverse = distinct_rows(torch.cat([prefix, ids, suffix], dim=1))
            prefix, ids, valid, suffix = prefix[rows], ids[rows], valid[rows], suffix[rows]
        params = {name: p.detach() for name, p in net.named_parameters()} if frozen else None
        kwargs = self._inputs(net, prefix, ids, soft, suffix, params)
        kwargs.update(
            attn_mask=self._key_mask(prefix.shape[1], valid, suffix.shape[1]),
            hidden_layer=net.cfg.layers,
            compute_logits=False,
        )
        hidden = functional_call(net, params, (), kwargs)[2] if params is not None else net(**kwargs)[2]
        P, K, La = prefix.shape[1], ids.shape[1], answers.shape[1]
        logits = head_columns(
            net, hidden[:, P + K : P + K + La], 0, self.V, params
        )  # the answer rows' task tokens only
        return logits[inverse] if inverse is not None else logits

    def continued_answer_logits(self, roll: Rollout, questions: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        """Non-blind, non-split: the answer read by continuing the rollout's own cache (no re-run),
        once per distinct (tree node, last thought)."""
        net, N = self.net, answers.shape[0]
        rest = torch.cat([torch.full_like(answers[:, :1], self.eot), answers[:, :-1]], dim=1)
        last, soft, valid = roll.ids[:, -1:], (None if roll.soft is None else roll.soft[:, -1:]), roll.valid
        if soft is None and roll.cache[0][0].shape[0] < N:  # some rollouts share a tree node
            rows, inverse = distinct_rows(torch.cat([roll.owner[:, None], last], dim=1))
            node, last, rest, valid = roll.owner[rows], last[rows], rest[rows], valid[rows]
        else:
            node, inverse = roll.owner, None
        cache = [(k[node], v[node]) for k, v in roll.cache]
        kwargs = self._inputs(net, last[:, :0], last, soft, rest)
        mask = self._key_mask(questions.shape[1] + 1, valid, rest.shape[1], rows=1 + rest.shape[1])
        _, _, hidden = net(**kwargs, cache=cache, attn_mask=mask, hidden_layer=net.cfg.layers, compute_logits=False)
        logits = head_columns(net, hidden[:, 1:], 0, self.V)
        return logits[inverse] if inverse is not None else logits

    # ---- training -----------------------------------------------------------------------------
    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        o, K, G = self.options, self.K, self.G
        Q, A = batch.questions, batch.answers
        metrics: dict[str, float] = {}
        total = torch.zeros((), device=Q.device)
        ref_ids = ref_valid = None
        if o.super:
            ref_ids, ref_valid = self.reference_thoughts(batch.traces, K)
            logits = self.answer_logits(Q, ref_ids, ref_valid, A)
            answer_loss = F.cross_entropy(logits.reshape(-1, self.V).float(), A.reshape(-1))
            total = total + answer_loss
            metrics["answer_loss"] = float(answer_loss.detach())
        if o.direct:
            direct_loss, direct_accuracy = self.direct_answer_loss(Q, A)
            total = total + o.direct * direct_loss
            metrics.update(direct_loss=float(direct_loss.detach()), direct_accuracy=direct_accuracy)
        if o.search or o.estimator == "imitate":  # thoughts trained on targets (solvers/think_targets.py)
            target_loss, target_metrics = (search_loss(self, batch, ref_ids, ref_valid) if o.search
                                           else imitation_loss(self, Q, ref_ids, ref_valid))
            return total + target_loss, {**metrics, **target_metrics}
        # Rollouts per question: G, except straight-through estimators without super, where one suffices.
        samples = G if (o.estimator == "reinforce" or o.super) else 1
        rollout_questions, rollout_answers = Q.repeat_interleave(samples, dim=0), A.repeat_interleave(samples, dim=0)
        mode = "gumbel" if o.estimator in STRAIGHT_THROUGH else "sample"
        truncate_at = ref_ids if o.credit == "truncate" else None
        roll = self.rollout(Q, K, samples, mode, o.epsilon, want_hidden=o.baseline == "value", reference=truncate_at)
        rewards, sequence_reward, extra_loss = self._rewards(
            roll, rollout_questions, rollout_answers, ref_ids, ref_valid, samples
        )
        total = total + extra_loss
        if o.estimator in STRAIGHT_THROUGH:
            if o.super:  # the thinker maximises the (frozen) answerer's log-prob through its thoughts
                logits = self.answer_logits(
                    rollout_questions, roll.ids, roll.valid, rollout_answers, soft=roll.soft, frozen=True
                )
                total = total + _ce_rows(logits, rollout_answers).mean()
        else:
            given = None
            if o.baseline == "reference":
                given, ref_loss = self._reference_baseline(Q, A, samples)
                total = total + ref_loss
            elif o.baseline == "value":
                assert roll.hidden is not None
                values = self.value_head(roll.hidden.detach()).squeeze(-1)  # (N, K): a probe, not a trunk loss
                weights = roll.acted.float()
                total = total + 0.5 * (((values - rewards) ** 2) * weights).sum() / weights.sum().clamp_min(1)
                given = values.detach()
            base = rl.baseline(rewards, o.baseline, samples, given, equal_to_batch=o.equal_groups == "batch")
            adv = rl.advantages(rewards, base, samples, o.normalize, per_group=o.baseline in ("group", "loo"))
            total = total + rl.reinforce_loss(roll.logp, adv, roll.acted)
        entropy = (roll.entropy * roll.acted).sum() / roll.acted.sum().clamp_min(1)
        total = total - o.entropy_weight * entropy
        metrics.update(self._rollout_metrics(roll, rewards, sequence_reward, samples, ref_ids))
        metrics["entropy"] = float(entropy.detach())
        return total, metrics

    def direct_answer_loss(self, questions: torch.Tensor, answers: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The thinking transformer answering directly (`--opt direct`): `[question] <bot> [answer]`
        teacher-forced, the answer read from <bot> on as gpt reads it from its last question token.
        Returns (cross-entropy, accuracy of whole answers)."""
        bot = torch.full_like(answers[:, :1], self.bot)
        tokens = torch.cat([questions, bot, answers[:, :-1]], dim=1)
        _, _, hidden = self.net(tokens, hidden_layer=self.net.cfg.layers, compute_logits=False)
        P, La = questions.shape[1], answers.shape[1]
        logits = head_columns(self.net, hidden[:, P : P + La], 0, self.V)
        loss = F.cross_entropy(logits.reshape(-1, self.V).float(), answers.reshape(-1))
        accuracy = float((logits.detach().argmax(-1) == answers).all(dim=1).float().mean())
        return loss, accuracy

    def _rewards(
        self, roll: Rollout, Qg: torch.Tensor, Ag: torch.Tensor, ref_ids: torch.Tensor | None,
        ref_valid: torch.Tensor | None, G: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-position rewards (N, K), the sequence reward (N,), and the answerer's own loss on the
        sampled thoughts when it learns from them (not super)."""
        o, K = self.options, roll.ids.shape[1]
        extra = torch.zeros((), device=Qg.device)
        if self.reward_kind == "clean":
            assert ref_ids is not None
            rewards = rl.prefix_match(roll.ids, ref_ids.repeat_interleave(G, dim=0))
            sequence = rewards[:, -1] if K else torch.ones(roll.ids.shape[0], device=Qg.device)
            if o.credit == "sequence":
                rewards = sequence[:, None].expand(-1, K).clone()
            return rewards, sequence, extra
        learns = not o.super  # the answering policy learns from the thoughts it is shown
        with torch.set_grad_enabled(learns and torch.is_grad_enabled()):
            if not (o.blind or o.split):
                logits = self.continued_answer_logits(roll, Qg, Ag)
            else:
                logits = self.answer_logits(Qg, roll.ids, roll.valid, Ag, soft=roll.soft if learns else None)
            ce = _ce_rows(logits, Ag)  # (N,)
            if learns:
                extra = ce.mean() / Ag.shape[1]
        logp_answer = -ce.detach()
        correct = (logits.detach().argmax(-1) == Ag).all(dim=1).float()
        sequence = {"logprob": logp_answer, "prob": logp_answer.exp()}.get(self.reward_kind, correct)
        return sequence[:, None].expand(-1, K).clone(), sequence, extra

    def _reference_baseline(self, Q: torch.Tensor, A: torch.Tensor, G: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A reference estimate of each question's difficulty: the answerer's reward with no thoughts
        (trained alongside on the same questions). Returns (baseline (B*G, 1), its training loss)."""
        empty = torch.zeros(Q.shape[0], 0, dtype=torch.long, device=Q.device)
        logits = self.answer_logits(Q, empty, empty.bool(), A)
        ce = _ce_rows(logits, A)
        if self.reward_kind in ("logprob", "prob"):
            estimate = -ce.detach() if self.reward_kind == "logprob" else (-ce.detach()).exp()
        else:
            estimate = (logits.detach().argmax(-1) == A).all(dim=1).float()
        return estimate.repeat_interleave(G)[:, None], ce.mean() / A.shape[1]

    def _rollout_metrics(
        self, roll: Rollout, rewards: torch.Tensor, sequence: torch.Tensor, G: int, ref_ids: torch.Tensor | None
    ) -> dict[str, float]:
        metrics = {
            "reward": float(sequence.mean()),
            "reward_std": float(sequence.std()) if sequence.numel() > 1 else 0.0,
            "equal_groups": rl.equal_group_share(sequence, G),
            "thoughts_len": float(roll.valid.float().sum(dim=1).mean()),
        }
        if ref_ids is not None and roll.ids.shape[1]:
            match = (roll.ids == ref_ids.repeat_interleave(G, dim=0)).float().mean(dim=0)
            for i in range(min(4, match.shape[0])):  # the first positions (add: least significant digit first)
                metrics[f"trace_match_{i}"] = float(match[i])
            metrics["trace_exact"] = float(rl.prefix_match(roll.ids, ref_ids.repeat_interleave(G, dim=0))[:, -1].mean())
        return metrics

    # ---- inference ------------------------------------------------------------------------------
    def _check_budget(self, K: int) -> None:
        if not 0 <= K <= self.max_thoughts:
            raise SolverError(f"thought budget {K} out of range for this model; valid: 0..{self.max_thoughts}")

    def decode_answers(self, questions: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Greedy answer tokens (restricted to the task's vocabulary) after the given thoughts."""
        net, N, La = self.answerer, ids.shape[0], self.shape.answer_len
        bot = torch.full((N, 1), self.bot, dtype=torch.long, device=ids.device)
        prefix = bot if self.options.blind else torch.cat([questions, bot], dim=1)
        eot = torch.full((N, 1), self.eot, dtype=torch.long, device=ids.device)
        mask = self._key_mask(prefix.shape[1], valid, 1)
        last = dict(hidden_layer=net.cfg.layers, compute_logits=False)  # unembed the last position's task tokens only
        _, cache, hidden = net(torch.cat([prefix, ids, eot], dim=1), attn_mask=mask, **last)
        out = []
        for step in range(La):
            token = head_columns(net, hidden[:, -1], 0, self.V).argmax(dim=-1, keepdim=True)
            out.append(token)
            if step + 1 < La:
                step_mask = (
                    None
                    if mask is None
                    else torch.cat(
                        [mask[:, :, -1:, :], torch.ones_like(mask[:, :, -1:, :1]).expand(-1, -1, -1, step + 1)], dim=3
                    )
                )
                _, cache, hidden = net(token, cache=cache, attn_mask=step_mask, **last)
        return torch.cat(out, dim=1)

    def thought_index(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Thought token ids -> index in the thought alphabet (under super: the trace token), -1 after <eot>."""
        return torch.where(valid, ids - self.thought0, torch.full_like(ids, -1))

    @torch.no_grad()
    def predict(self, questions: torch.Tensor, thoughts: int | None = None) -> Prediction:
        self.eval()
        K = self.K if thoughts is None else thoughts
        self._check_budget(K)
        roll = self.rollout(questions, K, 1, "greedy")
        return Prediction(
            self.decode_answers(questions, roll.ids, roll.valid), self.thought_index(roll.ids, roll.valid)
        )

    # ---- diagnostics --------------------------------------------------------------------------------
    @torch.no_grad()
    def diagnostics(self, task: Any, held_out: Any, device: Any, limit: int = 2000) -> dict[str, Any]:
        """Thought statistics on held-out problems (solvers/rollout.py: rollout_diagnostics)."""
        return rollout_diagnostics(self, task, held_out, device, limit)
