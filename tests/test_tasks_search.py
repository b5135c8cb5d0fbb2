"""Task-specific properties of `graph` and `sat`: verifiers accept every right answer and reject
broken, longer or wrong ones; the SAT/UNSAT and path/no-path mixes match their parameters; depth
grows with scale; bad parameters fail with one-line errors. (Generic contract tests live in
tests/test_task_contract.py.)"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pysat.solvers import Glucose3

from tasks.base import PAD, TaskError
from tasks.registry import make_task

FAST = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**32 - 1)


# ---- graph --------------------------------------------------------------------------------------
graph_configs = st.fixed_dictionaries(
    {
        "max": st.integers(5, 24),
        "directed": st.booleans(),
        "degree": st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0]),
    }
)


def graph_sample(config: dict, seed: int, n: int = 16):
    overrides = {"directed": config["directed"], "degree": config["degree"]}
    task = make_task("graph", config["max"], overrides)
    return task, task.generate(np.random.default_rng(seed), n)


def nx_graph(problem: dict) -> nx.Graph:
    graph = nx.DiGraph() if problem["directed"] else nx.Graph()
    graph.add_nodes_from(range(problem["nodes"]))
    graph.add_edges_from(map(tuple, problem["edges"]))
    return graph


def path_tokens(task, path: list[int]) -> np.ndarray:
    row = np.full(task.answer_len, PAD, dtype=np.int64)
    row[: len(path)] = np.asarray(path) + 1
    return row


def is_walk(graph: nx.Graph, path: list[int]) -> bool:
    return all(graph.has_edge(u, v) for u, v in zip(path, path[1:]))


@FAST
@given(graph_configs, seeds)
def test_graph_reference_and_every_other_shortest_path_pass(config, seed):
    task, batch = graph_sample(config, seed)
    assert task.verify_batch(batch.questions, batch.answers).all()
    for question in batch.questions:
        problem = task.problem_json(question)
        graph = nx_graph(problem)
        if not nx.has_path(graph, problem["source"], problem["target"]):
            continue
        for path in itertools.islice(nx.all_shortest_paths(graph, problem["source"], problem["target"]), 8):
            assert task.verify(question, path_tokens(task, path))


def test_graph_alternative_shortest_paths_occur():
    # Keeps the test above honest: some problems do have several shortest paths.
    task, batch = graph_sample({"max": 12, "directed": False, "degree": 3.0}, seed=0, n=200)
    counts = []
    for question in batch.questions:
        problem = task.problem_json(question)
        graph = nx_graph(problem)
        if nx.has_path(graph, problem["source"], problem["target"]):
            counts.append(len(list(nx.all_shortest_paths(graph, problem["source"], problem["target"]))))
    assert sum(c > 1 for c in counts) >= 10


@FAST
@given(graph_configs, seeds)
def test_graph_rejects_broken_longer_and_wrong_no_path(config, seed):
    task, batch = graph_sample(config, seed)
    no_path = np.full(task.answer_len, PAD, dtype=np.int64)
    no_path[0] = task.no_path_token
    for question, answer in zip(batch.questions, batch.answers):
        problem = task.problem_json(question)
        graph = nx_graph(problem)
        source, target = problem["source"], problem["target"]
        path = task.answer_json(answer)
        if path is None:
            assert task.verify(question, no_path)
            assert not task.verify(question, path_tokens(task, [source, target]))
            continue
        assert not task.verify(question, no_path)  # a wrong no-path claim
        if len(path) >= 3:  # dropping an inner node breaks an edge (else a shorter path existed)
            shortcut = path[:1] + path[2:]
            assert not is_walk(graph, shortcut) and not task.verify(question, path_tokens(task, shortcut))
            # A broken edge at the right length: swap an inner node for one that does not connect.
            for node in range(problem["nodes"]):
                broken = path[:1] + [node] + path[2:]
                if not is_walk(graph, broken):
                    assert not task.verify(question, path_tokens(task, broken))
        # A longer path: a detour there and back (undirected) or a longer simple path, if any.
        longer = None
        if not problem["directed"]:
            longer = [path[0], path[1], path[0]] + path[1:]
        else:
            longer = next(
                (p for p in nx.all_simple_paths(graph, source, target, cutoff=len(path) + 2) if len(p) > len(path)),
                None,
            )
        if longer is not None and len(longer) <= task.answer_len:
            assert is_walk(graph, longer) and not task.verify(question, path_tokens(task, longer))
        # Not ending at the target, or not starting at the source.
        assert not task.verify(question, path_tokens(task, path[:-1]))
        assert not task.verify_json(problem, path[1:])


def test_graph_verify_json_by_hand():
    task = make_task("graph", 5)
    square = {"nodes": 4, "edges": [[0, 1], [1, 2], [2, 3], [0, 3]], "directed": False, "source": 0, "target": 2}
    assert task.verify_json(square, [0, 1, 2]) and task.verify_json(square, [0, 3, 2])
    assert not task.verify_json(square, [0, 2])  # no such edge
    assert not task.verify_json({**square, "edges": [[0, 1], [1, 2]]}, [0, 3, 2])  # right length, no edges
    assert not task.verify_json(square, [0, 1, 0, 1, 2])  # longer walk
    assert not task.verify_json(square, None)
    assert not task.verify_json(square, [0, True, 2]) and not task.verify_json(square, "0 1 2")
    one_way = {**square, "directed": True, "edges": [[0, 1], [2, 1]]}
    assert task.verify_json(one_way, None) and not task.verify_json(one_way, [0, 1, 2])


@FAST
@given(graph_configs, seeds)
def test_graph_trace_is_the_bfs_frontiers(config, seed):
    task, batch = graph_sample(config, seed)
    for question, answer, trace, depth in zip(batch.questions, batch.answers, batch.traces, batch.meta["depth"]):
        problem = task.problem_json(question)
        layers = task.trace_json(trace)
        expected = [sorted(layer) for layer in nx.bfs_layers(nx_graph(problem), problem["source"])]
        if task.answer_json(answer) is None:
            assert layers[-1] == [] and [sorted(layer) for layer in layers[:-1]] == expected
        else:
            assert problem["target"] in layers[-1]
            assert [sorted(layer) for layer in layers] == expected[: len(layers)]
            assert len(task.answer_json(answer)) - 1 == depth
        assert depth == sum(1 for layer in layers[1:] if layer)


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("share", [0.0, 0.25, 0.6, 1.0])
def test_graph_no_path_share(directed, share):
    for nodes in (5, 10):  # n = 5: the smallest graph, where most draws are redrawn
        task = make_task("graph", nodes, {"directed": directed, "no_path_share": share})
        batch = task.generate(np.random.default_rng(1), 1500)
        no_path = batch.answers[:, 0] == task.no_path_token
        assert abs(no_path.mean() - share) < 0.04
        assert (batch.meta["has_path"] == ~no_path).all()


def test_graph_depth_grows_with_scale():
    depths = [
        make_task("graph", nodes).generate(np.random.default_rng(2), 400).meta["depth"].mean() for nodes in (5, 16, 64)
    ]
    assert depths[0] < depths[1] < depths[2]


@pytest.mark.parametrize(
    "max_value, overrides, named",
    [
        (4, {}, "max=4"),
        (129, {}, "max=129"),
        (8, {"degree": "0.1"}, "degree=0.1"),
        (8, {"degree": "9"}, "degree=9.0"),
        (8, {"no_path_share": "1.5"}, "no_path_share=1.5"),
        (8, {"directed": "sideways"}, "directed='sideways'"),
    ],
)
def test_graph_bad_params(max_value, overrides, named):
    with pytest.raises(TaskError) as error:
        make_task("graph", max_value, overrides)
    assert named in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "problem",
    [
        {"nodes": 0, "edges": [], "directed": False, "source": 0, "target": 0},
        {"nodes": 3, "edges": [[0, 3]], "directed": False, "source": 0, "target": 1},
        {"nodes": 3, "edges": [[0, 1, 2]], "directed": False, "source": 0, "target": 1},
        {"nodes": 3, "edges": [], "directed": "no", "source": 0, "target": 1},
        {"nodes": 3, "edges": [], "directed": False, "source": 5, "target": 1},
        {"nodes": 3, "edges": [], "directed": False, "source": 0},
    ],
)
def test_graph_check_problem_json_rejects(problem):
    task = make_task("graph", 5)
    with pytest.raises(TaskError) as error:
        task.check_problem_json(problem)
    assert "\n" not in str(error.value)


def test_graph_check_problem_json_accepts_generated_and_render():
    task, batch = graph_sample({"max": 8, "directed": True, "degree": 2.0}, seed=3, n=20)
    for i in range(len(batch)):
        task.check_problem_json(task.problem_json(batch.questions[i]))
        text = task.render(batch.questions[i], batch.answers[i], batch.traces[i])
        assert "directed graph" in text and "BFS frontiers" in text
        assert ("no path" in text) == (task.answer_json(batch.answers[i]) is None)


# ---- sat ----------------------------------------------------------------------------------------
sat_configs = st.fixed_dictionaries({"max": st.integers(4, 10), "width": st.sampled_from([2, 3])})


def sat_sample(config: dict, seed: int, n: int = 16):
    ratio = 6.0 if config["width"] == 3 else 4.0  # room for most clause sequences to turn UNSAT
    task = make_task("sat", config["max"], {"width": config["width"], "ratio": ratio})
    return task, task.generate(np.random.default_rng(seed), n)


def literal_tokens(task, literals: list[int]) -> np.ndarray:
    row = np.full(task.answer_len, PAD, dtype=np.int64)
    row[: len(literals)] = [2 * abs(x) - (x > 0) for x in literals]
    return row


def satisfies(clauses: list[list[int]], literals: list[int]) -> bool:
    true = set(literals)
    return all(any(x in true for x in clause) for clause in clauses)


@FAST
@given(sat_configs, seeds)
def test_sat_reference_passes_and_so_does_every_other_model(config, seed):
    task, batch = sat_sample(config, seed)
    assert task.verify_batch(batch.questions, batch.answers).all()
    unsat = np.full(task.answer_len, PAD, dtype=np.int64)
    unsat[0] = task.unsat_token
    for question, answer in zip(batch.questions, batch.answers):
        problem = task.problem_json(question)
        reference = task.answer_json(answer)
        with Glucose3(bootstrap_with=problem["clauses"]) as solver:  # another solver than the task's
            satisfiable = solver.solve()
            if reference is None:
                assert not satisfiable
                assert not task.verify(question, literal_tokens(task, list(range(1, task.params.max + 1))))
                continue
            assert satisfiable and not task.verify(question, unsat)  # a wrong UNSAT claim
            solver.add_clause([-x for x in reference])  # block the reference: any other model?
            for model in itertools.islice(solver.enum_models(), 4):
                assert task.verify(question, literal_tokens(task, sorted(model, key=abs)))


@FAST
@given(sat_configs, seeds)
def test_sat_flipped_literal_is_judged_by_the_clauses(config, seed):
    task, batch = sat_sample(config, seed)
    for question, answer in zip(batch.questions, batch.answers):
        problem, reference = task.problem_json(question), task.answer_json(answer)
        if reference is None:
            continue
        for i in range(len(reference)):
            flipped = reference[:i] + [-reference[i]] + reference[i + 1 :]
            assert task.verify(question, literal_tokens(task, flipped)) == satisfies(problem["clauses"], flipped)
        # Incomplete or doubled assignments are no answer.
        assert not task.verify_json(problem, reference[:-1])
        assert not task.verify_json(problem, reference[:-1] + [reference[0]])
        assert not task.verify_json(problem, reference + [reference[-1]])


def test_sat_flips_do_break_clauses():
    # Keeps the test above honest: most single flips of a model falsify a clause.
    task, batch = sat_sample({"max": 8, "width": 3}, seed=0, n=100)
    broken = total = 0
    for question, answer in zip(batch.questions, batch.answers):
        reference = task.answer_json(answer)
        if reference is None:
            continue
        for i in range(len(reference)):
            flipped = reference[:i] + [-reference[i]] + reference[i + 1 :]
            total += 1
            broken += not task.verify(question, literal_tokens(task, flipped))
    assert broken > total // 2


def test_sat_verify_json_by_hand():
    task = make_task("sat", 4)
    contradiction = {"variables": 1, "clauses": [[1], [-1]]}
    assert task.verify_json(contradiction, None)
    assert not task.verify_json(contradiction, [1]) and not task.verify_json(contradiction, [-1])
    easy = {"variables": 2, "clauses": [[1, 2], [-1, 2]]}
    assert task.verify_json(easy, [1, 2]) and task.verify_json(easy, [-1, 2])
    assert not task.verify_json(easy, [1, -2]) and not task.verify_json(easy, None)
    assert not task.verify_json(easy, [True, 2]) and not task.verify_json(easy, "1 2")


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5, 1.0])
def test_sat_unsat_share(share):
    task = make_task("sat", 5, {"unsat_share": share})
    batch = task.generate(np.random.default_rng(4), 1200)
    unsat = batch.answers[:, 0] == task.unsat_token
    assert abs(unsat.mean() - share) < 0.045
    assert (batch.meta["satisfiable"] == ~unsat).all()


@FAST
@given(sat_configs, seeds)
def test_sat_trace_matches_answer(config, seed):
    task, batch = sat_sample(config, seed)
    for question, answer, trace, depth in zip(batch.questions, batch.answers, batch.traces, batch.meta["depth"]):
        events = task.trace_json(trace)
        decisions = [e for e in events if e[0] == "d"]
        reference = task.answer_json(answer)
        if len(events) < task.trace_len:  # the whole trail fits
            assert len(decisions) == depth
            assert (events[-1] == ["conflict"]) == (reference is None)
        if reference is not None and ["conflict"] not in events:
            # No backtracking: every literal DPLL set is part of the answer.
            assert {e[1] for e in events} <= set(reference)


def test_sat_depth_grows_with_scale():
    depths = [make_task("sat", n).generate(np.random.default_rng(5), 300).meta["depth"].mean() for n in (4, 8, 16)]
    assert depths[0] < depths[1] < depths[2]


def test_sat_rare_kind_raises():
    task = make_task("sat", 20, {"ratio": "0.5"})  # 10 clauses: far too few to turn UNSAT
    with pytest.raises(TaskError, match="almost no clause sequences become unsatisfiable") as error:
        task.generate(np.random.default_rng(0), 4)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "max_value, overrides, named",
    [
        (2, {}, "max=2"),
        (25, {}, "max=25"),
        (5, {"width": "1"}, "width=1"),
        (3, {}, "max=3"),
        (4, {"width": "4"}, "width=4"),  # width must stay below max
        (5, {"ratio": "0.1"}, "ratio=0.1"),
        (5, {"ratio": "50"}, "ratio=50.0"),
        (5, {"unsat_share": "-0.1"}, "unsat_share=-0.1"),
    ],
)
def test_sat_bad_params(max_value, overrides, named):
    with pytest.raises(TaskError) as error:
        make_task("sat", max_value, overrides)
    assert named in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "problem",
    [
        {"variables": 0, "clauses": []},
        {"variables": 3, "clauses": [[1, 0, 2]]},
        {"variables": 3, "clauses": [[1, 4]]},
        {"variables": 3, "clauses": [1, 2]},
        {"variables": "3", "clauses": [[1]]},
        {"clauses": [[1]]},
    ],
)
def test_sat_check_problem_json_rejects(problem):
    task = make_task("sat", 4)
    with pytest.raises(TaskError) as error:
        task.check_problem_json(problem)
    assert "\n" not in str(error.value)


def test_sat_check_problem_json_accepts_generated_and_render():
    task, batch = sat_sample({"max": 5, "width": 3}, seed=6, n=20)
    for i in range(len(batch)):
        task.check_problem_json(task.problem_json(batch.questions[i]))
        text = task.render(batch.questions[i], batch.answers[i], batch.traces[i])
        assert "CNF over x1..x5" in text and "DPLL trail" in text
        assert ("UNSAT" in text) == (task.answer_json(batch.answers[i]) is None)
