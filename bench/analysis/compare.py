"""Leaderboards: every stored run as one row of a DataFrame, then one row per configuration.

A *configuration* is a run's whole spec except its seed (task and parameters, solver and options,
model size, optimiser, training settings, device, warm start), so runs that differ in anything but
the seed are never merged. Across the seeds of a configuration:

    seeds             finished runs (seeds) counted
    accuracy          mean final held-out accuracy
    low, high         its 95% interval: Student's t across seeds (bench.analysis.frontier.mean_interval, shared
                      with `bench plot` and `bench sweep`); with a single seed, that run's
                      Wilson interval over its held-out problems (column `interval` says which)
    success           share of seeds whose final accuracy reached the spec's target
    time_s            median training time (seconds, evaluation excluded) over seeds
    steps_to_target   median step at which the periodic evaluation first reached the target, over
                      the seeds that reached it (empty when none did)
    parameters        model parameters

Pure functions on pandas; the `bench compare` command (bench/cli/commands_compare.py) only shows them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bench.run.records import RunRecord

from bench.analysis.frontier import mean_interval  # one definition of the seed interval for compare, plot and sweep

SORT_KEYS: dict[str, tuple[str, bool]] = {
    # name: (column, ascending)
    "accuracy": ("accuracy", False),
    "success": ("success", False),
    "time": ("time_s", True),
    "steps": ("steps_to_target", True),
    "params": ("parameters", True),
}
FORMATS = ("table", "markdown", "csv", "json")

RUN_COLUMNS = [
    "run_id", "config", "task", "scale", "solver", "seed", "state", "step", "accuracy", "low", "high", "n",
    "target", "reached_target", "steps_to_target", "elapsed", "parameters", "spec",
]
BOARD_COLUMNS = [
    "config", "task", "scale", "solver", "settings", "seeds", "accuracy", "low", "high", "interval", "success",
    "time_s", "steps_to_target", "parameters", "run_ids",
]


def config_key(spec: dict[str, Any]) -> str:
    """Short hash of the spec without its seed: runs with the same key are seeds of one configuration."""
    without_seed = json.loads(json.dumps(spec))
    without_seed.get("train", {}).pop("seed", None)
    canonical = json.dumps(without_seed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def scale_param_of(task: str) -> str:
    """The name of the task's scale parameter (what --max sets)."""
    from tasks.base import TaskError
    from tasks.registry import task_class

    try:
        return task_class(task).scale_param
    except TaskError:  # a task no longer registered: fall back to the usual name
        return "max"


def scale_of(task: str, params: dict[str, Any]) -> Any:
    """The value of the task's scale parameter, or None if the spec does not have it."""
    return params.get(scale_param_of(task))


def load_runs(root: Path, warn: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """One row per run folder under root/runs (columns RUN_COLUMNS) and the ids of unreadable ones.

    Reads every folder through the one validated reader (bench.run.records.scan_runs); never writes. A
    folder with a bad file, or whose name is not its spec's hash (a copy), is listed as unreadable
    instead of stopping the whole leaderboard or counting as another seed.
    """
    from bench.run.records import scan_runs

    records, unreadable = scan_runs(Path(root), warn=warn)  # each bad folder: one warning line naming it
    return runs_frame(records), unreadable


def runs_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Runs already read (scan_runs) as the leaderboard's table, one row per run (columns RUN_COLUMNS)."""
    from bench.run.records import shown_state

    rows: list[dict[str, Any]] = []
    for record in records:
        spec, status = record.spec, record.status
        train, task = spec["train"], spec["task"]
        n = record.evaluation["final"]["overall"]["n"] if record.evaluation is not None else None
        rows.append({
            "run_id": record.run_id,
            "config": config_key(spec),
            "task": task,
            "scale": scale_of(task, spec["task_params"]),
            "solver": spec["solver"],
            "seed": train["seed"],
            "state": shown_state(status),
            "step": status.get("step"),
            "accuracy": status.get("accuracy"),
            "low": status.get("low"),
            "high": status.get("high"),
            "n": n,
            "target": train["target"],
            "reached_target": status.get("reached_target"),
            "steps_to_target": status.get("steps_to_target"),
            "elapsed": status.get("elapsed"),
            "parameters": status.get("parameters"),
            "spec": spec,
        })
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for column in ("accuracy", "low", "high", "target", "elapsed", "steps_to_target", "parameters", "step", "n"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


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
    finished = runs[runs["state"] == "finished"]
    if finished.empty:
        return pd.DataFrame(columns=BOARD_COLUMNS)
    # What tells rows apart is judged among the configurations of one task and solver: an option only
    # a thinker has does not need naming next to gpt.
    configs = finished.drop_duplicates("config")
    varying = {
        key: varying_settings(list(group["spec"])) for key, group in configs.groupby(["task", "solver"], sort=False)
    }
    rows = []
    for config, group in finished.groupby("config", sort=False):
        first = group.iloc[0]
        accuracies = group["accuracy"].to_numpy(dtype=float)
        if len(group) >= 2:
            mean, low, high = mean_interval(accuracies.tolist())
            interval = "t"
        else:
            mean, low, high = float(accuracies[0]), float(first["low"]), float(first["high"])
            interval = "wilson"
        reached = group["steps_to_target"].dropna()
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
            "success": float(np.mean(accuracies >= group["target"].to_numpy(dtype=float))),
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


_WHOLE_NUMBERS = {"scale", "seeds", "parameters", "steps_to_target"}


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
    root: Path, task: str | None = None, solver: str | None = None, min_rate: float = 0.5, run_ids: set[str] | None = None,
    axis: str | None = None, runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per task, solver and configuration (all settings but seed and scale): the frontier, the
    largest scale tested, the success rate at each scale and the AUC (definitions: bench/analysis/frontier.py).
    `axis` names the task parameter that is the scale (default: each task's --max parameter); runs
    whose task lacks it are left out. `runs`: `load_runs`'s table when the caller has read it already."""
    from bench.analysis.frontier import curve_key, frontier_table

    if runs is None:
        runs, _ = load_runs(root)
    runs = only_runs(runs, run_ids)
    finished = filter_runs(runs, task, solver, None)
    finished = finished[finished["state"] == "finished"].copy()
    if axis is not None and not finished.empty:
        finished["scale"] = finished["spec"].map(lambda spec: spec["task_params"].get(axis))
        finished = finished[finished["scale"].notna()]
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
        varying = varying_settings(specs) - {scale_key}
        for curve, spec in zip(group["curve"], specs):
            names[curve] = settings_text(spec, varying, axis)
    table["settings"] = table["curve"].map(names)
    return table
