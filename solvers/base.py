"""The solver contract and registry.

A solver knows no task by name: it sees a `TaskShape` (vocabulary sizes, lengths, whether reference
traces exist), a `ModelConfig` (the shared transformer's size), an `OptimConfig`, and its own typed
`Options`. It owns its optimizer so that solvers with unusual updates (RL thinkers with two
policies) fit the same harness:

    solver.train_step(batch) -> metrics        one optimisation step on a TensorBatch
    solver.predict(questions, thoughts=K)      greedy answers (B, answer_len) [+ thoughts]
    solver.checkpoint() / solver.restore(...)  model and optimizer state, tensors only

Optional hooks, declared with their defaults on `Solver` below and on `SolverOptions` (solvers/options.py,
torch-free, like the thought budget every thinking solver shares): `supports`,
`check_run`, `default_batch`, `diagnostics`, `Options.validate`, `Options.resolved`.

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

from solvers.config import ModelConfig, OptimConfig
from solvers.errors import SolverError, Unsupported
from solvers.options import NoOptions, SolverOptions, TaskShape, check_thoughts

# Re-exported: the solver's inputs (the options' classes live torch-free in solvers/options.py).
__all__ = ["ModelConfig", "NoOptions", "OptimConfig", "SolverError", "SolverOptions", "TaskShape", "Unsupported"]


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


class Solver(nn.Module):
    """Base class. Subclasses set `Options` and implement `loss` and `predict` (or `train_step`)."""

    name: str = ""
    Options: ClassVar[type[SolverOptions]] = NoOptions
    uses_traces: ClassVar[bool] = False
    """True when training needs the task's reference traces."""

    # ---- hooks the harness calls (override what applies; every one has a default) -------------------
    @classmethod
    def supports(cls, shape: TaskShape, options: Any) -> str | None:
        """Why this solver cannot do a task of this shape with these options, or None. Checked in one
        place, `configure` (so by make_solver and by bench's build_spec); a sweep skips refused cells."""
        if cls.uses_traces and shape.trace_len == 0:
            return "it needs the task's reference traces, and this task has none"
        return None

    @classmethod
    def check_run(cls, shape: TaskShape, model: ModelConfig, options: Any, train: Any) -> str | None:
        """Why the run cannot start given the model and training settings (`train`: bench's
        TrainConfig, e.g. its eval_thoughts), or None. Called by bench's build_spec."""
        return None

    @classmethod
    def default_batch(cls, shape: TaskShape, options: Any) -> tuple[int, str] | None:
        """(problems per step, why) when this solver picks its own batch for a task, else None (the
        harness's default). Used when `bench run` is given no --batch."""
        return None

    def diagnostics(self, task: Any, held_out: Any, device: Any) -> dict[str, Any]:
        """Extra JSON-able measurements stored with the final evaluation (thinkers: thought entropy,
        agreement with the trace, usefulness). Default: none."""
        return {}

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
        if not (
            isinstance(cls.Options, type)
            and issubclass(cls.Options, SolverOptions)
            and dataclasses.is_dataclass(cls.Options)
        ):
            raise RuntimeError(f"{cls.__name__}.Options must be a dataclass subclassing solvers.base.SolverOptions")
        parser = parse or (lambda typed: (typed, {}) if typed == name else None)
        _FAMILIES.append(
            SolverFamily(
                cls,
                parser,
                examples or ((name,) if name else ()),
                summary or (cls.__doc__ or "").strip().splitlines()[0],
            )
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


def make_options(cls: type[Solver], solver_name: str, flags: dict[str, bool], values: dict[str, Any]) -> SolverOptions:
    """The solver's typed, validated Options from flags (parsed from the name) and option values.
    Values must already be typed: text from a command line is parsed by the harness (bench.config)."""
    fields = option_fields(cls)
    hints = typing.get_type_hints(cls.Options)
    for key, value in values.items():
        flag = f"--{key.replace('_', '-')}"
        if key not in fields or key in flags:
            valid = ", ".join(f"--{k.replace('_', '-')}" for k in fields if k not in flags) or "none"
            raise SolverError(f"option {flag} does not apply to solver {solver_name}; its options: {valid}")
        kind = hints[key]
        if (
            isinstance(value, str)
            and str not in (kind, *typing.get_args(kind))
            and typing.get_origin(kind) is not typing.Literal
        ):
            raise SolverError(
                f"{flag}={value!r} is text; solvers take typed values (parse it with bench.config.parse_options)"
            )
        if typing.get_origin(kind) is typing.Literal and value not in typing.get_args(kind):
            raise SolverError(f"{flag}={value!r} is not one of {', '.join(map(str, typing.get_args(kind)))}")
    options = cls.Options(**{**flags, **values})
    check_thoughts(options)  # the thought budget's one range rule, for every solver that has one
    options.validate()
    return options


def configure(
    name: str, shape: TaskShape, values: dict[str, Any] | None = None
) -> tuple[type[Solver], str, SolverOptions]:
    """(class, canonical name, options resolved for this task) for a solver name and option values."""
    cls, canonical, flags = resolve_solver(name)
    return cls, canonical, configure_options(cls, canonical, flags, shape, values or {})


def configure_options(cls: type[Solver], canonical: str, flags: dict[str, bool], shape: TaskShape,
                      values: dict[str, Any]) -> SolverOptions:
    """A resolved solver's typed options for this task (make_options, then `resolved`). The one place
    `supports` is checked: a refusal is an `Unsupported` error."""
    options = make_options(cls, canonical, flags, values).resolved(shape)
    reason = cls.supports(shape, options)
    if reason:
        raise Unsupported(canonical, reason)
    return options


def new_solver(cls: type[Solver], canonical: str, shape: TaskShape, model: ModelConfig, optim: OptimConfig,
               options: SolverOptions) -> Solver:
    """A fresh solver of a resolved class with configured options (`configure_options`)."""
    solver = cls(shape, model, optim, options)
    solver.name = canonical
    return solver


def make_solver(
    name: str,
    shape: TaskShape,
    model: ModelConfig | None = None,
    optim: OptimConfig | None = None,
    options: dict[str, Any] | None = None,
) -> Solver:
    """Build a solver by name: `make_solver("gpt", TaskShape.of(task))`."""
    model = model or ModelConfig()
    optim = optim or OptimConfig()
    model.validate()
    optim.validate()
    cls, canonical, typed = configure(name, shape, options)
    return new_solver(cls, canonical, shape, model, optim, typed)


_INFRASTRUCTURE = {"base", "config", "core", "errors", "options"}


def _load_builtin_solvers() -> None:
    """Import every module of the solvers package so each runs its @register_solver decorator."""
    import importlib
    import pkgutil

    import solvers

    for module in pkgutil.iter_modules(solvers.__path__):
        if module.name not in _INFRASTRUCTURE and not module.name.startswith("_"):
            importlib.import_module(f"solvers.{module.name}")
