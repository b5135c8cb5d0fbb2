"""A sweep from its plan to its outcome, what `bench sweep`, `bench experiment` and `bench tune` share.

    sweep = plan_sweep(grid, root)          expand the grid into cells, name the sweep (nothing written)
    run_sweep(sweep, grid, root, ...)       write its record (results/sweeps/NAME.json), run its cells
    sweep_summary(sweep.expansion, root)    its finished cells over seeds: per scale, then the frontier

The commands only print what these return (bench/cli/sweep_view.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from bench.analysis.frontier import FRONTIER_MIN_RATE, config_columns, frontier_table, run_table, scale_of, seed_summary
from bench.sweep.plan import (
    Expansion, Grid, Listener, count_outcomes, execute, expand, sweep_name, typed_setting, write_record,
)


@dataclass
class SweepRun:
    """A planned sweep and, once run, what became of its cells."""

    expansion: Expansion
    name: str
    record: Path | None = None  # results/sweeps/NAME.json, once written
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> {"outcome", "status", ...}
    counts: dict[str, int] = field(default_factory=dict)  # outcome -> cells; empty when not trained

    @property
    def stopped(self) -> bool:
        """Some cells were interrupted or never started: running the same command again resumes them."""
        return bool(self.counts.get("interrupted") or self.counts.get("not started"))


def plan_sweep(grid: Grid, root: Path) -> SweepRun:
    """The grid's cells (the refused combinations in `expansion.refused`) and the sweep's name."""
    expansion = expand(grid, root)
    return SweepRun(expansion, sweep_name(grid, expansion.cells))


def run_sweep(
    sweep: SweepRun, grid: Grid, root: Path, jobs: int | None, executor: str, ray_address: str | None,
    say: Callable[[str], None], display: Callable[[int], Listener] | None = None, train: bool = True,
    before_training: Callable[[str], None] | None = None,
) -> SweepRun:
    """Write the sweep's record (an unwritable sweeps/ is one line, before training), call
    `before_training(name)` (e.g. to check the experiment's report folder), then, when `train`, run the
    cells not yet finished (bench.sweep.plan.execute: `say` and `display` as there)."""
    sweep.record = write_record(root, sweep.name, grid, sweep.expansion)
    if before_training is not None:
        before_training(sweep.name)
    if train:
        sweep.outcomes = execute(sweep.expansion, root, jobs, executor, ray_address, sweep.name, say, display)
        sweep.counts = count_outcomes(sweep.outcomes)
    return sweep


@dataclass
class SweepSummary:
    """A sweep's finished cells over seeds (definitions: bench/analysis/frontier.py)."""

    by: list[str]  # the settings that tell configurations apart, led by task and solver
    per_scale: pd.DataFrame  # seed_summary per configuration and scale, plus `cells`: the seeds planned there
    frontier: pd.DataFrame | None  # frontier_table per configuration; None when the sweep has one scale
    smallest_scale: Any  # what a frontier of "none" is below


def sweep_summary(expansion: Expansion, root: Path, min_rate: float = FRONTIER_MIN_RATE) -> SweepSummary | None:
    """Per configuration (seeds pooled): accuracy and success rate per scale, then the frontier and
    AUC over scales; None while no cell has finished."""
    runs = run_table(root, [c.run_id for c in expansion.cells])
    if runs.empty:
        return None
    by = config_columns(runs)
    per_scale = seed_summary(runs, by, min_rate)
    planned: dict[tuple[str, ...], int] = {}
    for cell in expansion.cells:
        key = tuple(cell_text(typed_setting(cell.spec, k))
                    for k in by) + (cell_text(scale_of(cell.spec.task, cell.spec.task_params)),)
        planned[key] = planned.get(key, 0) + 1
    keys = [tuple(cell_text(row[k]) for k in [*by, "scale"]) for row in per_scale.to_dict("records")]
    per_scale["cells"] = [planned.get(key, seeds) for key, seeds in zip(keys, per_scale["seeds"])]
    frontier = frontier_table(runs, by, min_rate) if runs["scale"].nunique() > 1 else None
    return SweepSummary(by, per_scale, frontier, runs["scale"].min())


def cell_text(value: Any) -> str:
    """A setting as a table cell shows it ('-' for one a solver lacks, 2 not 2.0), so cells and
    finished runs meet on the same key."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
