"""No work on padding: a question's PAD tokens masked as keys, and the batch trimmed around them.

graph and sat pad their questions to a fixed length (graph: PAD edge pairs between the edge list
and the source/target query; sat: PAD clauses after the formula), about 44% and 29% of a training
sequence at graph 6 and sat 4 (README, "Precision"). A plain model attends to those PADs like to any
token, so they cost time and carry no information. With `--opt pad=trim` (gpt) the model is instead
defined with a *key-padding mask*: no position attends to a question PAD (each still sees itself, so no
softmax row is empty). PAD positions then influence nothing the loss reads, so they need not be
computed at all: a batch is sorted by its problems' lengths into `chunks` groups of rows, each group
drops the columns that are PAD in all its rows, and the rest keep their own position ids (learned
positions, so a token means what it meant in the full layout). The number of groups is chosen per
batch (`choose_chunks`). Trimmed and full-with-mask forward
passes give the same hidden states at every kept position up to float rounding; the number of chunks
changes only the rounding (tests/test_padding.py).

What counts as padding: PAD (token 0) in the question, except the question's last position, which
reads out the first answer token (sat's question ends in PAD for every formula shorter than the cap).
Answer PADs are targets (the model must say where a path ends) and are always computed. A
separated prompt's query tokens after a PAD are not PAD and stay.
"""

from __future__ import annotations

import torch

from solvers.core import Transformer, causal_mask

PAD = 0
CHUNK_CHOICES = (1, 2, 4, 8)  # length buckets a batch may be split into
MIN_CHUNK_ROWS = 32  # smaller row groups make matmuls too thin to pay for the columns they drop
# Each extra group costs about 4% of a step (more, thinner ops), measured in bf16 at one thread: graph 6
# at 159 / 158 / 165 / 194 ms with 1 / 2 / 4 / 8 groups (68 / 61 / 60 / 58% of positions kept), sat 4 at
# 653 / 536 / 490 / 527 ms (100 / 86 / 79 / 75%). So a batch takes the count minimising kept * (1 + 0.04 (K - 1)):
# 2 on graph 6, 4 on sat 4.
CHUNK_COST = 0.04


def question_padding(questions: torch.Tensor) -> torch.Tensor:
    """(B, Lq) bool, True at the question's PAD tokens that no position attends to (all but the last)."""
    pad = questions == PAD
    pad[:, -1] = False  # the last question position predicts the first answer token
    return pad


def key_padding_mask(key_pad: torch.Tensor, t_new: int | None = None) -> torch.Tensor:
    """(B, T_total) key padding -> (B, 1, t_new, T_total) bool attention mask, True = may attend:
    causal, no PAD key, and every position sees itself (a PAD query's row is never empty)."""
    t_total = key_pad.shape[1]
    t_new = t_total if t_new is None else t_new
    causal = causal_mask(t_new, t_total, key_pad.device)  # (t_new, T_total)
    own = torch.zeros_like(causal)
    own[:, t_total - t_new :] = torch.eye(t_new, dtype=torch.bool, device=key_pad.device)
    return (causal[None] & ~key_pad[:, None, :] | own[None])[:, None]


def masked_hidden(model: Transformer, sequence: torch.Tensor, q_len: int) -> torch.Tensor:
    """The untrimmed reference: the last block's output (B, T, C) over the full layout with the key mask."""
    pad = torch.zeros_like(sequence, dtype=torch.bool)
    pad[:, :q_len] = question_padding(sequence[:, :q_len])
    _, _, hidden = model(sequence, attn_mask=key_padding_mask(pad), hidden_layer=model.cfg.layers, compute_logits=False)
    assert hidden is not None
    return hidden


def trimmed_tail_hidden(model: Transformer, sequence: torch.Tensor, q_len: int,
                        chunks: int | None = None) -> torch.Tensor:
    """The last block's output at positions q_len - 1 .. T - 1 (the ones that predict answer tokens),
    (B, T - q_len + 1, C), computing no question PAD: rows sorted by length into `chunks` groups, each
    trimmed to the columns it uses, positions kept. Equals `masked_hidden(...)[:, q_len - 1:]`."""
    B, T = sequence.shape
    pad = torch.zeros_like(sequence, dtype=torch.bool)
    pad[:, :q_len] = question_padding(sequence[:, :q_len])
    order = torch.argsort((~pad).sum(dim=1), stable=True)
    chunks = choose_chunks(pad, order) if chunks is None else max(1, min(chunks, B // MIN_CHUNK_ROWS))
    positions = torch.arange(T, device=sequence.device)
    outputs = []
    for rows in (order.chunk(chunks) if chunks > 1 else [None]):
        tokens, rows_pad = (sequence, pad) if rows is None else (sequence[rows], pad[rows])
        keep = ~rows_pad.all(dim=0)  # columns some row of this group uses (the tail always)
        kept_pad = rows_pad[:, keep]
        _, _, hidden = model(tokens[:, keep], positions=positions[keep], attn_mask=key_padding_mask(kept_pad),
                             hidden_layer=model.cfg.layers, compute_logits=False)
        assert hidden is not None
        outputs.append(hidden[:, -(T - q_len + 1) :])
    tail = torch.cat(outputs, dim=0)
    if chunks == 1:
        return tail
    return tail[torch.argsort(order)]  # back to the batch's own row order


@torch.no_grad()
def masked_greedy_decode(model: Transformer, questions: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy decoding (B, steps) under the key-padding mask, with the KV cache: the question runs in
    its full layout (positions as in training), and every new token's row masks the question's PADs."""
    key_pad = question_padding(questions)
    logits, cache, _ = model(questions, attn_mask=key_padding_mask(key_pad))
    out = []
    for step in range(steps):
        next_token = logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        out.append(next_token)
        if step + 1 < steps:
            key_pad = torch.cat([key_pad, torch.zeros_like(next_token, dtype=torch.bool)], dim=1)
            logits, cache, _ = model(next_token, cache=cache, attn_mask=key_padding_mask(key_pad, 1))
    return torch.cat(out, dim=1)


def _kept_columns(pad: torch.Tensor, order: torch.Tensor, chunks: int) -> int:
    """Question positions computed over the batch when its rows (sorted by length) form `chunks` groups."""
    return sum(int((~pad[rows]).any(dim=0).sum()) * len(rows) for rows in order.chunk(chunks))


def choose_chunks(pad: torch.Tensor, order: torch.Tensor) -> int:
    """How many length groups this batch is split into (CHUNK_COST above)."""
    B = pad.shape[0]
    costs = {k: _kept_columns(pad, order, k) * (1 + CHUNK_COST * (k - 1))
             for k in CHUNK_CHOICES if k == 1 or B // k >= MIN_CHUNK_ROWS}
    return min(costs, key=lambda k: (costs[k], k))


def kept_share(questions: torch.Tensor, answer_len: int, chunks: int | None = None) -> float:
    """Share of a training sequence's positions (Lq + La - 1 per row) that trimming computes
    (chunks: None = as training chooses)."""
    B, q_len = questions.shape
    pad = question_padding(questions)
    order = torch.argsort((~pad).sum(dim=1), stable=True)
    chunks = choose_chunks(pad, order) if chunks is None else max(1, min(chunks, B // MIN_CHUNK_ROWS))
    return (_kept_columns(pad, order, chunks) + B * (answer_len - 1)) / (B * (q_len + answer_len - 1))
