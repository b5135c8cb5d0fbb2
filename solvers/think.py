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

How the thinking policy learns, and why these defaults (measured on add mod 100, 2 layers, d128,
batch 256, lr 1e-3, on a loaded 2-core CPU):
- REINFORCE with per-position credit (clean: thought i scores 1 when t1..ti match the reference),
  G = 32 rollouts per question, a group-mean baseline, advantages divided by the group's std
  (GRPO). Rollouts are a prefix tree (one model row per distinct prefix), so a large G costs little
  once the policy is confident; G = 8 left most groups without a single right second digit.
- Entropy bonus 0.01 with the clean reward, 0.1 with rewards the answerer scores (below).
- Groups whose G rewards all agree fall back to the batch-mean baseline (`equal_groups=batch`):
  with plain GRPO a run stalled at 85% with 98% of groups all-equal (questions answered
  confidently wrong get no gradient); with the fallback the same command reached 97.7% (one run
  each: when the plateau below ends varies from run to run).
- Advantages are divided by at least STD_FLOOR (solvers/rl.py): rewards that differ by noise only
  (an untrained answerer) were otherwise blown up into a collapse onto one constant trace.
- Rewards scored by the answerer (prob, logprob, correct) credit the whole thought sequence.
  Under super the default is the answerer's *probability* of the right answer (the notes'
  "softmax recovers the clean signal"). Its log-probability makes the thinker hedge: thoughts
  the answerer never saw get answered near the prior (log p ~ -3) while a wrong digit costs ~ -10,
  and the thinker collapsed onto a constant uninformative trace. The probability reward still has a
  saddle: on add, a TRACE_PAD in the second slot yields p = 1/10, the same as guessing a digit; with
  entropy 0.01 the policy settled there for good, with 0.1 it stayed soft and escaped (99% at step
  3750).
- The second trace digit (tens, with the carry) sits on a plateau at chance for hundreds to
  thousands of steps even under plain supervised cross-entropy on the trace (one supervised run:
  still at chance after 2400 steps); the RL runs here escaped it after 1700-3500 steps.
