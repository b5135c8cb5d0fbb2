"""The solver contract and registry.

A solver knows no task by name: it sees a `TaskShape` (vocabulary sizes, lengths, whether reference
traces exist), a `ModelConfig` (the shared transformer's size), an `OptimConfig`, and its own typed
`Options`. It owns its optimizer so that solvers with unusual updates (RL thinkers with two
policies) fit the same harness:

    solver.train_step(batch) -> metrics        one optimisation step on a TensorBatch
    solver.predict(questions, thoughts=K)      greedy answers (B, answer_len) [+ thoughts]
    solver.checkpoint() / solver.restore(...)  model and optimizer state, tensors only

Names compose like the research notes (`think_fixed_blind_super_clean`); families register a parser
with `@register_solver`, and `make_solver` turns a name and option values into a solver.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, TypeVar

import torch
import torch.nn as nn

from bench.errors import register_user_error
from tasks.registry import coerce_value


class SolverError(ValueError):
    """Bad solver input (unknown name, invalid flag combination, bad option). One line for users."""


register_user_error(SolverError)


@dataclass(frozen=True)
class TaskShape:
    """What a solver may know about a task."""

    vocab_size: int
    question_len: int
    answer_len: int
    trace_vocab_size: int
    trace_len: int
    pad_id: int = 0

    @classmethod
    def of(cls, task: Any) -> TaskShape:
        return cls(task.vocab_size, task.question_len, task.answer_len, task.trace_vocab_size, task.trace_len)


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 128
    """Residual-stream width of each transformer."""
    layers: int = 2
    """Transformer blocks."""
    heads: int = 4
    """Attention heads; must divide d_model."""
    weight_init: str = "pytorch"
    """Weight initialisation: pytorch (PyTorch's defaults, N(0, 1) embeddings) or gpt2 (N(0, 0.02)).
    Chosen by measurement: results/experiments/baseline-recipe."""
    prompt: str = "plain"
    """Question layout: plain (a b), query (a b =) or separated (a = b =); see tasks/prompt.py.
    Chosen by measurement: results/experiments/baseline-recipe (at the pytorch init, plain beat both)."""

    LIMITS = {"d_model": 16_384, "layers": 256, "heads": 256}  # beyond these: allocation failures

    def validate(self) -> None:
        from solvers.core import WEIGHT_INITS
        from tasks.prompt import PROMPT_STYLES

        for name in ("d_model", "layers", "heads"):
            value = getattr(self, name)
            if not 1 <= value <= self.LIMITS[name]:
                raise SolverError(f"--{name.replace('_', '-')}={value} is out of range; valid: 1 to {self.LIMITS[name]:,}")
        if self.d_model % self.heads:
            raise SolverError(f"--heads={self.heads} does not divide --d-model={self.d_model}")
        if self.weight_init not in WEIGHT_INITS:
            raise SolverError(f"--weight-init {self.weight_init!r} is not valid; valid: {', '.join(WEIGHT_INITS)}")
        if self.prompt not in PROMPT_STYLES:
            raise SolverError(f"--prompt {self.prompt!r} is not valid; valid: {', '.join(PROMPT_STYLES)}")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay (the notes: weight decay is harmful here, so 0 by default)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    warmup: int = 0
    """Linear learning-rate warm-up over this many steps (0 = none)."""

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


def set_learning_rate(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Scale every parameter group's learning rate to factor x its base rate (recorded on first use),
    so a warm-up is a pure function of the step and a resumed run replays it exactly."""
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * factor


@dataclass
class TensorBatch:
    """A task batch as long tensors on the solver's device."""

    questions: torch.Tensor  # (B, question_len)
    answers: torch.Tensor  # (B, answer_len)
    traces: torch.Tensor  # (B, trace_len)

    @classmethod
    def from_numpy(cls, batch: Any, device: torch.device | str) -> TensorBatch:
        def move(array: Any) -> torch.Tensor:
            return torch.from_numpy(array).to(device=device, dtype=torch.long, non_blocking=True)

        return cls(move(batch.questions), move(batch.answers), move(batch.traces))


@dataclass
class Prediction:
    answers: torch.Tensor  # (B, answer_len) token ids
    thoughts: torch.Tensor | None = None  # (B, K) thought token ids for discrete thinkers


@dataclass(frozen=True)
class NoOptions:
    """This solver has no options of its own."""


class Solver(nn.Module):
    """Base class. Subclasses set `Options` and implement `loss` and `predict` (or `train_step`)."""

    name: str = ""
    Options: ClassVar[type] = NoOptions
    uses_traces: ClassVar[bool] = False
    """True when training needs the task's reference traces."""

    def __init__(self, shape: TaskShape, model: ModelConfig, optim: OptimConfig, options: Any) -> None:
        super().__init__()
        self.shape, self.model_config, self.optim_config, self.options = shape, model, optim, options

    # ---- set-up ---------------------------------------------------------------------------------
    def build_optimizer(self) -> None:
        """Call at the end of a subclass's __init__, once all parameters exist."""
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": self.optim_config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=self.optim_config.lr, betas=(0.9, 0.98))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- training ---------------------------------------------------------------------------------
    def loss(self, batch: TensorBatch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def train_step(self, batch: TensorBatch) -> dict[str, float]:
        self.train()
        loss, metrics = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.optim_config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.parameters(), self.optim_config.grad_clip)
        self.optimizer.step()
        return {"loss": float(loss.detach()), **metrics}

    # ---- inference ----------------------------------------------------------------------------------
    def predict(self, questions: torch.Tensor, thoughts: int | None = None) -> Prediction:
        raise NotImplementedError

    def thought_budget(self) -> int | None:
        """The trained thought budget K, or None for solvers that do not think."""
        return getattr(self.options, "thoughts", None)

    # ---- checkpoints ---------------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


# ---- the registry -------------------------------------------------------------------------------------
S = TypeVar("S", bound=type[Solver])


@dataclass(frozen=True)
class SolverFamily:
    """A registered family: `parse` maps a user-typed name to (canonical name, flags) or None."""

    cls: type[Solver]
    parse: Callable[[str], tuple[str, dict[str, bool]] | None]
    examples: tuple[str, ...]
    summary: str


_FAMILIES: list[SolverFamily] = []


def register_solver(
    name: str | None = None,
    *,
    parse: Callable[[str], tuple[str, dict[str, bool]] | None] | None = None,
    examples: tuple[str, ...] = (),
    summary: str = "",
) -> Callable[[S], S]:
    """Class decorator. `@register_solver("gpt")` for a single name; families with composable
    names pass `parse` (name -> (canonical name, flags), None if not theirs, SolverError if invalid)."""

    def wrap(cls: S) -> S:
        if parse is None and name is None:
            raise RuntimeError("register_solver needs a name or a parse function")
        parser = parse or (lambda typed: (typed, {}) if typed == name else None)
        _FAMILIES.append(
            SolverFamily(cls, parser, examples or ((name,) if name else ()), summary or (cls.__doc__ or "").strip().splitlines()[0])
        )
        return cls

    return wrap


def solver_families() -> list[SolverFamily]:
    _load_builtin_solvers()
    return list(_FAMILIES)


def resolve_solver(name: str) -> tuple[type[Solver], str, dict[str, bool]]:
    """(class, canonical name, flags) for a user-typed solver name, or a one-line SolverError."""
    for family in solver_families():
        parsed = family.parse(name)
        if parsed is not None:
            return family.cls, parsed[0], parsed[1]
    known = ", ".join(example for family in _FAMILIES for example in family.examples)
    raise SolverError(f"unknown solver {name!r}; valid: {known}")


def option_fields(cls: type[Solver]) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls.Options)}


