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
meta "size"). Surface rules: each task declares its own, a method `surface_floors(train, test)` beside
its generator returning (name, correct per test problem, how) triples, numpy only:

- graph: `isolated endpoint` (no path iff the source or the target has no edge at all),
  `dead endpoint` (no path iff the source has no out-edge or the target no in-edge), and a
  logistic regression on the endpoints' in- and out-degrees and the edge count (tasks/surface.py);
- sat: `clauses >= k`, `distinct clauses >= k`, `positive literals >= k` (threshold and direction
  fitted on train), and a logistic regression on size statistics (clause, distinct-clause,
  literal-sign, variable-occurrence and pure-variable counts) (tasks/surface.py);
- sort: `copy the input`; add, multiadd: `sum without the modulus`;
- perm: the last element, the product of the last r elements; parity: the parity of the last r bits,
  the majority bit; mult: column sums without carries.

numpy only (no torch): `bench floors` and the reports run anywhere the tasks do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tasks import Batch, Task, stream_rng
# graph's and sat's surface statistics (their size buckets below) and the fitting helpers, re-exported
from tasks.surface import Scored, best_threshold_accuracy, graph_features, no_path, sat_features, unsat  # noqa: F401
from tasks.surface import fit_threshold as _fit_threshold  # noqa: F401

TRAIN_SPLIT, TEST_SPLIT = "train", "test"


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
    scored.append(("majority per size", guess == y_test,
                   f"{len(by_bucket)} buckets of {_BUCKET_NAMES.get(task.name, 'meta size')}"))
    own_rules = getattr(task, "surface_floors", None)
    if callable(own_rules):  # the surface rules each task declares beside its generator
        scored.extend(own_rules(train, test))
    floors = [Floor(name, float(np.mean(correct)) if len(correct) else 0.0, int(len(correct)), note)
              for name, correct, note in scored]
    return sorted(floors, key=lambda f: -f.accuracy)


def measure_floors(task: Task, n: int = 2000, seed: int = 0, n_train: int | None = None) -> list[Floor]:
    """Draw train and test problems and return the task's floors, best first."""
    train, test = floor_batches(task, n, seed, n_train)
    return compute_floors(task, train, test)


# ---- labels and size buckets ------------------------------------------------------------------------


def labels(task: Task, batch: Batch) -> np.ndarray:
    """Integer label per problem: 1 for no path / UNSAT on graph and sat, else an id of the answer."""
    if task.name == "graph":
        return no_path(task, batch)
    if task.name == "sat":
        return unsat(task, batch)
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