- `--estimator gumbel`: straight-through Gumbel-softmax through the thought tokens, the answer's
  cross-entropy (or, under super, the frozen answerer's) backpropagated into the thinker.

Parameter names: the thinking transformer is `net`, as in `gpt`, so `--init <gpt run>` warm-starts
it (its vocabulary and positions grow; the harness copies the leading rows); `answer_net` (split)
starts fresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from solvers import rl
from solvers.base import ModelConfig, OptimConfig, Prediction, Solver, SolverError, TaskShape, TensorBatch, register_solver
from solvers.core import CoreConfig, KVCache, Transformer, causal_mask

FLAGS = ("fixed", "blind", "split", "super", "clean", "search")
DEFAULT_THOUGHTS = 4
EXAMPLES = (
    "think",
    "think_fixed",
    "think_fixed_blind_super",
    "think_fixed_blind_super_clean",
    "think_fixed_blind_split_super_clean_search",
)


def parse_think_name(name: str) -> tuple[str, dict[str, bool]] | None:
    """'think_super_fixed' -> ('think_fixed_super', flags); None for names of other families."""
    parts = name.split("_")
    if parts[0] != "think":
        return None
    given = parts[1:]
    unknown = [flag for flag in given if flag not in FLAGS]
    if unknown:
        raise SolverError(f"solver {name!r}: unknown flag {unknown[0]!r}; valid flags: {', '.join(FLAGS)}")
    repeated = sorted({flag for flag in given if given.count(flag) > 1})
    if repeated:
        raise SolverError(f"solver {name!r}: flag {repeated[0]!r} given twice")
    if "clean" in given and "super" not in given:
        raise SolverError(
            f"solver {name!r}: clean needs super (the clean reward compares thoughts with the reference "
            "trace, which only super teaches the answerer to read)"
        )
    flags = {flag: flag in given for flag in FLAGS}
    return "_".join(["think", *(flag for flag in FLAGS if flags[flag])]), flags


@dataclass(frozen=True)
class ThinkOptions:
    fixed: bool = False
    blind: bool = False
    split: bool = False
    super: bool = False
    clean: bool = False
    search: bool = False
    thoughts: int | None = None
    """Thought budget K. Default: the task's trace length under super, else 4."""
    thought_vocab: int = 16
    """Thought tokens when not super (super uses the task's trace alphabet)."""
    estimator: Literal["reinforce", "gumbel"] = "reinforce"
    """reinforce (log-prob gradient) or gumbel (straight-through Gumbel-softmax through the thoughts)."""
    baseline: Literal["batch", "group", "loo", "reference", "value"] = "group"
    """group: mean of the question's G rollouts (GRPO), which credits useful thoughts, not easy questions."""
    group: int = 32
    """Rollouts per question G: all-equal groups (share p^G + (1-p)^G) give no signal; shared prefixes make G cheap."""
    reward: Literal["auto", "logprob", "prob", "correct", "clean"] = "auto"
    """auto: clean with clean; prob (answerer's probability of the answer) with super; else logprob."""
    equal_groups: Literal["batch", "none"] = "batch"
    """Groups whose G rewards all agree: baseline = the batch mean (a failing question is pushed off its
    wrong thoughts) or none (GRPO: no gradient; such questions can stay confidently wrong)."""
    credit: Literal["position", "sequence"] = "position"
    """Clean reward: position (thought i scored by whether t1..ti match) or sequence (all by the whole)."""
    normalize: bool = True
    """Divide advantages by the std of the group's rewards (zero-std groups unscaled; std floor 0.05)."""
    epsilon: float = 0.0
    """Epsilon-greedy: share of thoughts drawn uniformly instead of from the policy."""
    entropy: float | None = None
    """Entropy bonus weight. Default: 0.01 with the clean reward; 0.1 with answerer-scored rewards,
    whose hedging saddle otherwise traps the policy (measured on add mod 100)."""
    tau: float = 1.0
    """Gumbel-softmax temperature (estimator gumbel)."""
    think_lr: float = 0.0
    """Learning rate of the thinking transformer `net` (0 = --lr); without split `net` also answers."""

    def validate(self) -> None:
        if self.thoughts is not None and not 1 <= self.thoughts <= 512:
            raise SolverError(f"--thoughts={self.thoughts} out of range; valid: 1..512")
        if not 2 <= self.thought_vocab <= 4096:
            raise SolverError(f"--thought-vocab={self.thought_vocab} out of range; valid: 2..4096")
        if not 1 <= self.group <= 256:
            raise SolverError(f"--group={self.group} out of range; valid: 1..256")
        if self.baseline in ("group", "loo") and self.group < 2:
            raise SolverError(f"--baseline {self.baseline} needs --group >= 2 (got {self.group}); or use batch, reference or value")
        if self.search and self.group < 2:
            raise SolverError(f"search picks the best of --group rollouts; --group={self.group} must be >= 2")
        if self.clean and self.reward not in ("auto", "clean"):
            raise SolverError(f"--reward {self.reward} conflicts with the clean flag (clean sets the reward)")
        if self.reward == "clean" and not self.clean:
            raise SolverError("--reward clean is the clean flag: use a name with _super_clean")
        if self.reward_kind == "clean" and self.baseline == "reference":
            raise SolverError("--baseline reference scores the answer without thoughts, which the clean reward does not score; use group, loo, batch or value")
        if self.search and self.estimator == "gumbel":
            raise SolverError("search selects sampled thoughts for REINFORCE-style targets; use --estimator reinforce with search")
        if not 0.0 <= self.epsilon <= 1.0:
            raise SolverError(f"--epsilon={self.epsilon} out of range; valid: 0..1")
        if self.epsilon > 0 and self.estimator == "gumbel":
            raise SolverError("--epsilon applies to sampled thoughts; the gumbel estimator explores through its noise")
        if self.entropy is not None and self.entropy < 0:
            raise SolverError(f"--entropy={self.entropy} must be >= 0")
        if not self.tau > 0:
            raise SolverError(f"--tau={self.tau} must be positive")
        if self.think_lr < 0:
            raise SolverError(f"--think-lr={self.think_lr} must be >= 0")

    @property
    def entropy_weight(self) -> float:
        if self.entropy is not None:
            return self.entropy
        return 0.01 if self.reward_kind == "clean" else 0.1

    @property
    def reward_kind(self) -> str:
        if self.reward == "auto":
            return "clean" if self.clean else ("prob" if self.super else "logprob")
        return self.reward


@dataclass
class Rollout:
    """K thoughts for N = B*G rows. `ids` hold token ids (slots after a stop hold <eot>)."""

    ids: torch.Tensor  # (N, K)
    valid: torch.Tensor  # (N, K) bool: the slot holds a thought the answer may read
    acted: torch.Tensor  # (N, K) bool: the policy chose at this slot (a thought, or stopping)
    logp: torch.Tensor  # (N, K) log-prob of the choice (carries the gradient for REINFORCE)
    entropy: torch.Tensor  # (N, K)
    soft: torch.Tensor | None  # (N, K, A) straight-through one-hots (gumbel), else None
    hidden: torch.Tensor | None  # (N, K, C) thinker states that chose each slot (value baseline)
    cache: KVCache  # the thinker's cache over [question, <bot>, slots 1..K-1], one row per tree node
    owner: torch.Tensor  # (N,) the cache row (tree node) of each rollout row


def distinct_rows(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, inverse) for an (N, L) integer tensor: `keys[rows]` are its distinct rows (each the
    first row holding it) and `keys[rows][inverse] == keys`."""
    _, inverse = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1 if inverse.numel() else 0,), keys.shape[0], dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inverse, torch.arange(keys.shape[0], device=keys.device), reduce="amin")
    return first, inverse


def _ce_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per row, summed over the row's tokens: (N, L, V), (N, L) -> (N,)."""
    per_token = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
    return per_token.sum(dim=1)


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
        self.K = o.thoughts if o.thoughts is not None else (max(shape.trace_len, 1) if o.super else DEFAULT_THOUGHTS)
        self.max_thoughts = 4 * self.K + self.MAX_EXTRA_THOUGHTS
        self.V = shape.vocab_size
        self.bot, self.eot, self.thought0 = self.V, self.V + 1, self.V + 2
        self.thought_vocab = shape.trace_vocab_size if o.super else o.thought_vocab
        # The policy's actions: thoughts, plus <eot> (action 0, contiguous with them) when not fixed.
        self.action_lo = self.thought0 if o.fixed else self.eot
        self.action_hi = self.thought0 + self.thought_vocab
        self.reward_kind = o.reward_kind
        cfg = CoreConfig(
            vocab_size=self.thought0 + self.thought_vocab,
            max_len=shape.question_len + self.max_thoughts + 2 + shape.answer_len,
            d_model=model.d_model,
            layers=model.layers,
            heads=model.heads,
            init=model.weight_init,
        )
        self.net = Transformer(cfg)
        if o.split:
            self.answer_net = Transformer(cfg)
        if o.baseline == "value":
            self.value_head = nn.Sequential(nn.LayerNorm(model.d_model), nn.Linear(model.d_model, 1))
        self.build_optimizer()

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
        thinker = {id(p) for p in self.net.parameters()} | {id(p) for p in getattr(self, "value_head", nn.Identity()).parameters()}
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

    def rollout(self, questions: torch.Tensor, K: int, G: int, mode: str, epsilon: float = 0.0, want_hidden: bool = False) -> Rollout:
        """Sample (mode 'sample' / 'gumbel') or pick greedily ('greedy') K thoughts for each question,
        G times, batched, with the KV cache.

        Rollouts form a prefix tree: the model runs once per distinct (question, thoughts so far),
        and each of the N = B*G rows reads its node's logits (`owner`). A confident policy therefore
        costs about B rows per step whatever G is, and the last thought's G samples cost nothing
        more. Straight-through (gumbel) rows carry distinct soft inputs and are not shared."""
        net, B = self.net, questions.shape[0]
        N, A = B * G, self.action_hi - self.action_lo
        layer = net.cfg.layers if want_hidden else None
        bot = torch.full((B, 1), self.bot, dtype=torch.long, device=questions.device)
        logits, cache, hidden = net(torch.cat([questions, bot], dim=1), hidden_layer=layer)
        last, last_hidden = logits[:, -1], (hidden[:, -1] if hidden is not None else None)  # per tree node
        owner = torch.arange(B, device=questions.device).repeat_interleave(G)  # (N,) row -> node
        alive = torch.ones(N, dtype=torch.bool, device=questions.device)
        ids, valid, acted, logps, entropies, softs, hiddens = [], [], [], [], [], [], []
        for j in range(K):
            node_logp = F.log_softmax(last[:, self.action_lo : self.action_hi].float(), dim=-1)  # (U, A)
            logp_all = node_logp[owner]  # (N, A)
            entropies.append(-(node_logp.exp() * node_logp).sum(dim=-1)[owner])
            soft = None
            if mode == "greedy":
                action = logp_all.argmax(dim=-1)
            elif mode == "gumbel":
                soft, action = rl.gumbel_straight_through(logp_all, self.options.tau)
            else:
                action = torch.multinomial(logp_all.detach().exp(), 1).squeeze(1)
                if epsilon > 0:
                    explore = torch.rand(N, device=action.device) < epsilon
                    action = torch.where(explore, torch.randint_like(action, A), action)
            logps.append(logp_all.gather(1, action[:, None]).squeeze(1))
            acted.append(alive)
            if self.options.fixed:
                valid_j = alive
            else:
                valid_j = alive & (action != 0)  # action 0 is <eot>
                alive = valid_j
            valid.append(valid_j)
            ids_j = torch.where(valid_j, self.action_lo + action, torch.full_like(action, self.eot))
            ids.append(ids_j)
            if soft is not None:
                softs.append(soft)
            if last_hidden is not None:
                hiddens.append(last_hidden[owner])
            if j == K - 1:
                break
            if soft is not None:  # distinct soft inputs: one node per row from here on
                cache = [(k[owner], v[owner]) for k, v in cache]
                embed = soft @ net.tok_emb.weight[self.action_lo : self.action_hi]
                logits, cache, hidden = net(inputs_embeds=embed[:, None], cache=cache, hidden_layer=layer)
                owner = torch.arange(N, device=questions.device)
            elif G == 1:  # no siblings to share with: skip the bookkeeping
                logits, cache, hidden = net(ids_j[:, None], cache=cache, hidden_layer=layer)
            else:
                span = self.action_hi - self.eot
                child, owner = torch.unique(owner * span + (ids_j - self.eot), return_inverse=True)
                parent, token = child // span, child % span + self.eot
                cache = [(k[parent], v[parent]) for k, v in cache]
                logits, cache, hidden = net(token[:, None], cache=cache, hidden_layer=layer)
            last, last_hidden = logits[:, -1], (hidden[:, -1] if hidden is not None else None)
        empty = torch.zeros(N, 0, device=questions.device)

        def stack(rows: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
            return torch.stack(rows, dim=1) if rows else like

        return Rollout(
            ids=stack(ids, empty.long()),
            valid=stack(valid, empty.bool()),
            acted=stack(acted, empty.bool()),
            logp=stack(logps, empty),
            entropy=stack(entropies, empty),
            soft=torch.stack(softs, dim=1) if softs else None,
            hidden=torch.stack(hiddens, dim=1) if hiddens else None,
            cache=cache,
            owner=owner,
        )

    def _inputs(
        self, net: Transformer, prefix: torch.Tensor, ids: torch.Tensor, soft: torch.Tensor | None, suffix: torch.Tensor,
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

    def _key_mask(self, prefix_len: int, valid: torch.Tensor, suffix_len: int, rows: int | None = None) -> torch.Tensor | None:
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
        the question is not in the sequence at all. frozen: the answerer's weights are used without taking gradients (the
        straight-through gradient then reaches only the thinker). Identical rows (G rollouts that
        agree, or blind rows with the same thoughts and answer) are computed once."""
        net = self.answerer
        bot_col = torch.full_like(answers[:, :1], self.bot)
        prefix = bot_col if self.options.blind else torch.cat([questions, bot_col], dim=1)
        suffix = torch.cat([torch.full_like(answers[:, :1], self.eot), answers[:, :-1]], dim=1)
        rows, inverse = None, None
        if soft is None:
            rows, inverse = distinct_rows(torch.cat([prefix, ids, answers], dim=1))
            prefix, ids, valid, suffix = prefix[rows], ids[rows], valid[rows], suffix[rows]
        params = {name: p.detach() for name, p in net.named_parameters()} if frozen else None
        kwargs = self._inputs(net, prefix, ids, soft, suffix, params)
        kwargs["attn_mask"] = self._key_mask(prefix.shape[1], valid, suffix.shape[1])
        logits = functional_call(net, params, (), kwargs)[0] if params is not None else net(**kwargs)[0]
        P, K, La = prefix.shape[1], ids.shape[1], answers.shape[1]
        logits = logits[:, P + K : P + K + La, : self.V]
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
        logits, _, _ = net(**kwargs, cache=cache, attn_mask=mask)
        logits = logits[:, 1:, : self.V]
        return logits[inverse] if inverse is not None else logits

    # ---- training -----------------------------------------------------------------------------
    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        o, K, G = self.options, self.K, self.options.group
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
        if o.search:
            return self._search_loss(batch, total, metrics, ref_ids, ref_valid)
        G_ = G if (o.estimator == "reinforce" or o.super) else 1  # gumbel without super: one sample suffices
        Qg, Ag = Q.repeat_interleave(G_, dim=0), A.repeat_interleave(G_, dim=0)
        mode = "gumbel" if o.estimator == "gumbel" else "sample"
        roll = self.rollout(Q, K, G_, mode, o.epsilon, want_hidden=o.baseline == "value")
        rewards, sequence_reward, extra_loss = self._rewards(roll, Qg, Ag, ref_ids, ref_valid, G_)
        total = total + extra_loss
        if o.estimator == "gumbel":
            if o.super:  # the thinker maximises the (frozen) answerer's log-prob through its thoughts
                logits = self.answer_logits(Qg, roll.ids, roll.valid, Ag, soft=roll.soft, frozen=True)
                total = total + _ce_rows(logits, Ag).mean()
        else:
            given = None
            if o.baseline == "reference":
                given, ref_loss = self._reference_baseline(Q, A, G_)
                total = total + ref_loss
            elif o.baseline == "value":
                assert roll.hidden is not None
                values = self.value_head(roll.hidden.detach()).squeeze(-1)  # (N, K): a probe, not a trunk loss
                weights = roll.acted.float()
                total = total + 0.5 * (((values - rewards) ** 2) * weights).sum() / weights.sum().clamp_min(1)
                given = values.detach()
            base = rl.baseline(rewards, o.baseline, G_, given, equal_to_batch=o.equal_groups == "batch")
            adv = rl.advantages(rewards, base, G_, o.normalize, per_group=o.baseline in ("group", "loo"))
            total = total + rl.reinforce_loss(roll.logp, adv, roll.acted)
        entropy = (roll.entropy * roll.acted).sum() / roll.acted.sum().clamp_min(1)
        total = total - o.entropy_weight * entropy
        metrics.update(self._rollout_metrics(roll, rewards, sequence_reward, G_, ref_ids))
        metrics["entropy"] = float(entropy.detach())
        return total, metrics

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

    def _search_loss(
        self, batch: TensorBatch, total: torch.Tensor, metrics: dict[str, float],
        ref_ids: torch.Tensor | None, ref_valid: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Best-of-G: sample G thoughts per question without gradients, score them by the reward,
        and train the thinking policy by cross-entropy on each question's best rollout at the
        positions where it beats its group (weights = its positive advantages)."""
        o, K, G = self.options, self.K, self.options.group
        Q, A = batch.questions, batch.answers
        Qg, Ag = Q.repeat_interleave(G, dim=0), A.repeat_interleave(G, dim=0)
        with torch.no_grad():
            roll = self.rollout(Q, K, G, "sample", o.epsilon)
            rewards, sequence, _ = self._rewards(roll, Qg, Ag, ref_ids, ref_valid, G)
            adv = rl.advantages(rewards, rl.group_baseline(rewards, G), G, o.normalize, per_group=True)
            best = rl.best_of_group(sequence + 1e-3 * rewards.mean(dim=1), G)  # ties: longer right prefix
        ids, valid, acted = roll.ids[best], roll.valid[best], roll.acted[best]
        weights = adv[best].clamp_min(0) * acted
        logits, _, _ = self.net(torch.cat([Q, torch.full_like(Q[:, :1], self.bot), ids[:, :-1]], dim=1))
        step_logits = logits[:, Q.shape[1] :, self.action_lo : self.action_hi].float()  # (B, K, A)
        logp = F.log_softmax(step_logits, dim=-1).gather(2, (ids - self.action_lo).clamp_min(0)[..., None]).squeeze(-1)
        # A stop choice is action 0 (<eot>); slots the policy never reached carry weight 0.
        total = total - (weights * logp).sum() / acted.sum().clamp_min(1)
        if not o.super:  # the answerer learns from the thoughts it is shown: the chosen ones
            logits_a = self.answer_logits(Q, ids, valid, A)
            total = total + F.cross_entropy(logits_a.reshape(-1, self.V).float(), A.reshape(-1))
        entropy = rl.categorical_entropy(step_logits)
        metrics.update(self._rollout_metrics(roll, rewards, sequence, G, ref_ids))
        metrics["entropy"] = float(((entropy * acted).sum() / acted.sum().clamp_min(1)).detach())
        metrics["best_reward"] = float(sequence[best].mean())
        return total - o.entropy_weight * (entropy * acted).sum() / acted.sum().clamp_min(1), metrics

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
        logits, cache, _ = net(torch.cat([prefix, ids, eot], dim=1), attn_mask=mask)
        out = []
        for step in range(La):
            token = logits[:, -1, : self.V].argmax(dim=-1, keepdim=True)
            out.append(token)
            if step + 1 < La:
                step_mask = None if mask is None else torch.cat([mask[:, :, -1:, :], torch.ones_like(mask[:, :, -1:, :1]).expand(-1, -1, -1, step + 1)], dim=3)
                logits, cache, _ = net(token, cache=cache, attn_mask=step_mask)
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
        return Prediction(self.decode_answers(questions, roll.ids, roll.valid), self.thought_index(roll.ids, roll.valid))

    # ---- diagnostics --------------------------------------------------------------------------------
    @torch.no_grad()
    def diagnostics(self, task: Any, held_out: Any, device: Any, limit: int = 2000) -> dict[str, Any]:
        """Thought statistics on held-out problems at the trained budget: entropy per position,
        agreement with the reference trace per position (super), sampled-thought reward mean and
        spread, and usefulness: accuracy with the model's own thoughts vs random thoughts."""
        self.eval()
        n = min(limit, len(held_out))
        batch = TensorBatch.from_numpy(held_out.take(slice(0, n)), device)
        Q, A = batch.questions, batch.answers
        roll = self.rollout(Q, self.K, 1, "greedy")
        own = self.decode_answers(Q, roll.ids, roll.valid)
        gen = torch.Generator(device="cpu").manual_seed(0)
        random_ids = self.thought0 + torch.randint(0, self.thought_vocab, roll.ids.shape, generator=gen).to(roll.ids.device)
        random_valid = torch.ones_like(roll.valid)
        rand = self.decode_answers(Q, random_ids, random_valid)
        q_np = Q.cpu().numpy()
        own_acc = float(np.mean(task.verify_batch(q_np, own.cpu().numpy())))
        random_acc = float(np.mean(task.verify_batch(q_np, rand.cpu().numpy())))
        acted = roll.acted.float()
        entropy = ((roll.entropy * acted).sum(0) / acted.sum(0).clamp_min(1)).tolist()
        out: dict[str, Any] = {
            "thoughts": self.K,
            "entropy_per_position": [round(x, 4) for x in entropy],
            "mean_thoughts": round(float(roll.valid.float().sum(1).mean()), 3),
            "accuracy_own_thoughts": round(own_acc, 4),
            "accuracy_random_thoughts": round(random_acc, 4),
            "usefulness": round(own_acc - random_acc, 4),
        }
        ref_ids = None
        if self.options.super:
            ref_ids, _ = self.reference_thoughts(batch.traces, self.K)
            match = (roll.ids == ref_ids).float().mean(0).tolist()
            out["trace_match_per_position"] = [round(x, 4) for x in match]
            out["trace_exact"] = round(float(rl.prefix_match(roll.ids, ref_ids)[:, -1].mean()), 4) if self.K else None
        sample_roll = self.rollout(Q, self.K, 1, "sample")
        _, sequence, _ = self._rewards(sample_roll, Q, A, ref_ids, None, 1)
        out["sampled_reward_mean"] = round(float(sequence.mean()), 4)
        out["sampled_reward_std"] = round(float(sequence.std()) if sequence.numel() > 1 else 0.0, 4)
        return out

