"""Surface statistics and fitted rules behind the shortcut floors of graph and sat (numpy only).

`bench floors` (bench/analysis/floors.py) scores every rule a task declares through its
`surface_floors(train, test)` method: (name, correct per test problem, how) triples, fitted on train
problems and scored on test problems. graph and sat read features off the question tokens and fit
thresholds and logistic regressions on them; the fitting helpers here serve any task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.base import Batch

# (rule name, correct on each test problem, how it was fitted)
Scored = tuple[str, np.ndarray, str]


def no_path(task: Any, batch: Batch) -> np.ndarray:
    """graph's answer kind: 1 where the answer is "no path"."""
    return (batch.answers[:, 0] == task.no_path_token).astype(np.int64)


def unsat(task: Any, batch: Batch) -> np.ndarray:
    """sat's answer kind: 1 where the answer is UNSAT."""
    return (batch.answers[:, 0] == task.unsat_token).astype(np.int64)


# ---- graph ------------------------------------------------------------------------------------------


def graph_features(task: Any, batch: Batch) -> dict[str, np.ndarray]:
    """Edge count and the endpoints' in/out-degrees, read off the question tokens."""
    q = batch.questions
    us, vs = q[:, 0:-2:2], q[:, 1:-2:2]
    source, target = q[:, -2:-1], q[:, -1:]
    directed = bool(task.params.directed)
    out = {
        "edges": (us != 0).sum(axis=1),
        "source_out": (us == source).sum(axis=1) + (0 if directed else (vs == source).sum(axis=1)),
        "source_in": (vs == source).sum(axis=1) + (0 if directed else (us == source).sum(axis=1)),
        "target_out": (us == target).sum(axis=1) + (0 if directed else (vs == target).sum(axis=1)),
        "target_in": (vs == target).sum(axis=1) + (0 if directed else (us == target).sum(axis=1)),
    }
    return {k: v.astype(np.int64) for k, v in out.items()}


def graph_rules(task: Any, train: Batch, test: Batch) -> list[Scored]:
    """No path iff an endpoint has no edge; iff the source has no out-edge or the target no in-edge;
    a logistic regression on the endpoints' degrees and the edge count."""
    y_test = no_path(task, test)
    f_train, f_test = graph_features(task, train), graph_features(task, test)
    no_edge = (f_test["source_out"] + f_test["source_in"] == 0) | (f_test["target_out"] + f_test["target_in"] == 0)
    dead = (f_test["source_out"] == 0) | (f_test["target_in"] == 0)
    names = ["edges", "source_out", "source_in", "target_out", "target_in"]
    logistic = logistic_floor(
        np.stack([f_train[k] for k in names], axis=1), no_path(task, train),
        np.stack([f_test[k] for k in names], axis=1), y_test
    )
    return [
        ("isolated endpoint", no_edge.astype(np.int64) == y_test, "no path iff an endpoint has no edge"),
        ("dead endpoint", dead.astype(np.int64) == y_test, "no path iff source has no out-edge or target no in-edge"),
        ("logistic on degrees", logistic, "endpoint in/out-degrees and edge count, fitted on train"),
    ]


# ---- sat --------------------------------------------------------------------------------------------


