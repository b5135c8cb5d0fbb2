"""Leaderboards: the one run table (bench.analysis.frontier.run_table) as one row per configuration.

A *configuration* is a run's whole spec except its seed (task and parameters, solver and options,
model size, optimiser, training settings, device, warm start), so runs that differ in anything but
the seed are never merged. Across the seeds of a configuration:

    seeds             finished runs (seeds) counted
    accuracy          mean final held-out accuracy
    low, high         its 95% interval: percentile bootstrap over seeds (bench.stats.bootstrap_interval via
                      bench.analysis.frontier.mean_interval, shared with `bench plot` and `bench sweep`);
                      with a single seed, that run's Wilson interval over its held-out problems
                      (column `interval` says which)
    successes         seeds whose final accuracy reached the spec's target (frontier.succeeded)
    success           successes / seeds
    success_low, success_high   Clopper-Pearson's exact 95% interval of the success rate over seeds
    flops_per_step    FLOPs of one training step (counted at run time, bench/run/facts.py; NaN for
                      runs recorded before it was stored)
    train_flops       median over seeds of flops_per_step x steps trained
    time_s            median training time (seconds, evaluation excluded) over seeds
    steps_to_target   median step at which the periodic evaluation first reached the target, over
                      the seeds that reached it (empty when none did)
    parameters        model parameters

Pure functions on pandas; the `bench compare` command (bench/cli/commands_compare.py) only shows them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# one run table, one scale lookup, one seed interval and one definition of success for compare, plot,
# sweep and reports (load_runs and config_key are re-exported: the leaderboard's names for them)
from bench.analysis.frontier import (  # noqa: F401
    FRONTIER_MIN_RATE, config_key, curve_key, finished_runs, frontier_table, load_runs, mean_interval,
    scale_param_of, succeeded, with_scale_axis,
)
from bench.stats import exact_interval

SORT_KEYS: dict[str, tuple[str, bool]] = {
    # name: (column, ascending)
    "accuracy": ("accuracy", False),
    "success": ("success", False),
    "time": ("time_s", True),
    "steps": ("steps_to_target", True),
    "params": ("parameters", True),
}
FORMATS = ("table", "markdown", "csv", "json")

BOARD_COLUMNS = [
    "config", "task", "scale", "solver", "settings", "seeds", "accuracy", "low", "high", "interval", "successes",
    "success", "success_low", "success_high", "flops_per_step", "train_flops", "time_s", "steps_to_target",
    "parameters", "run_ids",
]


def filter_runs(
    runs: pd.DataFrame, task: str | None = None, solver: str | None = None, scale: int | None = None
) -> pd.DataFrame:
    """Rows matching every filter given (exact task name, canonical solver name, scale value)."""
    keep = pd.Series(True, index=runs.index)
    if task is not None:
        keep &= runs["task"] == task
    if solver is not None:
        keep &= runs["solver"] == solver
    if scale is not None:
        keep &= runs["scale"].map(lambda value: value == scale)
    return runs[keep]


def settings_text(spec: dict[str, Any], varying: set[str], scale_param: str | None = None) -> str:
    """The spec fields listed in `varying` (flattened names like 'model.d_model'), as 'k=v ...'."""
    flat = flatten_spec(spec)
    scale_key = f"task_params.{scale_param or scale_param_of(spec['task'])}"  # shown in the scale column
    keys = [key for key in sorted(varying) if key in flat and key != scale_key]
    # 'train.steps' reads as 'steps' unless another varying field has the same last name.
    last_names = [key.rsplit(".", 1)[-1] for key in varying]
    shown = [key.rsplit(".", 1)[-1] if last_names.count(key.rsplit(".", 1)[-1]) == 1 else key for key in keys]
    # A null option (e.g. thoughts=None) means the solver's own default, so it reads as that; a null
    # init means no warm start.
    return " ".join(f"{name}={null_text(key) if flat[key] is None else flat[key]}" for name, key in zip(shown, keys))


def null_text(key: str) -> str:
    """How a spec field left at None reads in a leaderboard's settings."""
    return "none" if key == "init" else "default"


