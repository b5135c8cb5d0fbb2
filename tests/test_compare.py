"""`bench compare`: seed aggregation on synthetic run folders with known answers, filters, formats."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench.cli import app
from bench.analysis.compare import aggregate, compare, config_key, load_runs, settings_text
from bench.run.spec import TrainConfig
from bench.stats import wilson_interval
from bench.run.store import RunDir
from bench.run.train import build_spec
from solvers.base import ModelConfig, OptimConfig

runner = CliRunner()


def bench(*args: str):
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def fake_run(
    root: Path,
    *,
    seed: int,
    accuracy: float | None,
    task: str = "add",
    scale: int = 50,
    solver: str = "gpt",
    d_model: int = 32,
    target: float = 0.9,
    elapsed: float = 10.0,
    steps_to_target: int | None = None,
    state: str = "finished",
    n: int = 200,
    options: dict | None = None,
) -> str:
    """A run folder as `bench run` leaves it, with a chosen result (no training)."""
    spec = build_spec(
        task, scale, {}, solver, options or {}, ModelConfig(d_model=d_model, layers=1, heads=4), OptimConfig(),
        TrainConfig(steps=100, target=target, seed=seed), "cpu",
    )
    run = RunDir(root, spec.run_id)
    run.write("spec.json", spec.to_json())
    if state != "finished":
        run.write("status.json", {"state": state, "step": 40, "elapsed": elapsed})
        return spec.run_id
    assert accuracy is not None
    correct = round(accuracy * n)
    low, high = wilson_interval(correct, n)
    run.write("status.json", {
        "state": "finished", "step": 100, "elapsed": elapsed, "accuracy": correct / n, "low": low, "high": high,
        "reached_target": correct / n >= target, "steps_to_target": steps_to_target, "parameters": 1234,
    })
    run.write("evaluation.json", {"final": {"thoughts": None, "overall": {"n": n, "correct": correct,
              "accuracy": correct / n, "low": low, "high": high}, "by": {}}, "budgets": [], "diagnostics": {}})
    return spec.run_id


@pytest.fixture()
def three_seeds(tmp_path: Path) -> Path:
    # accuracies 0.5, 0.6, 0.7: mean 0.6, sd 0.1, t(2) = 4.303 -> 0.6 +- 0.24843; target 0.65: 1 of 3
    fake_run(tmp_path, seed=0, accuracy=0.5, elapsed=10.0, target=0.65)
    fake_run(tmp_path, seed=1, accuracy=0.6, elapsed=40.0, target=0.65)
    fake_run(tmp_path, seed=2, accuracy=0.7, elapsed=20.0, target=0.65, steps_to_target=300)
    return tmp_path


def test_config_key_ignores_only_the_seed(tmp_path: Path) -> None:
    def spec(seed: int, d_model: int = 32) -> dict[str, Any]:
        return build_spec("add", 50, {}, "gpt", {}, ModelConfig(d_model, 1, 4), OptimConfig(),
                          TrainConfig(seed=seed), "cpu").to_json()

    assert config_key(spec(0)) == config_key(spec(7))
    assert config_key(spec(0)) != config_key(spec(0, d_model=64))


def test_three_seeds_aggregate_to_known_numbers(three_seeds: Path) -> None:
    board, notes = compare(three_seeds)
    assert len(board) == 1 and notes["runs"] == 3 and notes["unfinished"] == {}
    row = board.iloc[0]
    assert row["seeds"] == 3
    assert row["accuracy"] == pytest.approx(0.6)
    # the exact bootstrap: all 27 resamples of the three seeds' accuracies (0.5, 0.6, 0.7), percentiles
    means = sorted(sum(r) / 3 for r in itertools.product((0.5, 0.6, 0.7), repeat=3))
    assert (row["low"], row["high"]) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=1e-9)
    assert row["interval"] == "bootstrap"
    assert row["success"] == pytest.approx(1 / 3) and row["successes"] == 1
    # Clopper-Pearson for 1 of 3 (published: 0.0084-0.9057)
    assert (row["success_low"], row["success_high"]) == pytest.approx((0.0084, 0.9057), abs=1e-4)
    assert row["time_s"] == 20.0  # median of 10, 40, 20
    assert row["steps_to_target"] == 300  # only the seed that reached it counts
    assert row["parameters"] == 1234 and row["scale"] == 50 and row["task"] == "add"
    assert len(row["run_ids"].split(",")) == 3


def test_one_seed_shows_its_wilson_interval(tmp_path: Path) -> None:
    fake_run(tmp_path, seed=0, accuracy=0.9, n=200, target=0.9)
    row = compare(tmp_path)[0].iloc[0]
    assert row["seeds"] == 1 and row["interval"] == "wilson"
    assert (row["low"], row["high"]) == pytest.approx(wilson_interval(180, 200))
    assert row["success"] == 1.0  # exactly at the target counts as reaching it
    assert math.isnan(row["steps_to_target"])


def test_different_configurations_are_not_merged(tmp_path: Path) -> None:
    fake_run(tmp_path, seed=0, accuracy=0.9, d_model=32)
    fake_run(tmp_path, seed=1, accuracy=0.8, d_model=32)
    fake_run(tmp_path, seed=0, accuracy=0.2, d_model=64)
    fake_run(tmp_path, seed=0, accuracy=0.3, scale=80)
    board, _ = compare(tmp_path)
    assert sorted(board["seeds"]) == [1, 1, 2]
    at_50 = board[board["scale"] == 50]
    # the row names what differs (the width), not what all rows share
    assert set(at_50["settings"]) == {"d_model=32", "d_model=64"}
    assert list(board["scale"]) == [50, 50, 80]  # ranked within task and scale


def test_settings_name_only_what_varies_within_a_task_and_solver(tmp_path: Path) -> None:
    fake_run(tmp_path, seed=0, accuracy=0.9, solver="gpt")
    fake_run(tmp_path, seed=0, accuracy=0.5, solver="pause")  # has options gpt lacks (thoughts, ...)
    board, _ = compare(tmp_path)
    assert sorted(board["solver"]) == ["gpt", "pause"]
    assert list(board["settings"]) == ["", ""]


def test_unfinished_runs_are_counted_not_aggregated(three_seeds: Path) -> None:
    fake_run(three_seeds, seed=5, accuracy=None, state="interrupted", target=0.65)
    fake_run(three_seeds, seed=6, accuracy=None, state="running", target=0.65)
    board, notes = compare(three_seeds)
    assert board.iloc[0]["seeds"] == 3
    assert notes["unfinished"] == {"interrupted": 1, "running": 1}
    result = bench("compare", "--results", str(three_seeds))
    assert result.exit_code == 0
    assert "2 unfinished runs (1 interrupted, 1 running)" in result.stderr


@pytest.mark.parametrize("status", ["{not json", '{"state": "finished", "step": 100}'], ids=["not-json", "no-result"])
def test_unreadable_run_folders_are_skipped_and_named(three_seeds: Path, status: str) -> None:
    broken = fake_run(three_seeds, seed=9, accuracy=0.9, target=0.65)
    (three_seeds / "runs" / broken / "status.json").write_text(status)
    board, notes = compare(three_seeds)
    assert notes["unreadable"] == [broken]
    assert board.iloc[0]["seeds"] == 3
    result = bench("compare", "--results", str(three_seeds))
    assert result.exit_code == 0 and broken in result.stderr


def test_filters(tmp_path: Path) -> None:
    fake_run(tmp_path, seed=0, accuracy=0.9, scale=50)
    fake_run(tmp_path, seed=0, accuracy=0.7, scale=80)
    fake_run(tmp_path, seed=0, accuracy=0.6, task="multiadd", scale=50)
    assert len(compare(tmp_path)[0]) == 3
    assert set(compare(tmp_path, task="add")[0]["scale"]) == {50, 80}
    assert list(compare(tmp_path, scale=80)[0]["accuracy"]) == pytest.approx([0.7])
    assert list(compare(tmp_path, task="multiadd", scale=50)[0]["task"]) == ["multiadd"]
    assert compare(tmp_path, solver="gpt")[0].shape[0] == 3
    assert compare(tmp_path, solver="pause")[0].empty
    result = bench("compare", "--results", str(tmp_path), "--max", "80", "--format", "json")
    assert [row["scale"] for row in json.loads(result.stdout)] == [80]


def test_names_that_match_nothing_give_an_empty_board_and_a_message(three_seeds: Path) -> None:
    for args in (["--task", "nosuchtask"], ["--solver", "nosuchsolver"], ["--max", "12345"]):
        result = bench("compare", "--results", str(three_seeds), *args)
        assert result.exit_code == 0, result.output
        assert "no finished runs" in result.stdout
        as_json = bench("compare", "--results", str(three_seeds), *args, "--format", "json")
        assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []


def test_a_results_folder_without_runs_is_empty_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    result = bench("compare", "--results", str(missing))
    assert result.exit_code == 0 and "no finished runs" in result.stdout
    assert not missing.exists()


@pytest.mark.parametrize(("option", "value"), [("--sort", "speed"), ("--format", "xml")])
def test_bad_sort_or_format_is_one_line_exit_2(three_seeds: Path, option: str, value: str) -> None:
    result = bench("compare", "--results", str(three_seeds), option, value)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and value in lines[0] and "valid" in lines[0]
    assert "Traceback" not in result.output


def test_a_file_in_place_of_the_results_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "results"
    path.write_text("not a folder")
    result = bench("compare", "--results", str(path))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert path.read_text() == "not a folder"


def test_sort_orders_within_task_and_scale(tmp_path: Path) -> None:
    fake_run(tmp_path, seed=0, accuracy=0.9, d_model=32, elapsed=50.0)
    fake_run(tmp_path, seed=0, accuracy=0.5, d_model=64, elapsed=5.0)
    fake_run(tmp_path, seed=0, accuracy=0.7, d_model=128, elapsed=20.0)
    assert list(compare(tmp_path, sort="accuracy")[0]["accuracy"]) == pytest.approx([0.9, 0.7, 0.5])
    assert list(compare(tmp_path, sort="time")[0]["time_s"]) == [5.0, 20.0, 50.0]
    assert list(compare(tmp_path, sort="success")[0]["success"]) == [1.0, 0.0, 0.0]


def test_formats_carry_the_same_rows(three_seeds: Path) -> None:
    fake_run(three_seeds, seed=0, accuracy=0.3, d_model=64, target=0.65)
    as_json = json.loads(bench("compare", "--results", str(three_seeds), "--format", "json").stdout)
    assert len(as_json) == 2
    by_seeds = {row["seeds"]: row for row in as_json}
    assert by_seeds[3]["accuracy"] == pytest.approx(0.6) and by_seeds[3]["success"] == pytest.approx(1 / 3)
    assert by_seeds[1]["steps_to_target"] is None  # NaN is written as null, not as invalid JSON
    assert isinstance(by_seeds[1]["parameters"], int)

    rows = list(csv.DictReader(io.StringIO(bench("compare", "--results", str(three_seeds), "--format", "csv").stdout)))
    assert [float(r["accuracy"]) for r in rows] == pytest.approx([row["accuracy"] for row in as_json])

    markdown = bench("compare", "--results", str(three_seeds), "--format", "markdown").stdout.splitlines()
    assert markdown[0].startswith("| task | scale | solver")
    assert markdown[1].startswith("|---")
    assert len([line for line in markdown if line.startswith("| add")]) == 2

    table = bench("compare", "--results", str(three_seeds)).stdout
    assert "0.600" in table and "1/3" in table and "0.300" in table and "leaderboard" in table


@settings(max_examples=40, deadline=None)
@given(
    accuracies=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8),
    target=st.sampled_from([0.5, 0.9, 0.99]),
)
def test_aggregate_properties(accuracies: list[float], target: float) -> None:
    runs = pd.DataFrame([
        {"run_id": f"{i:012x}", "config": "c", "task": "add", "scale": 10, "solver": "gpt", "seed": i,
         "state": "finished", "step": 10.0, "accuracy": a, "low": 0.0, "high": 1.0, "n": 100.0, "target": target,
         "reached_target": a >= target, "steps_to_target": math.nan, "elapsed": float(i), "parameters": 1.0,
         "spec": {"task": "add", "task_params": {"max": 10}, "train": {"seed": i}}}
        for i, a in enumerate(accuracies)
    ])
    row = aggregate(runs).iloc[0]
    assert row["seeds"] == len(accuracies)
    assert row["accuracy"] == pytest.approx(np.mean(accuracies))
    assert 0.0 <= row["low"] <= row["accuracy"] + 1e-12 and row["accuracy"] - 1e-12 <= row["high"] <= 1.0
    assert row["success"] == pytest.approx(sum(a >= target for a in accuracies) / len(accuracies))
    assert row["time_s"] == pytest.approx(np.median(range(len(accuracies))))


def test_load_runs_reads_state_and_n(three_seeds: Path) -> None:
    runs, unreadable = load_runs(three_seeds)
    assert unreadable == [] and len(runs) == 3
    assert set(runs["state"]) == {"finished"} and set(runs["n"]) == {200.0}
    assert sorted(runs["seed"]) == [0, 1, 2]


def test_frontier_is_the_largest_contiguous_scale_most_seeds_reach(tmp_path: Path) -> None:
    # gpt: 3/3 seeds succeed at 20, 2/3 at 40, 1/3 at 80 -> frontier 40 (the rule: 60% of seeds).
    # d_model=64 is another curve: all seeds fail at 20 -> no frontier, even though 40 passes.
    outcomes = {20: [0.95, 0.95, 0.95], 40: [0.95, 0.95, 0.5], 80: [0.95, 0.2, 0.1]}
    for scale, accuracies in outcomes.items():
        for seed, accuracy in enumerate(accuracies):
            fake_run(tmp_path, seed=seed, accuracy=accuracy, scale=scale)
    for scale, accuracy in ((20, 0.1), (40, 0.95)):
        fake_run(tmp_path, seed=0, accuracy=accuracy, scale=scale, d_model=64)
    result = bench("compare", "--results", str(tmp_path), "--frontier", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["settings"]: row for row in json.loads(result.stdout)}
    assert rows["d_model=32"]["frontier"] == 40 and rows["d_model=32"]["largest_tested"] == 80
    assert rows["d_model=64"]["frontier"] is None
    assert rows["d_model=32"]["rates"] == "20:3/3 40:2/3 80:1/3"
    strict = json.loads(bench("compare", "--results", str(tmp_path), "--frontier", "--format", "json", "--min-rate",
                              "1").stdout)
    assert {row["settings"]: row["frontier"] for row in strict}["d_model=32"] == 20
    table = bench("compare", "--results", str(tmp_path))
    assert "frontier" in table.stdout and "20:3/3 40:2/3 80:1/3" in table.stdout
    assert bench("compare", "--results", str(tmp_path), "--min-rate", "0").exit_code == 2


def test_a_null_option_reads_as_the_solvers_default() -> None:
    spec = {"task": "add", "solver": "think_fixed", "task_params": {"max": 100},
            "solver_options": {"thoughts": None, "thought_vocab": 16}}
    varying = {"solver_options.thoughts", "solver_options.thought_vocab"}
    assert settings_text(spec, varying) == "thought_vocab=16 thoughts=default"
    # a null init is a fresh start, not a default to look up
    warm = {**spec, "init": None}
    assert settings_text(warm, varying | {"init"}) == "init=none thought_vocab=16 thoughts=default"


def test_an_option_that_a_default_spec_leaves_out_is_always_named(tmp_path: Path) -> None:
    # gpt with trace targets alone on the board: nothing varies between gpt configurations, yet the row must
    # not read as plain gpt (aux is one of gpt's LATE options, written into a spec only when set).
    fake_run(tmp_path, seed=0, accuracy=0.5, task="multiadd", scale=10, options={"aux": "trace"})
    (row,) = compare(tmp_path)[0].to_dict("records")
    assert row["solver"] == "gpt" and "aux=trace" in row["settings"]
    frontier = bench("compare", "--frontier", "--format", "json", "--results", str(tmp_path))
    assert "aux=trace" in json.loads(frontier.stdout)[0]["settings"]
