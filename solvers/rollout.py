"""The discrete thinkers' rollout sampler: K thoughts for each of B questions, G times, as one batch
with the KV cache, the G rollouts of a question sharing a prefix tree.

Speed (issue 14): only what is read is computed. Each step unembeds the last position alone and only
the action columns of the head (`action_logits`): at add mod 1000 the full head is 1014 columns
against 11 actions, and it was most of a thinker step. Nothing in the loop reads a tensor's value on
the host except `torch.unique` for the prefix tree, whose output size is data-dependent by nature
(G = 1 and straight-through rows skip it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from solvers import rl
from solvers.base import TensorBatch
from solvers.core import KVCache, Transformer


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
    codes = _row_codes(keys)
    _, inverse = torch.unique(codes, dim=0 if codes.dim() == 2 else None, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1 if inverse.numel() else 0,), keys.shape[0], dtype=torch.long,
                       device=keys.device)
    first = first.scatter_reduce(0, inverse, torch.arange(keys.shape[0], device=keys.device), reduce="amin")
    return first, inverse


def _row_codes(keys: torch.Tensor) -> torch.Tensor:
    """One int64 per row, ordered as the rows are lexicographically (first column most significant),
    when the rows fit in 62 bits; else the rows themselves. `torch.unique(dim=0)` on a 2-D tensor
    sorts rows element by element on the host, and was 50 ms of a 200 ms thinker step."""
    if keys.dim() != 2 or keys.shape[1] == 0 or keys.numel() == 0:
        return keys
    base = int(keys.max()) + 1  # one host read per call, not per step of a loop
    if int(keys.min()) < 0 or keys.shape[1] * (base - 1).bit_length() > 62:
        return keys
    codes = torch.zeros(keys.shape[0], dtype=torch.long, device=keys.device)
    for column in keys.unbind(dim=1):
        codes = codes * base + column
    return codes


def head_columns(net: Transformer, hidden: torch.Tensor, lo: int, hi: int,
                 params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Logits of token ids lo..hi-1 only, from the last block's output (before ln_f): the same
    numbers as `net`'s full head sliced, without unembedding the columns nobody reads."""
    if params is None:
        normed = net.ln_f(hidden)
        return F.linear(normed, net.head.weight[lo:hi])
    normed = F.layer_norm(hidden, hidden.shape[-1:], params["ln_f.weight"], params["ln_f.bias"], net.ln_f.eps)
    return F.linear(normed, params["head.weight"][lo:hi])


def _step(net: Transformer, want_hidden: bool, lo: int, hi: int,
          **kwargs: Any) -> tuple[torch.Tensor, KVCache, torch.Tensor | None]:
    """One forward of new positions; returns (action logits at the last position, cache, the last
    position's hidden state when the value baseline wants it)."""
    _, cache, hidden = net(**kwargs, hidden_layer=net.cfg.layers, compute_logits=False)
    assert hidden is not None
    last = hidden[:, -1]
    return head_columns(net, last, lo, hi), cache, (last if want_hidden else None)


