"""Training-step throughput: the project's `gpt` solver against a plain-PyTorch model of the same shape.

Both sides train on the same task batches with the same width, depth, heads, MLP ratio (4),
vocabulary, sequence length, batch, AdamW settings (lr 1e-3, betas (0.9, 0.98), no weight decay)
and gradient clipping (1.0). The project side is exactly what `bench run` executes per step,
`GPTSolver.train_step` (which also reports train accuracy); the reference side is the textbook loop:
forward, cross-entropy on the answer positions, zero_grad, backward, clip, step, `loss.item()`.

Timing is interleaved in the same process (rounds alternate which side goes first), so a change in
machine load hits both sides alike; the ratio reported is the median of the per-round ratios.

Two references:
    encoder  torch's own nn.TransformerEncoderLayer (norm_first, GELU, no dropout, causal)
    blocks   hand-written pre-LN blocks with F.scaled_dot_product_attention (nanoGPT-shaped)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from solvers.base import ModelConfig, OptimConfig, Solver, TaskShape, TensorBatch, make_solver
from tasks.base import stream_rng
from tasks.registry import make_task

from bench.perf.config import REFERENCES, PerfTrainConfig, Reference  # noqa: F401  (re-exported)

# ---- the references ---------------------------------------------------------------------------------
class EncoderReference(nn.Module):
    """Decoder-only LM from torch's nn.TransformerEncoderLayer (pre-LN, causal mask)."""

    def __init__(self, vocab_size: int, max_len: int, d_model: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, 4 * d_model, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(T, device=tokens.device))  # (B, T, C)
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        x = self.encoder(x, mask=mask, is_causal=True)
        return self.head(self.ln_f(x))  # (B, T, V)


class PlainBlock(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.fc_out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class BlocksReference(nn.Module):
    """Decoder-only LM from hand-written pre-LN blocks with SDPA."""

    def __init__(self, vocab_size: int, max_len: int, d_model: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(PlainBlock(d_model, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class ReferenceTrainer:
    """The plain training loop around a reference model."""

    def __init__(self, model: nn.Module, question_len: int, optim: OptimConfig) -> None:
        self.model, self.question_len, self.grad_clip = model, question_len, optim.grad_clip
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=(0.9, 0.98), weight_decay=optim.weight_decay)

    def train_step(self, batch: TensorBatch) -> float:
        self.model.train()
        sequence = torch.cat([batch.questions, batch.answers], dim=1)
        logits = self.model(sequence[:, :-1])[:, self.question_len - 1 :]  # (B, La, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch.answers.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return loss.item()


# ---- measuring ------------------------------------------------------------------------------------------
def build_sides(cfg: PerfTrainConfig) -> tuple[Solver, ReferenceTrainer, list[TensorBatch], int]:
    """(project solver, reference trainer, batches, input tokens per step). Raises user errors for bad input."""
    task = make_task(cfg.task, cfg.max_value, {})
    shape = TaskShape.of(task)
    model, optim = ModelConfig(cfg.d_model, cfg.layers, cfg.heads), OptimConfig()
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    solver = make_solver("gpt", shape, model, optim).to(device)
    seq_len = shape.question_len + shape.answer_len - 1  # inputs fed per problem (the last answer token is not)
    reference_cls = EncoderReference if cfg.reference == "encoder" else BlocksReference
    reference = reference_cls(shape.vocab_size, shape.question_len + shape.answer_len, cfg.d_model, cfg.layers, cfg.heads).to(device)
    trainer = ReferenceTrainer(reference, shape.question_len, optim)
    batches = [
        TensorBatch.from_numpy(task.sample(stream_rng(cfg.seed, "perf-train", i), cfg.batch, "train"), device)
        for i in range(4)
    ]
    return solver, trainer, batches, cfg.batch * seq_len


def _timed(step: Callable[[TensorBatch], Any], batches: list[TensorBatch], steps: int, device: torch.device) -> float:
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with autocast:
        for i in range(steps):
            step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_train_throughput(cfg: PerfTrainConfig) -> dict[str, Any]:
    """Tokens/s of both sides (medians over rounds) and the median per-round ratio project/reference."""
    solver, trainer, batches, tokens_per_step = build_sides(cfg)
    device = torch.device(cfg.device)
    sides = {"project": solver.train_step, "reference": trainer.train_step}
    for step in sides.values():
        _timed(step, batches, cfg.warmup, device)
    rates: dict[str, list[float]] = {"project": [], "reference": []}
    for round_index in range(cfg.rounds):
        order = ["project", "reference"] if round_index % 2 == 0 else ["reference", "project"]
        for name in order:
            seconds = _timed(sides[name], batches, cfg.steps, device)
            rates[name].append(tokens_per_step * cfg.steps / seconds)
    ratios = [p / r for p, r in zip(rates["project"], rates["reference"])]
    return {
        "config": asdict(cfg),
        "tokens_per_step": tokens_per_step,
        "parameters": {"project": solver.num_parameters(), "reference": sum(p.numel() for p in trainer.model.parameters())},
        "project_tokens_per_s": statistics.median(rates["project"]),
        "reference_tokens_per_s": statistics.median(rates["reference"]),
        "ratio": statistics.median(ratios),
        "rounds": {"project": rates["project"], "reference": rates["reference"], "ratio": ratios},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def profile_sides(cfg: PerfTrainConfig, steps: int = 10, top: int = 12) -> dict[str, str]:
    """torch.profiler tables (self CPU time, top ops) of `steps` steps of each side."""
    from torch.profiler import ProfilerActivity, profile

    solver, trainer, batches, _ = build_sides(cfg)
    device = torch.device(cfg.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    tables = {}
    for name, step in (("project", solver.train_step), ("reference", trainer.train_step)):
        _timed(step, batches, cfg.warmup, device)
        with profile(activities=activities) as prof:
            _timed(step, batches, steps, device)
        tables[name] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)
    return tables
