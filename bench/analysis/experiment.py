"""An experiment's report: the tables and figures of one sweep, written where they can be committed.

`bench experiment experiments/NAME.toml` runs the file's sweep (finished cells are skipped) and then
writes RESULTS/experiments/NAME/:

    report.md     the question (the file's description), the command that regenerates it, the
                  leaderboard from `bench compare --sweep NAME` with each row's best shortcut
                  floor (`bench floors`) beside its accuracy, the frontier, the thinkers' thought
                  diagnostics, and links to the figures
    *.png         `bench plot --sweep NAME` figures

Only the sweep's own cells are counted, so stray runs in the same results folder never leak into an
experiment's table. The report is rebuilt from the runs every time; nothing in it is typed by hand.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from bench.errors import UserError
from bench.run.store import RunDir, atomic_write_bytes

EXPERIMENTS_DIR = "experiments"


def report_dir(root: Path, name: str) -> Path:
    return Path(root) / EXPERIMENTS_DIR / name


def thought_diagnostics(root: Path, board: pd.DataFrame, evaluations: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per leaderboard configuration whose runs logged thought diagnostics (the discrete thinkers):
    the seeds' mean agreement with the reference trace per position (least significant digit first
    on add, as the notes report it), accuracy with the model's own thoughts and with random ones.
    `evaluations`: run id -> its evaluation.json when the caller has read the runs already."""
    rows = []
    for record in board.to_dict("records"):
        per_position: list[list[float]] = []
        own: list[float] = []
        random: list[float] = []
        for run_id in str(record["run_ids"]).split(","):
            known = evaluations is not None and run_id in evaluations
            evaluation = evaluations[run_id] if known else RunDir(root, run_id).read("evaluation.json")
            diagnostics = (evaluation or {}).get("diagnostics") or {}
            if "trace_match_per_position" in diagnostics:
                per_position.append([float(v) for v in diagnostics["trace_match_per_position"]])
            if "accuracy_own_thoughts" in diagnostics:
                own.append(float(diagnostics["accuracy_own_thoughts"]))
                random.append(float(diagnostics["accuracy_random_thoughts"]))
        if not own:
            continue
        rows.append({
            "task": record["task"], "scale": record["scale"], "solver": record["solver"],
            "settings": record["settings"],
            "seeds": len(own),
            "trace_match": _mean_lists(per_position),
            "own": sum(own) / len(own),
            "random": sum(random) / len(random),
        })
    return pd.DataFrame(rows)


def _mean_lists(lists: Sequence[Sequence[float]]) -> list[float]:
    """Position-wise mean over lists (positions a shorter list lacks are left out of that mean)."""
    width = max((len(values) for values in lists), default=0)
    out = []
    for i in range(width):
        column = [values[i] for values in lists if i < len(values)]
        out.append(sum(column) / len(column))
    return out


def diagnostics_markdown(table: pd.DataFrame) -> str:
    lines = [
        "| task | scale | solver | settings | seeds | trace match by position | acc. own thoughts | acc. random "
        "thoughts |",
        "|---|---:|---|---|---:|---|---:|---:|",
    ]
    for row in table.to_dict("records"):
        match = " / ".join(f"{v:.2f}" for v in row["trace_match"]) or "-"
        lines.append(
            f"| {row['task']} | {_show(row['scale'])} | {row['solver']} | {row['settings'] or ''} | {row['seeds']} | "
            f"{match} | {row['own']:.3f} | {row['random']:.3f} |"
        )
    return "\n".join(lines)


FLOOR_PROBLEMS = 1000  # test-split problems per floor in a report (seed 0)


def best_floors(root: Path, board: pd.DataFrame, n: int = FLOOR_PROBLEMS) -> dict[str, tuple[float, str] | None]:
    """Per leaderboard configuration: (accuracy, name) of the best shortcut floor of its task at its
    parameters (bench/analysis/floors.py), or None when the task cannot be built any more."""
    from bench.analysis.floors import measure_floors
    from tasks import TaskError, make_task

    cache: dict[str, tuple[float, str] | None] = {}
    out: dict[str, tuple[float, str] | None] = {}
    from bench.run.records import StoreError

    for record in board.to_dict("records"):
        try:
            spec = RunDir(root, str(record["run_ids"]).split(",")[0]).read("spec.json") or {}
        except StoreError:  # changed on disk since the board was read: no floor for it
            out[str(record["config"])] = None
            continue
        params = spec.get("task_params") or {}
        key = f"{record['task']}:{sorted(params.items())}"
        if key not in cache:
            try:
                best = measure_floors(make_task(str(record["task"]), overrides=params), n)[0]
                cache[key] = (best.accuracy, best.name)
            except (TaskError, TypeError, ValueError):
                cache[key] = None
        out[str(record["config"])] = cache[key]
    return out


