"""Issue 14: thinker step defaults per task, the pieces that make a step cheap, and `bench perf think`."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench.cli import app
from bench.run.spec import TrainConfig
from bench.run.train import build_spec
from cli_checks import assert_one_line_error
from solvers.base import ModelConfig, OptimConfig, TaskShape, make_options, make_solver, resolve_solver
from solvers.rollout import distinct_rows, head_columns
from solvers.think_options import LONG_BATCH, LONG_GROUP, step_defaults
from tasks.registry import make_task

runner = CliRunner()


def options_for(name: str, **values: object):  # type: ignore[no-untyped-def]
    cls, canonical, flags = resolve_solver(name)
    return make_options(cls, canonical, flags, dict(values))


@pytest.mark.parametrize(
    "task, scale, solver, K, G, batch",
    [
        ("add", 100, "think_fixed_blind_super_clean", 2, 32, 256),
        ("add", 1000, "think_fixed_blind_super_clean", 3, 32, 256),
        ("add", 100, "think_fixed", 4, 32, 256),
        ("sort", 1000, "think_fixed", 4, LONG_GROUP, LONG_BATCH),
        ("graph", 16, "think_fixed", 4, LONG_GROUP, LONG_BATCH),
        ("sat", 8, "think_fixed_blind_super", 88, LONG_GROUP, LONG_BATCH),
    ],
)
def test_step_defaults_follow_the_rollout_length(task: str, scale: int, solver: str, K: int, G: int,
                                                 batch: int) -> None:
    chosen = step_defaults(TaskShape.of(make_task(task, scale)), options_for(solver))
    assert (chosen.thoughts, chosen.group, chosen.batch) == (K, G, batch)
    assert f"G = {G}" in chosen.why


def test_a_given_group_overrides_the_default_and_the_batch_follows_the_task() -> None:
    shape = TaskShape.of(make_task("sort", 1000))
    chosen = step_defaults(shape, options_for("think_fixed", group=16))
    assert (chosen.group, chosen.batch) == (16, LONG_BATCH) and "G = 16 given" in chosen.why


def spec_for(task: str, scale: int, solver: str, batch: int = 0, **options: object):  # type: ignore[no-untyped-def]
    return build_spec(task, scale, {}, solver, dict(options), ModelConfig(), OptimConfig(), TrainConfig(batch=batch),
                      "cpu")


def test_run_specs_write_out_the_chosen_defaults() -> None:
    sort = spec_for("sort", 1000, "think_fixed")
    assert sort.train.batch == LONG_BATCH and sort.solver_options["group"] == LONG_GROUP
    assert spec_for("sort", 1000, "gpt").train.batch == TrainConfig.batch
    assert spec_for("sort", 1000, "think_fixed", batch=32).train.batch == 32
    # On add the defaults are the old ones written out: a run's id is the same as before issue 14.
    add = spec_for("add", 100, "think_fixed_blind_super_clean")
    assert add.run_id == spec_for("add", 100, "think_fixed_blind_super_clean", batch=256, group=32).run_id


def test_bench_run_names_its_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["run", "--task", "sort", "--max", "10", "--solver", "think_fixed", "--steps", "2",
                                 "--eval-size", "16", "--d-model", "16", "--layers", "1", "--results", str(tmp_path),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"defaults: batch {LONG_BATCH}" in result.output and f"G = {LONG_GROUP}" in result.output


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 12), high=st.sampled_from([2, 7, 1000, 2**40]),
       seed=st.integers(0, 99))
def test_distinct_rows_finds_each_distinct_row_once(rows: int, cols: int, high: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randint(0, high, (rows, cols), generator=gen)
    keys[rows // 2 :] = keys[: rows - rows // 2].clone()  # duplicates
    first, inverse = distinct_rows(keys)
    assert torch.equal(keys[first][inverse], keys)
    assert first.numel() == torch.unique(keys, dim=0).shape[0]
    assert all(int(first[inverse[i]]) <= i for i in range(rows))  # each the first row holding it


def test_head_columns_equal_the_full_head_sliced() -> None:
    torch.manual_seed(0)
    solver = make_solver("think_fixed", TaskShape.of(make_task("add", 100)), ModelConfig(d_model=32, layers=1, heads=2))
    net = solver.net
    tokens = torch.randint(0, net.cfg.vocab_size, (5, 4))
    full, _, hidden = net(tokens, hidden_layer=net.cfg.layers)
    torch.testing.assert_close(head_columns(net, hidden, 7, 30), full[..., 7:30], atol=1e-6, rtol=1e-5)


def test_perf_think_times_the_whole_step_and_profiles() -> None:
    result = runner.invoke(app,
                           ["perf", "think", "--solver", "think_fixed_blind_super_clean,think_fixed", "--batch", "4",
                                 "--group", "2", "--rounds", "1", "--steps", "1", "--d-model", "16", "--layers", "1",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["group"] for row in rows] == [2, 2] and [row["thoughts"] for row in rows] == [2, 4]
    for row in rows:
        assert row["think_ms"] > 0 and row["ratio"] == pytest.approx(row["think_ms"] / row["gpt_same_positions_ms"],
                                                                     rel=0.02)
    profiled = runner.invoke(app, ["perf", "think", "--batch", "4", "--rounds", "1", "--steps", "1", "--d-model", "16",
                                   "--layers", "1", "--profile"])
    assert profiled.exit_code == 0, profiled.output
    assert "where the step's time goes" in profiled.output and "Self CPU" in profiled.output
    truncated = runner.invoke(app, ["perf", "think", "--batch", "4", "--group", "2", "--rounds", "1", "--steps", "1",
                                    "--d-model", "16", "--layers", "1", "--credit", "truncate", "--format", "json"])
    assert truncated.exit_code == 0, truncated.output
    assert json.loads(truncated.stdout)[0]["credit"] == "truncate"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--device", "tpu"], "'tpu'"),
        (["--solver", "gpt"], "think_*"),
        (["--thoughts", "0"], "budgets >= 1"),
        (["--batch", "0"], "--batch=0"),
        (["--format", "xml"], "'xml'"),
        (["--credit", "bogus"], "'bogus'"),
        (["--solver", "think_fixed_blind_super", "--credit", "truncate"], "clean reward"),
    ],
)
def test_perf_think_bad_input(args: list[str], fragment: str) -> None:
    assert_one_line_error(runner.invoke(app, ["perf", "think", *args]), fragment)


@pytest.mark.benchmark
@pytest.mark.parametrize("solver, scale",
                         [("think_fixed_blind_super_clean", 100), ("think_fixed_blind_super_clean", 1000),
                                           ("think_fixed_blind_super", 100)])
def test_thinker_step_costs_at_most_2_5_gpt_steps_on_the_same_positions(solver: str, scale: int) -> None:
    from bench.perf.think import think_step_cost

    row = think_step_cost(solver, "add", scale, rounds=2, steps=1)
    assert row["ratio"] <= 2.5, row
