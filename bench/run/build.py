"""From settings to a frozen RunSpec, and from a RunSpec to a task and a fresh solver.

`build_spec` validates every part (task, solver and its options, model, optimiser, training config,
device, memory) before anything is written, so a bad run is one line and no folder. The spec holds
resolved defaults (a thinker's K and G for this task, the solver's batch), so the run id does not
depend on which defaults were typed. `resolve_run` is `build_spec` keeping the task and the typed
options it resolved (a `ResolvedRun`), which `bench run` hands on to `build`: one task, one resolution.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from bench.config import TrainConfig, parse_options
from bench.errors import UserError
from bench.run.precision import resolve_precision
from bench.run.spec import RunSpec, check_memory
from solvers.base import (
    ModelConfig,
    OptimConfig,
    Solver,
    SolverOptions,
    TaskShape,
    Unsupported,
    configure_options,
    new_solver,
    resolve_solver,
)
from solvers.errors import SolverError
from tasks.base import Task
from tasks.prompt import PROMPT_STYLES, PromptedTask
from tasks.registry import make_task


class Refused(UserError):
    """The solver cannot do this task (its `supports` gave a reason): a sweep skips such cells."""


def model_task(task: str, max_value: int | None, params: dict[str, Any], model: ModelConfig) -> Task:
    """The task as the model sees it: its questions laid out with the model's prompt style."""
    return PromptedTask(make_task(task, max_value, params), model.prompt)


def resolve_device(requested: str) -> str:
    if requested not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {requested!r} is not one of auto, cpu, cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA GPU is available here; use --device cpu or auto")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


@dataclass(frozen=True)
class ResolvedRun:
    """A run resolved once, where its spec is built: the spec, the task as the model sees it, and the
    solver's class and typed options resolved for the task. `bench run` hands it on to `start_run`,
    so the task is built and the solver name resolved once per run (`build(spec, resolved)`)."""

    spec: RunSpec
    task: Task
    solver_class: type[Solver]
    options: SolverOptions
    batch_note: str
    """Why the run uses its batch when the solver picks it per task (thinkers: K, G, batch), else ''."""

    def matches(self, spec: RunSpec) -> bool:
        """Whether this resolution is `spec`'s (the device aside: FLOP counting builds on the CPU)."""
        return dataclasses.replace(self.spec, device=spec.device) == spec


def build_spec(
    task: str,
    max_value: int | None,
    task_overrides: dict[str, Any],
    solver: str,
    solver_options: dict[str, Any],
    model: ModelConfig,
    optim: OptimConfig,
    train: TrainConfig,
    device: str = "auto",
    init: str | None = None,
) -> RunSpec:
    """Validate every part and freeze it into a spec. Raises one-line user errors (Refused when the
    solver cannot do the task). Solver option values may be command-line text: parsed here."""
    return resolve_run(task, max_value, task_overrides, solver, solver_options, model, optim, train, device, init).spec


def resolve_run(
    task: str,
    max_value: int | None,
    task_overrides: dict[str, Any],
    solver: str,
    solver_options: dict[str, Any],
    model: ModelConfig,
    optim: OptimConfig,
    train: TrainConfig,
    device: str = "auto",
    init: str | None = None,
) -> ResolvedRun:
    """`build_spec`, keeping what it resolved: the task (built once, here), the solver's class and
    options (its name resolved once, here) and why the batch. A batch of 0 is the solver's default."""
    model.validate()
    if model.prompt not in PROMPT_STYLES:  # the question layout is the task's (solvers/ never imports tasks/)
        raise SolverError(f"--prompt {model.prompt!r} is not valid; valid: {', '.join(PROMPT_STYLES)}")
    optim.validate()
    task_obj = model_task(task, max_value, task_overrides, model)
    shape = TaskShape.of(task_obj)
    cls, canonical, options = solver_config(solver, task, shape, solver_options)
    batch_defaulted = train.batch == 0  # 0 = the solver's default for this task (bench run without --batch)
    chosen, why = default_batch(cls, shape, options)
    if batch_defaulted:
        train = dataclasses.replace(train, batch=chosen)
    problems = train.validate()
    if problems:
        raise UserError(problems[0])
    reason = cls.check_run(shape, model, options, train)  # checks that need the model or training settings
    if reason:
        raise UserError(f"solver {canonical}: {reason}")
    resolved = resolve_device(device)
    train = dataclasses.replace(train, precision=resolve_precision(train.precision, resolved))  # auto -> what runs
    too_big = check_memory(shape, model, options, train, resolved, trace_in_stream=cls.uses_traces)
    if too_big:
        raise UserError(too_big)
    spec = RunSpec(task=task, task_params=task_obj.param_dict(), solver=canonical, solver_options=options.spec_dict(),
                   model=model, optim=optim, train=train, device=resolved, init=init)
    note = ""
    if cls.default_batch(shape, options) is not None:  # the solver picks its batch per task: say why
        note = f"batch {train.batch}{'' if batch_defaulted else ' (given)'}; {why}"
    return ResolvedRun(spec, task_obj, cls, options, note)


def solver_config(solver: str, task: str, shape: TaskShape, values: dict[str, Any]) -> tuple[type[Solver], str, Any]:
    """(class, canonical name, typed options resolved for the task); command-line text parsed first."""
    cls, canonical, flags = resolve_solver(solver)
    try:
        options = configure_options(cls, canonical, flags, shape, parse_options(cls.Options, values))
    except Unsupported as refused:
        raise Refused(f"solver {refused.solver} cannot do task {task}: {refused.reason}") from None
    return cls, canonical, options


def default_batch(cls: type[Solver], shape: TaskShape, options: Any) -> tuple[int, str]:
    """(batch, why): the solver's own choice for this task (thinkers: solvers/think_options.py), else 256."""
    return cls.default_batch(shape, options) or (TrainConfig.batch, "the default batch")


def build(spec: RunSpec, resolved: ResolvedRun | None = None) -> tuple[Task, Solver]:
    """The task and a freshly initialised solver (seeded) for a spec; with `resolved` (the spec's own
    resolution, from `resolve_run`) neither the task nor the solver's options are resolved again."""
    if resolved is not None and resolved.matches(spec):
        task, cls, options = resolved.task, resolved.solver_class, resolved.options
    else:
        spec.model.validate()
        spec.optim.validate()
        task = model_task(spec.task, None, spec.task_params, spec.model)
        cls, canonical, flags = resolve_solver(spec.solver)
        given = {k: v for k, v in spec.solver_options.items() if k not in flags}  # the name sets these
        options = configure_options(cls, canonical, flags, TaskShape.of(task), given)
    torch.manual_seed(spec.train.seed)
    solver = new_solver(cls, spec.solver, TaskShape.of(task), spec.model, spec.optim, options)
    return task, solver.to(spec.device)
