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

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from bench.config import RunChoice, configs_from, parse_budgets, parse_run_option, run_option_types
from bench.errors import UserError
from bench.sweep.grid import Grid, load_experiment, load_toml, normalise_name, split_values
from bench.run.spec import RunSpec
from bench.run.store import RunDir, atomic_write_json, find_run

# Re-exported: what callers of the sweep read besides cells and records.
__all__ = ["Grid", "load_experiment", "load_toml", "normalise_name", "parse_budgets", "split_values", "expand",
           "make_cell"]

SWEEPS_DIR = "sweeps"
# Most cells a grid may have, as the CLI's most values per span (bench/sweep/grid.py): far above any
# sweep this CPU project runs, far below what would take minutes just to list.
MAX_CELLS = 10_000
SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# A cell's settings before its own: RunChoice's defaults (solver gpt, device auto).
DEFAULTS: dict[str,
               Any] = {f.name: f.default for f in dataclasses.fields(RunChoice)
                       if f.default not in (dataclasses.MISSING, None)}


def run_options() -> dict[str, Any]:
    """Every run option a sweep can set, with its type: bench/config.py's dataclasses, read not copied."""
    return run_option_types()


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


def check_size(grid: Grid) -> int:
    """The number of cells before de-duplication; over MAX_CELLS is a one-line UserError naming the
    axes, checked before any cell is built (a 10^6-cell grid would take minutes and gigabytes)."""
    total = 0
    for sub in grid.subgrids():
        total += math.prod(len(values) for values in sub.axes.values())
    if total > MAX_CELLS:
        axes = " x ".join(f"{len(values)} {name}" for name, values in grid.axes.items() if len(values) > 1)
        parts = f" over {len(grid.parts)} parts" if grid.parts else ""
        raise UserError(f"the sweep's grid has {total:,} cells ({axes or 'one value each'}{parts}); "
                        f"at most {MAX_CELLS:,}: split it into several sweeps")
    return total


def expand(grid: Grid, root: Path | None = None) -> Expansion:
    """The cells of a grid, validated and frozen into specs (one-line UserError on bad input).

    Seeds vary slowest, so a sweep stopped half-way has the whole grid at its first seeds.
    """
    check_size(grid)
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
    cells.sort(key=lambda c: c.spec.train.seed)  # stable: within a seed, the parts' order
    if not cells:
        reason = f": {refused[0]}" if refused else ""
        raise UserError(f"the sweep has no runnable cells{reason}")
    varying = [k for k in order if len({json.dumps(c.settings.get(k), default=list) for c in cells}) > 1]
    return Expansion(cells, sorted(set(refused)), varying)


def make_cell(settings: dict[str, Any], root: Path | None, refused: list[str] | None = None) -> Cell | None:
    """One cell's spec from its settings, dropping settings its task or solver does not have.
    Returns None (and notes why in `refused`) if the solver refuses the task."""
    from bench.run.build import Refused, build_spec

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
            run_values[name] = parse_run_option(name, value, options[name])
        elif name in task_fields:
            task_params[name] = value
        elif name in solver_fields:
            solver_options[name] = value
        else:
            continue  # a parameter of another task or an option of another solver in the sweep
        applied.append(name)

    choice, train, model, optim = configs_from(run_values)  # the same defaults as `bench run`
    init = choice.get("init")
    if init and root is not None:
        init = find_run(root, str(init)).run_id
    try:
        spec = build_spec(task, choice.get("max"), task_params, solver, solver_options, model, optim, train,
                          choice.get("device", "auto"), init)
    except Refused as refusal:
        if refused is not None:
            refused.append(str(refusal))
        return None
    return Cell({name: typed_setting(spec, name) for name in applied}, spec)


def typed_setting(spec: RunSpec, name: str) -> Any:
    """A cell's setting as the spec holds it (typed, canonical), for labels, tables and the sweep
    record; None for a setting this spec's task or solver does not have."""
    from bench.analysis.frontier import scale_of

    if name in ("task", "solver", "device", "init"):
        return getattr(spec, name)
    if name == "max":
        return scale_of(spec.task, spec.task_params)
    for config in (spec.model, spec.optim, spec.train):
        if name in {f.name for f in dataclasses.fields(config)}:
            return getattr(config, name)
    for part in (spec.task_params, spec.solver_options):
        if name in part:
            value = part[name]
            return tuple(value) if isinstance(value, list) else value
    return None


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
            "cells": [{"run_id": c.run_id, "settings": json.loads(json.dumps(c.settings, default=list))}
                      for c in expansion.cells],
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


