"""`bench verify` cannot be gamed: skipped answers count as wrong, proofs have a time limit and are
never right when cut short, hostile lines are named and the rest still scored, problems must have
their task's shape, and fields outside the problem (params) are ignored alike."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench.cli import app
from bench.analysis.verify import score_lines
from cli_checks import assert_one_line_error, bench_executable
from tasks import make_task, stream_rng

runner = CliRunner()


def records(name: str, n: int, scale: int | None = None, **overrides: str) -> list[dict]:
    task = make_task(name, scale, overrides)
    batch = task.sample(stream_rng(0, "eval"), n, "eval")
    return [task.record(batch, i) for i in range(n)]


def lines_of(recs: list[dict]) -> list[str]:
    return [json.dumps(r) for r in recs]


def pigeonhole(holes: int = 10) -> dict:
    """PHP(holes): holes + 1 pigeons in `holes` holes, unsatisfiable, exponential for resolution."""
    pigeons = holes + 1
    var = lambda i, j: i * holes + j + 1  # noqa: E731
    clauses = [[var(i, j) for j in range(holes)] for i in range(pigeons)]
    clauses += [[-var(i, j), -var(k, j)] for j in range(holes) for i in range(pigeons) for k in range(i + 1, pigeons)]
    return {"task": "sat", "variables": pigeons * holes, "clauses": clauses, "answer": None}


def test_ten_right_and_ten_unanswered_score_half_on_twenty(tmp_path: Path) -> None:
    recs = records("add", 20, 50)
    for rec in recs[10:]:
        del rec["answer"]
    path = tmp_path / "half.jsonl"
    path.write_text("\n".join(lines_of(recs)) + "\n")
    result = runner.invoke(app, ["verify", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    add = json.loads(result.stdout)["tasks"]["add"]
    assert (add["n"], add["correct"], add["accuracy"], add["unanswered"]) == (20, 10, 0.5, 10)
    table = runner.invoke(app, ["verify", str(path)], env={"COLUMNS": "200"})
    assert "0.500" in table.stdout and "no answer" in table.stdout


def test_null_answers_are_just_wrong_where_null_means_something_else() -> None:
    recs = records("graph", 12, 8, no_path_share="0")  # every problem has a path: null is wrong
    for rec in recs[6:]:
        rec["answer"] = None
    scores, bad = score_lines(lines_of(recs))
    assert not bad and (scores["graph"].n, scores["graph"].correct) == (12, 6)


def test_pigeonhole_unsat_claim_is_unverified_within_the_limit() -> None:
    start = time.perf_counter()
    scores, bad = score_lines([json.dumps(pigeonhole(10))], time_limit=1.0)
    assert time.perf_counter() - start < 10
    assert not bad and (scores["sat"].n, scores["sat"].correct, scores["sat"].unverified) == (1, 0, 1)


def test_pigeonhole_with_the_default_limit_returns_within_30_s(tmp_path: Path) -> None:
    path = tmp_path / "php.jsonl"
    small = records("sat", 3, 5)
    path.write_text("\n".join([json.dumps(pigeonhole(10)), *lines_of(small)]) + "\n")
    start = time.perf_counter()
    done = subprocess.run([bench_executable(), "verify", str(path), "--format", "json"], capture_output=True, text=True,
                          timeout=60)
    assert time.perf_counter() - start < 30
    assert done.returncode == 0, done.stderr
    sat = json.loads(done.stdout)["tasks"]["sat"]
    assert (sat["n"], sat["correct"], sat["unverified"]) == (4, 3, 1)


def test_a_small_unsat_claim_is_still_proved() -> None:
    scores, _ = score_lines([json.dumps(pigeonhole(3))], time_limit=5.0)
    assert (scores["sat"].correct, scores["sat"].unverified) == (1, 0)


def test_hundred_thousand_brackets_are_one_named_error() -> None:
    good = lines_of(records("sort", 3, 20))
    scores, bad = score_lines([good[0], "[" * 100_000, good[1], '{"task": "sort", "values": ' + "[" * 50_000, good[2]])
    assert scores["sort"].n == 3 and scores["sort"].correct == 3
    assert [number for number, _ in bad] == [2, 4]
    assert all("nested too deeply" in reason or "not valid JSON" in reason for _, reason in bad)


@pytest.mark.parametrize(
    "name, scale, change, fragment",
    [
        ("add", 50, {"operands": [1, 2, 3]}, "exactly 2"),
        ("add", 50, {"operands": [1]}, "exactly 2"),
        ("multiadd", 50, {"operands": list(range(33))}, "2..32"),
        ("sort", 50, {"values": [3]}, "2..64"),
        ("sort", 50, {"values": [-1, 2]}, "[0, "),
        ("graph", 8, {"edges": [[1, 1]]}, "self-loop"),
        ("sat", 5, {"clauses": [[1, 2, 3], []]}, "empty"),
    ],
)
def test_problems_of_the_wrong_shape_are_refused(name: str, scale: int, change: dict, fragment: str) -> None:
    rec = {**records(name, 1, scale)[0], **change}
    scores, bad = score_lines([json.dumps(rec)])
    assert not scores and len(bad) == 1 and fragment in bad[0][1], bad


@pytest.mark.parametrize("params", [{"max": 1}, {"max": 10**9}, {"nonsense": True}, "text", [1, 2], None])
def test_params_and_unknown_fields_are_ignored(params: object) -> None:
    for name, scale in (("add", 50), ("graph", 8), ("sat", 5), ("sort", 30), ("multiadd", 30)):
        recs = records(name, 3, scale)
        for rec in recs:
            rec["params"] = params
            rec["solver_notes"] = {"whatever": [1, 2]}
        scores, bad = score_lines(lines_of(recs))
        assert not bad and scores[name].n == scores[name].correct == 3, (name, bad)


def test_a_timed_out_check_is_never_right(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.add import AddTask

    monkeypatch.setattr(AddTask, "verify_json_within", lambda self, problem, answer, limit: None)
    scores, _ = score_lines(lines_of(records("add", 4, 50)))
    assert (scores["add"].n, scores["add"].correct, scores["add"].unverified) == (4, 0, 4)


GOOD = lines_of(records("add", 8, 30))
GARBAGE = ["[" * 5000, "{", "null", "[]", '{"task": 3}', '{"task": "nope"}', "\u00ff\u00fe", '{"task": "add"}']


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["right", "wrong", "missing", "garbage"]), st.integers(0, 7)), max_size=30))
def test_mixed_files_score_exactly_what_they_should(plan: list[tuple[str, int]]) -> None:
    lines = []
    for kind, i in plan:
        rec = json.loads(GOOD[i])
        if kind == "garbage":
            lines.append(GARBAGE[i])
            continue
        if kind == "wrong":
            rec["answer"] = (rec["answer"] + 1) % rec["modulus"]
        if kind == "missing":
            del rec["answer"]
        lines.append(json.dumps(rec))
    scores, bad = score_lines(lines)
    counted = sum(kind != "garbage" for kind, _ in plan)
    add = scores.get("add")
    assert (add.n if add else 0) == counted
    assert (add.correct if add else 0) == sum(kind == "right" for kind, _ in plan)
    assert (add.unanswered if add else 0) == sum(kind == "missing" for kind, _ in plan)
    assert len(bad) == sum(kind == "garbage" for kind, _ in plan)


def test_bad_time_limit_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(GOOD) + "\n")
    assert_one_line_error(runner.invoke(app, ["verify", str(path), "--time-limit", "0"]), "--time-limit 0",
                          "more than 0")
