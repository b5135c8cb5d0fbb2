"""Issue 32's experiment files (experiments/serial_depth_stage*.toml) load and expand into the designed
grids: the cell counts, the shared budget, and the order that runs the most informative cells first."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sweep.plan import expand, load_experiment

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def cells(stage: int) -> list:  # type: ignore[type-arg]
    grid, _ = load_experiment(EXPERIMENTS / f"serial_depth_stage{stage}.toml")
    expansion = expand(grid)
    assert not expansion.refused, expansion.refused  # no solver refuses a cell of the design
    return expansion.cells


@pytest.mark.parametrize("stage,count", [(1, 108), (2, 24), (3, 18), (4, 48)])
def test_stage_expands_to_its_design(stage: int, count: int) -> None:
    expanded = cells(stage)
    assert len(expanded) == count
    assert {c.spec.train.batch for c in expanded} == {64}
    assert {c.spec.model.d_model for c in expanded} == {128}
    assert {c.spec.train.seed for c in expanded} == {0, 1, 2}


def test_stage1_is_the_decisive_table() -> None:
    expanded = cells(1)
    keys = {(c.spec.task_params["group"], c.spec.task_params["max"], c.spec.solver,
             c.spec.solver_options.get("aux", "-"), c.spec.train.seed) for c in expanded}
    assert len(keys) == 108  # 3 groups x 4 k x 3 solvers x 3 seeds, no duplicates
    assert {k[0] for k in keys} == {"A5", "A4xZ5", "Z60"}
    assert {k[1] for k in keys} == {4, 8, 16, 32}
    # default aux is left out of the spec
    assert {(k[2], k[3]) for k in keys} == {("gpt", "-"), ("gpt", "trace"), ("cot", "-")}
    assert {c.spec.model.layers for c in expanded} == {2}
    # Seed 0 first, and within it every k <= 8 cell before any k >= 16 cell (the cheap, informative half).
    seed0 = [c.spec.task_params["max"] for c in expanded if c.spec.train.seed == 0]
    assert seed0 == sorted(seed0, key=lambda k: k > 8)
    assert [c.spec.train.seed for c in expanded] == sorted(c.spec.train.seed for c in expanded)
