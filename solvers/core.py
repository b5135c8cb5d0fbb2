"""The one transformer every solver is built on (nanoGPT-shaped, with a KV cache).

Decoder-only, pre-LayerNorm, learned positions, causal attention through
`F.scaled_dot_product_attention`, untied input/output embeddings (thinkers grow both with extra
tokens, and continuous thoughts are fed in without going through the unembedding).

The KV cache is plain tensors passed in and out: a list with one (keys, values) pair per layer,
each (B, heads, T_past, head_dim). Callers may feed tokens or ready-made input vectors
(`inputs_embeds`, e.g. a continuous thought), mask attention (e.g. `blind` answers that may not see
the question), and read back the hidden state after any layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from solvers.config import WEIGHT_INITS, ModelConfig

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class CoreConfig:
    vocab_size: int
    """Input and output token ids."""
    max_len: int
    """Longest sequence (positions) the model can see."""
    d_model: int = 128
    """Residual-stream width."""
    layers: int = 2
    """Number of transformer blocks."""
    heads: int = 4
    """Attention heads; must divide d_model."""
    mlp_ratio: int = 4
    """MLP hidden width as a multiple of d_model."""
    init: str = "gpt2"
    """Weight initialisation (see `solvers.config.WEIGHT_INITS`)."""

    @classmethod
    def from_model(cls, model: ModelConfig, vocab_size: int, max_len: int, **others: Any) -> CoreConfig:
        """The core a solver builds from its ModelConfig (width, depth, heads, init) with its own
        vocabulary and sequence length; `others` sets any further field."""
        return cls(vocab_size=vocab_size, max_len=max_len, d_model=model.d_model, layers=model.layers,
                   heads=model.heads, init=model.weight_init, **others)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(
        self,
        x: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        attn_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, H, T, Dh)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, T_past + T, Dh)
            v = torch.cat([past[1], v], dim=2)
        if attn_mask is None and (past is None or T == 1):
            # Plain causal attention (T == 1 with a cache: the new position sees everything).
            y = attention(q, k, v, is_causal=past is None and T > 1)
        else:
            if attn_mask is None:
                attn_mask = causal_mask(T, k.shape[2], x.device)
            y = attention(q, k, v, attn_mask=attn_mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y), (k, v)


# From this many keys on, a bf16 softmax row is cheaper than its two fp32 casts (below it, torch's CPU bf16
# softmax is 2-5x slower than fp32's at rows that are not multiples of 32). Forward + backward of the
# attention ops, B 256, 4 heads, bf16: T 31 11.9 ms fp32 softmax / 18.8 bf16; T 46 31.5 / 27.8; T 75 79.9 /
# 53.1; T 120 201 / 106 (one thread). So graph 6 (31 positions) keeps the fp32 softmax, sat 4 (75) does not.
BF16_SOFTMAX_FROM_KEYS = 40


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False, attn_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax attention (B, H, T, Dh) -> (B, H, T, Dh); attn_mask: bool, True = may attend.

    fp32, and any dtype on CUDA: `F.scaled_dot_product_attention` (its fused kernels win there).
    bf16 on CPU (`--precision bf16`): written out, because at this project's lengths (4-120
    positions) the CPU flash kernel's bf16 backward is 2.5-6x slower than these three ops and
    the math backend 1.6-2.4x (forward + backward, B 256, 4 heads, T 4 / 31 / 120, one thread; README,
    "Precision"). Below `BF16_SOFTMAX_FROM_KEYS` keys the softmax runs in fp32, as SDPA's math path
    does; from there on it runs on the bf16 scores (torch's CPU kernel accumulates in fp32 and rounds
    its output to bf16, where the fp32 path casts it anyway), with the scale folded into q.
    """
    if q.dtype != torch.bfloat16 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
    if is_causal:
        attn_mask = causal_mask(q.shape[2], k.shape[2], q.device)
    if k.shape[2] >= BF16_SOFTMAX_FROM_KEYS:
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, T, T_total), bf16
    else:
        # In place after the cast: the same numbers as out-of-place ops, ~18% less time at T = 31.
        scores = (q @ k.transpose(-2, -1)).float().mul_(q.shape[-1] ** -0.5)
    if attn_mask is not None:
        scores = scores.masked_fill_(~attn_mask, float("-inf"))
    return torch.softmax(scores, dim=-1).to(v.dtype) @ v


class MLP(nn.Module):
    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x, past, attn_mask):  # type: ignore[no-untyped-def]
        attended, present = self.attn(self.ln_1(x), past, attn_mask)
        x = x + attended
        x = x + self.mlp(self.ln_2(x))
        return x, present


