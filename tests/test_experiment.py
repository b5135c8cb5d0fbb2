"""`bench experiment` and the sweep files' [[part]] tables: one command runs an experiment's grid and
writes its report (leaderboard, frontier, thought diagnostics, figures) from the runs themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import UserError
from bench.sweep.plan import Grid, expand, load_experiment, load_toml
from cli_checks import assert_one_line_error
from tiny_runs import learning_seed, report_margin

runner = CliRunner()

# gpt sorting 4 values at two value ranges and a thinker on add, two seeds each; a second, identical grid
# part is deduplicated. The gpt settings are tests/tiny_runs.py's LEARNS (learned fully and early).
EXPERIMENT = """
name = "tiny-exp"
description = "Does a tiny gpt learn to sort?"

[grid]
seed = [0, 1]
steps = 600
batch = 128
d_model = 64
layers = 1
heads = 4
lr = 0.003
target = 0.8
eval_every = 600
eval_size = 400

[[part]]
task = "sort"
length = 4
solver = "gpt"
max = [10, 12]

[[part]]
task = "sort"
length = 4
solver = "gpt"
max = 12

[[part]]
task = "add"
prompt = "separated"
solver = "think_fixed_blind_super_clean"
max = 20
group = 4
steps = 20
eval_every = 25
eval_size = 200

