"""Shortcut floors (bench/analysis/floors.py, `bench floors`) and the generators they police: no surface rule
may beat the majority rate on graph or sat, and the rules themselves must find a shortcut where one
exists."""

from __future__ import annotations

import functools
import json

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pysat.solvers import Glucose3
from typer.testing import CliRunner

from bench.cli import app
from bench.analysis.floors import (
    Floor, _fit_threshold, best_threshold_accuracy, compute_floors, floor_batches, graph_features, labels, sat_features,
)
from cli_checks import assert_one_line_error
from tasks import Batch, make_task

FAST = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)
runner = CliRunner()
PROBLEMS = 2000  # the yardstick: 2,000 eval-split problems per task and scale
SLACK = 0.03


@functools.lru_cache(maxsize=None)
def batches(name: str, scale: int, overrides: tuple = ()) -> tuple:
    task = make_task(name, scale, dict(overrides))
    train, test = floor_batches(task, PROBLEMS, seed=0)
    return task, train, test


def majority_rate(task, test: Batch) -> float:
    share = float(labels(task, test).mean())
    return max(share, 1 - share)


# ---- the done-when, and no surface rule above the majority rate ---------------------------


@pytest.mark.parametrize("nodes", [8, 16, 32])
def test_graph_isolated_endpoint_is_no_better_than_majority(nodes: int) -> None:
    task, train, test = batches("graph", nodes)
    floors = {f.name: f.accuracy for f in compute_floors(task, train, test)}
    assert floors["isolated endpoint"] <= majority_rate(task, test) + SLACK
    assert all(accuracy <= majority_rate(task, test) + SLACK for accuracy in floors.values()), floors


@pytest.mark.parametrize("overrides",
                         [(("directed", True),), (("no_path_share", 0.5),), (("degree", 4.0), ("directed", True))])
def test_graph_floors_at_other_settings(overrides: tuple) -> None:
    task, train, test = batches("graph", 12, overrides)
    floors = compute_floors(task, train, test)
    assert all(f.accuracy <= majority_rate(task, test) + SLACK for f in floors), floors


# n = 8 takes ~20 s on a busy 2-core machine: run it with -m benchmark.
@pytest.mark.parametrize("variables", [5, pytest.param(8, marks=pytest.mark.benchmark)])
def test_sat_clause_counts_say_nothing(variables: int) -> None:
    task, train, test = batches("sat", variables)
    features, y = sat_features(task, test), labels(task, test)
    # In-sample on the test problems themselves: the best threshold of either clause count.
    best = max(best_threshold_accuracy(features[k], y) for k in ("clauses", "distinct_clauses"))
    assert best <= 0.55
    floors = compute_floors(task, train, test)
    assert all(f.accuracy <= majority_rate(task, test) + SLACK for f in floors), floors
    assert abs(y.mean() - 0.5) < 0.04  # balanced


# ---- the rules do find shortcuts where they exist ------------------------------------------------------


def test_rules_find_planted_shortcuts() -> None:
    sort = make_task("sort", 50, {"length": 4})
    rng = np.random.default_rng(0)
    values = np.sort(rng.integers(0, 50, size=(300, 4)), axis=1) + 1  # already sorted: copying is right
    sorted_batch = Batch(values, values.copy(), np.zeros((300, 8), np.int64), {"size": np.full(300, 4)})
    floors = {f.name: f.accuracy for f in compute_floors(sort, sorted_batch, sorted_batch)}
    assert floors["copy the input"] == 1.0
    add = make_task("add", 100)
    small = add.generate(np.random.default_rng(1), 400)
    small = small.take(np.flatnonzero((small.questions - 1).sum(axis=1) < 100))  # no wrap-around
    assert {f.name: f.accuracy for f in compute_floors(add, small, small)}["sum without the modulus"] == 1.0
    # The old graph generator's hole, replayed: no-path problems whose source is isolated.
    graph = make_task("graph", 8)
    batch = graph.generate(np.random.default_rng(2), 400)
    questions = batch.questions.copy()
    no_path = labels(graph, batch) == 1
    questions[no_path, :-2] = 0  # strip every edge: the source has none
    stripped = Batch(questions, batch.answers, batch.traces, batch.meta)
    floors = {f.name: f.accuracy for f in compute_floors(graph, stripped, stripped)}
    assert floors["isolated endpoint"] == 1.0 and floors["logistic on degrees"] > 0.95


@FAST
@given(st.lists(st.integers(0, 20), min_size=20, max_size=200), st.integers(0, 20))
def test_threshold_fit_is_exact_on_separable_data(xs: list[int], cut: int) -> None:
    x = np.asarray(xs)
    y = (x >= cut).astype(np.int64)
    assert best_threshold_accuracy(x, y) == 1.0
    k, above = _fit_threshold(x, 1 - y)
    assert np.array_equal((x >= k) if above else (x < k), y == 0)