def rollout(
    solver: Any, questions: torch.Tensor, K: int, G: int, mode: str, epsilon: float = 0.0, want_hidden: bool = False,
    reference: torch.Tensor | None = None,
) -> Rollout:
    """Sample (mode 'sample' / 'gumbel') or pick greedily ('greedy') K thoughts for each question,
    G times, batched, with the KV cache. `solver` is a ThinkSolver (its `net`, token ids and flags).

    Rollouts form a prefix tree: the model runs once per distinct (question, thoughts so far),
    and each of the N = B*G rows reads its node's logits (`owner`). A confident policy therefore
    costs about B rows per step whatever G is, and the last thought's G samples cost nothing
    more. Straight-through (gumbel) rows carry distinct soft inputs and are not shared.

    reference (B, K) thought ids (the clean reward's `truncate` credit): a row ends at its first
    thought that differs from the reference, as at a stop: that thought is acted on, the later
    slots hold <eot> and are neither valid nor acted on, and the row's prefix is not extended. No
    later thought of such a row can earn the clean reward, so only the tree nodes still on the
    reference are run: at most one per question and position, however diffuse the policy."""
    net, B, device = solver.net, questions.shape[0], questions.device
    on_reference = None if reference is None else reference.repeat_interleave(G, dim=0)  # (N, K)
    lo, hi, eot = solver.action_lo, solver.action_hi, solver.eot
    fixed = solver.options.fixed
    N, A = B * G, hi - lo
    bot = torch.full((B, 1), solver.bot, dtype=torch.long, device=device)
    # per tree node
    last, cache, last_hidden = _step(net, want_hidden, lo, hi, tokens=torch.cat([questions, bot], dim=1))
    owner = torch.arange(B, device=device).repeat_interleave(G)  # (N,) row -> node
    alive = torch.ones(N, dtype=torch.bool, device=device)
    ids, valid, acted, logps, entropies, softs, hiddens = [], [], [], [], [], [], []
    for j in range(K):
        node_logp = F.log_softmax(last.float(), dim=-1)  # (U, A)
        logp_all = node_logp[owner]  # (N, A)
        entropy_j = -(node_logp.exp() * node_logp).sum(dim=-1)[owner]
        soft = None
        if mode == "greedy":
            action = logp_all.argmax(dim=-1)
        elif mode == "gumbel":
            soft, action = rl.gumbel_straight_through(logp_all, solver.options.tau,
                                                      noise=solver.options.estimator == "gumbel")
        else:
            action = torch.multinomial(logp_all.detach().exp(), 1).squeeze(1)
            if epsilon > 0:
                explore = torch.rand(N, device=device) < epsilon
                action = torch.where(explore, torch.randint_like(action, A), action)
        logp_j = logp_all.gather(1, action[:, None]).squeeze(1)
        if on_reference is not None:  # rows that left the reference earlier read a stand-in node
            logp_j, entropy_j = torch.where(alive, logp_j, 0.0), torch.where(alive, entropy_j, 0.0)
        logps.append(logp_j)
        entropies.append(entropy_j)
        acted.append(alive)
        if fixed:
            valid_j = alive
        else:
            valid_j = alive & (action != 0)  # action 0 is <eot>
            alive = valid_j
        valid.append(valid_j)
        ids_j = torch.where(valid_j, lo + action, torch.full_like(action, eot))
        ids.append(ids_j)
        if on_reference is not None:
            alive = valid_j & (ids_j == on_reference[:, j])
        if soft is not None:
            softs.append(soft)
        if last_hidden is not None:
            hiddens.append(last_hidden[owner])
        if j == K - 1:
            break
        if soft is not None:  # distinct soft inputs: one node per row from here on
            cache = [(k[owner], v[owner]) for k, v in cache]
            embed = soft @ net.tok_emb.weight[lo:hi]
            last, cache, last_hidden = _step(net, want_hidden, lo, hi, inputs_embeds=embed[:, None], cache=cache)
            owner = torch.arange(N, device=device)
        elif G == 1 and on_reference is None:  # no siblings to share with: skip the bookkeeping
            last, cache, last_hidden = _step(net, want_hidden, lo, hi, tokens=ids_j[:, None], cache=cache)
        else:
            span = hi - eot
            codes = owner * span + (ids_j - eot)
            if on_reference is None:
                child, owner = torch.unique(codes, return_inverse=True)
            else:  # only rows still on the reference get a child node; the others point at node 0
                kept = alive.nonzero().squeeze(1)
                child, kept_owner = torch.unique(codes[kept], return_inverse=True)
                owner = torch.zeros_like(owner).index_copy(0, kept, kept_owner)
                if child.numel() == 0:  # every row has left the reference: nothing left to sample
                    break
            parent, token = child // span, child % span + eot
            cache = [(k[parent], v[parent]) for k, v in cache]
            last, cache, last_hidden = _step(net, want_hidden, lo, hi, tokens=token[:, None], cache=cache)
    ended = K - len(ids)  # slots after a truncated loop's end: empty, as after every row's stop
    if ended:
        off = torch.zeros(N, dtype=torch.bool, device=device)
        ids, valid, acted = ids + [torch.full_like(ids[-1], eot)] * ended, valid + [off] * ended, acted + [off] * ended
        logps, entropies = (logps + [torch.zeros_like(logps[-1])] * ended,
                            entropies + [torch.zeros_like(entropies[-1])] * ended)
        hiddens = hiddens + [torch.zeros_like(hiddens[-1])] * ended if hiddens else hiddens
    empty = torch.zeros(N, 0, device=device)

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


@torch.no_grad()
def rollout_diagnostics(solver: Any, task: Any, held_out: Any, device: Any, limit: int = 2000) -> dict[str, Any]:
    """Thought statistics on held-out problems at the trained budget: entropy per position,
    agreement with the reference trace per position (super), sampled-thought reward mean and
    spread, and usefulness: accuracy with the model's own thoughts vs random thoughts."""
    solver.eval()
    n = min(limit, len(held_out))
    batch = TensorBatch.from_numpy(held_out.take(slice(0, n)), device)
    Q, A = batch.questions, batch.answers
    roll = solver.rollout(Q, solver.K, 1, "greedy")
    own = solver.decode_answers(Q, roll.ids, roll.valid)
    gen = torch.Generator(device="cpu").manual_seed(0)
    random_ids = solver.thought0 + torch.randint(0, solver.thought_vocab, roll.ids.shape,
                                                 generator=gen).to(roll.ids.device)
    random_valid = torch.ones_like(roll.valid)
    rand = solver.decode_answers(Q, random_ids, random_valid)
    q_np = Q.cpu().numpy()
    own_acc = float(np.mean(task.verify_batch(q_np, own.cpu().numpy())))
    random_acc = float(np.mean(task.verify_batch(q_np, rand.cpu().numpy())))
    acted = roll.acted.float()
    entropy = ((roll.entropy * acted).sum(0) / acted.sum(0).clamp_min(1)).tolist()
    out: dict[str, Any] = {
        "thoughts": solver.K,
        "entropy_per_position": [round(x, 4) for x in entropy],
        "mean_thoughts": round(float(roll.valid.float().sum(1).mean()), 3),
        "accuracy_own_thoughts": round(own_acc, 4),
        "accuracy_random_thoughts": round(random_acc, 4),
        "usefulness": round(own_acc - random_acc, 4),
    }
    ref_ids = None
    if solver.options.super:
        ref_ids, _ = solver.reference_thoughts(batch.traces, solver.K)
        match = (roll.ids == ref_ids).float().mean(0).tolist()
        out["trace_match_per_position"] = [round(x, 4) for x in match]
        out["trace_exact"] = round(float(rl.prefix_match(roll.ids, ref_ids)[:, -1].mean()), 4) if solver.K else None
    sample_roll = solver.rollout(Q, solver.K, 1, "sample")
    _, sequence, _ = solver._rewards(sample_roll, Q, A, ref_ids, None, 1)
    out["sampled_reward_mean"] = round(float(sequence.mean()), 4)
    out["sampled_reward_std"] = round(float(sequence.std()) if sequence.numel() > 1 else 0.0, 4)
    return out
