"""Reading many runs at once: a table of runs, seed aggregates, the frontier, the area under the curve.

Functions here take a pandas DataFrame with one row per run and (at least) the columns

    scale     the task's scale (`--max`, or the      seed      the training seed
              parameter `--axis` names: with_scale_axis)
    accuracy  final held-out accuracy in [0, 1]     target    the run's accuracy target

plus whatever columns group the runs (`task`, `solver`, `d_model`, ...). `run_table` builds such a
table from the results store, with every setting as a column. A table with the runs' specs instead
(like bench/analysis/compare.py's) groups them into curves with `curve_key`:

    runs["curve"] = runs["spec"].map(curve_key)
    frontier_table(runs, by=["task", "solver", "curve"])

`bench compare`, `bench plot` and `bench sweep` all use these definitions, so the three agree.

Definitions:
- a run *succeeds* when its final held-out accuracy reaches its target (the spec's `--target`);
- the *success rate* at a scale is the share of seeds that succeed there;
- the *frontier* of a group is the largest scale up to which every tested scale, from the smallest
  up, has a success rate of at least `min_rate` (default 0.5: most seeds). Contiguous on purpose: a
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

# Columns of `run_table` that describe a run's outcome, not its configuration.
RESULT_COLUMNS = (
    "run_id", "state", "accuracy", "low", "high", "n", "success", "trained_steps", "elapsed",
    "parameters", "steps_to_target", "thoughts_evaluated", "budget_points",
)
# Configuration columns that never name a line of a plot or a row of a summary on their own.
NOT_A_CONFIG = {"seed", "scale", "device", "eval_size", "monitor_size", "eval_every", "eval_thoughts"}

# t quantiles t_{0.975, df} for df = 1..30 (two-sided 95%); beyond, a Cornish-Fisher expansion.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # better than 1e-3 for df > 30
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def curve_key(spec: dict[str, Any], axis: str | None = None) -> str:
    """Short hash of a run's spec without its seed and its scale (the task parameter `axis`, by
    default the task's own scale parameter): runs with the same key are points (and seeds) of one
    accuracy-versus-scale curve, the unit a frontier is computed for."""
    import hashlib
    import json

    from tasks.registry import task_class

    reduced = json.loads(json.dumps(spec))
    reduced.get("train", {}).pop("seed", None)
    try:
        scale_param = axis or task_class(reduced["task"]).scale_param
    except ValueError:
        scale_param = "max"
    reduced.get("task_params", {}).pop(scale_param, None)
    return hashlib.sha256(json.dumps(reduced, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def run_record(record: RunRecord) -> dict[str, Any]:
    """One validated run (bench.run.records) as a flat row: its configuration and, once finished, its result."""
    from tasks.registry import task_class

    spec, status, evaluation = record.spec, record.status, record.evaluation or {}
    try:
        scale_param = task_class(spec["task"]).scale_param
    except ValueError:  # a task this checkout no longer has
        scale_param = "max"
    row: dict[str, Any] = {"run_id": record.run_id, "task": spec["task"], "solver": spec["solver"]}
    for part in ("model", "optim", "train"):
        row.update(spec.get(part, {}))
    for key, value in spec.get("task_params", {}).items():
        row[key] = value
    for key, value in spec.get("solver_options", {}).items():
        row[key if key not in row else f"solver_{key}"] = value
    row["eval_thoughts"] = tuple(row.get("eval_thoughts") or ())
    row["device"] = spec.get("device")
    row["scale"] = spec.get("task_params", {}).get(scale_param)
    final = (evaluation.get("final") or {}).get("overall") or {}
    finished = status.get("state") == "finished" and bool(final)
    row.update(
        state=status.get("state", "new"),
        accuracy=final.get("accuracy") if finished else np.nan,
        low=final.get("low") if finished else np.nan,
        high=final.get("high") if finished else np.nan,
        n=final.get("n") if finished else np.nan,
        trained_steps=status.get("step"),
        elapsed=status.get("elapsed"),
        parameters=status.get("parameters"),
        steps_to_target=status.get("steps_to_target"),
        thoughts_evaluated=(evaluation.get("final") or {}).get("thoughts"),
        # (budget, accuracy) at the trained budget and at every --eval-thoughts budget
        budget_points=tuple(
            (entry["thoughts"], entry["overall"]["accuracy"])
            for entry in [evaluation.get("final") or {}, *(evaluation.get("budgets") or [])]
            if finished and entry.get("thoughts") is not None and entry.get("overall")
        ),
    )
    row["success"] = bool(finished and row["accuracy"] >= row.get("target", 1.0))
    return row


def run_table(
    root: Path, run_ids: Iterable[str] | None = None, finished_only: bool = True, records: Sequence[RunRecord] | None = None,
) -> pd.DataFrame:
    """A table of runs under `root` (all, or those in `run_ids`), one row per run. `records`: the runs
    when the caller has read them already (scan_runs), so a report reads each folder once."""
    if records is None:
        records, _ = scan_runs(root, run_ids)  # a bad folder: skipped with one warning naming it
    rows = [run_record(record) for record in records]
    return pd.DataFrame([row for row in rows if not finished_only or row["state"] == "finished"])


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
    scale_twins = [c for c in varying if "scale" in runs and runs[c].map(_hashable).equals(runs["scale"].map(_hashable))]
    return ["task", "solver"] + [c for c in varying if c not in scale_twins]


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and a 95% Student-t interval of the mean, clipped to [0, 1]. One value: no interval."""
    data = np.asarray([v for v in values if not _missing(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if data.size == 1:
        return mean, mean, mean
    half = t_quantile_975(data.size - 1) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def seed_summary(runs: pd.DataFrame, by: Sequence[str] = ("task", "solver"), min_rate: float = 0.5) -> pd.DataFrame:
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
            "success_rate": float(group["_success"].mean()),
            "solved": bool(group["_success"].mean() >= min_rate),
        })
    return pd.DataFrame(rows)


def frontier(runs: pd.DataFrame, by: Sequence[str] = ("task", "solver"), min_rate: float = 0.5) -> pd.DataFrame:
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
            "rates": " ".join(f"{int(s)}:{r:.2f}" for s, r in zip(group["scale"], group["success_rate"])),
        })
    return pd.DataFrame(rows)


def area_under_curve(runs: pd.DataFrame, by: Sequence[str] = ("task", "solver"), log_scale: bool = True) -> pd.DataFrame:
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


def frontier_table(runs: pd.DataFrame, by: Sequence[str] = ("task", "solver"), min_rate: float = 0.5) -> pd.DataFrame:
    """The frontier and the AUC side by side, one row per group."""
    return frontier(runs, by, min_rate).merge(area_under_curve(runs, by), on=list(by), how="left")


# ---- helpers -------------------------------------------------------------------------------------------


def _success(runs: pd.DataFrame) -> pd.Series:
    if "target" in runs:
        return (runs["accuracy"] >= runs["target"]).fillna(False)
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
