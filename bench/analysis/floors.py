"""Shortcut floors: what cheap predictors that never solve the problem score on a task's test split.

A serial-reasoning result means little if a surface feature gets the same accuracy, so every
accuracy is read against these floors (`bench floors`, and each experiment report). Each predictor
is fitted on train-split problems and scored on test-split problems. What a predictor must get
right (its *label*):

- graph and sat: the answer's kind (path or no path; SAT or UNSAT). A full answer must get the kind
  right, so a solver whose accuracy is near the best floor on these tasks may be reading the surface;
- add, multiadd, sort: the whole answer.

Predictors, for every task: `majority` (the most common label on train) and `majority per size`
(the most common label per value of a size bucket: graph's edge count, sat's clause count, else
meta "size"). Surface rules per task:

- graph: `isolated endpoint` (no path iff the source or the target has no edge at all),
  `dead endpoint` (no path iff the source has no out-edge or the target no in-edge), and a
  logistic regression on the endpoints' in- and out-degrees and the edge count;
- sat: `clauses >= k`, `distinct clauses >= k`, `positive literals >= k` (threshold and direction
  fitted on train), and a logistic regression on size statistics (clause, distinct-clause,
  literal-sign, variable-occurrence and pure-variable counts);
- sort: `copy the input`; add, multiadd: `sum without the modulus`.

numpy only (no torch): `bench floors` and the reports run anywhere the tasks do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from tasks import Batch, Task, stream_rng

TRAIN_SPLIT, TEST_SPLIT = "train", "test"
# (rule name, correct on each test problem, how it was fitted)
Scored = tuple[str, np.ndarray, str]


@dataclass(frozen=True)
class Floor:
    """One predictor's accuracy on the test problems."""

    name: str
    accuracy: float
    n: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def floor_batches(task: Task, n: int, seed: int = 0, n_train: int | None = None) -> tuple[Batch, Batch]:
    """(train, test) problems for fitting and scoring floors; test is drawn as the harness draws
    its held-out problems (the test split)."""
    train = task.sample(stream_rng(seed, "floors"), n_train or n, TRAIN_SPLIT)  # type: ignore[arg-type]
    test = task.sample(stream_rng(seed, "test"), n, TEST_SPLIT)  # type: ignore[arg-type]
    return train, test


def compute_floors(task: Task, train: Batch, test: Batch) -> list[Floor]:
    """Every floor of the task, fitted on `train` and scored on `test`, best first."""
    y_train, y_test = labels(task, train), labels(task, test)
    scored: list[Scored] = []
    majority = _mode(y_train)
    scored.append(("majority", y_test == majority, f"always {_label_text(task, majority)}"))
    b_train, b_test = bucket_feature(task, train), bucket_feature(task, test)
    by_bucket = {b: _mode(y_train[b_train == b]) for b in np.unique(b_train)}
    guess = np.array([by_bucket.get(b, majority) for b in b_test.tolist()], dtype=y_test.dtype)
    scored.append(("majority per size", guess == y_test, f"{len(by_bucket)} buckets of {_BUCKET_NAMES.get(task.name, 'meta size')}"))
    rules = SURFACE_RULES.get(task.name)
    if rules is not None:
        scored.extend(rules(task, train, test))
    floors = [Floor(name, float(np.mean(correct)) if len(correct) else 0.0, int(len(correct)), note) for name, correct, note in scored]
    return sorted(floors, key=lambda f: -f.accuracy)


def measure_floors(task: Task, n: int = 2000, seed: int = 0, n_train: int | None = None) -> list[Floor]:
    """Draw train and test problems and return the task's floors, best first."""
    train, test = floor_batches(task, n, seed, n_train)
    return compute_floors(task, train, test)


# ---- labels and size buckets ------------------------------------------------------------------------


def labels(task: Task, batch: Batch) -> np.ndarray:
    """Integer label per problem: 1 for no path / UNSAT on graph and sat, else an id of the answer."""
    if task.name == "graph":
        return (batch.answers[:, 0] == task.no_path_token).astype(np.int64)  # type: ignore[attr-defined]
    if task.name == "sat":
        return (batch.answers[:, 0] == task.unsat_token).astype(np.int64)  # type: ignore[attr-defined]
    if batch.answers.shape[1] == 1:
        return batch.answers[:, 0].astype(np.int64)
    return _row_ids(batch.answers)


_BUCKET_NAMES = {"graph": "edge count", "sat": "clause count"}


def bucket_feature(task: Task, batch: Batch) -> np.ndarray:
    if task.name == "graph":
        return graph_features(task, batch)["edges"]
    if task.name == "sat":
        return sat_features(task, batch)["clauses"]
    return batch.meta["size"].astype(np.int64)


