"""Training-step throughput: the project's `gpt` solver against a plain-PyTorch model of the same shape.

Both sides train on the same task batches with the same width, depth, heads, MLP ratio (4),
vocabulary, sequence length, batch, AdamW settings (lr 1e-3, betas (0.9, 0.98), no weight decay)
and gradient clipping (1.0). The project side is exactly what `bench run` executes per step,
`GPTSolver.train_step` (which also reports train accuracy); the reference side is the textbook loop:
forward, cross-entropy on the answer positions, zero_grad, backward, clip, step, `loss.item()`.

Timing is interleaved in the same process (rounds rotate which side goes first), so a change in
machine load hits every side alike; the ratio reported is the median of the per-round ratios.

The project also runs under `--precision bf16` (a third side, same init): the bf16/fp32 ratio, and a
roofline line: the step's FLOPs (torch's flop counter) per second against this machine's own
measured matmul peak in the same precision, so how far a step is from the hardware's limit shows.

Two references:
    encoder  torch's own nn.TransformerEncoderLayer (norm_first, GELU, no dropout, causal)
    blocks   hand-written pre-LN blocks with F.scaled_dot_product_attention (nanoGPT-shaped)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from typing import Any, Callable

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
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=(0.9, 0.98),
                                           weight_decay=optim.weight_decay)

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
    reference = reference_cls(shape.vocab_size, shape.question_len + shape.answer_len, cfg.d_model, cfg.layers,
                              cfg.heads).to(device)
    trainer = ReferenceTrainer(reference, shape.question_len, optim)
    batches = [
        TensorBatch.from_numpy(task.sample(stream_rng(cfg.seed, "perf-train", i), cfg.batch, "train"), device)
        for i in range(4)
    ]
    return solver, trainer, batches, cfg.batch * seq_len


def _timed(step: Callable[[TensorBatch], Any], batches: list[TensorBatch], steps: int, device: torch.device,
           precision: str = "fp32") -> float:
    """Seconds for `steps` steps under a precision's autocast (bench/run/precision.py, as `bench run`)."""
    from bench.run.precision import precision_context

    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        with precision_context(device, precision):  # per step, as `bench run`: autocast's weight casts are redone
            step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def step_flops(solver: Solver, batch: TensorBatch) -> int:
    """FLOPs of one training step (matmuls and attention, forward and backward), counted by
    `torch.utils.flop_counter` on a copy of the solver, so the timed one's optimizer state is untouched."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        copy.deepcopy(solver).train_step(batch)
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype, shape: tuple[int, int, int] = (1024, 1024, 1024),
                repeats: int = 5) -> float:
    """This machine's own matmul rate in GFLOP/s: the best of `repeats` (m x k) @ (k x n) products at
    this thread count, the roof a training step is held against. `measure_train_throughput` takes it
    at the model's own MLP shape (tokens x d_model @ d_model x 4 d_model) once per round, beside the
    steps, so machine load hits the roof and the step alike."""
    m, k, n = shape
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    a @ b  # warm-up (oneDNN builds its kernel once)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def _gpt_twin(cfg: PerfTrainConfig, shape: TaskShape, device: torch.device, pad: str = "attend") -> Solver:
    """A gpt solver with the fp32 side's init (same seed), so each side's weights and optimizer state are its own."""
    torch.manual_seed(cfg.seed)
    options = {"pad": pad} if pad != "attend" else None
    model = ModelConfig(cfg.d_model, cfg.layers, cfg.heads)
    return make_solver("gpt", shape, model, OptimConfig(), options=options).to(device)


def _summary(cfg: PerfTrainConfig, rates: dict[str, list[float]], roofs: dict[str, list[float]],
             flops: dict[str, int], tokens_per_step: int) -> dict[str, Any]:
    """One thread count's figures: medians over rounds, per-round ratios, the roofline per side."""
    ratios = [p / r for p, r in zip(rates["project"], rates["reference"])]
    out: dict[str, Any] = {
        "project_tokens_per_s": statistics.median(rates["project"]),
        "reference_tokens_per_s": statistics.median(rates["reference"]),
        "ratio": statistics.median(ratios),
        "rounds": {**rates, "ratio": ratios},
    }
    if not cfg.compare_bf16:
        return out
    fast = [name for name in ("project_bf16", "project_bf16_trim") if name in rates]
    steps_per_s = {name: statistics.median(rates[name]) / tokens_per_step for name in ("project", *fast)}
    peaks = {precision: statistics.median(values) for precision, values in roofs.items()}
    # GFLOP/s of the work each step does (the trimmed step does less of it), against the same roof.
    achieved = {name: flops[name] * steps_per_s[name] / 1e9 for name in steps_per_s}
    out.update({
        "project_bf16_tokens_per_s": statistics.median(rates["project_bf16"]),
        "bf16_ratio": statistics.median([b / f for b, f in zip(rates["project_bf16"], rates["project"])]),
        "step_ms": {"fp32": 1000 / steps_per_s["project"], "bf16": 1000 / steps_per_s["project_bf16"]},
        "gflop_per_step": flops["project"] / 1e9,
        "gflops": {"fp32": achieved["project"], "bf16": achieved["project_bf16"]},
        "matmul_peak_gflops": peaks,
        "roofline_share": {"fp32": achieved["project"] / peaks["fp32"],
                           "bf16": achieved["project_bf16"] / peaks["bf16"]},
    })
    if "project_bf16_trim" in rates:
        # tokens/s counts the untrimmed sequence (the same problems), so the ratio is a step-time ratio
        out.update({
            "project_bf16_trim_tokens_per_s": statistics.median(rates["project_bf16_trim"]),
            "bf16_trim_ratio": statistics.median([b / f for b, f in zip(rates["project_bf16_trim"], rates["project"])]),
            "trim_gflop_per_step": flops["project_bf16_trim"] / 1e9,
            "trim_roofline_share": achieved["project_bf16_trim"] / peaks["bf16"],
        })
        out["step_ms"]["bf16_trim"] = 1000 / steps_per_s["project_bf16_trim"]
    return out


