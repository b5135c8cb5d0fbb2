"""Thinking policies trained on target thoughts instead of by policy gradient: best-of-G search
(`search` flag) and imitation of the reference trace (`--opt estimator=imitate`).

Both score the policy teacher-forced on given thoughts (`thought_log_probs`): one forward pass over
`[question] <bot> t1 .. t(K-1)`, no sampling with gradients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from solvers import rl
from solvers.base import TensorBatch
from solvers.rollout import head_columns

if TYPE_CHECKING:
    from solvers.think import ThinkSolver


def thought_log_probs(solver: ThinkSolver, Q: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The thinking policy on given thoughts, teacher-forced: (log-prob of each slot's action (B, K),
    the action logits (B, K, A)); a stop (<eot>) is action 0."""
    net = solver.net
    _, _, hidden = net(torch.cat([Q, torch.full_like(Q[:, :1], solver.bot), ids[:, :-1]], dim=1),
                       hidden_layer=net.cfg.layers, compute_logits=False)
    # Unembed only the thought positions' action columns (at add mod 1000: 21 of 1,014 columns).
    step_logits = head_columns(net, hidden[:, Q.shape[1] :], solver.action_lo, solver.action_hi).float()
    logp = F.log_softmax(step_logits, dim=-1).gather(2, (ids - solver.action_lo).clamp_min(0)[..., None]).squeeze(-1)
    return logp, step_logits


def imitation_loss(
    solver: ThinkSolver, Q: torch.Tensor, ref_ids: torch.Tensor | None, ref_valid: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the thinking policy on the reference thoughts (and on the stop after them,
    unless fixed): supervised chain of thought, the bound that RL on the same trace can reach."""
    assert ref_ids is not None and ref_valid is not None, "imitate needs super (reference thoughts)"
    logp, step_logits = thought_log_probs(solver, Q, ref_ids)
    reached = torch.cat([torch.ones_like(ref_valid[:, :1]), ref_valid[:, :-1]], dim=1).float()
    entropy = (rl.categorical_entropy(step_logits) * reached).sum() / reached.sum()
    right = (step_logits.argmax(-1) + solver.action_lo == ref_ids).float()
    # given the reference before
    metrics = {f"trace_match_{i}": float(right[:, i].mean()) for i in range(min(4, right.shape[1]))}
    metrics["entropy"] = float(entropy.detach())
    loss = -(logp * reached).sum() / reached.sum() - solver.options.entropy_weight * entropy
    return loss, metrics


def search_loss(
    solver: ThinkSolver, batch: TensorBatch, ref_ids: torch.Tensor | None, ref_valid: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Best-of-G: sample G thoughts per question without gradients, score them by the reward, and
    train the thinking policy by cross-entropy on each question's best rollout at the positions
    where it beats its group (weights = its positive advantages)."""
    o, K, G = solver.options, solver.K, solver.G
    Q, A = batch.questions, batch.answers
    Qg, Ag = Q.repeat_interleave(G, dim=0), A.repeat_interleave(G, dim=0)
    with torch.no_grad():
        roll = solver.rollout(Q, K, G, "sample", o.epsilon)
        rewards, sequence, _ = solver._rewards(roll, Qg, Ag, ref_ids, ref_valid, G)
        adv = rl.advantages(rewards, rl.group_baseline(rewards, G), G, o.normalize, per_group=True)
        best = rl.best_of_group(sequence + 1e-3 * rewards.mean(dim=1), G)  # ties: longer right prefix
    ids, valid, acted = roll.ids[best], roll.valid[best], roll.acted[best]
    weights = adv[best].clamp_min(0) * acted
    logp, step_logits = thought_log_probs(solver, Q, ids)
    # A stop choice is action 0 (<eot>); slots the policy never reached carry weight 0.
    loss = -(weights * logp).sum() / acted.sum().clamp_min(1)
    if not o.super:  # the answerer learns from the thoughts it is shown: the chosen ones
        logits_a = solver.answer_logits(Q, ids, valid, A)
        loss = loss + F.cross_entropy(logits_a.reshape(-1, solver.V).float(), A.reshape(-1))
    entropy = (rl.categorical_entropy(step_logits) * acted).sum() / acted.sum().clamp_min(1)
    metrics = solver._rollout_metrics(roll, rewards, sequence, G, ref_ids)
    metrics["entropy"] = float(entropy.detach())
    metrics["best_reward"] = float(sequence[best].mean())
    return loss - o.entropy_weight * entropy, metrics
