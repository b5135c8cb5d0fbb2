"""THE table of runs (one row per stored run) and what every report computes from it: seed aggregates,
the frontier, the area under the curve.

`run_table` / `load_runs` read the results store once into a DataFrame, one row per run: its identity
(`run_id`, `config`: the spec's hash without the seed, `spec`, `path`), every setting of its spec as a
column (`task`, `solver`, `d_model`, `seed`, `target`, ...), `scale` (the task's scale parameter:
`scale_param_of`, the one lookup) and its outcome (`state`, `accuracy`, `low`, `high`, `n`, `success`,
...). The leaderboards (bench/analysis/compare.py), plots, `bench sweep`'s summary and experiment
reports all read this one table. The functions below need (at least) the columns

    scale     the task's scale (`--max`, or the      seed      the training seed
              parameter `--axis` names: with_scale_axis)
    accuracy  final held-out accuracy in [0, 1]     target    the run's accuracy target

plus whatever columns group the runs; `curve_key` groups runs into curves by their spec:

    runs["curve"] = runs["spec"].map(curve_key)
    frontier_table(runs, by=["task", "solver", "curve"])

Definitions:
- a run *succeeds* when its final held-out accuracy reaches its target (the spec's `--target`):
  `succeeded`, the one definition (the status record's `reached_target` says the same);
- the *success rate* at a scale is the share of seeds that succeed there;
- the *frontier* of a group is the largest scale up to which every tested scale, from the smallest
  up, has a success rate of at least `min_rate` (FRONTIER_MIN_RATE = 0.6: 3 of 5 seeds, in every
  report; `bench compare --min-rate` may explore other bars). Contiguous on purpose: a
  lucky pass above a failed scale does not move it. NaN when even the smallest scale fails;
- the *area under the curve* (AUC) is the trapezoid area under mean accuracy over seeds versus
  log2(scale) (the scales of a sweep are usually geometric), divided by the log-scale range, so it is
  a mean accuracy in [0, 1]; with a single scale it is the accuracy there.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from bench.run.records import RunRecord, scan_runs

# Columns of `run_table` that identify a run or describe its outcome, not its configuration (every
# other column is a setting of its spec: task parameters, solver options, model, optimiser, training).
RESULT_COLUMNS = (
    "run_id", "config", "state", "accuracy", "low", "high", "n", "success", "step", "reached_target", "elapsed",
    "parameters", "flops_per_step", "steps_to_target", "thoughts_evaluated", "budget_points", "spec", "path",
)
# Present in every run table, even an empty one.
RUN_COLUMNS = ("run_id", "config", "task", "scale", "solver", "seed", "target", *RESULT_COLUMNS[2:])
_NUMERIC_COLUMNS = ("accuracy", "low", "high", "target", "elapsed", "steps_to_target", "parameters", "step", "n",
                    "flops_per_step")
# Configuration columns that never name a line of a plot or a row of a summary on their own.
NOT_A_CONFIG = {"seed", "scale", "device", "eval_size", "monitor_size", "eval_every", "eval_thoughts"}

# The one frontier rule of every report (experiment reports, REPORT.md, `bench compare`, `bench plot`):
# a scale counts when at least 60% of its seeds succeed, i.e. 3 of 5 (2 of 3, 3 of 4): a majority.
FRONTIER_MIN_RATE = 0.6
FRONTIER_RULE = "a scale counts when at least 60% of its seeds (3 of 5) reach the target"


def succeeded(accuracy: Any, target: Any) -> bool:
    """THE definition of a seed's success, used everywhere (leaderboards, frontier, plots, tests):
    its final held-out (test split) accuracy reaches its spec's target. Unfinished: not a success."""
    if _missing(accuracy) or _missing(target):
        return False
    return bool(float(accuracy) >= float(target))


def scale_param_of(task: str) -> str:
    """THE scale lookup: the name of the task's scale parameter (what --max sets); "max" for a task
    this checkout no longer registers (its stored runs still read)."""
    from tasks.registry import task_class

    try:
        return task_class(task).scale_param
    except ValueError:  # TaskError: an unknown task
        return "max"


