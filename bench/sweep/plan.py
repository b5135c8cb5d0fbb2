"""Sweeps: a grid of settings expanded into ordinary runs, one run id per cell.

A sweep is a mapping from setting names to lists of values (one value = fixed). A setting is any
run option (task, solver, max, seed, steps, batch, lr, weight_decay, d_model, layers, heads, ...),
any parameter of the task (`terms`, `base`, ...) or any option of the solver (`thoughts`,
`estimator`, ...). The grid is the product of the lists; each cell keeps only the settings that
apply to its task and solver, so `thoughts=[2, 4]` multiplies the thinkers' cells, not gpt's, and
cells that come out identical are run once (they have the same run id).

Every cell is an ordinary run (`bench.run.train.start_run`): a finished cell is skipped because its run
id is finished, and an interrupted cell resumes from its checkpoint, so running an interrupted sweep
again continues where it stopped. How cells are executed (in this process, a local process pool, a
Ray cluster) is bench/sweep/executors.py; the CLI is bench/cli/commands_sweep.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from bench.errors import UserError
from bench.run.spec import RunSpec, TrainConfig
from bench.run.store import RunDir, atomic_write_json, find_run

SWEEPS_DIR = "sweeps"

# Settings that are not fields of TrainConfig / ModelConfig / OptimConfig.
TOP_LEVEL = {"task": str, "solver": str, "max": int, "device": str, "init": str}
# Settings given as a list of values per cell: an axis over them needs a list of lists (TOML).
LIST_VALUED = {"eval_thoughts"}
ALIASES = {"seeds": "seed", "solvers": "solver", "tasks": "task", "k": "thoughts"}
DEFAULTS: dict[str, Any] = {"solver": "gpt", "device": "auto"}
SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SPAN = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def run_options() -> dict[str, Any]:
    """Every run option a sweep can set, with its type: the spec's own dataclasses, read not copied."""
    from solvers.base import ModelConfig, OptimConfig

    options: dict[str, Any] = dict(TOP_LEVEL)
    for cls in (TrainConfig, ModelConfig, OptimConfig):
        options.update(typing.get_type_hints(cls))
    return options


def normalise_name(name: str) -> str:
    key = name.strip().replace("-", "_")
    return ALIASES.get(key, key)


# ---- parsing values ------------------------------------------------------------------------------


def split_values(text: str, option: str) -> list[str]:
    """'50,100,200' -> ['50', '100', '200']; '0-4' -> ['0', ..., '4'] (integer spans, inclusive)."""
    values: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        span = SPAN.match(part)
        if span:
            low, high = int(span.group(1)), int(span.group(2))
            if high < low:
                raise UserError(f"{option} {text!r}: span {part!r} runs backwards; write low-high, e.g. 0-4")
            if high - low >= 10_000:
                raise UserError(f"{option} {text!r}: span {part!r} has over 10000 values")
            values.extend(str(v) for v in range(low, high + 1))
        else:
            values.append(part)
    if not values:
        raise UserError(f"{option} {text!r} gives no values; e.g. {option} 1,2,3")
    return values


def parse_budgets(value: Any, label: str) -> tuple[int, ...]:
    """Thought budgets from '0,2,4', [0, 2, 4] or a single int (one-line error naming `label`); the
    parser of every budget list: sweep settings, `bench run --eval-thoughts`, `bench perf` --thoughts."""
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


def coerce_run_option(name: str, value: Any, kind: Any) -> Any:
    """A run option's value from a CLI string or a TOML value, as its declared type."""
    from tasks.registry import coerce_value

    if name in LIST_VALUED:
        return parse_budgets(value, name)
    if value is None and name == "init":
        return None
    if isinstance(value, str):
        if kind is str:
            return value
        return coerce_value(value, kind, name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    wrong_type = kind in (int, float, str, bool) and not isinstance(value, kind)
    if wrong_type or (kind is int and isinstance(value, bool)):  # TOML `steps = true` is not 1
        raise UserError(f"{name}={value!r} is not a valid {kind.__name__}")
    return value


# ---- the grid ------------------------------------------------------------------------------------


@dataclass
class Grid:
    """Setting name -> values, in the order given; a one-value list is a fixed setting."""

    axes: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    name: str | None = None
    description: str = ""
    # A sweep file's [[part]] tables: each adds its own settings to `axes`, and the sweep is the union
    # of the parts' grids (e.g. gpt over five moduli, thinkers at one). Empty: the one grid `axes`.
    parts: list[dict[str, list[Any]]] = dataclasses.field(default_factory=list)

    def set(self, name: str, values: list[Any]) -> None:
        key = normalise_name(name)
        if not key:
            raise UserError(f"empty setting name in {name!r}")
        if not values:
            raise UserError(f"setting {key!r} has no values")
        self.axes[key] = list(values)

    def merged(self, other: Grid) -> Grid:
        """This grid with `other`'s settings replacing same-named ones (the CLI over a TOML file)."""
        axes = dict(self.axes)
        axes.update(other.axes)
        parts = [{k: v for k, v in part.items() if k not in other.axes} for part in self.parts + other.parts]
        return Grid(axes, other.name or self.name, other.description or self.description, parts)

    def subgrids(self) -> list[Grid]:
        """The grids whose union this is: one per part (the part's settings over the shared ones)."""
        if not self.parts:
            return [self]
        return [Grid({**self.axes, **part}, self.name, self.description) for part in self.parts]

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "description": self.description, "axes": json.loads(json.dumps(self.axes, default=list))}
        if self.parts:
            out["parts"] = json.loads(json.dumps(self.parts, default=list))
        return out