def _label_text(task: Task, label: int) -> str:
    if task.name == "graph":
        return "no path" if label else "a path"
    if task.name == "sat":
        return "UNSAT" if label else "SAT"
    return "the most common answer"


# ---- surface features -------------------------------------------------------------------------------


def graph_features(task: Task, batch: Batch) -> dict[str, np.ndarray]:
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


def sat_features(task: Task, batch: Batch) -> dict[str, np.ndarray]:
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
    neg_count = np.stack([((variables == v) & (tokens % 2 == 0) & (tokens > 0)).sum(axis=1) for v in range(1, n_vars + 1)], axis=1)
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


# ---- per-task surface rules -------------------------------------------------------------------------


def graph_rules(task: Task, train: Batch, test: Batch) -> list[Scored]:
    y_test = labels(task, test)
    f_train, f_test = graph_features(task, train), graph_features(task, test)
    no_edge = (f_test["source_out"] + f_test["source_in"] == 0) | (f_test["target_out"] + f_test["target_in"] == 0)
    dead = (f_test["source_out"] == 0) | (f_test["target_in"] == 0)
    names = ["edges", "source_out", "source_in", "target_out", "target_in"]
    logistic = _logistic_floor(
        np.stack([f_train[k] for k in names], axis=1), labels(task, train), np.stack([f_test[k] for k in names], axis=1), y_test
    )
    return [
        ("isolated endpoint", no_edge.astype(np.int64) == y_test, "no path iff an endpoint has no edge"),
        ("dead endpoint", dead.astype(np.int64) == y_test, "no path iff source has no out-edge or target no in-edge"),
        ("logistic on degrees", logistic, "endpoint in/out-degrees and edge count, fitted on train"),
    ]


def sat_rules(task: Task, train: Batch, test: Batch) -> list[Scored]:
    y_train, y_test = labels(task, train), labels(task, test)
    f_train, f_test = sat_features(task, train), sat_features(task, test)
    scored: list[Scored] = []
    for feature, name in (("clauses", "clauses"), ("distinct_clauses", "distinct clauses"), ("positive_literals", "positive literals")):
        k, above = _fit_threshold(f_train[feature], y_train)
        guess = (f_test[feature] >= k) if above else (f_test[feature] < k)
        scored.append((f"{name} >= k", guess.astype(np.int64) == y_test, f"UNSAT iff {name} {'>=' if above else '<'} {k} (k fitted on train)"))
    names = sorted(f_train)
    logistic = _logistic_floor(
        np.stack([f_train[k] for k in names], axis=1), y_train, np.stack([f_test[k] for k in names], axis=1), y_test
    )
    scored.append(("logistic on size stats", logistic, f"{len(names)} size statistics, fitted on train"))
    return scored


def sort_rules(task: Task, train: Batch, test: Batch) -> list[Scored]:
    copy = np.all(test.questions == test.answers, axis=1) if test.questions.shape == test.answers.shape else np.zeros(len(test), bool)
    return [("copy the input", copy, "answer the values in the order given")]


def modular_sum_rules(task: Task, train: Batch, test: Batch) -> list[Scored]:
    plain_sum = (test.questions.astype(np.int64) - 1).sum(axis=1)
    return [("sum without the modulus", plain_sum == test.answers[:, 0] - 1, "the operands' plain sum")]


SURFACE_RULES: dict[str, Callable[[Task, Batch, Batch], list[Scored]]] = {
    "graph": graph_rules,
    "sat": sat_rules,
    "sort": sort_rules,
    "add": modular_sum_rules,
    "multiadd": modular_sum_rules,
}


# ---- fitting helpers --------------------------------------------------------------------------------


def _mode(values: np.ndarray) -> int:
    if len(values) == 0:
        return 0
    uniques, counts = np.unique(values, return_counts=True)
    return int(uniques[np.argmax(counts)])


def _row_ids(rows: np.ndarray) -> np.ndarray:
    """A stable integer per distinct row (hash-free: equal rows, equal ids, across batches)."""
    ids = np.zeros(len(rows), dtype=np.int64)
    for column in rows.T.astype(np.int64):
        ids = ids * 1_000_003 + column  # overflow wraps identically for equal rows
    return ids


def _fit_threshold(x: np.ndarray, y: np.ndarray) -> tuple[int, bool]:
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
    k, above = _fit_threshold(x, y)
    guess = (x >= k) if above else (x < k)
    return float(np.mean(guess == (y == 1)))


def _logistic_floor(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> np.ndarray:
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