def make_options(cls: type[Solver], solver_name: str, flags: dict[str, bool], values: dict[str, Any]) -> Any:
    """The solver's typed Options from flags (parsed from the name) and user option values."""
    fields = option_fields(cls)
    for key in values:
        if key not in fields or key in flags:
            valid = ", ".join(f"--{k.replace('_', '-')}" for k in fields if k not in flags) or "none"
            raise SolverError(f"option --{key.replace('_', '-')} does not apply to solver {solver_name}; its options: {valid}")
    hints = typing.get_type_hints(cls.Options)
    typed: dict[str, Any] = {}
    for key, value in values.items():
        kind = hints[key]
        if isinstance(value, str) and kind is not str:
            value = coerce_value(value, kind, f"--{key.replace('_', '-')}")
        if typing.get_origin(kind) is typing.Literal and value not in typing.get_args(kind):
            choices = ", ".join(map(str, typing.get_args(kind)))
            raise SolverError(f"--{key.replace('_', '-')}={value!r} is not one of {choices}")
        typed[key] = value
    options = cls.Options(**{**flags, **typed})
    validate = getattr(options, "validate", None)
    if validate is not None:
        validate()
    return options


def make_solver(
    name: str,
    shape: TaskShape,
    model: ModelConfig | None = None,
    optim: OptimConfig | None = None,
    options: dict[str, Any] | None = None,
) -> Solver:
    """Build a solver by name: `make_solver("gpt", TaskShape.of(task))`."""
    cls, canonical, flags = resolve_solver(name)
    model = model or ModelConfig()
    optim = optim or OptimConfig()
    model.validate()
    optim.validate()
    typed = make_options(cls, canonical, flags, options or {})
    if cls.uses_traces or getattr(typed, "super", False):
        if shape.trace_len == 0:
            raise SolverError(f"solver {canonical} needs reference traces, and this task has none")
    solver = cls(shape, model, optim, typed)
    solver.name = canonical
    return solver


_INFRASTRUCTURE = {"base", "core"}


def _load_builtin_solvers() -> None:
    """Import every module of the solvers package so each runs its @register_solver decorator."""
    import importlib
    import pkgutil

    import solvers

    for module in pkgutil.iter_modules(solvers.__path__):
        if module.name not in _INFRASTRUCTURE and not module.name.startswith("_"):
            importlib.import_module(f"solvers.{module.name}")