def flatten_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """{'model': {'d_model': 128}} -> {'model.d_model': 128}; lists become JSON text."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = json.dumps(value) if isinstance(value, list) else value

    walk("", spec)
    return flat


# Shown in their own columns (or meaningless for telling configurations apart).
_OWN_COLUMNS = {"task", "solver", "train.seed", "version"}


def late_options_set(specs: list[dict[str, Any]]) -> set[str]:
    """Solver options a spec holds only because they differ from their default (an Options class's
    LATE fields, e.g. gpt's `aux`): always named, since without them the row reads as the plain solver."""
    from solvers.base import SolverError, resolve_solver

    shown: set[str] = set()
    for spec in specs:
        try:
            late = resolve_solver(str(spec.get("solver")))[0].Options.LATE
        except SolverError:  # a solver this checkout does not know: nothing to add
            continue
        shown |= {f"solver_options.{name}" for name in late if name in spec.get("solver_options", {})}
    return shown


def varying_settings(specs: list[dict[str, Any]]) -> set[str]:
    """Flattened spec fields whose value differs between some of these specs (the seed aside), so
    the leaderboard names exactly what tells two rows apart."""
    flats = [flatten_spec(spec) for spec in specs]
    keys = set().union(*flats) if flats else set()
    varying = set()
    for key in keys - _OWN_COLUMNS:
        values = {json.dumps(flat.get(key), sort_keys=True) for flat in flats}
        if len(values) > 1:
            varying.add(key)
    return varying


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration over its finished runs (columns BOARD_COLUMNS); unfinished rows are ignored."""
    finished = finished_runs(runs)
    if finished.empty:
        return pd.DataFrame(columns=BOARD_COLUMNS)
    if "flops_per_step" not in finished:  # a table built before FLOPs were recorded
        finished = finished.assign(flops_per_step=math.nan)
    # What tells rows apart is judged among the configurations of one task and solver: an option only
    # a thinker has does not need naming next to gpt.
    configs = finished.drop_duplicates("config")
    varying = {
        key: varying_settings(list(group["spec"])) | late_options_set(list(group["spec"]))
        for key, group in configs.groupby(["task", "solver"], sort=False)
    }
    rows = []
    for config, group in finished.groupby("config", sort=False):
        first = group.iloc[0]
        accuracies = group["accuracy"].to_numpy(dtype=float)
        if len(group) >= 2:
            mean, low, high = mean_interval(accuracies.tolist())
            interval = "bootstrap"
        else:
            mean, low, high = float(accuracies[0]), float(first["low"]), float(first["high"])
            interval = "wilson"
        reached = group["steps_to_target"].dropna()
        successes = sum(succeeded(a, t) for a, t in zip(accuracies, group["target"]))
        success_low, success_high = exact_interval(successes, len(group))
        train_flops = (group["flops_per_step"] * group["step"]).dropna()
        rows.append({
            "config": config,
            "task": first["task"],
            "scale": first["scale"],
            "solver": first["solver"],
            "settings": settings_text(first["spec"], varying[(first["task"], first["solver"])]),
            "seeds": int(len(group)),
            "accuracy": mean,
            "low": low,
            "high": high,
            "interval": interval,
            "successes": successes,
            "success": successes / len(group),
            "success_low": success_low,
            "success_high": success_high,
            "flops_per_step": float(group["flops_per_step"].median()),
            "train_flops": float(train_flops.median()) if len(train_flops) else math.nan,
            "time_s": float(group["elapsed"].median()),
            "steps_to_target": float(reached.median()) if len(reached) else math.nan,
            "parameters": first["parameters"],
            "run_ids": ",".join(sorted(group["run_id"])),
        })
    return pd.DataFrame(rows, columns=BOARD_COLUMNS)


def sort_board(board: pd.DataFrame, by: str = "accuracy") -> pd.DataFrame:
    """Leaderboards rank within a task and scale (accuracies of different tasks do not compare)."""
    if by not in SORT_KEYS:
        raise ValueError(f"unknown sort key {by!r}; valid: {', '.join(SORT_KEYS)}")
    column, ascending = SORT_KEYS[by]
    if board.empty:
        return board
    ordered = board.assign(_scale=board["scale"].map(_scale_order))
    ordered = ordered.sort_values(
        ["task", "_scale", column, "config"], ascending=[True, True, ascending, True], na_position="last", kind="stable"
    )
    return ordered.drop(columns="_scale").reset_index(drop=True)


def _scale_order(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.inf


def state_counts(runs: pd.DataFrame) -> dict[str, int]:
    """How many runs are in each state other than finished (for the 'not counted' note)."""
    unfinished = runs[runs["state"] != "finished"]
    return {str(state): int(count) for state, count in unfinished["state"].value_counts().sort_index().items()}


_WHOLE_NUMBERS = {"scale", "seeds", "successes", "parameters", "steps_to_target", "flops_per_step", "train_flops"}


def board_records(board: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON-able dicts (NaN -> None, numpy scalars -> Python numbers)."""
    records = []
    for row in board.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif isinstance(value, float) and key in _WHOLE_NUMBERS and value.is_integer():
                value = int(value)
            clean[key] = value
        records.append(clean)
    return records


def compare(
    root: Path,
    task: str | None = None,
    solver: str | None = None,
    scale: int | None = None,
    sort: str = "accuracy",
    run_ids: set[str] | None = None,
    loaded: tuple[pd.DataFrame, list[str]] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The leaderboard for runs under root (all, or only `run_ids`, e.g. a sweep's cells), filtered
    and sorted, plus notes: {"runs": runs matched, "unfinished": {state: count}, "unreadable": [run ids]}.
    `loaded`: `load_runs`'s result when the caller has read the runs already (one read per report)."""
    runs, unreadable = loaded if loaded is not None else load_runs(root)
    runs = only_runs(runs, run_ids)
    matched = filter_runs(runs, task, solver, scale)
    board = sort_board(aggregate(matched), sort)
    return board, {"runs": int(len(matched)), "unfinished": state_counts(matched), "unreadable": unreadable}


def only_runs(runs: pd.DataFrame, run_ids: set[str] | None) -> pd.DataFrame:
    """The rows of `runs` whose id is in run_ids (all rows when run_ids is None)."""
    return runs if run_ids is None or runs.empty else runs[runs["run_id"].isin(run_ids)]


def frontier_board(
    root: Path, task: str | None = None, solver: str | None = None, min_rate: float = FRONTIER_MIN_RATE,
    run_ids: set[str] | None = None,
    axis: str | None = None, runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per task, solver and configuration (all settings but seed and scale): the frontier, the
    largest scale tested, the success rate at each scale and the AUC (definitions: bench/analysis/frontier.py).
    `axis` names the task parameter that is the scale (default: each task's --max parameter); runs
    whose task lacks it are left out. `runs`: `load_runs`'s table when the caller has read it already."""
    if runs is None:
        runs, _ = load_runs(root)
    runs = only_runs(runs, run_ids)
    finished = finished_runs(filter_runs(runs, task, solver, None)).copy()
    if axis is not None and not finished.empty:
        # no run with that task parameter: no curve (with_scale_axis would call it an error)
        finished = with_scale_axis(finished, axis) if axis in finished else finished.iloc[0:0]
    if finished.empty:
        return pd.DataFrame(columns=["task", "solver", "curve", "frontier", "largest_tested", "scales", "rates", "auc"])
    finished["curve"] = finished["spec"].map(lambda spec: curve_key(spec, axis))
    table = frontier_table(finished, by=["task", "solver", "curve"], min_rate=min_rate)
    # Name each curve by the settings that tell it apart from the other curves of its task and solver
    # (settings_text leaves the scale out; the seed is never shown).
    first_spec = finished.groupby("curve")["spec"].first()
    names: dict[str, str] = {}
    for (task_name, solver_name), group in table.groupby(["task", "solver"], sort=False):
        specs = [first_spec[c] for c in group["curve"]]
        scale_key = f"task_params.{axis or scale_param_of(task_name)}"
        varying = (varying_settings(specs) | late_options_set(specs)) - {scale_key}
        for curve, spec in zip(group["curve"], specs):
            names[curve] = settings_text(spec, varying, axis)
    table["settings"] = table["curve"].map(names)
    return table


# ---- "A beats B": tests between two configurations ------------------------------------------------


def resolve_config(runs: pd.DataFrame, prefix: str) -> str:
    """The configuration key (the leaderboard's `config` column) that `prefix` starts; one-line
    UserError naming the known keys when none or several match."""
    from bench.errors import UserError

    finished = finished_runs(runs)
    keys = sorted(set(finished["config"])) if not finished.empty else []
    matches = [key for key in keys if key.startswith(prefix)] if prefix else []
    if len(matches) != 1:
        known = ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "") if keys else "none"
        why = "is ambiguous" if matches else "matches no configuration with finished runs"
        raise UserError(f"--test {prefix!r} {why}; known configs (the leaderboard's config column): {known}")
    return matches[0]


def read_answers(path: Path) -> dict[str, Any] | None:
    """A run's answers.json (validated), or None for a record made before answers were stored."""
    from bench.run.records import read_validated

    file = Path(path) / "answers.json"
    return read_validated(file) if file.exists() else None


def compare_configs(runs: pd.DataFrame, a: str, b: str) -> dict[str, Any]:
    """Two configurations compared the way a reviewer checks "A beats B":

    - success over seeds: k_a/n_a versus k_b/n_b with Fisher's exact test (two-sided p);
    - mean accuracy over seeds with bootstrap intervals;
    - per-problem answers, paired: for every seed both configurations ran on the same test problems
      (equal `problems_sha256` in answers.json), the paired permutation test on right/wrong per
      problem, and one test pooling all such seed pairs (problem x seed as the unit)."""
    from bench.stats import bootstrap_interval, fisher_exact, paired_permutation_test

    result: dict[str, Any] = {}
    groups = {}
    for name, prefix in (("a", a), ("b", b)):
        key = resolve_config(runs, prefix)
        group = finished_runs(runs[runs["config"] == key])
        groups[name] = group
        mean, low, high = bootstrap_interval(group["accuracy"].tolist())
        successes = sum(succeeded(x, t) for x, t in zip(group["accuracy"], group["target"]))
        first = group.iloc[0]
        result[name] = {
            "config": key, "task": first["task"], "scale": first["scale"], "solver": first["solver"],
            "seeds": int(len(group)), "successes": int(successes), "accuracy": mean, "low": low, "high": high,
        }
    result["fisher_p"] = fisher_exact(result["a"]["successes"], result["a"]["seeds"], result["b"]["successes"],
                                      result["b"]["seeds"])
    pairs, pooled_a, pooled_b = [], [], []
    by_seed_b = {int(row["seed"]): row for row in groups["b"].to_dict("records")}
    for row_a in sorted(groups["a"].to_dict("records"), key=lambda row: int(row["seed"])):
        row_b = by_seed_b.get(int(row_a["seed"]))
        if row_b is None:
            continue
        answers_a, answers_b = (read_answers(Path(row["path"])) for row in (row_a, row_b))
        if answers_a is None or answers_b is None or answers_a["problems_sha256"] != answers_b["problems_sha256"]:
            continue
        scores_a = [int(c) for c in answers_a["correct"]]
        scores_b = [int(c) for c in answers_b["correct"]]
        pairs.append({"seed": int(row_a["seed"]), "n": len(scores_a),
                      "a_right_b_wrong": sum(x > y for x, y in zip(scores_a, scores_b)),
                      "b_right_a_wrong": sum(y > x for x, y in zip(scores_a, scores_b)),
                      "p": paired_permutation_test(scores_a, scores_b)})
        pooled_a += scores_a
        pooled_b += scores_b
    result["paired"] = pairs
    result["paired_pooled_p"] = paired_permutation_test(pooled_a, pooled_b) if pairs else None
    return result


def comparison_lines(result: dict[str, Any]) -> list[str]:
    """`compare_configs`'s result as lines a person reads."""
    lines = []
    for name in ("a", "b"):
        side = result[name]
        lines.append(
            f"{name.upper()} {side['config']} ({side['task']} {side['scale']} {side['solver']}): success "
            f"{side['successes']}/{side['seeds']} seeds, "
            f"mean accuracy {side['accuracy']:.3f} (95% bootstrap {side['low']:.3f}-{side['high']:.3f})"
        )
    lines.append(f"Fisher's exact test on success over seeds: p = {result['fisher_p']:.4g} (two-sided)")
    if not result["paired"]:
        lines.append("paired test: no seed of both has answers.json on the same test problems (records made before "
                     "answers were stored)")
    for pair in result["paired"]:
        lines.append(f"seed {pair['seed']}: {pair['n']} problems, A right and B wrong on {pair['a_right_b_wrong']}, "
                     f"B right and A wrong on {pair['b_right_a_wrong']}; paired permutation p = {pair['p']:.4g}")
    if result["paired"]:
        lines.append(f"pooled over {len(result['paired'])} seed pair(s): paired permutation p = "
                     f"{result['paired_pooled_p']:.4g}")
    return lines