def causal_mask(t_new: int, t_total: int, device: torch.device | str) -> torch.Tensor:
    """Boolean (t_new, t_total) mask, True where attention is allowed: the last t_new positions
    of a t_total-long sequence each see themselves and everything before."""
    rows = torch.arange(t_total - t_new, t_total, device=device)[:, None]
    cols = torch.arange(t_total, device=device)[None, :]
    return cols <= rows


class Transformer(nn.Module):
    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.heads != 0:
            raise ValueError(f"heads={cfg.heads} does not divide d_model={cfg.d_model}")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.init not in WEIGHT_INITS:
            raise ValueError(f"init {cfg.init!r} is not one of {', '.join(WEIGHT_INITS)}")
        if cfg.init == "gpt2":
            self.apply(self._init_weights)
            # GPT-2's scaled init of residual projections keeps the stream's variance flat with depth.
            for name, param in self.named_parameters():
                if name.endswith("proj.weight"):
                    nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * cfg.layers))
        # "pytorch": the modules' own reset_parameters() already ran in their constructors.

    def init_new_module(self, module: nn.Module) -> None:
        """Initialise a module added later (grown vocabulary rows) the way this model was."""
        if self.cfg.init == "gpt2":
            self._init_weights(module)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        tokens: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        cache: KVCache | None = None,
        attn_mask: torch.Tensor | None = None,
        hidden_layer: int | None = None,
        compute_logits: bool = True,
        positions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, KVCache, torch.Tensor | None]:
        """Run new positions through the model.

        tokens (B, T) or inputs_embeds (B, T, C): the new positions (not both). Positions are
        numbered after the cache's length. attn_mask: bool, broadcastable to (B, H, T, T_total),
        True = may attend; None = causal. hidden_layer: also return the residual stream after that
        many blocks (0 = the input embeddings, `layers` = the last block's output, before ln_f).
        positions: (T,) position ids of the new positions when they are not consecutive (a batch with
        its padding columns dropped, solvers/padding.py); None = numbered after the cache.
        Returns (logits (B, T, V) or None, the new cache, the hidden state (B, T, C) or None).
        """
        if (tokens is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of tokens or inputs_embeds")
        x = self.tok_emb(tokens) if tokens is not None else inputs_embeds
        assert x is not None
        B, T, _ = x.shape
        start = 0 if not cache else cache[0][0].shape[2]
        if start + T > self.cfg.max_len:
            raise ValueError(f"sequence of {start + T} positions exceeds max_len={self.cfg.max_len}")
        if positions is None:
            positions = torch.arange(start, start + T, device=x.device)
        elif positions.shape != (T,) or int(positions.max()) >= self.cfg.max_len:
            raise ValueError(f"positions must be {T} ids below max_len={self.cfg.max_len}")
        x = x + self.pos_emb(positions)  # (B, T, C)
        hidden = x if hidden_layer == 0 else None
        present: KVCache = []
        for index, block in enumerate(self.blocks):
            x, kv = block(x, cache[index] if cache else None, attn_mask)
            present.append(kv)
            if hidden_layer == index + 1:
                hidden = x
        logits = self.head(self.ln_f(x)) if compute_logits else None
        return logits, present, hidden

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings without positions (B, T) -> (B, T, C), for mixing with fed-back vectors."""
        return self.tok_emb(tokens)

    def grow_vocab(self, new_vocab_size: int) -> None:
        """Add rows to the embedding and unembedding (new tokens get fresh init), keeping old ones.

        Used to warm-start a thinker from a trained `gpt`: the notes' idea of expanding a model's
        vocabulary with thought tokens and then applying RL.
        """
        old = self.cfg.vocab_size
        if new_vocab_size < old:
            raise ValueError(f"cannot shrink the vocabulary from {old} to {new_vocab_size}")
        if new_vocab_size == old:
            return
        emb = nn.Embedding(new_vocab_size, self.cfg.d_model).to(self.tok_emb.weight.device)
        head = nn.Linear(self.cfg.d_model, new_vocab_size, bias=False).to(self.head.weight.device)
        self.init_new_module(emb)
        self.init_new_module(head)
        with torch.no_grad():
            emb.weight[:old] = self.tok_emb.weight
            head.weight[:old] = self.head.weight
        self.tok_emb, self.head = emb, head
        self.cfg = CoreConfig(**{**self.cfg.__dict__, "vocab_size": new_vocab_size})
