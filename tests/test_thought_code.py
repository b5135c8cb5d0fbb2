"""`bench inspect --code`'s lookup probes from thought tokens to the task's features
(bench/analysis/thought_code.py); the command itself is tested with `bench inspect` in test_plots.py."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.analysis.thought_code import lookup_probe, probe_table
from tasks import make_task


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 30), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_a_feature_that_is_a_function_of_the_code_is_probed_exactly(codes: int, values: int, seed: int):
    rng = np.random.default_rng(seed)
    meaning = rng.integers(0, values, codes)  # each code means one value
    fit = np.concatenate([np.arange(codes), rng.integers(0, codes, 200)])  # every code seen in fitting
    test = rng.integers(0, codes, 100)
    assert lookup_probe(fit, meaning[fit], test, meaning[test]) == 1.0


def test_a_code_independent_of_the_feature_probes_at_chance():
    rng = np.random.default_rng(0)
    feature = rng.integers(0, 10, 20_000)
    code = rng.integers(0, 16, 20_000)
    score = lookup_probe(code[:10_000], feature[:10_000], code[10_000:], feature[10_000:])
    assert abs(score - 0.1) < 0.02  # ~ the majority-class rate of a uniform 10-valued feature


def test_an_unseen_code_predicts_the_fitting_sets_most_common_value():
    assert lookup_probe(np.array([0, 0, 1]), np.array([5, 5, 7]), np.array([2, 1]), np.array([5, 7])) == 1.0


def test_probe_table_finds_which_position_holds_which_digit():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 100, 6000)
    thoughts = np.stack([a // 10, rng.integers(0, 16, 6000), a % 10], axis=1)  # tens, noise, units
    features = {"units": a % 10, "tens": a // 10}
    fit, test = slice(0, 4000), slice(4000, None)
    rows = {r.feature: r for r in probe_table(thoughts[fit], {k: v[fit] for k, v in features.items()},
                                               thoughts[test], {k: v[test] for k, v in features.items()})}
    assert rows["tens"].per_position[0] == 1.0 and rows["units"].per_position[2] == 1.0
    assert max(rows["units"].per_position[:2]) < 0.2 and rows["units"].chance < 0.2 and rows["units"].values == 10


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([7, 10, 100, 999, 1000]), st.sampled_from([2, 3, 10]), st.integers(0, 2**31 - 1))
def test_add_code_features_are_the_schoolbook_quantities(m: int, base: int, seed: int):
    task = make_task("add", m, {"base": base})
    batch = task.generate(np.random.default_rng(seed), 50)
    features = task.code_features(batch)
    for row in range(50):
        a, b = (int(t) - 1 for t in batch.questions[row])
        total, carry, i = (a + b) % m, 0, 0
        assert features["a"][row] == a and features["b"][row] == b and features["answer"][row] == total
        while f"answer digit {i + 1}" in features:
            assert features[f"answer digit {i + 1}"][row] == (total // base**i) % base
            column = (a // base**i) % base + (b // base**i) % base + carry
            carry = int(column >= base)
            if f"carry out of column {i + 1}" in features:
                assert features[f"carry out of column {i + 1}"][row] == carry
            i += 1
        assert base**i >= m  # every digit of the answer is a feature
