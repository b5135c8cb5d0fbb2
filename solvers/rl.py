"""Policy-gradient pieces for the discrete thinkers, named as in the papers.

Shapes: N = B * G rollouts, laid out question-major (the G rollouts of question b are rows
b*G .. b*G + G - 1); K thought positions. `rewards` are per position (N, K): with per-position credit
position i is judged by what the thoughts up to i achieve (e.g. the prefix t_1..t_i matches the
reference trace); with sequence credit every position carries the sequence's reward.

    baseline     batch mean | group mean (GRPO) | leave-one-out (RLOO) | given (reference, value)
    advantages   rewards - baseline, optionally divided by the group's (or batch's) std, where a
                 zero std leaves the advantage unscaled and any other std counts as >= STD_FLOOR
    fallback     all-equal groups may take the batch mean as their baseline instead (see
                 equal_groups_to_batch): confidently wrong questions then still get a gradient
    loss         REINFORCE: -(advantages * logp_thoughts) over the positions the policy acted at

Each is a small function so that it can be tested alone (leave-one-out advantages sum to zero per
group; group advantages are zero where every rollout of a question got the same reward).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Baseline = Literal["batch", "group", "loo", "reference", "value"]
STD_EPS = 1e-6
STD_FLOOR = 0.05
"""Smallest std advantages are divided by: rewards that differ only by noise (an untrained answerer
gives every thought ~the prior's probability) must not be blown up into confident updates. Measured:
without it, think_fixed_blind_super on add mod 100 collapsed to one constant trace within 100 steps."""


def by_group(x: torch.Tensor, G: int) -> torch.Tensor:
    """(B*G, ...) -> (B, G, ...): the rollouts of each question side by side."""
    return x.reshape(-1, G, *x.shape[1:])


def batch_baseline(rewards: torch.Tensor) -> torch.Tensor:
    """The notes' original: the mean over the whole batch (it rewards easy questions)."""
    return rewards.mean(dim=0, keepdim=True).expand_as(rewards)


def group_baseline(rewards: torch.Tensor, G: int) -> torch.Tensor:
    """GRPO: the mean over the G rollouts of the same question."""
    grouped = by_group(rewards, G)
    return grouped.mean(dim=1, keepdim=True).expand_as(grouped).reshape(rewards.shape)


def loo_baseline(rewards: torch.Tensor, G: int) -> torch.Tensor:
    """RLOO: for each rollout, the mean reward of the other G - 1 rollouts of its question."""
    if G < 2:
        raise ValueError("leave-one-out needs at least 2 rollouts per question")
    grouped = by_group(rewards, G)
    others = (grouped.sum(dim=1, keepdim=True) - grouped) / (G - 1)
    return others.reshape(rewards.shape)


def equal_groups_to_batch(rewards: torch.Tensor, per_question: torch.Tensor, G: int) -> torch.Tensor:
    """Where all G rollouts of a question agree (per position), use the batch mean instead of the
    question's own baseline: a question whose every rollout fails is then pushed away from its
    thoughts instead of getting no gradient (and one that always succeeds is reinforced a little)."""
    grouped = by_group(rewards, G)
    equal = (grouped.max(dim=1, keepdim=True).values - grouped.min(dim=1, keepdim=True).values) <= STD_EPS
    fallback = by_group(batch_baseline(rewards), G)
    return torch.where(equal, fallback, by_group(per_question, G)).reshape(rewards.shape)


def baseline(
    rewards: torch.Tensor, kind: Baseline, G: int, given: torch.Tensor | None = None, equal_to_batch: bool = False
) -> torch.Tensor:
    """The baseline for each (rollout, position); `given` supplies reference or value estimates.
    equal_to_batch: group / loo baselines fall back to the batch mean in all-equal groups."""
    if kind == "batch":
        return batch_baseline(rewards)
    if kind in ("group", "loo"):
        per_question = group_baseline(rewards, G) if kind == "group" else loo_baseline(rewards, G)
        return equal_groups_to_batch(rewards, per_question, G) if equal_to_batch else per_question
    if given is None:
        raise ValueError(f"baseline {kind!r} needs its estimates passed in")
    return given.expand_as(rewards)


def advantages(
    rewards: torch.Tensor, baseline_values: torch.Tensor, G: int, normalize: bool, per_group: bool
) -> torch.Tensor:
    """rewards - baseline, divided by the std of the rewards over each question's group (per_group)
    or over the batch, per position. Guards: where the std is ~0 (all rewards equal) the advantage is
    left unscaled; elsewhere the std is at least STD_FLOOR."""
    adv = rewards - baseline_values
    if not normalize:
        return adv
    if per_group and G > 1:
        return (by_group(adv, G) / _guarded(by_group(rewards, G).std(dim=1, keepdim=True))).reshape(adv.shape)
    std = rewards.std(dim=0, keepdim=True) if rewards.shape[0] > 1 else torch.ones_like(rewards[:1])
    return adv / _guarded(std)


def _guarded(std: torch.Tensor) -> torch.Tensor:
    return torch.where(std > STD_EPS, std.clamp_min(STD_FLOOR), torch.ones_like(std))


def equal_group_share(rewards: torch.Tensor, G: int) -> float:
    """Share of questions whose G rollouts all got the same reward (N,): they give no gradient with
    a group baseline. With success rate p and 0/1 rewards this is p^G + (1-p)^G."""
    if G < 2:
        return 0.0
    grouped = by_group(rewards, G)
    spread = grouped.max(dim=1).values - grouped.min(dim=1).values
    return float((spread <= STD_EPS).float().mean())


def reinforce_loss(logp_thoughts: torch.Tensor, advantages_: torch.Tensor, acted: torch.Tensor) -> torch.Tensor:
    """REINFORCE: -E[A * log pi(t_i | ...)] over the positions where the policy acted (N, K)."""
    weights = acted.to(logp_thoughts.dtype)
    return -(advantages_.detach() * logp_thoughts * weights).sum() / weights.sum().clamp_min(1.0)


def prefix_match(thoughts: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The clean reward with per-position credit: 1 at position i if thoughts[:i+1] equal the
    reference's (N, K) -> (N, K) float. Its last column is the sequence's clean reward."""
    return torch.cumprod((thoughts == reference).to(torch.float32), dim=1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) over the last dim, in nats."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def gumbel_straight_through(logits: torch.Tensor, tau: float, noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through Gumbel-softmax: a one-hot sample in the forward pass whose gradient is the
    relaxed sample's. Returns (one-hot (.., A) carrying the gradient, the sampled index (..)).
    noise=False: the argmax, deterministic (straight-through softmax)."""
    logits = logits.float()
    if noise:
        logits = logits - torch.empty_like(logits).exponential_().log()
    soft = F.softmax(logits / tau, dim=-1)
    index = soft.argmax(dim=-1)
    hard = F.one_hot(index, soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft, index


def best_of_group(scores: torch.Tensor, G: int) -> torch.Tensor:
    """Row index (into N = B*G) of the best-scoring rollout of each question: (N,) -> (B,)."""
    best = by_group(scores, G).argmax(dim=1)
    return best + torch.arange(best.shape[0], device=scores.device) * G