[report]
plots = ["scale", "curves"]
"""


def bench(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- [[part]] tables -----------------------------------------------------------------------------


def test_parts_are_a_union_of_grids_over_the_shared_settings(tmp_path: Path) -> None:
    grid = load_toml(write(tmp_path, EXPERIMENT))
    assert len(grid.parts) == 3 and grid.axes["seed"] == [0, 1]
    cells = expand(grid).cells
    # gpt x {10, 12} x 2 seeds, the repeated gpt part adds nothing, the thinker x 2 seeds.
    assert len(cells) == 6
    solvers = sorted((c.spec.solver, c.spec.task_params["max"]) for c in cells)
    assert solvers.count(("gpt", 12)) == 2 and solvers.count(("think_fixed_blind_super_clean", 20)) == 2
    thinker = next(c for c in cells if c.spec.solver != "gpt")
    assert thinker.spec.train.steps == 20 and thinker.spec.solver_options["group"] == 4  # the part's value wins
    assert [c.spec.train.seed for c in cells] == [0, 0, 0, 1, 1, 1]  # seeds vary slowest across parts


def test_command_line_settings_override_every_part(tmp_path: Path) -> None:
    grid = load_toml(write(tmp_path, EXPERIMENT))
    cli = Grid()
    cli.set("max", [7])
    cli.set("seed", [3])
    cells = expand(grid.merged(cli)).cells
    assert {c.spec.task_params["max"] for c in cells} == {7}
    assert {c.spec.train.seed for c in cells} == {3}


def test_a_file_without_parts_is_one_grid(tmp_path: Path) -> None:
    grid = load_toml(write(tmp_path, '[grid]\ntask = "add"\nmax = [12, 14]\n'))
    assert grid.parts == [] and len(expand(grid).cells) == 2


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[grid]\ntask = "add"\n[[part]]\n', "[[part]] number 1 is empty"),
        ('[grid]\ntask = "add"\n[[part]]\nmax = []\n', "is an empty list"),
        ('part = 3\n[grid]\ntask = "add"\n', "[[part]] an array of tables"),
        ('[grid]\ntask = "add"\n[report]\ncolour = "red"\n', "unknown [report] keys ['colour']"),
        ('[grid]\ntask = "add"\n[report]\nmin_rate = 0.5\n',
         "[report] min_rate is not a setting: every report counts a scale"),
        ('[grid]\ntask = "add"\n[report]\nplots = ["pie"]\n', "plots=['pie']; valid: a list of scale, budget, curves"),
        ('[grid]\ntask = "add"\n[report]\nper_seed = "yes"\n', "per_seed='yes'; valid: true or false"),
        ('[grid]\ntask = "add"\n[[part]]\nsolver = "gpt"\nnot_a_setting = 1\n',
         "setting 'not_a_setting' is not a run option"),
    ],
)
def test_bad_experiment_files_are_refused_in_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=re.escape(fragment)):
        grid, _ = load_experiment(path)
        expand(grid)


# ---- the command ---------------------------------------------------------------------------------


@pytest.mark.learning
def test_experiment_runs_its_grid_and_writes_a_report_from_the_runs(tmp_path: Path) -> None:
    # margin: gpt's four runs (LEARNS at max 10 and 12) reach 0.938-1.00 on seeds 0-3 under default/avx2/native;
    # success is test accuracy >= 0.8, so the frontier row reads 10:2/2 12:2/2
    seed = learning_seed()
    path = write(tmp_path, EXPERIMENT.replace("seed = [0, 1]", f"seed = [{seed}, {seed + 1}]"))
    results = tmp_path / "results"
    stray = bench("run", "--task", "add", "--max", "12", "--steps", "10", "--d-model", "16", "--layers", "1",
                  "--eval-size", "64", "--quiet", "--results", str(results))
    assert stray.exit_code == 0, stray.output
    result = bench("experiment", str(path), "--quiet", "--results", str(results))
    assert result.exit_code == 0, result.output
    report_dir = results / "experiments" / "tiny-exp"
    report = (report_dir / "report.md").read_text()
    assert result.stdout.strip().endswith(str(report_dir / "report.md"))
    assert "Does a tiny gpt learn to sort?" in report and f"bench experiment {path.as_posix()}" in report
    assert "Runs: 6 of 6 finished" in report
    # The leaderboard holds exactly the experiment's three configurations (the stray run is left out),
    # with each configuration's mean accuracy as the runs stored it.
    statuses, by_id = {}, {}
    for cell in expand(load_toml(path)).cells:
        statuses[cell.run_id] = json.loads((results / "runs" / cell.run_id / "status.json").read_text())
        by_id[cell.run_id] = (cell.spec.solver, cell.spec.task_params["max"])
    leaderboard = [line for line in report.splitlines()
                   if line.startswith(("| add |", "| sort |")) and line.count("|") > 10]
    assert len(leaderboard) == 3
    assert all(s["state"] == "finished" for s in statuses.values())
    gpt_accuracies = [s["accuracy"] for rid, s in statuses.items() if by_id[rid][0] == "gpt"]
    report_margin("experiment_gpt_sort_min", min(gpt_accuracies), 0.8)
    # A real result: gpt learns to sort at both value ranges (every seed reaches 0.8 on the distinct test
    # problems), so its frontier is the largest range; the table's mean is the mean of the runs' own
    # stored accuracies.
    assert re.search(r"\| sort \| gpt \|  \| 12 \| 12 \| 10:2/2 12:2/2 \|", report), report
    for scale in (10, 12):
        stored = [s["accuracy"] for rid, s in statuses.items() if by_id[rid] == ("gpt", scale)]
        row = next(line for line in leaderboard if line.startswith(f"| sort | {scale} | gpt |"))
        assert row.split("|")[6].strip() == f"{sum(stored) / len(stored):.3f}"
    # The thinker's thought diagnostics: one trace-match value per reference-trace position.
    thoughts = report.split("## Thoughts")[1]
    assert re.search(r"\| add \| 20 \| think_fixed_blind_super_clean \|  \| 2 \| \d\.\d\d( / \d\.\d\d)* \|",
                     thoughts), thoughts
    figures = sorted(p.name for p in report_dir.glob("*.png"))
    assert figures == sorted(f"tiny-exp-{kind}-{task}.png" for kind in ("accuracy-vs-scale", "curves")
                             for task in ("add", "sort"))
    assert all(f"]({name})" in report for name in figures)
    # Again: nothing retrains (finished runs are reused) and the report comes out the same.
    mtimes = {p: p.stat().st_mtime_ns for p in (results / "runs").glob("*/checkpoint.pt")}
    again = bench("experiment", str(path), "--quiet", "--results", str(results))
    assert again.exit_code == 0 and "6 already finished" in again.stderr
    assert mtimes == {p: p.stat().st_mtime_ns for p in (results / "runs").glob("*/checkpoint.pt")}
    assert (report_dir / "report.md").read_text() == report
    # compare --sweep shows the same cells only.
    board_json = json.loads(bench("compare", "--sweep", "tiny-exp", "--format", "json", "--results",
                                  str(results)).stdout)
    assert sum(row["seeds"] for row in board_json) == 6
    everything = json.loads(bench("compare", "--format", "json", "--results", str(results)).stdout)
    assert sum(row["seeds"] for row in everything) == 7


def test_report_only_writes_nothing_new_and_needs_finished_runs(tmp_path: Path) -> None:
    path = write(tmp_path, EXPERIMENT)
    result = bench("experiment", str(path), "--report-only", "--results", str(tmp_path / "results"))
    assert_one_line_error(result, "experiment tiny-exp: none of its 6 runs has finished")
    assert not list((tmp_path / "results").glob("runs/*/checkpoint.pt"))  # nothing trained


def test_dry_run_lists_the_cells(tmp_path: Path) -> None:
    result = bench("experiment", str(write(tmp_path, EXPERIMENT)), "--dry-run", "--results", str(tmp_path / "r"))
    assert result.exit_code == 0 and "6 cells" in result.stdout
    assert not list((tmp_path / "r").glob("runs/*/*"))  # no run started


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["experiment", "missing.toml"], ["sweep file missing.toml does not exist"]),
        (["experiment", "."], ["sweep file . is not a file"]),
        (["experiment", "x.toml", "--jobs", "0"], ["--jobs=0 must be at least 1"]),
        (["compare", "--sweep", "nope"], ["no sweep 'nope'", "known: none"]),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(bench(*args, "--results", str(tmp_path)), *fragments)
