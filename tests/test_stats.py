"""The Wilson interval against published values and its edge cases."""

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
