"""A run is a frozen spec; the hash of its canonical JSON is the run id.

Everything that changes what a run computes is in the spec (task and its resolved parameters,
solver and its resolved options, model size, optimiser, training length, seed, device); things that
only change how it is shown or stored (progress bars, the results folder) are not. Options left at
their defaults are written out in full, so `--thoughts 4` and the default 4 give the same id; the
exception is a field added after runs were stored (`TrainConfig.LATE`: `precision`), written only
when it differs from its default, so the ids of runs made before it stay what they were.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bench.config import LIMITS, MAX_BUDGET, TrainConfig
from solvers.config import ModelConfig, OptimConfig

__all__ = ["LIMITS", "MAX_BUDGET", "RunSpec", "TrainConfig", "check_memory"]

SPEC_VERSION = 1


@dataclass(frozen=True)
class RunSpec:
    task: str
    task_params: dict[str, Any]
    solver: str
    solver_options: dict[str, Any]
    model: ModelConfig
    optim: OptimConfig
    train: TrainConfig
    device: str
    init: str | None = None
    """Run id of a finished run to warm-start from, or None."""
    version: int = SPEC_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The canonical form (configs as plain dicts, sorted keys): what spec.json holds and the run id hashes."""
        data = json.loads(json.dumps(dataclasses.asdict(self), sort_keys=True))
        for name in TrainConfig.LATE:  # late fields at their default are left out: older run ids stay valid
            if data["train"].get(name) == getattr(TrainConfig, name):
                del data["train"][name]
        return data

    @property
    def run_id(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def train_config(self) -> TrainConfig:
        """The training config (an older spelling of `spec.train`)."""
        return self.train

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        """A spec from its JSON form; ValueError naming unknown fields (at the top or in a config)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown spec fields {sorted(unknown)}")
        values = dict(data)
        for key, config in (("model", ModelConfig), ("optim", OptimConfig), ("train", TrainConfig)):
            if key in values and not isinstance(values[key], config):
                values[key] = _config(config, key, values[key])
        return cls(**values)


def _config(config: type, key: str, value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"spec field {key} must be an object, not {type(value).__name__}")
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = set(value) - fields
    if unknown:
        raise ValueError(f"unknown {key} fields {sorted(unknown)}; valid: {', '.join(sorted(fields))}")
    if key == "train" and "eval_thoughts" in value:
        value = {**value, "eval_thoughts": tuple(value["eval_thoughts"])}
    return config(**value)


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


def check_memory(shape: Any, model: Any, options: Any, train: TrainConfig, device: str,
                 trace_in_stream: bool = True) -> str | None:
    """A reason to refuse the run when its estimated training memory exceeds the device's, else None.
    `trace_in_stream`: the solver writes the reference trace into its sequence (cot); other solvers'
    sequences hold question, thoughts and answer only (gpt never reads the trace as tokens)."""
    thoughts = int(getattr(options, "thoughts", 0) or 0)
    trace = shape.trace_len if trace_in_stream else 0
    tokens = shape.question_len + shape.answer_len + trace + max(thoughts, *train.eval_thoughts, 0) + 2
    copies = 2 if getattr(options, "split", False) else 1  # separate thinking and answering models
    params = copies * (12 * model.layers * model.d_model**2 + 2 * (shape.vocab_size + thoughts + tokens)
                       * model.d_model)
    problems = train.eval_size + train.train_size
    need = copies * training_memory_bytes(params, tokens, train.batch, model.d_model, model.layers, model.heads,
                                          problems)
    have = memory_available(device)
    if have is None or need <= have:
        return None
    return (f"--batch {train.batch}, --d-model {model.d_model}, --layers {model.layers} need about {need / 2**30:,.1f} "
            "GiB "
            f"to train ({device}), more than the {have / 2**30:,.1f} GiB here; make them smaller")
