"""Frontier and plots over any task parameter (`--axis length` for sort), and the report's floors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.analysis.compare import compare, frontier_board
from bench.analysis.experiment import best_floors, leaderboard_markdown
from bench.analysis.frontier import run_table
from bench.analysis.plots import make_plots
from bench.run.spec import TrainConfig
from bench.stats import wilson_interval
from bench.run.store import RunDir
from bench.run.train import build_spec
from cli_checks import assert_one_line_error
from solvers.base import ModelConfig, OptimConfig

runner = CliRunner()


def fake_run(root: Path, task: str, scale: int, overrides: dict, seed: int, accuracy: float,
             target: float = 0.9) -> str:
    """A finished run folder with a chosen result (no training)."""
    spec = build_spec(task, scale, overrides, "gpt", {}, ModelConfig(d_model=16, layers=1, heads=2), OptimConfig(),
                      TrainConfig(steps=10, target=target, seed=seed), "cpu")
    run = RunDir(root, spec.run_id)
    run.write("spec.json", spec.to_json())
    n = 100
    correct = round(accuracy * n)
    low, high = wilson_interval(correct, n)
    run.write("status.json", {"state": "finished", "step": 10, "elapsed": 1.0, "accuracy": correct / n, "low": low,
                              "high": high, "reached_target": correct / n >= target, "steps_to_target": None,
                              "parameters": 99})
    run.write("evaluation.json",
              {"final": {"thoughts": None, "overall": {"n": n, "correct": correct, "accuracy": correct / n,
              "low": low, "high": high}, "by": {}}, "budgets": [], "diagnostics": {}})
    return spec.run_id


@pytest.fixture()
def sort_runs(tmp_path: Path) -> Path:
    # Two value ranges; over length, max=10 solves lengths 4 and 8 and fails 16; max=100 solves only 4.
    for seed in (0, 1):
        for length, accuracy in ((4, 0.99), (8, 0.95), (16, 0.2)):
            fake_run(tmp_path, "sort", 10, {"length": length}, seed, accuracy)
        for length, accuracy in ((4, 0.97), (8, 0.5), (16, 0.1)):
            fake_run(tmp_path, "sort", 100, {"length": length}, seed, accuracy)
    return tmp_path


def test_frontier_over_length_draws_a_curve_per_value_range(sort_runs: Path) -> None:
    table = frontier_board(sort_runs, axis="length")
    by_settings = {row["settings"]: row for row in table.to_dict("records")}
    assert set(by_settings) == {"max=10", "max=100"}
    assert by_settings["max=10"]["frontier"] == 8 and by_settings["max=100"]["frontier"] == 4
    assert by_settings["max=10"]["largest_tested"] == 16 and by_settings["max=10"]["scales"] == 3
    # Over the default axis (max) the same runs are one curve per length instead.
    default = frontier_board(sort_runs)
    assert sorted(default["settings"]) == ["length=16", "length=4", "length=8"]


def test_compare_and_plot_commands_take_an_axis(sort_runs: Path, tmp_path: Path) -> None:
    result = runner.invoke(app,
                           ["compare", "--frontier", "--axis", "length", "--format", "json", "--results",
                            str(sort_runs)])
    assert result.exit_code == 0, result.output
    assert {(r["settings"], r["frontier"]) for r in json.loads(result.stdout)} == {("max=10", 8), ("max=100", 4)}
    table = runner.invoke(app, ["compare", "--axis", "length", "--results", str(sort_runs)], env={"COLUMNS": "200"})
    assert "value of length" in table.stdout
    out = tmp_path / "figures"
    plotted = runner.invoke(app,
                            ["plot", "--axis", "length", "--kind", "scale", "--out", str(out), "--results",
                             str(sort_runs)])
    assert plotted.exit_code == 0, plotted.output
    assert [p.name for p in out.glob("*.png")] == ["by-length-accuracy-vs-length-sort.png"]


def test_plots_keep_the_other_parameter_as_lines(sort_runs: Path, tmp_path: Path) -> None:
    runs = run_table(sort_runs)
    paths = make_plots(runs, sort_runs, tmp_path, ["scale"], prefix="x", axis="length")
    assert [p.name for p in paths] == ["x-by-length-accuracy-vs-length-sort.png"]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["compare", "--frontier", "--axis", "width", "--task", "sort"],
         ["'width'", "task sort", "valid: length, max"]),
        (["compare", "--axis", "colour"], ["'colour'", "any task"]),
        (["plot", "--axis", "nodes", "--task", "graph"], ["'nodes'", "valid: degree"]),
    ],
)
def test_bad_axis_is_one_line(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    assert_one_line_error(runner.invoke(app, [*args, "--results", str(tmp_path)]), *fragments)


def test_report_leaderboard_shows_the_best_floor(tmp_path: Path) -> None:
    fake_run(tmp_path, "add", 20, {}, 0, 0.99)
    fake_run(tmp_path, "add", 20, {}, 1, 0.97)
    fake_run(tmp_path, "graph", 8, {}, 0, 0.8)
    board, _ = compare(tmp_path)
    floors = best_floors(tmp_path, board, n=400)
    text = leaderboard_markdown(board, floors)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| add") or line.startswith("| graph")}
    header = next(line for line in text.splitlines() if line.startswith("| task"))
    columns = [c.strip() for c in header.split("|")]
    assert columns.index("best floor") == columns.index("accuracy") + 1
    # add mod 20: the plain sum is right whenever a + b < 20, about half the time.
    add_floor = rows["add"].split("|")[columns.index("best floor")].strip()
    value, name = re.fullmatch(r"(\d\.\d{3}) \((.+)\)", add_floor).groups()
    assert name == "sum without the modulus" and 0.4 < float(value) < 0.65
    # graph: the best floor is the majority rate, about 0.75 (no surface rule does better).
    graph_floor = rows["graph"].split("|")[columns.index("best floor")].strip()
    assert 0.68 < float(graph_floor.split()[0]) < 0.82
    assert "best floor:" in text


def test_report_floor_is_a_dash_for_a_task_that_cannot_be_built(tmp_path: Path) -> None:
    run_id = fake_run(tmp_path, "add", 20, {}, 0, 0.9)
    board, _ = compare(tmp_path)  # read while valid: compare itself skips a folder whose spec no longer fits
    spec = json.loads((tmp_path / "runs" / run_id / "spec.json").read_text())
    spec["task_params"]["max"] = 1  # out of range now
    (tmp_path / "runs" / run_id / "spec.json").write_text(json.dumps(spec))
    floors = best_floors(tmp_path, board, n=100)
    assert list(floors.values()) == [None]
    lines = leaderboard_markdown(board, floors).splitlines()
    columns = [c.strip() for c in lines[0].split("|")]
    assert lines[2].split("|")[columns.index("best floor")].strip() == "-"
