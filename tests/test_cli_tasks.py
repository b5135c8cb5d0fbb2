"""`bench tasks`, `bench sample`, `bench verify`, `bench perf data`: through typer's runner and a real process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.stats import wilson_interval
from tasks import task_names
from cli_checks import assert_one_line_error, bench_executable

runner = CliRunner()


def bench(*args: str, input: str | None = None):
    result = runner.invoke(app, list(args), input=input)
    # An exception other than SystemExit means a traceback would have reached the user.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def sample_jsonl(tmp_path: Path, task: str, n: int = 6, *extra: str) -> Path:
    out = tmp_path / f"{task}.jsonl"
    result = bench("sample", "--task", task, "-n", str(n), "--format", "jsonl", "--split", "test", "--out", str(out),
                   *extra)
    assert result.exit_code == 0, result.stderr
    return out


def verify_json(path: Path) -> dict:
    result = bench("verify", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)




# ---- bench tasks --------------------------------------------------------------------------------


def test_tasks_lists_every_task_and_its_parameters() -> None:
    result = runner.invoke(app, ["tasks"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    for name in task_names():
        assert name in result.stdout
    assert "--max" in result.stdout and "modulus" in result.stdout and "base" in result.stdout


# ---- bench sample -------------------------------------------------------------------------------


def test_sample_text_shows_problems_answers_and_traces() -> None:
    result = bench("sample", "--task", "add", "--max", "10", "-n", "3", "--seed", "4")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("(mod 10) =") == 3
    assert "trace" in result.stdout
    assert result.stdout == bench("sample", "--task", "add", "--max", "10", "-n", "3", "--seed", "4").stdout
    assert result.stdout != bench("sample", "--task", "add", "--max", "10", "-n", "3", "--seed", "5").stdout


@pytest.mark.parametrize("name", task_names())
def test_sample_jsonl_every_task(name: str) -> None:
    result = bench("sample", "--task", name, "-n", "4", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4
    for record in records:
        assert record["task"] == name and "answer" in record and "trace" in record
        assert {"size", "depth"} <= set(record["meta"])


def test_sample_set_and_max_reach_the_task() -> None:
    result = bench("sample", "--task", "add", "--max", "7", "--set", "base=2", "-n", "5", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    for record in map(json.loads, result.stdout.splitlines()):
        assert record["params"] == {"max": 7, "base": 2}
        assert all(0 <= x < 7 for x in record["operands"])


# ---- bench verify -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", task_names())
def test_sample_then_verify_scores_every_reference_answer_right(tmp_path: Path, name: str) -> None:
    summary = verify_json(sample_jsonl(tmp_path, name))
    assert summary["tasks"][name]["n"] == 6
    assert summary["tasks"][name]["accuracy"] == 1.0
    assert summary["malformed_lines"] == 0


def test_verify_table_format(tmp_path: Path) -> None:
    path = sample_jsonl(tmp_path, "add", 5)
    result = bench("verify", str(path))
    assert result.exit_code == 0, result.stderr
    assert "add" in result.stdout and "1.000" in result.stdout and "95% interval" in result.stdout


def test_corrupted_answers_lower_accuracy(tmp_path: Path) -> None:
    path = sample_jsonl(tmp_path, "add", 10, "--max", "50")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records[:4]:  # four wrong answers, each off by one
        record["answer"] = (record["answer"] + 1) % record["modulus"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = verify_json(path)
    assert summary["tasks"]["add"]["correct"] == 6
    assert summary["tasks"]["add"]["accuracy"] == pytest.approx(0.6)
    assert summary["tasks"]["add"]["interval95"] == pytest.approx(list(wilson_interval(6, 10)))


def test_verify_scores_a_mixed_file_per_task(tmp_path: Path) -> None:
    names = task_names()
    lines = "".join(sample_jsonl(tmp_path, name, 3).read_text() for name in names)
    mixed = tmp_path / "mixed.jsonl"
    # Every task's answers replaced by one no solver would give: all wrong, none malformed.
    records = [json.loads(line) for line in lines.splitlines()]
    for record in records[::2]:
        record["answer"] = "not an answer"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = verify_json(mixed)
    assert set(summary["tasks"]) == set(names)
    assert summary["total"]["n"] == 3 * len(names)
    assert summary["total"]["correct"] == 3 * len(names) - len(records[::2])
    assert summary["malformed_lines"] == 0


def test_malformed_lines_are_named_and_the_rest_scored(tmp_path: Path) -> None:
    good = sample_jsonl(tmp_path, "add", 3).read_text().splitlines()
    record = json.loads(good[0])
    no_answer = {k: v for k, v in record.items() if k != "answer"}
    lines = [
        good[0],
        "{not json",  # line 2
        json.dumps({**record, "task": "nope"}),  # line 3
        json.dumps(no_answer),  # line 4: no answer: scored as wrong, not skipped
        "",  # blank lines are skipped, not errors
        good[1],
        json.dumps({**record, "operands": "x"}),  # line 7: a malformed problem
        json.dumps({**record, "params": {"max": 1}}),  # line 8: params are ignored, the answer is right
        good[2],
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = bench("verify", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.output
    errors = result.stderr.strip().splitlines()
    assert [e.split(": ")[1] for e in errors] == [f"{path} line {k}" for k in (2, 3, 7)]
    assert "valid: add" in errors[1]  # the unknown task line names the valid tasks
    summary = json.loads(result.stdout)
    assert summary["tasks"]["add"] == {**summary["tasks"]["add"], "n": 5, "correct": 4, "unanswered": 1}
    assert summary["malformed_lines"] == 3


def test_a_flood_of_bad_lines_is_capped_but_counted(tmp_path: Path) -> None:
    good = sample_jsonl(tmp_path, "add", 1).read_text()
    path = tmp_path / "flood.jsonl"
    path.write_text("oops\n" * 60 + good)
    result = bench("verify", str(path), "--format", "json")
    assert result.exit_code == 0
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 51 and "line 50:" in errors[49] and "10 more malformed lines" in errors[50]
    assert json.loads(result.stdout)["malformed_lines"] == 60


def test_verify_reads_stdin(tmp_path: Path) -> None:
    text = sample_jsonl(tmp_path, "add", 4).read_text()
    result = bench("verify", "-", "--format", "json", input=text)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["tasks"]["add"]["n"] == 4


# ---- bad input: one line, exit 2, no traceback -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["sample", "--task", "nope"], ["'nope'", "valid: add"]),
        (["sample"], ["--task", "valid: add"]),
        (["sample", "--task", "add", "--set", "colour=red"],
         ["'colour'", "valid: answer_order, base, encoding, max, trace"]),
        (["sample", "--task", "add", "--set", "base"], ["key=value", "'base'"]),
        (["sample", "--task", "add", "--set", "base=ten"], ["'ten'"]),
        (["sample", "--task", "add", "--max", "1"], ["max=1", "valid: 2.."]),
        (["sample", "--task", "add", "--format", "csv"], ["'csv'", "valid: text, jsonl"]),
        (["sample", "--task", "add", "--split", "holdout"], ["'holdout'", "valid: train, monitor, test"]),
        (["sample", "--task", "add", "-n", "0"], ["-n 0", "valid: 1.."]),
        (["sample", "--task", "add", "--seed", "-3"], ["-3"]),
        (["sample", "--task", "add", "--out", "/nonexistent-dir/x.jsonl"], ["/nonexistent-dir"]),
        (["verify", "/nonexistent-file.jsonl"], ["/nonexistent-file.jsonl", "not found"]),
        (["verify"], ["FILE"]),
        (["perf", "data", "--tasks", "nope"], ["'nope'", "valid: add"]),
        (["perf", "data", "--seconds", "0"], ["--seconds 0"]),
    ],
)
def test_bad_input_one_line_exit_2(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(bench(*args), *fragments)


def test_bad_paths_and_formats_for_verify(tmp_path: Path) -> None:
    assert_one_line_error(bench("verify", str(tmp_path)), str(tmp_path), "directory")
    assert_one_line_error(bench("sample", "--task", "add", "--out", str(tmp_path)), "directory")
    path = sample_jsonl(tmp_path, "add", 2)
    assert_one_line_error(bench("verify", str(path), "--format", "xml"), "'xml'", "valid: table, json")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert_one_line_error(bench("verify", str(empty)), "no problem lines")


def test_verify_with_no_valid_line_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("{oops\n[1, 2]\n")
    result = bench("verify", str(path))
    assert result.exit_code == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and "line 1" in errors[0] and "line 2" in errors[1]
    assert "no valid problem line" in errors[2]
    assert "Traceback" not in result.output


# ---- bench perf data ------------------------------------------------------------------------------


def test_perf_data_measures_the_tasks_asked_for() -> None:
    result = bench("perf", "data", "--tasks", "add", "--seconds", "0.05", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["task"], r["scale"]) for r in rows] == [("add", 100), ("add", 1000)]
    assert all(r["problems_per_s"] > 0 and r["problems"] >= 256 for r in rows)
    table = bench("perf", "data", "--tasks", "add", "--seconds", "0.05")
    assert table.exit_code == 0 and "problems/s" in table.stdout


# ---- a real process ----------------------------------------------------------------------------------


def test_real_process_sample_pipe_verify(tmp_path: Path) -> None:
    # Two real processes (each pays the CLI's start-up): sample, then verify from stdin with one bad
    # line appended, which must be named on stderr while the good lines are still scored.
    exe = bench_executable()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    sample = subprocess.run(
        [exe, "sample", "--task", "add", "--max", "20", "-n", "5", "--format", "jsonl", "--seed", "3"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert sample.returncode == 0, sample.stderr
    assert len(sample.stdout.splitlines()) == 5
    verify = subprocess.run(
        [exe, "verify", "-", "--format", "json"], input=sample.stdout + '{"task": "nope", "answer": 1}\n',
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["tasks"]["add"] == {
        "n": 5, "correct": 5, "accuracy": 1.0, "interval95": list(wilson_interval(5, 5)), "unanswered": 0,
        "unverified": 0,
    }
    assert verify.stderr.strip().splitlines() == [
        f"error: stdin line 6: unknown task 'nope'; valid: {', '.join(task_names())}"
    ]
