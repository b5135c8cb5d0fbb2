"""Small statistics shared by `bench verify`, evaluation and leaderboards."""

from __future__ import annotations

import math


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z=1.96).

    Chosen over the normal approximation because it stays inside [0, 1] and is honest at 0% and
    100% accuracy and at small n, which is exactly where benchmark results sit. With n == 0 there is
    no information, so the interval is the whole of [0, 1].
    """
    if n < 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # Exact at the edges: floating error must not put 100% accuracy outside its own interval.
    low = 0.0 if correct == 0 else max(0.0, centre - half_width)
    high = 1.0 if correct == n else min(1.0, centre + half_width)
    return low, high
