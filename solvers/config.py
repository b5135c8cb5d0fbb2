"""What a solver is built from besides the task's shape: the model's size and the optimiser.

Torch-free, so the harness's option tables (bench/config.py) read these dataclasses without loading
torch. Each field's docstring is its help text (`field_help`): `bench run --help`, `bench sweep`
and sweep files all take names, types, defaults and help from here, cleanrl's `Args` style.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
from dataclasses import dataclass

from solvers.errors import SolverError

# How the weights start. Chosen by measurement, not convention (results/experiments/baseline-recipe):
#   gpt2     N(0, 0.02) for every matrix and embedding, residual projections scaled by 1/sqrt(2 layers)
#   pytorch  PyTorch's module defaults: N(0, 1) embeddings, Kaiming-uniform linear layers
WEIGHT_INITS: tuple[str, ...] = ("gpt2", "pytorch")


@functools.cache
def field_help(cls: type) -> dict[str, str]:
    """Field name -> the docstring written under it (one line), for a dataclass and its bases; a
    field declared by a shared helper (the thought budget, solvers/options.py) carries it in metadata."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # defined where no source is kept (an interactive session)
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for field, doc in zip(body, body[1:]):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                docs[field.target.id] = " ".join(doc.value.value.split())
    for declared in dataclasses.fields(cls):  # a field declared by a shared helper carries its help
        if "help" in declared.metadata:
            docs[declared.name] = declared.metadata["help"]
    return docs


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 128
    """Transformer width (the residual stream)."""
    layers: int = 2
    """Transformer blocks."""
    heads: int = 4
    """Attention heads (must divide --d-model)."""
    weight_init: str = "pytorch"
    """Weight init: gpt2 (N(0, 0.02)) or pytorch (PyTorch defaults, N(0, 1) embeddings); chosen by
    measurement: results/experiments/baseline-recipe."""
    prompt: str = "plain"
    """Question layout: plain (a b), query (a b =) or separated (a = b =); see tasks/prompt.py. Chosen
    by measurement: results/experiments/baseline-recipe (at the pytorch init, plain beat both)."""

    LIMITS = {"d_model": 16_384, "layers": 256, "heads": 256}  # beyond these: allocation failures

    def validate(self) -> None:
        # `prompt` names a question layout of tasks/prompt.py: checked where the spec is built
        # (bench/run/build.py), since solvers never import tasks.
        for name in ("d_model", "layers", "heads"):
            value = getattr(self, name)
            if not 1 <= value <= self.LIMITS[name]:
                raise SolverError(
                    f"--{name.replace('_', '-')}={value} is out of range; valid: 1 to {self.LIMITS[name]:,}"
                )
        if self.d_model % self.heads:
            raise SolverError(f"--heads={self.heads} does not divide --d-model={self.d_model}")
        if self.weight_init not in WEIGHT_INITS:
            raise SolverError(f"--weight-init {self.weight_init!r} is not valid; valid: {', '.join(WEIGHT_INITS)}")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay on the weight matrices. 0 by default: 1.0 took gpt on add mod 100 from 1
    to 5 of 5 seeds at 99% but mod 200 from 4 to 1 of 5 (REPORT section 11); `bench tune` searches it."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    warmup: int = 0
    """Linear learning-rate warm-up steps (0 = none)."""

    def validate(self) -> None:
        if not self.lr > 0:
            raise SolverError(f"--lr={self.lr} must be positive")
        if self.weight_decay < 0:
            raise SolverError(f"--weight-decay={self.weight_decay} must be >= 0")
        if self.warmup < 0:
            raise SolverError(f"--warmup={self.warmup} must be >= 0")

    def lr_factor(self, step: int) -> float:
        """The learning-rate multiplier at (0-based) training step `step`."""
        return 1.0 if self.warmup <= 0 else min(1.0, (step + 1) / self.warmup)