def measure_train_throughput(cfg: PerfTrainConfig) -> dict[str, Any]:
    """Tokens/s of every side (medians over rounds): the project in fp32, the reference (fp32), and,
    with `cfg.compare_bf16`, the project under `--precision bf16` and (with `cfg.trim`) under bf16 with
    `--opt pad=trim`; the median per-round ratios project/reference, bf16/fp32 and bf16+trim/fp32; and
    the roofline: each step's GFLOP/s against this machine's measured matmul peak in its precision.

    `cfg.threads` (e.g. (1, 2)): every round times every side at every thread count, so load from other
    processes hits all of them alike; the figures per thread count are under "by_threads", and the
    top-level ones are the first count's."""
    from solvers.padding import kept_share

    solver, trainer, batches, tokens_per_step = build_sides(cfg)
    device = torch.device(cfg.device)
    sides: dict[str, tuple[Callable[[TensorBatch], Any], str]] = {
        "project": (solver.train_step, "fp32"), "reference": (trainer.train_step, "fp32")}
    flops: dict[str, int] = {}
    if cfg.compare_bf16:
        sides["project_bf16"] = (_gpt_twin(cfg, solver.shape, device).train_step, "bf16")
        flops["project"] = flops["project_bf16"] = step_flops(solver, batches[0])
        if cfg.trim:
            trimmed = _gpt_twin(cfg, solver.shape, device, pad="trim")
            sides["project_bf16_trim"] = (trimmed.train_step, "bf16")
            flops["project_bf16_trim"] = step_flops(trimmed, batches[0])
    own_threads = torch.get_num_threads()
    thread_counts = list(cfg.threads) or [own_threads]
    names = list(sides)
    rates = {t: {name: [] for name in names} for t in thread_counts}
    roofs: dict[int, dict[str, list[float]]] = {t: {"fp32": [], "bf16": []} for t in thread_counts}
    try:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for step, precision in sides.values():
                _timed(step, batches, cfg.warmup, device, precision)
        for round_index in range(cfg.rounds):
            shift = round_index % len(names)  # rotate which side goes first
            turn = round_index % len(thread_counts)  # and which thread count
            for threads in thread_counts[turn:] + thread_counts[:turn]:
                torch.set_num_threads(threads)
                for name in names[shift:] + names[:shift]:
                    step, precision = sides[name]
                    seconds = _timed(step, batches, cfg.steps, device, precision)
                    rates[threads][name].append(tokens_per_step * cfg.steps / seconds)
                if cfg.compare_bf16:  # the roof, measured in the same round at the same thread count
                    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                        roof = matmul_peak(device, dtype, (tokens_per_step, cfg.d_model, 4 * cfg.d_model))
                        roofs[threads][precision].append(roof)
    finally:
        torch.set_num_threads(own_threads)
    by_threads = {str(t): _summary(cfg, rates[t], roofs[t], flops, tokens_per_step) for t in thread_counts}
    extra: dict[str, Any] = {}
    if cfg.compare_bf16:
        extra["matmul_peak_shape"] = [tokens_per_step, cfg.d_model, 4 * cfg.d_model]
    if cfg.compare_bf16 and cfg.trim:
        extra["trim_kept_share"] = statistics.mean(kept_share(b.questions, solver.shape.answer_len) for b in batches)
    return {
        "config": asdict(cfg),
        "tokens_per_step": tokens_per_step,
        "parameters": {"project": solver.num_parameters(),
                       "reference": sum(p.numel() for p in trainer.model.parameters())},
        **by_threads[str(thread_counts[0])],
        **extra,
        "by_threads": by_threads,
        "threads": thread_counts[0],
        "torch": torch.__version__,
    }


def profile_sides(cfg: PerfTrainConfig, steps: int = 10, top: int = 12) -> dict[str, str]:
    """torch.profiler tables (self CPU time, top ops) of `steps` steps of each side: the project in fp32,
    the reference, and (as `cfg` asks) the project in bf16 and in bf16 with `--opt pad=trim`."""
    from torch.profiler import ProfilerActivity, profile

    solver, trainer, batches, _ = build_sides(cfg)
    device = torch.device(cfg.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sides: list[tuple[str, Callable[[TensorBatch], Any], str]] = [
        ("project", solver.train_step, "fp32"), ("reference", trainer.train_step, "fp32")]
    if cfg.compare_bf16:
        sides.append(("project, bf16", _gpt_twin(cfg, solver.shape, device).train_step, "bf16"))
        if cfg.trim:
            sides.append(("project, bf16 + pad=trim", _gpt_twin(cfg, solver.shape, device, "trim").train_step, "bf16"))
    tables = {}
    for name, step, precision in sides:
        _timed(step, batches, cfg.warmup, device, precision)
        with profile(activities=activities) as prof:
            _timed(step, batches, steps, device, precision)
        tables[name] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)
    return tables
