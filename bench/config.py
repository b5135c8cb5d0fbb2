"""Every run option in one place: four dataclasses, one docstring per field (cleanrl's `Args` style).

    RunChoice     what to train: task, solver, scale, device, warm start
    TrainConfig   how long and on what: steps, batch, evaluation sizes, seed, extra thought budgets
    ModelConfig   the transformer's size, init and question layout   (solvers/config.py: solvers read it)
    OptimConfig   AdamW and the learning-rate schedule                (solvers/config.py)

Names, types, defaults and help come from these fields and nowhere else: `bench run`'s flags
(`command_options`), `bench sweep`'s flags and the settings a sweep file may use (`run_options`),
and RunSpec (bench/run/spec.py), which holds the typed configs. The few solver options with flags
of their own (`--thoughts`, `--estimator`, ...: SOLVER_FLAGS) come the same way from the solvers'
Options dataclasses. Text from a command line or a TOML file
is parsed here, at the edge (`parse_run_option`, `parse_options`); solvers receive typed values.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, TypeVar

from solvers.config import ModelConfig, OptimConfig, field_help
from solvers.continuous_options import ContinuousOptions
from solvers.options import MAX_BUDGET, ThoughtBudgetOptions
from solvers.think_options import ThinkOptions

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
PRECISIONS = ("fp32", "bf16", "auto")  # bench/run/precision.py resolves auto and applies them


@dataclass(frozen=True)
class RunChoice:
    task: str = field(metadata={"short": "-t"})
    """Task name (see `bench tasks`)."""
    solver: str = field(default="gpt", metadata={"short": "-s"})
    """Solver name (see `bench solvers`), e.g. gpt, pause, continuous, think_fixed_blind_super_clean."""
    max: Optional[int] = field(default=None, metadata={"short": "-m"})
    """The task's scale (add: modulus; sort: value range; graph: nodes; sat: variables)."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""
    init: Optional[str] = None
    """Warm-start from a finished run's model (run id)."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 5000
    """Training steps at most (early stop at --target)."""
    batch: int = 256
    """Problems per step (the notes: >= 64 is needed at larger scales)."""
    target: float = 0.99
    """Stop early once held-out (monitor) accuracy reaches this; a seed succeeds when its test accuracy does."""
    eval_every: int = 100
    """Steps between held-out evaluations and checkpoints."""
    monitor_size: int = 512
    """Held-out problems scored at each periodic evaluation (default: 512, at most --eval-size)."""
    eval_size: int = 2000
    """Held-out problems in the final evaluation."""
    train_size: int = 0
    """Train on N fixed problems (grokking set-up); 0 = fresh problems every step."""
    seed: int = 0
    """Seeds model init, data and sampling."""
    eval_thoughts: tuple[int, ...] = ()
    """Also evaluate at these thought budgets, e.g. 0,2,4,8 (solvers with a thought budget: thinkers, pause,
    continuous, looped)."""
    precision: str = "fp32"
    """Compute precision: fp32, bf16 (matmuls and attention in bf16; fp32 weights, optimizer and loss) or
    auto (bf16 on CUDA and on CPUs with a bf16 matrix engine, e.g. AMX; else fp32)."""

    LATE = ("precision",)  # added after runs were stored: in the spec (and run id) only when not the default

    def validate(self) -> list[str]:
        problems = []
        for name in ("steps", "batch", "eval_every", "monitor_size", "eval_size"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')}={getattr(self, name)} must be at least 1")
        for name, high in LIMITS.items():
            if getattr(self, name) > high:
                low = 0 if name in ("seed", "train_size") else 1
                problems.append(
                    f"--{name.replace('_', '-')}={getattr(self, name)} is out of range; valid: {low} to {high:,}"
                )
        if not 0.0 < self.target <= 1.0:
            problems.append(f"--target={self.target} must be in (0, 1]")
        if self.train_size < 0:
            problems.append(f"--train-size={self.train_size} must be >= 0")
        if self.seed < 0:
            problems.append(f"--seed={self.seed} must be >= 0")
        if self.precision not in PRECISIONS:
            problems.append(f"--precision {self.precision!r} is not valid; valid: {', '.join(PRECISIONS)}")
        if any(k < 0 or k > MAX_BUDGET for k in self.eval_thoughts):
            problems.append(f"--eval-thoughts {list(self.eval_thoughts)}: budgets must be 0 to {MAX_BUDGET}")
        return problems


CONFIGS: tuple[type, ...] = (RunChoice, TrainConfig, ModelConfig, OptimConfig)


@dataclass(frozen=True)
class RunOption:
    """One run option as the dataclasses declare it."""

    name: str
    kind: Any
    default: Any  # dataclasses.MISSING for a required one
    help: str
    owner: type
    short: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def run_options() -> dict[str, RunOption]:
    """Every run option, in declaration order: name -> RunOption."""
    options: dict[str, RunOption] = {}
    for cls in CONFIGS:
        hints, docs = typing.get_type_hints(cls), field_help(cls)
        for f in dataclasses.fields(cls):
            options[f.name] = RunOption(
                f.name, hints[f.name], f.default, docs.get(f.name, ""), cls, f.metadata.get("short")
            )
    return options


# The solver options `bench run` and `bench sweep` take as flags of their own (those most runs set),
# each declared, typed and documented by the Options dataclass that owns it (`thoughts`: the budget
# every thinking solver shares, solvers/options.py). Every other solver option is `--opt key=value`.
SOLVER_FLAGS: dict[str, type] = {
    "thoughts": ThoughtBudgetOptions,
    "estimator": ThinkOptions,
    "baseline": ThinkOptions,
    "group": ThinkOptions,
    "reward": ThinkOptions,
    "epsilon": ThinkOptions,
    "think_layer": ContinuousOptions,
}


def solver_flag_options() -> dict[str, RunOption]:
    """The solver flags as options, from their Options fields: the type made optional (None = the
    solver's own default), the help the field's docstring, prefixed with which solvers take it
    (the class's LABEL), with a Literal's choices and the default added."""
    options: dict[str, RunOption] = {}
    for name, owner in SOLVER_FLAGS.items():
        declared = {f.name: f for f in dataclasses.fields(owner)}[name]
        kind, text = typing.get_type_hints(owner)[name], field_help(owner)[name]
        if _optional(kind):
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        if typing.get_origin(kind) is typing.Literal:  # typed text: make_options names a bad choice
            text += f" Valid: {', '.join(map(str, typing.get_args(kind)))}."
            kind = str
        if "budget_minimum" not in declared.metadata:  # the shared budget's help names its solvers and default
            text = f"{owner.LABEL}: {text[:1].lower()}{text[1:]}" if owner.LABEL else text
            text += "" if declared.default is None else f" Default: {declared.default}."
        options[name] = RunOption(name, Optional[kind], None, text, owner, declared.metadata.get("short"))
    return options


def run_option_types() -> dict[str, Any]:
    """Setting name -> declared type, for sweeps and sweep files."""
    return {name: option.kind for name, option in run_options().items()}


# ---- text at the edge -----------------------------------------------------------------------------


def parse_budgets(value: Any, label: str) -> tuple[int, ...]:
    """Thought budgets from '0,2,4', [0, 2, 4] or a single int (one-line error naming `label`); the
    parser of every budget list: sweep settings, `bench run --eval-thoughts`, `bench perf` --thoughts."""
    from bench.errors import UserError

    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        budgets = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise UserError(f"{label}={value!r} must be thought budgets, e.g. 0,2,4") from None
    if any(k < 0 for k in budgets):
        raise UserError(f"{label}={value!r}: budgets must be >= 0")
    return budgets


def parse_run_option(name: str, value: Any, kind: Any) -> Any:
    """A run option's value from a CLI string or a TOML value, as its declared type."""
    from bench.errors import UserError
    from tasks.registry import coerce_value

    if typing.get_origin(kind) is tuple:  # eval_thoughts: a list of budgets
        return parse_budgets(value, name)
    if _optional(kind):
        if value is None:
            return None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if isinstance(value, str):
        return value if kind is str else coerce_value(value, kind, name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    wrong_type = kind in (int, float, str, bool) and not isinstance(value, kind)
    if wrong_type or (kind is int and isinstance(value, bool)):  # TOML `steps = true` is not 1
        raise UserError(f"{name}={value!r} is not a valid {kind.__name__}")
    return value


def parse_options(options_class: type, values: dict[str, Any]) -> dict[str, Any]:
    """A solver's option values with command-line text parsed into the Options fields' types
    (unknown names pass through: make_options names them with the valid ones)."""
    from tasks.registry import coerce_value

    hints = typing.get_type_hints(options_class)
    return {
        key: coerce_value(value, hints[key], f"--{key.replace('_', '-')}")
        if isinstance(value, str) and key in hints and hints[key] is not str
        else value
        for key, value in values.items()
    }


def _optional(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)


# ---- from settings to configs ---------------------------------------------------------------------


def configs_from(values: dict[str, Any]) -> tuple[dict[str, Any], TrainConfig, ModelConfig, OptimConfig]:
    """(RunChoice settings, TrainConfig, ModelConfig, OptimConfig) from typed run-option values; what
    `bench run` and every sweep cell share, so the same settings give the same run id."""
    pick = {cls: {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values} for cls in CONFIGS}
    train = pick[TrainConfig]
    # The monitor set is at most the final evaluation's size, unless given.
    train.setdefault("monitor_size", min(TrainConfig.monitor_size, train.get("eval_size", TrainConfig.eval_size)))
    return pick[RunChoice], TrainConfig(**train), ModelConfig(**pick[ModelConfig]), OptimConfig(**pick[OptimConfig])


# ---- command-line flags ---------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def command_options(names: Iterable[str], overrides: dict[str, dict[str, Any]] | None = None,
                    as_text: bool = False) -> Callable[[F], F]:
    """Decorator for a typer command taking `**config`: adds one typer option per run option or
    solver flag (SOLVER_FLAGS) in `names`, its flag, type, default and help read from the dataclasses.
    `overrides` changes a field's presentation for this command ({"batch": {"default": None, "help": ...}}); `as_text`
    makes every option an optional string (sweeps: comma-separated values, a list is an axis).
    Options whose type has no flag form (a tuple) are taken as text, parsed by parse_run_option."""
    import typer

    def wrap(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        table = {**run_options(), **solver_flag_options()}
        added = []
        for name in names:
            option = table[name]
            shown = {"default": option.default, "help": option.help, **(overrides or {}).get(name, {})}
            kind, default = option.kind, shown["default"]
            if as_text or typing.get_origin(kind) is tuple:
                kind, default = Optional[str], None if as_text or default == () else default
            elif _optional(kind):
                kind = Optional[[k for k in typing.get_args(kind) if k is not type(None)][0]]
            if default is dataclasses.MISSING:
                default = ...
            decls = [option.flag] + ([option.short] if option.short else [])
            added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                                           default=typer.Option(default, *decls, help=shown["help"])))
        # The command's own parameters follow the derived ones; typer passes every one by name.
        params = added + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept]
        func.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        func.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
        return func

    return wrap
