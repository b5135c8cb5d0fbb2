"""A run is a frozen spec; the hash of its canonical JSON is the run id.

Everything that changes what a run computes is in the spec (task and its resolved parameters,
solver and its resolved options, model size, optimiser, training length, seed, device); things that
only change how it is shown or stored (progress bars, the results folder) are not. Options left at
their defaults are written out in full, so `--thoughts 4` and the default 4 give the same id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSION = 1

# Upper bounds, refused up front with the valid range (beyond them a run ends in an allocation
# failure or an integer overflow, after its folder was made). seed * 1_000_003 + step seeds torch,
# which takes 64-bit seeds: 2**32 - 1 leaves room.
LIMITS = {
    "steps": 100_000_000,
    "batch": 65_536,
    "eval_every": 100_000_000,
    "monitor_size": 1_000_000,
    "eval_size": 1_000_000,
    "train_size": 10_000_000,
    "seed": 2**32 - 1,
}
MAX_BUDGET = 4096


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 5000
    """Training steps at most (early stop at --target)."""
    batch: int = 256
    """Problems per step (the notes: >= 64 is needed at larger scales)."""
    target: float = 0.99
    """Stop once held-out accuracy reaches this."""
    eval_every: int = 100
    """Steps between held-out evaluations (and checkpoints)."""
    monitor_size: int = 512
    """Held-out problems scored at each periodic evaluation."""
    eval_size: int = 2000
    """Held-out problems scored at the final evaluation."""
    train_size: int = 0
    """Train on this many fixed problems (grokking set-up); 0 = a fresh stream every step."""
    seed: int = 0
    """Seeds the model init, the training data and all sampling."""
    eval_thoughts: tuple[int, ...] = ()
    """Extra thought budgets to evaluate the trained model at (thinkers, pause, continuous)."""

    def validate(self) -> list[str]:
        problems = []
        for name in ("steps", "batch", "eval_every", "monitor_size", "eval_size"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')}={getattr(self, name)} must be at least 1")
        for name, high in LIMITS.items():
            if getattr(self, name) > high:
                low = 0 if name in ("seed", "train_size") else 1
                problems.append(f"--{name.replace('_', '-')}={getattr(self, name)} is out of range; valid: {low} to {high:,}")
        if not 0.0 < self.target <= 1.0:
            problems.append(f"--target={self.target} must be in (0, 1]")
        if self.train_size < 0:
            problems.append(f"--train-size={self.train_size} must be >= 0")
        if self.seed < 0:
            problems.append(f"--seed={self.seed} must be >= 0")
        if any(k < 0 or k > MAX_BUDGET for k in self.eval_thoughts):
            problems.append(f"--eval-thoughts {list(self.eval_thoughts)}: budgets must be 0 to {MAX_BUDGET}")
        return problems


@dataclass(frozen=True)
class RunSpec:
    task: str
    task_params: dict[str, Any]
    solver: str
    solver_options: dict[str, Any]
    model: dict[str, Any]
    optim: dict[str, Any]
    train: dict[str, Any]
    device: str
    init: str | None = None
    """Run id of a finished run to warm-start from, or None."""
    version: int = SPEC_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), sort_keys=True))

    @property
    def run_id(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def train_config(self) -> TrainConfig:
        values = dict(self.train)
        values["eval_thoughts"] = tuple(values.get("eval_thoughts", ()))
        return TrainConfig(**values)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown spec fields {sorted(unknown)}")
        return cls(**data)


def training_memory_bytes(
    params: int, tokens: int, batch: int, d_model: int, layers: int, heads: int, problems: int
) -> int:
    """A rough upper estimate of training memory: weights, gradients and AdamW state (16 bytes per
    parameter), activations kept for backward (~16 floats per token per layer and width, plus the
    attention matrices) and the stored problems (int64 tokens). Only for refusing what cannot fit."""
    weights = 16 * params
    activations = 4 * batch * tokens * layers * (16 * d_model + 3 * heads * tokens)
    data = 8 * problems * tokens
    return weights + activations + data


def memory_available(device: str) -> int | None:
    """Bytes of memory on the device (physical RAM for cpu), or None when unknown."""
    if device == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    try:
        import os

        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(shape: Any, model: Any, options: Any, train: TrainConfig, device: str) -> str | None:
    """A reason to refuse the run when its estimated training memory exceeds the device's, else None."""
    thoughts = int(getattr(options, "thoughts", 0) or 0)
    tokens = shape.question_len + shape.answer_len + shape.trace_len + max(thoughts, *train.eval_thoughts, 0) + 2
    copies = 2 if getattr(options, "split", False) else 1  # separate thinking and answering models
    params = copies * (12 * model.layers * model.d_model**2 + 2 * (shape.vocab_size + thoughts + tokens) * model.d_model)
    problems = train.eval_size + train.train_size
    need = copies * training_memory_bytes(params, tokens, train.batch, model.d_model, model.layers, model.heads, problems)
    have = memory_available(device)
    if have is None or need <= have:
        return None
    return (f"--batch {train.batch}, --d-model {model.d_model}, --layers {model.layers} need about {need / 2**30:,.1f} GiB "
            f"to train ({device}), more than the {have / 2**30:,.1f} GiB here; make them smaller")