def test_floors_are_sorted_and_serialisable() -> None:
    task, train, test = batches("graph", 8)
    floors = compute_floors(task, train, test)
    assert [f.accuracy for f in floors] == sorted((f.accuracy for f in floors), reverse=True)
    assert all(isinstance(f, Floor) and f.n == PROBLEMS for f in floors)
    json.dumps([f.as_dict() for f in floors])


# ---- generator properties behind the floors ---------------------------------------------------------


graph_settings = st.fixed_dictionaries(
    {"max": st.integers(5, 40), "directed": st.booleans(), "degree": st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0])}
)


@FAST
@given(graph_settings, seeds)
def test_graph_endpoints_never_isolated_and_kinds_verified(config: dict, seed: int) -> None:
    task = make_task("graph", config["max"],
                     {"directed": config["directed"], "degree": config["degree"], "no_path_share": 0.5})
    batch = task.generate(np.random.default_rng(seed), 24)
    features = graph_features(task, batch)
    assert (features["source_out"] > 0).all() and (features["target_in"] > 0).all()
    for question, has_path in zip(batch.questions, batch.meta["has_path"]):
        problem = task.problem_json(question)
        graph = nx.DiGraph() if problem["directed"] else nx.Graph()
        graph.add_nodes_from(range(problem["nodes"]))
        graph.add_edges_from(map(tuple, problem["edges"]))
        assert nx.has_path(graph, problem["source"], problem["target"]) == bool(has_path)


def test_graph_kinds_share_edge_count_and_endpoint_degrees() -> None:
    task = make_task("graph", 10, {"no_path_share": 0.5})
    batch = task.generate(np.random.default_rng(3), 3000)
    features, y = graph_features(task, batch), labels(task, batch)
    for name in ("edges", "source_out", "target_in"):
        values = features[name]
        gap = abs(values[y == 1].mean() - values[y == 0].mean())
        assert gap < 4 * values.std() / np.sqrt(len(values) / 4), (name, gap)


@FAST
@given(st.integers(4, 10), st.sampled_from([2, 3]), seeds)
def test_sat_pairs_differ_in_one_literal_and_flip_satisfiability(variables: int, width: int, seed: int) -> None:
    task = make_task("sat", variables, {"width": width, "ratio": 6.0 if width == 3 else 4.0})
    rng = np.random.default_rng(seed)
    pairs = [p for p in (task._draw_pair(s, float(rng.random())) for s in task._draw_sequences(rng, 12)) if p]
    for unsat, sat in pairs:
        assert len(unsat) == len(sat) == len(set(sat)) <= task.num_clauses
        assert unsat[:-1] == sat[:-1]
        assert sum(a != b for a, b in zip(unsat[-1], sat[-1])) == 1
        with Glucose3(bootstrap_with=[list(c) for c in unsat]) as solver:
            assert not solver.solve()
        with Glucose3(bootstrap_with=[list(c) for c in sat]) as solver:
            assert solver.solve()


def test_sat_questions_hold_the_formula_then_pad() -> None:
    task = make_task("sat", 6)
    batch = task.generate(np.random.default_rng(4), 50)
    for question, clauses in zip(batch.questions, batch.meta["clauses"]):
        rows = question.reshape(-1, 3)
        assert (rows[:clauses] > 0).all() and (rows[clauses:] == 0).all()
        assert len(task.problem_json(question)["clauses"]) == clauses


# ---- the command --------------------------------------------------------------------------------------


def test_floors_command_table_and_json() -> None:
    result = runner.invoke(app, ["floors", "--task", "add", "--max", "20", "-n", "300"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "sum without the modulus" in result.stdout and "majority" in result.stdout
    result = runner.invoke(app, ["floors", "--task", "graph", "--max", "8", "-n", "200", "--format", "json"])
    summary = json.loads(result.stdout)
    assert summary["params"]["max"] == 8 and {f["name"] for f in summary["floors"]} >= {"majority", "isolated endpoint"}
    assert all(0.0 <= f["accuracy"] <= 1.0 and f["n"] == 200 for f in summary["floors"])


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["floors"], ["--task", "valid: add"]),
        (["floors", "--task", "nope"], ["'nope'", "valid: add"]),
        (["floors", "--task", "graph", "--max", "2"], ["max=2", "valid: 5..128"]),
        (["floors", "--task", "add", "-n", "3"], ["-n 3", "10..100000"]),
        (["floors", "--task", "add", "--format", "xml"], ["'xml'", "table, json"]),
    ],
)
def test_floors_command_bad_input_is_one_line(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(runner.invoke(app, args), *fragments)
