"""Run records: a run folder without its checkpoint (what the repository commits) is a finished run for
every reader, reports rebuild from records byte for byte, what needs the model says in one line that
the checkpoint is not in the record, and the per-problem answers and compute facts are stored."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import UserError
from bench.sweep.plan import expand, load_experiment
from cli_checks import assert_one_line_error

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
NOT_COMMITTED = "records not committed"  # the note on reports whose run folders are gone

# Two tiny gpt configurations (moduli 12 and 14) x 2 seeds: seconds to train; what they learn does
# not matter here, only that the report rebuilt from records is the report written after training.
EXPERIMENT = """
name = "tiny-records"
description = "Reports rebuild from committed run records."

[grid]
task = "add"
solver = "gpt"
max = [12, 14]
seed = [0, 1]
steps = 40
batch = 64
d_model = 16
layers = 1
eval_every = 20
eval_size = 50

[report]
plots = []
per_seed = true
"""


def bench(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def strip_to_records(runs: Path) -> None:
    """What git keeps of each run folder (.gitignore): no checkpoint, no tensorboard, no temp files."""
    for folder in runs.iterdir():
        (folder / "checkpoint.pt").unlink(missing_ok=True)
        shutil.rmtree(folder / "tensorboard", ignore_errors=True)


def test_a_report_rebuilds_byte_for_byte_from_records_without_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "tiny_records.toml"
    path.write_text(EXPERIMENT)
    results = tmp_path / "results"
    first = bench("experiment", str(path), "--jobs", "1", "--quiet", "--results", str(results))
    assert first.exit_code == 0, first.output
    report = results / "experiments" / "tiny-records" / "report.md"
    written = report.read_bytes()
    runs = results / "runs"
    assert len(list(runs.glob("*/checkpoint.pt"))) == 4
    # every finished run stored its answers and its compute
    for folder in runs.iterdir():
        answers = json.loads((folder / "answers.json").read_text())
        status = json.loads((folder / "status.json").read_text())
        assert len(answers["answers"]) == answers["n"] == len(answers["correct"]) == status["n"]
        assert answers["correct"].count("1") == status["correct"]
        assert status["flops_per_step"] > 0
        environment = json.loads((folder / "environment.json").read_text())
        assert {"cpu_capability", "cpu_model", "threads", "deterministic"} <= set(environment)

    strip_to_records(runs)
    report.unlink()
    rebuilt = bench("experiment", str(path), "--report-only", "--quiet", "--results", str(results))
    assert rebuilt.exit_code == 0, rebuilt.output
    assert report.read_bytes() == written
    assert "Runs: 4 of 4 finished" in written.decode()
    assert "FLOPs/step" in written.decode()
    # the per-seed table names every run once, beside the seed it trained
    per_seed = written.decode().split("## Per seed", 1)[1].split("\n## ", 1)[0]
    for folder in runs.iterdir():
        seed = json.loads((folder / "spec.json").read_text())["train"]["seed"]
        assert per_seed.count(folder.name) == 1 and f"| {seed} |" in per_seed

    # the records are finished runs for compare and show; what needs the model says why it cannot
    board = json.loads(bench("compare", "--format", "json", "--results", str(results)).stdout)
    assert sum(row["seeds"] for row in board) == 4 and all(row["flops_per_step"] > 0 for row in board)
    run_id = next(runs.iterdir()).name
    shown = bench("show", run_id, "--results", str(results))
    assert shown.exit_code == 0 and "FLOPs per step" in shown.stdout
    errors = bench("show", run_id, "--errors", "--limit", "0", "--results", str(results))
    answers = json.loads((runs / run_id / "answers.json").read_text())
    assert errors.exit_code == 0
    assert f"{answers['correct'].count('0')} of {answers['n']} test problems answered wrong" in errors.stdout
    for args in (["inspect", run_id], ["run", "--task", "add", "--max", "12", "--steps", "5", "--init", run_id]):
        assert_one_line_error(bench(*args, "--results", str(results)), "checkpoint.pt is not in the record",
                              f"bench recheck {run_id}")


def test_compare_test_gives_fisher_and_paired_p_values(tmp_path: Path) -> None:
    path = tmp_path / "tiny_records.toml"
    path.write_text(EXPERIMENT.replace("max = [12, 14]", "max = 12").replace("seed = [0, 1]", "seed = 0"))
    results = tmp_path / "results"
    assert bench("experiment", str(path), "--jobs", "1", "--quiet", "--results", str(results)).exit_code == 0
    other = bench("run", "--task", "add", "--max", "12", "--steps", "40", "--batch", "64", "--d-model", "16",
                  "--layers", "1",
                  "--eval-every", "20", "--eval-size", "50", "--lr", "0.01", "--quiet", "--results", str(results))
    assert other.exit_code == 0, other.output
    board = json.loads(bench("compare", "--format", "json", "--results", str(results)).stdout)
    a, b = (row["config"] for row in board)
    result = bench("compare", "--test", a[:6], b[:6], "--format", "json", "--results", str(results))
    assert result.exit_code == 0, result.output
    tested = json.loads(result.stdout)
    assert 0.0 <= tested["fisher_p"] <= 1.0 and len(tested["paired"]) == 1  # same seed, same test problems
    pair = tested["paired"][0]
    correct = {row["config"]: json.loads((results / "runs" / row["run_ids"] / "answers.json").read_text())["correct"]
               for row in board}
    right_a, right_b = correct[tested["a"]["config"]], correct[tested["b"]["config"]]
    assert pair["n"] == len(right_a) == len(right_b)
    assert pair["a_right_b_wrong"] == sum(x == "1" and y == "0" for x, y in zip(right_a, right_b))
    assert pair["b_right_a_wrong"] == sum(x == "0" and y == "1" for x, y in zip(right_a, right_b))
    assert 0.0 < pair["p"] <= 1.0 and tested["paired_pooled_p"] == pytest.approx(pair["p"])
    assert "Fisher's exact test" in bench("compare", "--test", a, b, "--results", str(results)).stdout
    assert_one_line_error(bench("compare", "--test", "fff", a, "--results", str(results)),
                          "--test 'fff' matches no configuration")


def finished_record(folder: Path) -> bool:
    """A run folder holding a finished run's record (a run in training elsewhere is not a record)."""
    try:
        return json.loads((folder / "status.json").read_text()).get("state") == "finished"
    except (OSError, ValueError):
        return False


