"""The settings of `bench perf train`, kept free of torch so that the CLI starts fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reference = Literal["encoder", "blocks"]
REFERENCES = ("encoder", "blocks")


@dataclass(frozen=True)
class PerfTrainConfig:
    task: str = "add"
    """Task whose batches both sides train on."""
    max_value: int = 1000
    """The task's scale (add: the modulus, so the vocabulary is ~max_value tokens)."""
    d_model: int = 128
    """Width of both models."""
    layers: int = 2
    """Blocks of both models."""
    heads: int = 4
    """Attention heads of both models."""
    batch: int = 256
    """Problems per step."""
    steps: int = 20
    """Timed steps per side per round."""
    rounds: int = 5
    """Interleaved rounds (the reported figures are medians over rounds)."""
    warmup: int = 3
    """Untimed steps per side before the first round."""
    device: str = "cpu"
    """cpu or cuda (bf16 autocast on CUDA for both sides, as in `bench run`)."""
    reference: Reference = "encoder"
    """Which plain-PyTorch model to compare with (see the module docstring)."""
    seed: int = 0
    compare_bf16: bool = True
    """Also time the project under --precision bf16 and report the roofline (bench/perf/train.py)."""
    trim: bool = True
    """With compare_bf16: also time bf16 with gpt's --opt pad=trim (no work on question PADs)."""
    threads: tuple[int, ...] = ()
    """Thread counts timed in every round (interleaved); () = torch's current setting."""
