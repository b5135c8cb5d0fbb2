"""The task contract, checked for every registered task (a new task file is tested with no edit here).

Each task's own tests check its answers in depth (perturbed answers, depth growing with scale);
these check what every task promises the solvers and the harness.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import Batch, Task, make_task, stream_rng, task_names

# A couple of small scales per known task (small = many repeated questions, the hard case for split
# disjointness). A task not listed here is tested at its default scale.
SMALL_SCALES: dict[str, tuple[int, ...]] = {
    "add": (12, 37, 100),  # below 9 the test split of add is empty
    "multiadd": (5, 37),
    "sort": (4, 30),
    "graph": (5, 8),
    "sat": (4, 6),
    "perm": (2, 8),  # A5 by default: 3,600 words at k = 2
    "parity": (8, 16),
    "mult": (2, 4),
}
# Tasks whose question tokens are exactly their numbers + 1: the JSON form must decode back to them.
NUMBER_FIELDS: dict[str, str] = {"add": "operands", "multiadd": "operands", "sort": "values"}
RECORD_KEYS = {"task", "params", "answer", "trace", "meta"}
N = 24

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def scales(name: str) -> tuple[int | None, ...]:
    return SMALL_SCALES.get(name, (None,))


@functools.lru_cache(maxsize=None)
def build(name: str, scale: int | None) -> Task:
    return make_task(name, scale)


def draw_task(data: st.DataObject, name: str) -> Task:
    return build(name, data.draw(st.sampled_from(scales(name)), label="scale"))


def assert_same(a: Batch, b: Batch) -> None:
    np.testing.assert_array_equal(a.questions, b.questions)
    np.testing.assert_array_equal(a.answers, b.answers)
    np.testing.assert_array_equal(a.traces, b.traces)
    assert a.meta.keys() == b.meta.keys()
    for key in a.meta:
        np.testing.assert_array_equal(a.meta[key], b.meta[key])


def test_some_tasks_registered() -> None:
    assert "add" in task_names()


@pytest.mark.parametrize("name", task_names())
@FAST
@given(seed=SEEDS, data=st.data())
def test_same_seed_same_problems(name: str, seed: int, data: st.DataObject) -> None:
    task = draw_task(data, name)
    split = data.draw(st.sampled_from(["train", "monitor", "test"]), label="split")
    first = task.sample(stream_rng(seed, split), N, split)
    assert_same(first, task.sample(stream_rng(seed, split), N, split))
    # ...and a rebuilt task (as `bench verify` or a resumed run builds it) gives the same problems.
    rebuilt = make_task(name, overrides=task.param_dict())
    assert_same(first, rebuilt.sample(stream_rng(seed, split), N, split))


@pytest.mark.parametrize("name", task_names())
@FAST
@given(seed=SEEDS, data=st.data())
def test_shapes_vocabulary_and_meta(name: str, seed: int, data: st.DataObject) -> None:
    task = draw_task(data, name)
    batch = task.sample(stream_rng(seed, "train"), N)
    assert len(batch) == N
    for array, width, vocab in (
        (batch.questions, task.question_len, task.vocab_size),
        (batch.answers, task.answer_len, task.vocab_size),
        (batch.traces, task.trace_len, task.trace_vocab_size),
    ):
        assert np.issubdtype(array.dtype, np.integer)
        assert array.shape == (N, width)
        assert array.min() >= 0 and array.max() < vocab
    for key in ("size", "depth"):
        assert key in batch.meta, f"meta lacks {key!r}"
    for key, values in batch.meta.items():
        assert values.shape == (N,), f"meta[{key!r}] has shape {values.shape}"
        assert np.issubdtype(values.dtype, np.integer)
    assert (batch.meta["depth"] >= 0).all() and (batch.meta["size"] >= 0).all()


@pytest.mark.parametrize("name", task_names())
@FAST
@given(seed=SEEDS, data=st.data())
def test_verify_accepts_reference_answers(name: str, seed: int, data: st.DataObject) -> None:
    task = draw_task(data, name)
    batch = task.sample(stream_rng(seed, "test"), N, "test")
    accepted = task.verify_batch(batch.questions, batch.answers)
    assert accepted.shape == (N,) and accepted.dtype == bool
    assert accepted.all()
    assert all(task.verify(q, a) for q, a in zip(batch.questions[:8], batch.answers[:8]))


@pytest.mark.parametrize("name", task_names())
def test_verify_json_rejects_junk_without_raising(name: str) -> None:
    task = build(name, scales(name)[-1])
    batch = task.sample(stream_rng(1, "test"), 4, "test")
    for question in batch.questions:
        problem = task.problem_json(question)
        for junk in ("garbage", {"x": 1}, [-999], -999, 3.5, [[1, 2], [3]]):
            assert task.verify_json(problem, junk) is False, f"{name} accepted {junk!r}"


@pytest.mark.parametrize("name", task_names())
@settings(max_examples=3, deadline=None)
@given(seed=SEEDS)
def test_train_monitor_and_test_are_disjoint(name: str, seed: int) -> None:
    # The smallest scale repeats questions most often: if splits leaked, they would collide here.
    task = build(name, scales(name)[0])
    drawn = {split: task.sample(stream_rng(seed + i, split), 1500 if split == "train" else 150, split)
             for i, split in enumerate(("train", "monitor", "test"))}
    for split, batch in drawn.items():
        assert task.split_mask(batch.questions, split).all()
    canonical = {
        split: {row.tobytes() for row in np.ascontiguousarray(task.canonical_questions(batch.questions))}
        for split, batch in drawn.items()
    }
    assert not canonical["train"] & canonical["test"]
    assert not canonical["train"] & canonical["monitor"]
    assert not canonical["monitor"] & canonical["test"]


@pytest.mark.parametrize("name", task_names())
@settings(max_examples=3, deadline=None)
@given(seed=SEEDS)
def test_distinct_problems_are_distinct_and_of_their_split(name: str, seed: int) -> None:
    task = build(name, scales(name)[0])
    batch, _ = task.distinct_problems(stream_rng(seed, "test"), 300, "test")
    assert task.split_mask(batch.questions, "test").all()
    keys = [row.tobytes() for row in np.ascontiguousarray(task.canonical_questions(batch.questions))]
    assert len(keys) == len(set(keys)) == len(batch)


@pytest.mark.parametrize("name", task_names())
@FAST
@given(seed=SEEDS, data=st.data())
def test_jsonl_round_trip(name: str, seed: int, data: st.DataObject) -> None:
    task = draw_task(data, name)
    batch = task.sample(stream_rng(seed, "test"), 8, "test")
    lines = task.to_jsonl(batch).splitlines()
    assert len(lines) == len(batch)
    for i, line in enumerate(lines):
        record = json.loads(line)
        assert record["task"] == name
        rebuilt = make_task(record["task"], overrides=record["params"])
        assert rebuilt.param_dict() == task.param_dict()
        problem = {k: v for k, v in record.items() if k not in RECORD_KEYS}
        assert problem == task.problem_json(batch.questions[i])
        rebuilt.check_problem_json(problem)
        assert rebuilt.verify_json(problem, record["answer"]) is True
        assert set(record["meta"]) >= {"size", "depth"}
        if name in NUMBER_FIELDS:
            # The decoded problem and answer are the original token rows (number v is token v + 1).
            np.testing.assert_array_equal(np.array(problem[NUMBER_FIELDS[name]]) + 1, batch.questions[i])
            answer = np.atleast_1d(np.array(record["answer"])) + 1
            np.testing.assert_array_equal(answer, batch.answers[i][: len(answer)])
            assert not batch.answers[i][len(answer):].any()  # the rest is PAD


def test_listed_scales_are_valid() -> None:
    # Guards SMALL_SCALES: a scale a task rejects would make its property tests error, not test.
    for name in task_names():
        for scale in scales(name):
            assert scale is None or build(name, scale).scale == scale