def committed_experiments() -> list[Path]:
    return sorted((REPO / "experiments").glob("*.toml"))


@pytest.mark.parametrize("toml", committed_experiments(), ids=lambda p: p.stem)
def test_committed_reports_rebuild_from_their_committed_records(toml: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every committed experiment report whose run records are committed is what `bench experiment
    FILE --report-only` writes from them, byte for byte. Reports marked "records not committed" (the
    runs behind them are lost) and experiments with no committed record are skipped, each by name."""
    plan, _ = load_experiment(toml)
    name = plan.name or toml.stem
    report = REPO / "results" / "experiments" / name / "report.md"
    if not report.exists():
        pytest.skip(f"{toml.name}: no committed report")
    if NOT_COMMITTED in report.read_text().lower():
        pytest.skip(f"{toml.name}: its report says its records are not committed")
    runs = REPO / "results" / "runs"
    try:
        run_ids = {cell.run_id for cell in expand(plan, REPO / "results").cells}
    except UserError as exc:  # a warm-started cell whose source run is not committed
        pytest.skip(f"{toml.name}: its cells cannot be listed without their warm-start sources ({exc})")
    present = sorted(run_id for run_id in run_ids if finished_record(runs / run_id))
    if not present:
        pytest.skip(f"{toml.name}: none of its {len(run_ids)} run records is committed yet")
    results = tmp_path / "results"
    for run_id in present:  # the records alone, as a fresh clone has them
        shutil.copytree(runs / run_id, results / "runs" / run_id,
                        ignore=shutil.ignore_patterns("checkpoint.pt", "tensorboard", ".*"))
    monkeypatch.chdir(REPO)  # the report names its command with the file's path relative to the repository
    rebuilt = bench("experiment", f"experiments/{toml.name}", "--report-only", "--quiet", "--results", str(results))
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (results / "experiments" / name / "report.md").read_bytes() == report.read_bytes(), (
        f"{report.relative_to(REPO)} is not what its committed records give: rebuild it with "
        f"`bench experiment experiments/{toml.name} --report-only` and commit it with its records")


def test_recheck_retrains_a_record_and_says_whether_it_matches(tmp_path: Path) -> None:
    results = tmp_path / "results"
    trained = bench("run", "--task", "add", "--max", "12", "--steps", "20", "--batch", "32", "--d-model", "16",
                    "--layers", "1",
                    "--eval-every", "10", "--eval-size", "40", "--quiet", "--results", str(results))
    assert trained.exit_code == 0, trained.output
    folder = next((results / "runs").iterdir())
    checkpoint = (folder / "checkpoint.pt").read_bytes()
    strip_to_records(results / "runs")
    same = bench("recheck", folder.name, "--keep", "--results", str(results))
    assert same.exit_code == 0 and "reproduced bit for bit" in same.stdout, same.output
    # the same model, put back into the record (the bytes differ only by the wall time stored beside it)
    before = torch.load(io.BytesIO(checkpoint), weights_only=True)["solver"]["model"]
    after = torch.load(folder / "checkpoint.pt", weights_only=True)["solver"]["model"]
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # a record that the spec does not give (here: an edited curve) is reported, with exit 1
    curve = json.loads((folder / "curve.json").read_text())
    curve[0]["accuracy"] = 1.0 if curve[0]["accuracy"] < 1.0 else 0.0
    (folder / "curve.json").write_text(json.dumps(curve))
    differs = bench("recheck", folder.name, "--results", str(results))
    assert differs.exit_code == 1
    assert "NOT bit-identical" in differs.stdout and "curve parts at step 10" in differs.stdout
    assert_one_line_error(bench("recheck", "abcdef", "--results", str(results)), "no run 'abcdef'")