def sat_features(task: Any, batch: Batch) -> dict[str, np.ndarray]:
    """Size statistics of each formula, read off the question tokens (PAD clauses ignored)."""
    n_vars, width = task.params.max, task.params.width
    clauses = batch.questions.reshape(len(batch), -1, width).astype(np.int64)
    real = clauses[:, :, 0] != 0
    key = np.zeros(clauses.shape[:2], dtype=np.int64)
    for column in range(width):
        key = key * (2 * n_vars + 2) + clauses[:, :, column]
    key = np.where(real, key, -1)
    ordered = np.sort(key, axis=1)
    distinct = ((ordered[:, 1:] != ordered[:, :-1]) & (ordered[:, 1:] >= 0)).sum(axis=1) + (ordered[:, 0] >= 0)
    tokens = clauses.reshape(len(batch), -1)
    positive = ((tokens % 2 == 1) & (tokens > 0)).sum(axis=1)
    negative = ((tokens % 2 == 0) & (tokens > 0)).sum(axis=1)
    variables = (tokens + 1) // 2
    pos_count = np.stack([((variables == v) & (tokens % 2 == 1)).sum(axis=1) for v in range(1, n_vars + 1)], axis=1)
    neg_count = np.stack([((variables == v) & (tokens % 2 == 0) & (tokens > 0)).sum(axis=1)
                          for v in range(1, n_vars + 1)], axis=1)
    occurrences = pos_count + neg_count
    return {
        "clauses": real.sum(axis=1),
        "distinct_clauses": distinct,
        "positive_literals": positive,
        "negative_literals": negative,
        "variables_used": (occurrences > 0).sum(axis=1),
        "pure_variables": ((occurrences > 0) & ((pos_count == 0) | (neg_count == 0))).sum(axis=1),
        "max_occurrences": occurrences.max(axis=1),
        "min_occurrences": occurrences.min(axis=1),
        "max_imbalance": np.abs(pos_count - neg_count).max(axis=1),
        "total_imbalance": np.abs(pos_count - neg_count).sum(axis=1),
    }


def sat_rules(task: Any, train: Batch, test: Batch) -> list[Scored]:
    """UNSAT iff a size count passes a threshold fitted on train (clauses, distinct clauses, positive
    literals), and a logistic regression on every size statistic."""
    y_train, y_test = unsat(task, train), unsat(task, test)
    f_train, f_test = sat_features(task, train), sat_features(task, test)
    scored: list[Scored] = []
    for feature, name in (("clauses", "clauses"), ("distinct_clauses", "distinct clauses"),
                          ("positive_literals", "positive literals")):
        k, above = fit_threshold(f_train[feature], y_train)
        guess = (f_test[feature] >= k) if above else (f_test[feature] < k)
        scored.append((f"{name} >= k", guess.astype(np.int64) == y_test,
                       f"UNSAT iff {name} {'>=' if above else '<'} {k} (k fitted on train)"))
    names = sorted(f_train)
    logistic = logistic_floor(
        np.stack([f_train[k] for k in names], axis=1), y_train, np.stack([f_test[k] for k in names], axis=1), y_test
    )
    scored.append(("logistic on size stats", logistic, f"{len(names)} size statistics, fitted on train"))
    return scored


# ---- fitting helpers --------------------------------------------------------------------------------


def fit_threshold(x: np.ndarray, y: np.ndarray) -> tuple[int, bool]:
    """The rule `y = (x >= k)` or `y = (x < k)` with the best accuracy on (x, y)."""
    best = (-1.0, 0, True)
    for k in np.unique(np.concatenate([x, [x.max() + 1]])).tolist():
        above = float(np.mean((x >= k) == (y == 1)))
        for accuracy, direction in ((above, True), (1.0 - above, False)):
            if accuracy > best[0]:
                best = (accuracy, int(k), direction)
    return best[1], best[2]


def best_threshold_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """In-sample accuracy of the best threshold rule on (x, y): an upper bound, no held-out data."""
    k, above = fit_threshold(x, y)
    guess = (x >= k) if above else (x < k)
    return float(np.mean(guess == (y == 1)))


def logistic_floor(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> np.ndarray:
    """Correct-or-not per test problem of an L2-regularised logistic regression fitted by Newton steps."""
    x_train, x_test = x_train.astype(float), x_test.astype(float)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    a_train = np.hstack([np.ones((len(x_train), 1)), (x_train - mean) / std])
    a_test = np.hstack([np.ones((len(x_test), 1)), (x_test - mean) / std])
    w = np.zeros(a_train.shape[1])
    ridge = 1e-2 * np.eye(len(w))
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-np.clip(a_train @ w, -30, 30)))
        gradient = a_train.T @ (p - y_train) + ridge @ w
        hessian = (a_train * (p * (1 - p))[:, None]).T @ a_train + ridge
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return ((a_test @ w) >= 0).astype(np.int64) == y_test
