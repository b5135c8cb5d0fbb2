"""`bench tune`: every solver gets the same search, selection reads the monitor split only."""

from __future__ import annotations

import json

import pytest

from typer.testing import CliRunner

from bench.cli import app
from bench.sweep.tune import Trial, select
from cli_checks import assert_one_line_error
from tiny_runs import learning_seed, report_margin

runner = CliRunner()


@pytest.mark.learning
def test_tune_selects_the_learning_configuration_and_counts_compute(tmp_path) -> None:
    # margin: lr 3e-3 reaches monitor 0.953-1.00 on seeds 0-2 under default/avx2/native at step 600 (the spec of
    # tests/tiny_runs.py's LEARNS); lr 1e-7 stays near chance; asserts the selection and monitor > 0.5
    tiny = ["--set", "length=4", "--set", "d_model=64", "--set", "layers=1", "--set", "heads=4", "--set", "batch=128",
            "--set", "eval_every=600"]
    result = runner.invoke(app,
                           ["tune", "--task", "sort", "--max", "10", "--solver", "gpt", "--space", "lr=0.003,0.0000001",
                                 *tiny, "--steps", "600", "--seeds", str(learning_seed()), "--name", "t", "--format",
                                 "json",
                                 "-q", "--jobs", "1", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("["):])
    (row,) = rows
    assert row["solver"] == "gpt" and row["configs"] == 2 and row["configs_finished"] == 2
    assert row["selected"] == {"lr": 0.003}
    report_margin("tune_gpt_sort", row["monitor_accuracy"], 0.5)
    assert row["monitor_accuracy"] > 0.5
    assert 0.0 <= row["test_low"] <= row["test_accuracy"] <= row["test_high"] <= 1.0
    assert row["flops_per_step"] > 0 and row["train_flops"] == row["flops_per_step"] * row["steps"]
    assert row["search_seconds"] >= row["train_seconds"] > 0
    record = json.loads((tmp_path / "tune" / "t.json").read_text())
    assert record["rows"][0]["run_ids"] == row["run_ids"]


def _trial(config: dict, monitor: float, test: float, elapsed: float = 1.0) -> Trial:
    status = {"monitor_accuracy": monitor, "accuracy": test, "n": 100, "correct": int(test * 100), "elapsed": elapsed,
              "step": 10, "parameters": 5, "reached_target": test >= 0.99}
    return Trial(("add", 100, "gpt"), config, [status], ["x"])


def test_selection_never_reads_the_test_accuracy() -> None:
    # The configuration with the better test number but the worse monitor number is not selected.
    rows = select([_trial({"lr": 1}, monitor=0.9, test=0.5), _trial({"lr": 2}, monitor=0.8, test=1.0)])
    assert rows[0]["selected"] == {"lr": 1} and rows[0]["test_accuracy"] == 0.5


def test_ties_go_to_the_cheaper_configuration() -> None:
    rows = select([_trial({"lr": 1}, 0.9, 0.9, elapsed=50.0), _trial({"lr": 2}, 0.9, 0.9, elapsed=5.0)])
    assert rows[0]["selected"] == {"lr": 2}


def test_bad_tune_input_is_one_line(tmp_path) -> None:
    base = ["tune", "--task", "add", "--max", "20", "--results", str(tmp_path)]
    assert_one_line_error(runner.invoke(app, [*base, "--space", "seed=1,2"]), "not a tuning setting")
    assert_one_line_error(runner.invoke(app, [*base, "--space", "lr"]), "name=v1,v2")
    assert_one_line_error(runner.invoke(app, [*base, "--format", "xml"]), "table, markdown, json")
    assert_one_line_error(runner.invoke(app, [*base, "--steps", "0"]), "--steps=0")
    assert_one_line_error(runner.invoke(app, [*base, "--solver", "gpt,nope"]), "nope")


def test_the_default_search_is_lr_x_weight_decay_x_init(tmp_path) -> None:
    result = runner.invoke(app, ["tune", "--task", "add", "--max", "20", "--solver", "gpt,pause", "--dry-run",
                                 "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "24 cells" in result.output  # 2 solvers x 3 learning rates x 2 weight decays x 2 inits
    assert "weight_decay" in result.output and "warmup" not in result.output