def load_toml(path: Path) -> Grid:
    """A sweep file: optional `name` and `description`, a `[grid]` table of settings, and optional
    `[[part]]` tables (the sweep is then the union of the parts, each over the shared [grid]).

        name = "width-vs-depth"
        [grid]
        task = "add"
        max = [50, 100, 200]      # a list is an axis
        d_model = [64, 128, 256]
        seed = [0, 1, 2]
        steps = 3000              # a single value is fixed

        [[part]]                  # optional: gpt at every scale ...
        solver = "gpt"
        [[part]]                  # ... and a thinker at two
        solver = "think_fixed_blind_super_clean"
        max = [50, 100]
    """
    return _grid_from(_read_toml(path), path)


def load_experiment(path: Path) -> tuple[Grid, dict[str, Any]]:
    """An experiment file, read once: its grid (as load_toml) and its validated [report] options."""
    data = _read_toml(path)
    return _grid_from(data, path), _report_options(data, path)


def _grid_from(data: dict[str, Any], path: Path) -> Grid:
    unknown = set(data) - {"name", "description", "grid", "part", "report"}
    if unknown:
        raise UserError(f"sweep file {path}: unknown top-level keys {sorted(unknown)}; valid: name, description, [grid], [[part]], [report]")
    table = data.get("grid", {})
    parts = data.get("part", [])
    if not isinstance(table, dict) or not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise UserError(f"sweep file {path}: [grid] must be a table and [[part]] an array of tables")
    if not table and not parts:
        raise UserError(f"sweep file {path} has no [grid] table of settings")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"sweep file {path}: {key} = {data[key]!r} must be a string, e.g. {key} = \"width-vs-depth\"")
    grid = Grid(name=data.get("name"), description=str(data.get("description", "")))
    grid.axes = _settings(table, path, "[grid]")
    for number, part in enumerate(parts, start=1):
        if not part:
            raise UserError(f"sweep file {path}: [[part]] number {number} is empty")
        grid.parts.append(_settings(part, path, f"[[part]] {number}"))
    return grid


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise UserError("reading a TOML sweep file needs Python >= 3.11 or the tomli package") from None
    if not path.exists():
        raise UserError(f"sweep file {path} does not exist")
    if not path.is_file():
        raise UserError(f"sweep file {path} is not a file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"sweep file {path} is not valid TOML ({str(exc).splitlines()[0]})") from None


def _settings(table: dict[str, Any], path: Path, where: str) -> dict[str, list[Any]]:
    """A TOML table of settings as name -> values (a single value becomes a one-value list)."""
    out: dict[str, list[Any]] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            raise UserError(f"sweep file {path}: {where} {key} is a table; give a value or a list of values")
        name = normalise_name(key)
        if name in LIST_VALUED:
            # [0, 2, 4] is one list of budgets; [[0, 2], [0, 4]] is an axis over two lists.
            values = value if isinstance(value, list) and value and all(isinstance(v, list) for v in value) else [value]
        else:
            values = value if isinstance(value, list) else [value]
        if not values:
            raise UserError(f"sweep file {path}: {where} {key} is an empty list")
        out[name] = list(values)
    return out


def _report_options(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A sweep file's optional [report] table, for `bench experiment` (validated, with defaults)."""
    report = data.get("report", {})
    if not isinstance(report, dict):
        raise UserError(f"sweep file {path}: [report] must be a table")
    unknown = set(report) - set(REPORT_DEFAULTS)
    if unknown:
        raise UserError(f"sweep file {path}: unknown [report] keys {sorted(unknown)}; valid: {', '.join(REPORT_DEFAULTS)}")
    options = {**REPORT_DEFAULTS, **report}
    rate = options["min_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise UserError(f"sweep file {path}: [report] min_rate={rate!r} must be a number in (0, 1]")
    kinds = options["plots"]
    from bench.analysis.plots import KINDS

    if not isinstance(kinds, list) or any(k not in KINDS for k in kinds):
        raise UserError(f"sweep file {path}: [report] plots={kinds!r}; valid: a list of {', '.join(KINDS)}")
    return options


REPORT_DEFAULTS: dict[str, Any] = {"min_rate": 0.5, "plots": ["scale", "budget", "curves"]}


# ---- cells ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: the settings that applied to it and its frozen spec."""

    settings: dict[str, Any]
    spec: RunSpec

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    def label(self, varying: Iterable[str]) -> str:
        return " ".join(f"{k}={self.settings[k]}" for k in varying if k in self.settings) or self.spec.solver


@dataclass
class Expansion:
    cells: list[Cell]
    refused: list[str]  # one line per (task, solver) combination a solver refused
    varying: list[str]  # settings that take more than one value among the cells


def _task_fields(task: str) -> dict[str, Any]:
    from tasks.registry import task_class

    return typing.get_type_hints(task_class(task).Params)


def _solver_fields(solver: str) -> set[str]:
    from solvers.base import option_fields, resolve_solver

    cls, _, flags = resolve_solver(solver)
    return {name for name in option_fields(cls) if name not in flags}


def check_names(grid: Grid) -> None:
    """Every setting must be a run option, or a parameter / option of some task / solver in the grid."""
    from tasks.registry import task_class

    options = run_options()
    tasks = [str(t) for t in grid.axes.get("task", [])]
    if not tasks:
        raise UserError("a sweep needs --task (or task = ... in the sweep file)")
    solvers = [str(s) for s in grid.axes.get("solver", [DEFAULTS["solver"]])]
    for task in tasks:
        task_class(task)  # unknown task: one-line error naming the valid ones
    task_params = set().union(*(_task_fields(t) for t in tasks))
    solver_options = set().union(*(_solver_fields(s) for s in solvers))
    for name in grid.axes:
        if name in options or name in task_params or name in solver_options:
            continue
        valid = sorted(set(options) | task_params | solver_options)
        raise UserError(
            f"setting {name!r} is not a run option, a parameter of task {'/'.join(tasks)} or an option of "
            f"solver {'/'.join(solvers)}; valid: {', '.join(valid)}"
        )


def expand(grid: Grid, root: Path | None = None) -> Expansion:
    """The cells of a grid, validated and frozen into specs (one-line UserError on bad input).

    Seeds vary slowest, so a sweep stopped half-way has the whole grid at its first seeds.
    """
    cells: list[Cell] = []
    refused: list[str] = []
    seen: set[str] = set()
    order: list[str] = []
    for sub in grid.subgrids():
        check_names(sub)
        axes = dict(sub.axes)
        sub_order = (["seed"] if "seed" in axes else []) + [k for k in axes if k != "seed"]
        order += [k for k in sub_order if k not in order]
        for combo in itertools.product(*(axes[k] for k in sub_order)):
            settings = {**DEFAULTS, **dict(zip(sub_order, combo))}
            cell = make_cell(settings, root, refused)
            if cell is not None and cell.run_id not in seen:
                seen.add(cell.run_id)
                cells.append(cell)
    cells.sort(key=lambda c: c.spec.train["seed"])  # stable: within a seed, the parts' order
    if not cells:
        reason = f": {refused[0]}" if refused else ""
        raise UserError(f"the sweep has no runnable cells{reason}")
    varying = [k for k in order if len({json.dumps(c.settings.get(k), default=list) for c in cells}) > 1]
    return Expansion(cells, sorted(set(refused)), varying)


def make_cell(settings: dict[str, Any], root: Path | None, refused: list[str] | None = None) -> Cell | None:
    """One cell's spec from its settings, dropping settings its task or solver does not have.
    Returns None (and notes why in `refused`) if the solver refuses the task."""
    from solvers.base import ModelConfig, OptimConfig, TaskShape, make_options, resolve_solver
    from tasks.registry import make_task

    from bench.run.train import build_spec, model_task

    options = run_options()
    task, solver = str(settings["task"]), str(settings["solver"])
    task_fields = _task_fields(task)
    solver_fields = _solver_fields(solver)
    applied: list[str] = []
    run_values: dict[str, Any] = {}
    task_params: dict[str, Any] = {}
    solver_options: dict[str, Any] = {}
    for name, value in settings.items():
        if name in options:
            if name == "eval_thoughts" and "thoughts" not in solver_fields:
                continue  # gpt has no thought budget to vary at evaluation
            run_values[name] = coerce_run_option(name, value, options[name])
        elif name in task_fields:
            task_params[name] = value
        elif name in solver_fields:
            solver_options[name] = value
        else:
            continue  # a parameter of another task or an option of another solver in the sweep
        applied.append(name)

    max_value = run_values.pop("max", None)
    model = ModelConfig(**{f.name: run_values.pop(f.name) for f in dataclasses.fields(ModelConfig) if f.name in run_values})
    optim = OptimConfig(**{f.name: run_values.pop(f.name) for f in dataclasses.fields(OptimConfig) if f.name in run_values})
    train_values = {f.name: run_values.pop(f.name) for f in dataclasses.fields(TrainConfig) if f.name in run_values}
    # Same default as `bench run`, so a cell and the equivalent single run share a run id.
    train_values.setdefault("monitor_size", min(TrainConfig.monitor_size, train_values.get("eval_size", TrainConfig.eval_size)))
    train = TrainConfig(**train_values)
    device = run_values.pop("device", "auto")
    init = run_values.pop("init", None)
    if init and root is not None:
        init = find_run(root, str(init)).run_id

    cls, canonical, flags = resolve_solver(solver)
    supports = getattr(cls, "supports", None)
    if supports is not None:
        shape = TaskShape.of(model_task(task, max_value, task_params, model))
        reason = supports(shape, make_options(cls, canonical, flags, solver_options))
        if reason:
            if refused is not None:
                refused.append(f"solver {canonical} cannot do task {task}: {reason}")
            return None
    spec = build_spec(task, max_value, task_params, solver, solver_options, model, optim, train, device, init)
    return Cell({name: typed_setting(spec, name) for name in applied}, spec)


def typed_setting(spec: RunSpec, name: str) -> Any:
    """A cell's setting as the spec holds it (typed, canonical), for labels and the sweep record."""
    from tasks.registry import task_class

    if name == "task":
        return spec.task
    if name == "solver":
        return spec.solver
    if name == "max":
        return spec.task_params[task_class(spec.task).scale_param]
    if name in ("device", "init"):
        return getattr(spec, name)
    for part in (spec.model, spec.optim, spec.train, spec.task_params, spec.solver_options):
        if name in part:
            value = part[name]
            return tuple(value) if isinstance(value, list) else value
    raise KeyError(name)


# ---- the sweep's record ----------------------------------------------------------------------------


def sweep_name(grid: Grid, cells: list[Cell]) -> str:
    """The grid's own name, or one made from its cells' run ids (the same sweep, the same name)."""
    if grid.name:
        if not SWEEP_NAME.match(grid.name):
            raise UserError(f"sweep name {grid.name!r} may hold only letters, digits, '_', '.', '-'")
        return grid.name
    digest = hashlib.sha256(",".join(sorted(c.run_id for c in cells)).encode()).hexdigest()[:8]
    return f"sweep-{digest}"


def write_record(root: Path, name: str, grid: Grid, expansion: Expansion) -> Path:
    """results/sweeps/<name>.json: the grid and its cells' run ids, for `bench plot --sweep`."""
    path = root / SWEEPS_DIR / f"{name}.json"
    atomic_write_json(
        path,
        {
            "name": name,
            "grid": grid.to_json(),
            "varying": expansion.varying,
            "cells": [{"run_id": c.run_id, "settings": json.loads(json.dumps(c.settings, default=list))} for c in expansion.cells],
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    return path


def read_record(root: Path, name: str) -> dict[str, Any]:
    path = root / SWEEPS_DIR / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in (root / SWEEPS_DIR).glob("*.json")) if (root / SWEEPS_DIR).exists() else []
        raise UserError(f"no sweep {name!r} under {root / SWEEPS_DIR}; known: {', '.join(known) or 'none'}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{path} is corrupt (not JSON)") from None


def finished(root: Path, cell: Cell) -> bool:
    run_dir = RunDir(root, cell.run_id)
    return run_dir.exists() and run_dir.status().get("state") == "finished"


# ---- parallelism ----------------------------------------------------------------------------------


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_jobs(cells: list[Cell]) -> int:
    """What the machine can hold: one job per core on CPU; on a GPU one job (raise with --jobs)."""
    if any(c.spec.device == "cuda" for c in cells):
        return 1
    return max(1, available_cores())


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """Each worker's share of the cores. Two 2-thread trainings on 2 cores ran ~10x slower than one:
    oversubscribed torch threads spin against each other, so shares never add up to more than the cores."""
    cores = cores or available_cores()
    share = max(1, cores // max(1, jobs))
    # An explicit OMP_NUM_THREADS is the user saying how many threads they can spare (a shared machine).
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, int(limit)) if limit.isdigit() and int(limit) > 0 else share
