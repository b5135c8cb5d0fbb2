"""Task-specific properties of add, multiadd and sort: verifiers, traces, depth, parameter errors.

The contract every task shares (determinism, vocab bounds, splits, JSONL) is in test_task_contract.py.
Traces and depths are checked against plain-Python versions of the textbook algorithms they claim
to record, written here independently of the vectorised generators.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import PAD, Batch, Task, TaskError, make_task, stream_rng

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**32 - 1)


def fresh(task: Task, seed: int, n: int = 16) -> Batch:
    return task.generate(stream_rng(seed, "test-arith"), n)


def values_of(row: np.ndarray) -> list[int]:
    return [int(t) - 1 for t in row]


# ---- plain-Python reference algorithms -----------------------------------------------------------
def digits_lsb(value: int, base: int) -> list[int]:
    out = []
    while True:
        value, digit = divmod(value, base)
        out.append(digit)
        if value == 0:
            return out


def longest_carry_chain_py(a: int, b: int, base: int) -> int:
    da, db = digits_lsb(a, base), digits_lsb(b, base)
    width = max(len(da), len(db))
    da, db = da + [0] * (width - len(da)), db + [0] * (width - len(db))
    carry = run = longest = 0
    for x, y in zip(da, db):
        carry = 1 if x + y + carry >= base else 0
        run = run + 1 if carry else 0
        longest = max(longest, run)
    return longest


def merge(left: list[int], right: list[int]) -> list[int]:
    out, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    return out + left[i:] + right[j:]


def bottom_up_merge_sort_passes(values: list[int]) -> list[list[int]]:
    """The list after each pass of bottom-up merge sort (runs of width 1 -> 2 -> 4 ...)."""
    passes, current, width = [], list(values), 1
    while True:
        merged: list[int] = []
        for start in range(0, len(current), 2 * width):
            merged += merge(current[start : start + width], current[start + width : start + 2 * width])
        passes.append(merged)
        current, width = merged, width * 2
        if width >= len(values):
            return passes


def inversions_py(values: list[int]) -> int:
    return sum(values[i] > values[j] for i in range(len(values)) for j in range(i + 1, len(values)))


# ---- add ---------------------------------------------------------------------------------------
@PROPERTY
@given(m=st.integers(2, 5000), base=st.integers(2, 16), seed=SEEDS, delta=st.integers(1, 10**6))
def test_add_verify_accepts_reference_and_rejects_changed(m: int, base: int, seed: int, delta: int) -> None:
    task = make_task("add", m, {"base": base})
    batch = fresh(task, seed)
    assert task.verify_batch(batch.questions, batch.answers).all()
    assert all(task.verify(q, a) for q, a in zip(batch.questions, batch.answers))

    shift = delta % (m - 1) + 1  # in 1..m-1: always a different residue
    changed = (batch.answers - 1 + shift) % m + 1
    assert not task.verify_batch(batch.questions, changed).any()
    assert not any(task.verify(q, a) for q, a in zip(batch.questions, changed))
    assert not any(task.verify(q, np.array([PAD])) for q in batch.questions)

    problem, right = task.problem_json(batch.questions[0]), task.answer_json(batch.answers[0])
    for wrong in ([right], [right, right], None, str(right), float(right), right + m):
        assert task.verify_json(problem, wrong) is False


@PROPERTY
@given(m=st.integers(2, 10**6), base=st.integers(2, 16), seed=SEEDS)
def test_add_trace_digits_recompose_the_answer(m: int, base: int, seed: int) -> None:
    task = make_task("add", m, {"base": base})
    batch = fresh(task, seed)
    for question, answer, trace, depth in zip(batch.questions, batch.answers, batch.traces, batch.meta["depth"]):
        digits = [int(t) - 1 for t in trace]
        assert all(0 <= d < base for d in digits)
        assert sum(d * base**i for i, d in enumerate(digits)) == int(answer[0]) - 1
        a, b = values_of(question)
        assert depth == longest_carry_chain_py(a, b, base)


def columns_py(a: int, b: int, base: int, count: int) -> list[int]:
    """Schoolbook column sums of a + b, least significant first: digit + digit + carry in."""
    da, db = digits_lsb(a, base), digits_lsb(b, base)
    da, db = da + [0] * (count - len(da)), db + [0] * (count - len(db))
    carry, out = 0, []
    for x, y in zip(da, db):
        out.append(x + y + carry)
        carry = 1 if out[-1] >= base else 0
    return out


@PROPERTY
@given(m=st.integers(2, 10**6), base=st.integers(2, 16), seed=SEEDS)
def test_add_column_trace_is_the_schoolbook_columns_and_spells_a_plus_b(m: int, base: int, seed: int) -> None:
    task = make_task("add", m, {"base": base, "trace": "columns"})
    assert task.trace_vocab_size == 2 * base + 1
    assert task.trace_len == make_task("add", m, {"base": base}).trace_len
    batch = fresh(task, seed)
    for question, answer, trace in zip(batch.questions, batch.answers, batch.traces):
        a, b = values_of(question)
        columns = values_of(trace)
        assert columns == columns_py(a, b, base, task.trace_len)
        assert all(0 <= c < 2 * base for c in columns)
        last = len(columns) - 1
        total = sum((c % base) * base**i for i, c in enumerate(columns[:last])) + columns[last] * base**last
        assert total == a + b and total % m == int(answer[0]) - 1


def test_add_trace_kind_is_checked_and_named_in_run_ids_only_when_not_the_default() -> None:
    with pytest.raises(TaskError, match="'carries' is not one of digits, columns"):
        make_task("add", 100, {"trace": "carries"})
    assert "trace" not in make_task("add", 100).param_dict()  # ids of runs stored before it stay valid
    assert make_task("add", 100, {"trace": "digits"}).param_dict() == make_task("add", 100).param_dict()
    assert make_task("add", 100, {"trace": "columns"}).param_dict()["trace"] == "columns"
    question, answer = np.array([48, 76]), np.array([23])  # 47 + 75 = 122 = 22 mod 100
    text = make_task("add", 100, {"trace": "columns"}).render(question, answer, np.array([13, 13]))
    assert text.endswith("column sums with carries, least significant first): 12 12")


# ---- multiadd ----------------------------------------------------------------------------------
@PROPERTY
@given(m=st.integers(2, 5000), terms=st.integers(2, 32), seed=SEEDS, delta=st.integers(1, 10**6))
def test_multiadd_verify_accepts_reference_and_rejects_changed(m: int, terms: int, seed: int, delta: int) -> None:
    task = make_task("multiadd", m, {"terms": terms})
    batch = fresh(task, seed)
    assert task.verify_batch(batch.questions, batch.answers).all()
    assert all(task.verify(q, a) for q, a in zip(batch.questions, batch.answers))

    shift = delta % (m - 1) + 1
    changed = (batch.answers - 1 + shift) % m + 1
    assert not task.verify_batch(batch.questions, changed).any()
    assert not any(task.verify(q, a) for q, a in zip(batch.questions, changed))
    assert not any(task.verify(q, np.array([PAD])) for q in batch.questions)

    problem, right = task.problem_json(batch.questions[0]), task.answer_json(batch.answers[0])
    assert problem == {"operands": values_of(batch.questions[0]), "modulus": m}
    for wrong in ([right], None, True, str(right), float(right), right + m, -1):
        assert task.verify_json(problem, wrong) is False


@PROPERTY
@given(m=st.integers(2, 10**6), terms=st.integers(2, 32), base=st.integers(2, 16), seed=SEEDS)
def test_multiadd_trace_is_the_running_sum_and_depth_counts_its_carries(
    m: int, terms: int, base: int, seed: int
) -> None:
    task = make_task("multiadd", m, {"terms": terms, "base": base})
    batch = fresh(task, seed, n=8)
    assert batch.traces.shape == (8, terms - 1)
    for i in range(len(batch)):
        operands = values_of(batch.questions[i])
        running, sums, carries = operands[0], [], 0
        for term in operands[1:]:
            carries += longest_carry_chain_py(running, term, base)
            running = (running + term) % m
            sums.append(running)
        assert values_of(batch.traces[i]) == sums
        assert sums[-1] == int(batch.answers[i, 0]) - 1 == sum(operands) % m
        assert batch.meta["size"][i] == terms
        assert batch.meta["carries"][i] == carries
        assert batch.meta["depth"][i] == terms - 1 + carries


# ---- sort --------------------------------------------------------------------------------------
@PROPERTY
@given(m=st.integers(2, 1000), length=st.integers(2, 64), seed=SEEDS, data=st.data())
def test_sort_verify_accepts_reference_and_rejects_perturbed(
    m: int, length: int, seed: int, data: st.DataObject
) -> None:
    task = make_task("sort", m, {"length": length})
    batch = fresh(task, seed, n=8)
    assert task.verify_batch(batch.questions, batch.answers).all()
    assert all(task.verify(q, a) for q, a in zip(batch.questions, batch.answers))

    for question, answer in zip(batch.questions, batch.answers):
        problem, right = task.problem_json(question), task.answer_json(answer)
        assert right == sorted(problem["values"])

        # A changed value: same length, still sorted, but not the input's multiset.
        i = data.draw(st.integers(0, length - 1), label="changed position")
        new_value = data.draw(st.integers(0, m - 1).filter(lambda v, old=right[i]: v != old), label="new value")
        changed = sorted(right[:i] + [new_value] + right[i + 1 :])
        changed_tokens = np.array(changed)[None, :] + 1
        assert task.verify_json(problem, changed) is False
        assert not task.verify(question, changed_tokens[0])
        assert not task.verify_batch(question[None, :], changed_tokens).any()

        # A swapped pair of different values: the right multiset, out of order.
        distinct = [(a, b) for a in range(length) for b in range(a + 1, length) if right[a] != right[b]]
        if distinct:
            a, b = data.draw(st.sampled_from(distinct), label="swapped pair")
            swapped = list(right)
            swapped[a], swapped[b] = swapped[b], swapped[a]
            swapped_tokens = np.array(swapped)[None, :] + 1
            assert task.verify_json(problem, swapped) is False
            assert not task.verify(question, swapped_tokens[0])
            assert not task.verify_batch(question[None, :], swapped_tokens).any()

        # Wrong lengths, and answers that are not lists of integers.
        for wrong in (right[:-1], right + [right[-1]], [], None, 5, [float(v) for v in right], right[:-1] + [True]):
            assert task.verify_json(problem, wrong) is False
        truncated = answer.copy()
        truncated[-1] = PAD
        assert not task.verify(question, truncated)
        assert not task.verify_batch(question[None, :], truncated[None, :]).any()
    assert not task.verify_batch(batch.questions, batch.answers[:, :-1]).any()


@PROPERTY
@given(m=st.integers(2, 1000), length=st.integers(2, 64), seed=SEEDS)
def test_sort_trace_is_bottom_up_merge_sort_and_depth_counts_inversions(m: int, length: int, seed: int) -> None:
    task = make_task("sort", m, {"length": length})
    batch = fresh(task, seed, n=6)
    for question, answer, trace, depth in zip(batch.questions, batch.answers, batch.traces, batch.meta["depth"]):
        values = values_of(question)
        passes = bottom_up_merge_sort_passes(values)
        assert len(trace) == task.trace_len == length * len(passes)
        assert values_of(trace) == [v for p in passes for v in p]
        assert passes[-1] == values_of(answer) == sorted(values)
        assert depth == inversions_py(values)


def test_sort_render_shows_the_merge_passes() -> None:
    task = make_task("sort", 10, {"length": 4})
    question = np.array([5, 3, 9, 1]) + 1
    passes = bottom_up_merge_sort_passes([5, 3, 9, 1])
    trace = np.array([v for p in passes for v in p]) + 1
    text = task.render(question, np.array([1, 3, 5, 9]) + 1, trace)
    assert "sort [5 3 9 1] = [1 3 5 9]" in text
    assert "[3 5 | 1 9]" in text and "[1 3 5 9]" in text


# ---- serial depth grows with scale ---------------------------------------------------------------
@settings(max_examples=5, deadline=None)
@given(seed=SEEDS)
@pytest.mark.parametrize(
    "name, small, large, overrides",
    [
        ("add", 10, 10**5, {}),
        ("multiadd", 10, 10**4, {}),
        ("sort", 2, 1000, {}),
    ],
)
def test_serial_depth_grows_with_scale_on_average(name: str, small: int, large: int, overrides: dict,
                                                  seed: int) -> None:
    def mean_depth(scale: int) -> float:
        task = make_task(name, scale, overrides)
        return float(task.generate(stream_rng(seed, f"depth-{scale}"), 2000).meta["depth"].mean())

    assert mean_depth(small) < mean_depth(large)


def test_multiadd_depth_grows_with_terms() -> None:
    depths = [
        make_task("multiadd", 100, {"terms": k}).generate(stream_rng(0, "terms"), 2000).meta["depth"].mean()
        for k in (2, 8, 32)
    ]
    assert depths[0] < depths[1] < depths[2]


# ---- bad parameters and malformed problems ------------------------------------------------------
@pytest.mark.parametrize(
    "name, max_value, overrides, named",
    [
        ("add", 1, {}, "max=1"),
        ("add", None, {"base": "1"}, "base=1"),
        ("multiadd", 1, {}, "max=1"),
        ("multiadd", 0, {}, "max=0"),
        ("multiadd", None, {"terms": "1"}, "terms=1"),
        ("multiadd", None, {"terms": "33"}, "terms=33"),
        ("multiadd", None, {"base": "65"}, "base=65"),
        ("multiadd", None, {"terms": "four"}, "four"),
        ("sort", 1, {}, "max=1"),
        ("sort", 2_000_000, {}, "max=2000000"),
        ("sort", None, {"length": "1"}, "length=1"),
        ("sort", None, {"length": "65"}, "length=65"),
        ("sort", None, {"length": "8.5"}, "8.5"),
    ],
)
def test_bad_parameters_raise_one_line_error_naming_the_value(name, max_value, overrides, named) -> None:
    with pytest.raises(TaskError) as error:
        make_task(name, max_value, overrides)
    message = str(error.value)
    assert named in message and "\n" not in message
    assert "valid" in message


def test_parameter_bounds_are_accepted() -> None:
    for name, max_value, overrides in [
        ("multiadd", 2, {"terms": "2"}),
        ("multiadd", 10**6, {"terms": "32", "base": "64"}),
        ("sort", 2, {"length": "2"}),
        ("sort", 10**6, {"length": "64"}),
    ]:
        task = make_task(name, max_value, overrides)
        batch = task.generate(stream_rng(0, "bounds"), 4)
        assert task.verify_batch(batch.questions, batch.answers).all()


@pytest.mark.parametrize(
    "name, problem",
    [
        ("multiadd", {"operands": "1 2", "modulus": 10}),
        ("multiadd", {"operands": [], "modulus": 10}),
        ("multiadd", {"operands": [1, 2.0], "modulus": 10}),
        ("multiadd", {"operands": [1, 2], "modulus": 0}),
        ("multiadd", {"operands": [1, 2], "modulus": True}),
        ("multiadd", {"operands": [1, 12], "modulus": 10}),
        ("multiadd", {"modulus": 10}),
        ("sort", {}),
        ("sort", {"values": "3 1 2"}),
        ("sort", {"values": []}),
        ("sort", {"values": [3, "1", 2]}),
        ("sort", {"values": [3, None]}),
    ],
)
def test_malformed_problems_raise_one_line_error(name: str, problem: dict) -> None:
    task = make_task(name)
    with pytest.raises(TaskError) as error:
        task.check_problem_json(problem)
    assert "\n" not in str(error.value) and name in str(error.value)


@pytest.mark.parametrize("name", ["add", "multiadd", "sort"])
def test_generated_problems_pass_the_structure_check(name: str) -> None:
    task = make_task(name, 50)
    batch = fresh(task, 1)
    for question in batch.questions:
        task.check_problem_json(task.problem_json(question))