def scale_of(task: str, params: dict[str, Any]) -> Any:
    """The value of the task's scale parameter in a spec's task_params (None when it lacks it)."""
    return params.get(scale_param_of(task))


def spec_key(spec: dict[str, Any], without_scale: bool = False, axis: str | None = None) -> str:
    """Short hash of a run's spec without its seed (and, `without_scale`, without its scale: the task
    parameter `axis`, by default the task's own scale parameter)."""
    import hashlib
    import json

    reduced = json.loads(json.dumps(spec))
    reduced.get("train", {}).pop("seed", None)
    if without_scale:
        reduced.get("task_params", {}).pop(axis or scale_param_of(reduced["task"]), None)
    return hashlib.sha256(json.dumps(reduced, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def config_key(spec: dict[str, Any]) -> str:
    """Runs with the same key are seeds of one configuration (a leaderboard row)."""
    return spec_key(spec)


def curve_key(spec: dict[str, Any], axis: str | None = None) -> str:
    """Runs with the same key are points (and seeds) of one accuracy-versus-scale curve, the unit a
    frontier is computed for."""
    return spec_key(spec, without_scale=True, axis=axis)


def run_row(record: RunRecord) -> dict[str, Any]:
    """One validated run (bench.run.records) as a flat row: its identity, every setting as a column and,
    once finished, its result (RESULT_COLUMNS say which columns are not settings)."""
    from bench.run.records import shown_state

    spec, status, evaluation = record.spec, record.status, record.evaluation or {}
    row: dict[str, Any] = {"run_id": record.run_id, "task": spec["task"], "solver": spec["solver"]}
    for part in ("model", "optim", "train"):
        row.update(spec.get(part, {}))
    for key, value in spec.get("task_params", {}).items():
        row[key] = value
    for key, value in spec.get("solver_options", {}).items():
        row[key if key not in row else f"solver_{key}"] = value
    row["eval_thoughts"] = tuple(row.get("eval_thoughts") or ())
    row["device"] = spec.get("device")
    row["scale"] = scale_of(spec["task"], spec.get("task_params", {}))
    final = (evaluation.get("final") or {}).get("overall") or {}
    finished = status.get("state") == "finished" and bool(final)
    row.update(
        config=config_key(spec),
        state=shown_state(status),
        accuracy=final.get("accuracy") if finished else np.nan,
        low=final.get("low") if finished else np.nan,
        high=final.get("high") if finished else np.nan,
        n=final.get("n") if finished else np.nan,
        step=status.get("step"),
        reached_target=status.get("reached_target"),
        elapsed=status.get("elapsed"),
        parameters=status.get("parameters"),
        flops_per_step=status.get("flops_per_step"),
        steps_to_target=status.get("steps_to_target"),
        thoughts_evaluated=(evaluation.get("final") or {}).get("thoughts"),
        # (budget, accuracy) at the trained budget and at every --eval-thoughts budget
        budget_points=tuple(
            (entry["thoughts"], entry["overall"]["accuracy"])
            for entry in [evaluation.get("final") or {}, *(evaluation.get("budgets") or [])]
            if finished and entry.get("thoughts") is not None and entry.get("overall")
        ),
        spec=spec,
        path=str(record.path),
    )
    row["success"] = finished and succeeded(row["accuracy"], row.get("target"))
    return row


def run_table(
    root: Path, run_ids: Iterable[str] | None = None, finished_only: bool = True,
    records: Sequence[RunRecord] | None = None,
) -> pd.DataFrame:
    """THE table of runs under `root` (all, or those in `run_ids`), one row per run (`run_row`), for
    leaderboards, frontiers, plots and reports alike. `records`: the runs when the caller has read them
    already (scan_runs), so a report reads each folder once."""
    if records is None:
        records, _ = scan_runs(root, run_ids)  # a bad folder: skipped with one warning naming it
    rows = [run_row(record) for record in records]
    table = pd.DataFrame([row for row in rows if not finished_only or row["state"] == "finished"])
    for column in RUN_COLUMNS:  # an empty store still has the columns every reader looks up
        if column not in table:
            table[column] = pd.Series(dtype=object)
    for column in _NUMERIC_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    return table


def load_runs(root: Path, warn: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """Every run folder under root/runs as `run_table` (unfinished runs too) and the ids of unreadable ones.

    Reads every folder through the one validated reader (bench.run.records.scan_runs); never writes. A
    folder with a bad file, or whose name is not its spec's hash (a copy), is listed as unreadable
    instead of stopping the whole leaderboard or counting as another seed.
    """
    records, unreadable = scan_runs(Path(root), warn=warn)  # each bad folder: one warning line naming it
    return run_table(root, finished_only=False, records=records), unreadable


def finished_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of finished runs (the only ones any report counts)."""
    return runs[runs["state"] == "finished"] if not runs.empty else runs


def check_axis(axis: str | None, task: str | None = None) -> None:
    """Raise a one-line UserError unless `axis` is a parameter of `task` (or of some task)."""
    import dataclasses

    from bench.errors import UserError
    from tasks.registry import task_class, task_names

    if axis is None:
        return
    names = [task] if task else task_names()
    params = sorted({f.name for name in names for f in dataclasses.fields(task_class(name).Params)})
    if axis not in params:
        where = f"task {task}" if task else "any task"
        raise UserError(f"--axis {axis!r} is not a parameter of {where}; valid: {', '.join(params)}")


def with_scale_axis(runs: pd.DataFrame, axis: str | None) -> pd.DataFrame:
    """The runs with `scale` read from task parameter `axis` (e.g. sort's `length`) instead of each
    task's own scale parameter; runs whose task has no such parameter are left out. The former
    scale parameter becomes an ordinary setting, so each of its values draws its own curve."""
    if axis is None or runs.empty:
        return runs
    if axis not in runs:
        raise ValueError(f"no run has a task parameter {axis!r}")
    present = runs[runs[axis].map(lambda v: not _missing(v))]
    return present.assign(scale=present[axis])


def config_columns(runs: pd.DataFrame, extra_excluded: Iterable[str] = ()) -> list[str]:
    """The configuration columns whose values differ between runs (what tells lines apart),
    always led by task and solver; seed and scale excluded (they are what one aggregates over)."""
    excluded = set(RESULT_COLUMNS) | NOT_A_CONFIG | set(extra_excluded) | {"task", "solver"}
    varying = []
    for column in runs.columns:
        if column in excluded:
            continue
        # Within one task and solver: an option only a thinker has does not tell gpt from a thinker.
        values = runs[column].map(_hashable)
        if (values.groupby([runs["task"], runs["solver"]]).nunique(dropna=False) > 1).any():
            varying.append(column)
    # The task's own scale parameter (e.g. add's `max`) is `scale` under another name.
    scale_twins = [c for c in varying
                   if "scale" in runs and runs[c].map(_hashable).equals(runs["scale"].map(_hashable))]
    return ["task", "solver"] + [c for c in varying if c not in scale_twins]


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean accuracy over seeds and its 95% percentile bootstrap interval (bench.stats.bootstrap_interval:
    exact enumeration for up to 6 seeds, so deterministic). One value: no interval."""
    from bench.stats import bootstrap_interval

    return bootstrap_interval([v for v in values if not _missing(v)])


def seed_summary(runs: pd.DataFrame, by: Sequence[str] = ("task", "solver"),
                 min_rate: float = FRONTIER_MIN_RATE) -> pd.DataFrame:
    """Per group and scale: seeds, mean accuracy with its interval, min and max, success rate."""
    _require(runs, ["scale", "accuracy"])
    success = _success(runs)
    rows = []
    keys = list(by) + ["scale"]
    for key, group in runs.assign(_success=success).groupby(keys, dropna=False, sort=True):
        mean, low, high = mean_interval(group["accuracy"].tolist())
        if len(group) == 1 and {"low", "high"} <= set(group):  # one seed: its own Wilson interval
            low, high = float(group["low"].iloc[0]), float(group["high"].iloc[0])
        rows.append({
            **dict(zip(keys, key if isinstance(key, tuple) else (key,))),
            "seeds": int(group["accuracy"].notna().sum()),
            "accuracy": mean, "low": low, "high": high,
            "min": float(group["accuracy"].min()), "max": float(group["accuracy"].max()),
            "successes": int(group["_success"].sum()),
            "success_rate": float(group["_success"].mean()),
            # a tolerance, so 3 of 5 meets 0.6 whatever the rounding of 0.6 * 5
            "solved": bool(group["_success"].sum() >= min_rate * len(group) - 1e-9),
        })
    return pd.DataFrame(rows)


def frontier(runs: pd.DataFrame, by: Sequence[str] = ("task", "solver"),
             min_rate: float = FRONTIER_MIN_RATE) -> pd.DataFrame:
    """Per group: the frontier (see the module docstring), the scales tested and the largest one."""
    if not 0.0 < min_rate <= 1.0:
        raise ValueError(f"min_rate={min_rate} must be in (0, 1]")
    summary = seed_summary(runs, by, min_rate)
    rows = []
    for key, group in summary.groupby(list(by), dropna=False, sort=True):
        group = group.sort_values("scale")
        reached = math.nan
        for scale, solved in zip(group["scale"], group["solved"]):
            if not solved:
                break
            reached = scale
        rows.append({
            **dict(zip(by, key if isinstance(key, tuple) else (key,))),
            "frontier": reached,
            "largest_tested": group["scale"].max(),
            "scales": len(group),
            # success k/n seeds per scale: counts, not rates, so a reader sees how few seeds stand behind each
            "rates": " ".join(f"{s:g}:{k}/{n}" for s, k, n in zip(group["scale"], group["successes"], group["seeds"])),
        })
    return pd.DataFrame(rows)


def area_under_curve(runs: pd.DataFrame, by: Sequence[str] = ("task", "solver"),
                     log_scale: bool = True) -> pd.DataFrame:
    """Per group: normalised area under mean accuracy (over seeds) versus scale, in [0, 1]."""
    summary = seed_summary(runs, by)
    rows = []
    for key, group in summary.groupby(list(by), dropna=False, sort=True):
        group = group.sort_values("scale")
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "auc": normalised_auc(group["scale"].tolist(), group["accuracy"].tolist(), log_scale)})
    return pd.DataFrame(rows)


def normalised_auc(scales: Sequence[float], accuracies: Sequence[float], log_scale: bool = True) -> float:
    """Trapezoid area under accuracy over (log2) scale divided by the scale range."""
    points = sorted((float(s), float(a)) for s, a in zip(scales, accuracies) if not _missing(a))
    if not points:
        return math.nan
    if len(points) == 1:
        return points[0][1]
    xs = np.array([math.log2(s) if log_scale else s for s, _ in points])
    ys = np.array([a for _, a in points])
    width = xs[-1] - xs[0]
    if width <= 0:
        return float(ys.mean())
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / width)


def frontier_table(runs: pd.DataFrame, by: Sequence[str] = ("task", "solver"),
                   min_rate: float = FRONTIER_MIN_RATE) -> pd.DataFrame:
    """The frontier and the AUC side by side, one row per group."""
    return frontier(runs, by, min_rate).merge(area_under_curve(runs, by), on=list(by), how="left")


# ---- helpers -------------------------------------------------------------------------------------------


def _success(runs: pd.DataFrame) -> pd.Series:
    if "target" in runs:
        return pd.Series([succeeded(a, t) for a, t in zip(runs["accuracy"], runs["target"])], index=runs.index,
                         dtype=bool)
    if "success" in runs:
        return runs["success"].astype(bool)
    raise ValueError("runs need a 'target' or a 'success' column")


def _require(runs: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in runs]
    if missing:
        raise ValueError(f"runs table lacks columns {missing}")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