# ---- execution ----------------------------------------------------------------------------------

Listener = Callable[[str, str, dict[str, Any]], None]
"""Called with ("start" | "step" | "done", run id, data) as cells run (the CLI's progress display)."""


def execute(expansion: Expansion, root: Path, jobs: int | None, executor: str, ray_address: str | None, label: str,
            say: Callable[[str], None], display: Callable[[int], Listener] | None = None) -> dict[str, dict[str, Any]]:
    """Run the cells not yet finished; returns run id -> result ({"outcome", "status", "error", "wall"}).

    say: one-line notes (rich markup) and failures. display: given the number of cells already
    finished, a listener for every event that is also a context manager (shown while cells run)."""
    from bench.sweep.executors import (
        connect_ray, require_slurm, run_in_process, run_pool, run_ray, run_slurm, slurm_cpus,
    )
    from bench.run.train import deferred_interrupts

    cells = expansion.cells
    outcomes: dict[str, dict[str, Any]] = {}
    todo = []
    started_before: set[str] = set()  # cells an earlier, stopped sweep left half-trained
    for cell in cells:
        if finished(root, cell):
            outcomes[cell.run_id] = {"outcome": "skipped", "status": {}, "error": None, "wall": 0.0}
        else:
            todo.append(cell)
            if RunDir(root, cell.run_id).file("checkpoint.pt").exists():
                started_before.add(cell.run_id)
    if executor == "ray" and todo:  # nothing to run: no cluster to join
        cores = connect_ray(ray_address)
        jobs = jobs or cores
    else:
        cores = available_cores()
        jobs = jobs or default_jobs(cells)
    if executor in ("slurm", "slurm-local") and todo:
        require_slurm(executor == "slurm-local", root, label)  # no submitit, no Slurm, bad $THINKBENCH_SLURM: one line
    if executor == "slurm":  # the cluster schedules the array: every cell at once unless --jobs, each its own CPUs
        jobs = jobs or len(todo)
    jobs = max(1, min(jobs, len(todo) or 1))
    threads = slurm_cpus() if executor == "slurm" else threads_per_job(jobs, cores)
    if executor == "local" and jobs > cores:
        say(f"[yellow]note[/]: --jobs {jobs} is more than the {cores} cores here; runs will slow each other down")
    say(f"sweep [bold]{label}[/]: {len(cells)} cells, {len(cells) - len(todo)} already finished; "
        f"{len(todo)} to run on {executor} with {jobs} job(s) x {threads} thread(s)")
    listener = display(len(cells) - len(todo)) if display is not None else None
    began = time.perf_counter()

    def on_event(kind: str, run_id: str, data: dict[str, Any]) -> None:
        if kind == "done":
            if data["outcome"] == "trained" and run_id in started_before:
                data = {**data, "outcome": "resumed"}
            outcomes[run_id] = data
            if data.get("traceback"):
                say(f"[red]cell {run_id} failed[/]:\n{data['traceback']}")
            elif data.get("error"):
                say(f"[red]cell {run_id} failed[/]: {data['error']}")
        if listener is not None:
            listener(kind, run_id, data)

    specs = [c.spec.to_json() for c in todo]
    with deferred_interrupts() as interrupt, (listener if listener is not None else contextlib.nullcontext()):  # type: ignore[attr-defined]
        stop = lambda: interrupt["stop"]  # noqa: E731
        if not specs:
            pass
        elif executor == "ray":
            run_ray(specs, root, jobs, threads, on_event, stop)
        elif executor in ("slurm", "slurm-local"):
            run_slurm(specs, root, jobs, threads, on_event, stop, local=executor == "slurm-local", label=label)
        elif jobs == 1:
            run_in_process(specs, root, threads, on_event, stop)
        else:
            run_pool(specs, root, jobs, threads, on_event, stop)
    for cell in todo:  # anything an executor did not answer for did not run
        outcomes.setdefault(cell.run_id, {"outcome": "not started", "status": {}, "error": None, "wall": 0.0})
    counts = count_outcomes(outcomes)
    say(f"sweep [bold]{label}[/] took {time.perf_counter() - began:.1f} s: "
        + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return outcomes


def count_outcomes(outcomes: dict[str, dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in outcomes.values():
        counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    return counts


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
