"""The intervals and tests of bench/stats.py against published values, brute force and their edge cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.stats import wilson_interval


@pytest.mark.parametrize(
    ("correct", "n", "expected"),
    [(0, 10, (0.0, 0.2775)), (5, 10, (0.2366, 0.7634)), (10, 10, (0.7225, 1.0)), (81, 263, (0.2553, 0.3662))],
)
def test_known_values(correct: int, n: int, expected: tuple[float, float]) -> None:
    assert wilson_interval(correct, n) == pytest.approx(expected, abs=1e-4)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 10_000), data=st.data())
def test_interval_contains_the_estimate_and_narrows_with_n(n: int, data: st.DataObject) -> None:
    correct = data.draw(st.integers(0, n))
    low, high = wilson_interval(correct, n)
    assert 0.0 <= low <= correct / n <= high <= 1.0
    low4, high4 = wilson_interval(4 * correct, 4 * n)
    assert high4 - low4 < high - low


def test_no_data_and_bad_counts() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(-1, 2)


# ---- success over seeds, bootstrap, Fisher, paired permutation -------------------------------------

import itertools  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402

from bench.stats import bootstrap_interval, exact_interval, fisher_exact, paired_permutation_test  # noqa: E402


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    # Clopper-Pearson values as published (e.g. R's binom.test): 0/5, 1/3, 3/5, 5/5, 7/10
    [(0, 5, (0.0, 0.5218)), (1, 3, (0.0084, 0.9057)), (3, 5, (0.1466, 0.9473)), (5, 5, (0.4782, 1.0)),
     (7, 10, (0.3475, 0.9333))],
)
def test_exact_interval_known_values(k: int, n: int, expected: tuple[float, float]) -> None:
    assert exact_interval(k, n) == pytest.approx(expected, abs=1e-4)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_exact_interval_is_wider_than_wilson_and_contains_the_rate(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    low, high = exact_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    wilson_low, wilson_high = wilson_interval(k, n)
    assert low <= wilson_low + 1e-9 and high >= wilson_high - 1e-9  # exact is conservative


def test_exact_interval_bad_counts() -> None:
    assert exact_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        exact_interval(4, 3)


def test_fisher_exact_known_values() -> None:
    # Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 34/70; scipy's example [[8, 2], [1, 5]]: 0.0350
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70)
    assert fisher_exact(8, 10, 1, 6) == pytest.approx(0.03497, abs=1e-4)
    assert fisher_exact(5, 5, 0, 5) == pytest.approx(2 / 252)  # 5/5 vs 0/5 seeds: p = 0.0079
    assert fisher_exact(3, 5, 3, 5) == pytest.approx(1.0)
    assert fisher_exact(0, 0, 0, 0) == 1.0
    with pytest.raises(ValueError):
        fisher_exact(6, 5, 0, 5)


@settings(max_examples=60, deadline=None)
@given(a=st.lists(st.integers(0, 1), min_size=1, max_size=12), data=st.data())
def test_paired_permutation_is_the_exact_sign_flip_test(a: list[int], data: st.DataObject) -> None:
    b = data.draw(st.lists(st.integers(0, 1), min_size=len(a), max_size=len(a)))
    p = paired_permutation_test(a, b)
    # brute force: every assignment of which run of each pair got which score
    differences = np.array(a, dtype=float) - np.array(b, dtype=float)
    observed = abs(differences.sum())
    flips = [abs(sum(s * d for s, d in zip(signs, differences))) >= observed - 1e-9
             for signs in itertools.product((1, -1), repeat=len(a))]
    assert p == pytest.approx(sum(flips) / len(flips))
    assert paired_permutation_test(b, a) == pytest.approx(p)  # symmetric


def test_paired_permutation_on_real_valued_scores_and_bad_input() -> None:
    a, b = [0.9, 0.8, 0.7, 0.95], [0.5, 0.6, 0.65, 0.9]
    assert paired_permutation_test(a, b) == pytest.approx(2 / 16)  # all four differences positive
    assert paired_permutation_test([1, 1], [1, 1]) == 1.0
    assert paired_permutation_test([1] * 30, [0] * 30) < 1e-8  # 30 discordant pairs all one way
    with pytest.raises(ValueError):
        paired_permutation_test([1, 0], [1])


def test_bootstrap_interval_is_deterministic_and_brackets_the_mean() -> None:
    values = [0.999, 0.993, 0.996, 0.998, 0.982]
    mean, low, high = bootstrap_interval(values)
    assert mean == pytest.approx(np.mean(values)) and min(values) <= low <= mean <= high <= max(values)
    assert bootstrap_interval(values) == (mean, low, high)
    # exact enumeration for 3 values: the percentiles of all 27 resample means
    means = sorted(sum(r) / 3 for r in itertools.product((0.0, 0.5, 1.0), repeat=3))
    assert bootstrap_interval([0.0, 0.5, 1.0])[1:] == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert bootstrap_interval([0.4]) == (0.4, 0.4, 0.4)
    assert all(math.isnan(v) for v in bootstrap_interval([]))
    many = bootstrap_interval([i / 10 for i in range(10)])  # 10 seeds: a fixed-seed resample
    assert many == bootstrap_interval([i / 10 for i in range(10)]) and many[1] < 0.45 < many[2]