def leaderboard_markdown(board: pd.DataFrame, floors: dict[str, tuple[float, str] | None]) -> str:
    """`bench compare`'s markdown leaderboard with a "best floor" column beside the accuracy."""
    from bench.analysis.tables import INTERVAL_NOTE, RIGHT, SHOWN, display_rows

    shown = list(SHOWN)
    shown.insert(shown.index(("accuracy", "accuracy")) + 1, ("best floor", "floor"))
    lines = ["| " + " | ".join(header for header, _ in shown) + " |"]
    lines.append("|" + "|".join("---:" if column in RIGHT | {"floor"} else "---" for _, column in shown) + "|")
    for config, row in zip(board["config"], display_rows(board)):
        floor = floors.get(str(config))
        row["floor"] = "-" if floor is None else f"{floor[0]:.3f} ({floor[1]})"
        lines.append("| " + " | ".join(row[column].replace("|", "\\|") for _, column in shown) + " |")
    note = (
        f"best floor: the best shortcut predictor of `bench floors` at the row's task parameters "
        f"({FLOOR_PROBLEMS} test-split problems, seed 0; graph and sat score the answer's kind, path or not, "
        "SAT or UNSAT): accuracy near it is no evidence of serial reasoning"
    )
    return "\n".join(lines) + f"\n\n{INTERVAL_NOTE}\n\n{note}"


def _show(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def per_seed_markdown(runs: pd.DataFrame, board: pd.DataFrame) -> str:
    """One row per finished run, in the leaderboard's order of configurations and by seed: what each seed
    reached, whether it reached the target, and what it cost (the rows behind a leaderboard's means)."""
    from bench.analysis.tables import flops_text

    settings = dict(zip(board["config"], board["settings"]))
    order = {config: i for i, config in enumerate(board["config"])}
    rows = runs[runs["config"].isin(order)].copy()
    rows["_order"] = rows["config"].map(order)
    rows = rows.sort_values(["_order", "seed"], kind="stable")
    lines = [
        "| task | scale | solver | settings | seed | test accuracy | at target | steps | train FLOPs | time s | run |",
        "|---|---:|---|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for row in rows.to_dict("records"):
        lines.append(
            f"| {row['task']} | {_show(row['scale'])} | {row['solver']} | {settings[row['config']] or ''} | "
            f"{_show(row['seed'])} | {row['accuracy']:.3f} | {'yes' if row['success'] else 'no'} | "
            f"{_show(row['step'])} | {flops_text(row['flops_per_step'] * row['step'])} | {_show(row['elapsed'])} | "
            f"{row['run_id']} |"
        )
    return "\n".join(lines)


def write_report(
    root: Path, name: str, description: str, command: str, run_ids: set[str], plot_kinds: Sequence[str], cells: int,
    per_seed: bool = False,
) -> Path:
    """Write RESULTS/experiments/NAME/report.md and its figures; returns the report's path. The frontier
    follows the one rule of every report (bench.analysis.frontier.FRONTIER_MIN_RATE). `per_seed`: also
    a table of every finished run (the sweep file's `[report] per_seed = true`)."""
    from bench.analysis.tables import frontier_markdown
    from bench.analysis.compare import compare, frontier_board
    from bench.analysis.frontier import FRONTIER_MIN_RATE, FRONTIER_RULE, finished_runs, run_table
    from bench.analysis.plots import make_plots
    from bench.run.records import scan_runs

    out_dir = report_dir(root, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Every table below is built from this one read of the experiment's run folders.
    records, unreadable = scan_runs(root, run_ids)
    runs = run_table(root, finished_only=False, records=records)
    board, notes = compare(root, run_ids=run_ids, sort="accuracy", loaded=(runs, unreadable))
    if board.empty:
        raise UserError(f"experiment {name}: none of its {cells} runs has finished; nothing to report")
    finished = int(board["seeds"].sum())
    for old in out_dir.glob("*.png"):  # figures of an earlier grid must not outlive it
        old.unlink()
    figures = make_plots(finished_runs(runs), root, out_dir, plot_kinds, prefix=name)
    lines = [f"# {name}", ""]
    if description:
        lines += [description.strip(), ""]
    lines += [
        f"Regenerate: `{command}` (finished runs are reused; delete them under results/runs to retrain).",
        "",
        f"Runs: {finished} of {cells} finished and counted"
        + (f"; not counted: {sum(notes['unfinished'].values())} unfinished" if notes["unfinished"] else "") + ".",
        "",
        "## Leaderboard",
        "",
        leaderboard_markdown(board, best_floors(root, board)),
        "",
        f"## Frontier ({FRONTIER_RULE}; success by scale: seeds reaching the target, k/n)",
        "",
        frontier_markdown(frontier_board(root, min_rate=FRONTIER_MIN_RATE, run_ids=run_ids, runs=runs)),
        "",
    ]
    if per_seed:
        lines += [
            "## Per seed",
            "",
            "test accuracy: the run's final accuracy on distinct test-split problems; at target: it reached the "
            "target; steps: steps trained (early stop at the target on the monitor split); train FLOPs: FLOPs per "
            "step x steps; time s: training seconds (one thread, on a shared machine: compare within a row's task).",
            "",
            per_seed_markdown(finished_runs(runs), board),
            "",
        ]
    diagnostics = thought_diagnostics(root, board, {record.run_id: record.evaluation for record in records})
    if not diagnostics.empty:
        lines += [
            "## Thoughts (discrete thinkers, held-out problems, mean over seeds)",
            "",
            "trace match by position: share of held-out problems whose greedy thought at that position equals the"
            " reference trace's token there (on add: least significant digit first). Accuracy with random thoughts in"
            " place of the model's own shows whether the answer uses them.",
            "",
            diagnostics_markdown(diagnostics),
            "",
        ]
    if figures:
        lines += ["## Figures", ""] + [f"![{path.stem}]({path.name})" for path in figures] + [""]
    path = out_dir / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path
