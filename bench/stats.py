"""Statistics for reports a reviewer accepts (numpy and the standard library only; scipy is not a
dependency):

    wilson_interval          a binomial proportion's 95% interval (held-out problems of one run)
    exact_interval           Clopper-Pearson's exact interval (success k of n seeds: n is tiny)
    bootstrap_interval       mean accuracy over seeds with a percentile bootstrap interval
    fisher_exact             two-sided Fisher's exact test on two success counts (k1/n1 versus k2/n2)
    paired_permutation_test  two runs scored on the same problems: sign-flip permutation test

Every function is deterministic (exact enumeration, or a fixed-seed resample where enumeration is too
large), so a report rebuilt from the same records is byte-identical.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

LEVEL = 0.95  # every interval in this project is 95%
BOOTSTRAP_RESAMPLES = 20_000  # when the exact bootstrap distribution (n**n resamples) is too large
EXACT_BOOTSTRAP_MAX_N = 6  # 6**6 = 46,656 resamples enumerated; 7**7 would be 823,543
EXACT_PERMUTATION_MAX = 16  # 2**16 sign flips enumerated; beyond, a fixed-seed Monte Carlo


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


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)))


def _bisect(f: Callable[[float], float], target: float, low: float = 0.0, high: float = 1.0) -> float:
    """The p in [low, high] where the decreasing function f crosses target (60 halvings: < 1e-15)."""
    for _ in range(60):
        mid = (low + high) / 2
        if f(mid) > target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def exact_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Clopper-Pearson's exact interval for k successes in n trials (here: seeds).

    Used for success over seeds because n is 3 to 10 there, where approximate intervals undercover;
    the exact one never covers less than `level`. n == 0: the whole of [0, 1].
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - level
    # low: P(X >= k | p) = alpha/2, i.e. 1 - cdf(k-1) = alpha/2; high: cdf(k | p) = alpha/2.
    low = 0.0 if successes == 0 else _bisect(lambda p: _binomial_cdf(successes - 1, n, p), 1 - alpha / 2)
    high = 1.0 if successes == n else _bisect(lambda p: _binomial_cdf(successes, n, p), alpha / 2)
    return low, high


def bootstrap_interval(values: Sequence[float], level: float = LEVEL, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` (accuracy over seeds) and a percentile bootstrap
    interval. For n <= 6 every one of the n**n resamples is enumerated (the exact bootstrap
    distribution, no randomness); beyond, BOOTSTRAP_RESAMPLES resamples from a generator seeded with
    `seed`. The interval stays inside the values' range, so it never leaves [0, 1] for accuracies.
    Note: with 2-3 seeds a bootstrap interval is narrow by construction (it cannot see beyond the
    seeds it has): read it with the success k/n and its exact interval beside it."""
    data = np.asarray([float(v) for v in values if v is not None and not math.isnan(float(v))], dtype=float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if data.size == 1:
        return mean, mean, mean
    n = data.size
    if n <= EXACT_BOOTSTRAP_MAX_N:
        index = np.indices((n,) * n).reshape(n, -1).T  # every resample, (n**n, n)
    else:
        index = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    means = np.sort(data[index].mean(axis=1))
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    # Rounding in the quantile's interpolation must not put the mean outside its own interval.
    return mean, float(min(low, mean)), float(max(high, mean))


def fisher_exact(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2x2 table [[k_a, n_a - k_a], [k_b, n_b - k_b]]:
    the probability, with the margins fixed, of a table no more likely than the one observed (the
    same rule as scipy.stats.fisher_exact, with its relative tolerance for ties)."""
    for k, n, name in ((successes_a, n_a, "a"), (successes_b, n_b, "b")):
        if n < 0 or not 0 <= k <= n:
            raise ValueError(f"need 0 <= successes <= n for {name}, got {k} of {n}")
    total_successes, total = successes_a + successes_b, n_a + n_b
    if total == 0:
        return 1.0

    def probability(x: int) -> float:  # hypergeometric: x successes fall in a
        return math.comb(n_a, x) * math.comb(n_b, total_successes - x) / math.comb(total, total_successes)

    support = range(max(0, total_successes - n_b), min(n_a, total_successes) + 1)
    observed = probability(successes_a)
    p = sum(q for x in support if (q := probability(x)) <= observed * (1 + 1e-7))
    return float(min(1.0, p))


def paired_permutation_test(a: Sequence[float], b: Sequence[float], seed: int = 0, resamples: int = 20_000) -> float:
    """Two-sided p-value that `a` and `b` (scores of two runs on the same problems, in the same
    order: 1/0 for right/wrong) have the same mean, by flipping the sign of each pair's difference.

    Only pairs that differ carry information. When every difference has the same size (right/wrong
    scores) the sign-flip distribution is binomial and the p-value is exact (it is then the exact
    McNemar test); otherwise all 2**m flips are enumerated for m <= 16, else a Monte Carlo estimate
    from a generator seeded with `seed`."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need two equal-length lists, got {x.shape} and {y.shape}")
    differences = (x - y)[x != y]
    m = differences.size
    if m == 0:
        return 1.0
    observed = abs(float(differences.sum()))
    sizes = np.abs(differences)
    if np.allclose(sizes, sizes[0]):
        # sum = size * (2 * positives - m), positives ~ Binomial(m, 1/2)
        extreme = observed / sizes[0] - 1e-9
        hits = sum(math.comb(m, j) for j in range(m + 1) if abs(2 * j - m) >= extreme)
        return float(min(1.0, hits / 2**m))
    if m <= EXACT_PERMUTATION_MAX:
        signs = 1 - 2 * ((np.arange(2**m)[:, None] >> np.arange(m)) & 1)  # (2**m, m) of +-1
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(resamples, m))
    sums = np.abs(signs @ differences)
    return float(np.mean(sums >= observed - 1e-9 * max(1.0, observed)))
