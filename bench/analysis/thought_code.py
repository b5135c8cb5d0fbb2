"""What a thinker's thoughts encode: lookup probes from thought tokens to features of the problem.

For a thinker whose thoughts are its own invention (no `super`), `bench inspect --code` asks, per
thought position, how well the thoughts predict each feature the
task names (`Task.code_features`: the operands, the answer, each reference-trace token, ...). The
probe is a lookup table: each thought value predicts the feature value most common among the
training-split problems that got that thought (a value never seen predicts the overall most common
one). It is fitted on training problems and scored on the held-out test problems, beside the
majority-class rate, so that "the thought predicts the tens digit 0.98 of the time, chance 0.10"
is a measured, not a fitted, statement. A lookup table is the strongest probe of a single
discrete token, so a low score means the information is not in that token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProbeRow:
    """One feature: held-out probe accuracy per thought position."""

    feature: str
    values: int  # distinct values of the feature on the held-out problems
    chance: float  # the majority-class rate on the held-out problems, using the training majority
    per_position: list[float]


def _keys(rows: np.ndarray) -> np.ndarray:
    """(n, ...) integer rows -> (n,) int keys, equal exactly where the rows are equal."""
    flat = rows.reshape(rows.shape[0], -1)
    _, inverse = np.unique(flat, axis=0, return_inverse=True)
    return inverse.reshape(-1)


def lookup_probe(fit_codes: np.ndarray, fit_values: np.ndarray, test_codes: np.ndarray,
                 test_values: np.ndarray) -> float:
    """Held-out accuracy of predicting `values` from `codes` by the fit set's majority per code.

    codes: (n,) or (n, k) integer rows (a row is one code); values: (n,) integer keys."""
    if len(test_codes) == 0:
        raise ValueError("lookup_probe needs at least one test problem")
    codes = _keys(np.concatenate([fit_codes, test_codes]))
    fit_c, test_c = codes[: len(fit_codes)], codes[len(fit_codes) :]
    fallback = np.bincount(fit_values).argmax() if len(fit_values) else -1
    table = np.full(int(codes.max()) + 1, fallback, dtype=np.int64)
    if len(fit_values):
        pairs, counts = np.unique(np.stack([fit_c, fit_values], axis=1), axis=0, return_counts=True)
        order = np.lexsort((-counts, pairs[:, 0]))  # by code, the most frequent value first
        pairs = pairs[order]
        first = np.ones(len(pairs), dtype=bool)
        first[1:] = pairs[1:, 0] != pairs[:-1, 0]
        table[pairs[first, 0]] = pairs[first, 1]
    return float((table[test_c] == test_values).mean())


def probe_table(
    fit_thoughts: np.ndarray, fit_features: dict[str, np.ndarray], test_thoughts: np.ndarray,
    test_features: dict[str, np.ndarray]
) -> list[ProbeRow]:
    """One ProbeRow per feature. thoughts: (n, K) thought indices (-1 after a stop); features: name -> (n, ...).
    (No probe of the whole thought string: with more strings than fitting problems most held-out
    strings are unseen, and the lookup would measure coverage, not content.)"""
    rows = []
    for name, test_raw in test_features.items():
        keys = _keys(np.concatenate([fit_features[name], test_raw]))  # one key space for fit and test
        fit_values, test_values = keys[: len(fit_thoughts)], keys[len(fit_thoughts) :]
        rows.append(ProbeRow(
            feature=name,
            values=len(np.unique(test_values)),
            chance=_chance(fit_values, test_values),
            per_position=[lookup_probe(fit_thoughts[:, j], fit_values, test_thoughts[:, j], test_values)
                          for j in range(test_thoughts.shape[1])],
        ))
    return rows


def _chance(fit_values: np.ndarray, test_values: np.ndarray) -> float:
    """The held-out rate of the training set's most common value (a probe that ignores the thoughts)."""
    return float((test_values == np.bincount(fit_values).argmax()).mean())
