"""`bench compare`: a leaderboard over every stored run (see bench/analysis/compare.py for the columns)."""

from __future__ import annotations

import json
from typing import Any, Optional

import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli import app
from bench.cli.options import ResultsOption
from bench.analysis.compare import FORMATS, SORT_KEYS, board_records, compare, frontier_board
from bench.errors import UserError, user_errors_exit
from bench.analysis.frontier import FRONTIER_MIN_RATE, check_axis
from bench.analysis.tables import (
    FRONTIER_COLUMNS, INTERVAL_NOTE, RIGHT, TABLE_SHOWN, display_rows, frontier_cells, frontier_markdown,
    markdown_table,
)
from bench.run.store import readable_root

def canonical_solver(name: str) -> str:
    """The stored (canonical) form of a typed solver name; an unknown name stays as typed and simply
    matches no run."""
    from solvers.base import resolve_solver

    try:
        return resolve_solver(name)[1]
    except ValueError:
        return name


def notes_text(notes: dict[str, Any]) -> list[str]:
    lines = []
    if notes["unfinished"]:
        states = ", ".join(f"{count} {state}" for state, count in notes["unfinished"].items())
        lines.append(f"not counted: {sum(notes['unfinished'].values())} unfinished runs ({states})")
    # Bad run folders were each named in one warning line when read (bench.run.records.scan_runs).
    return lines


@app.command("compare")
@user_errors_exit
def compare_command(
    results: Optional[str] = ResultsOption,
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Only this task."),
    solver: Optional[str] = typer.Option(None, "--solver", "-s", help="Only this solver."),
    max_value: Optional[int] = typer.Option(None, "--max", "-m", help="Only this scale (the task's --max)."),
    sort: str = typer.Option("accuracy", "--sort", help=f"Rank within each task and scale by: {', '.join(SORT_KEYS)}."),
    fmt: str = typer.Option("table", "--format", help=f"Output: {', '.join(FORMATS)}."),
    frontier: bool = typer.Option(False, "--frontier",
                                  help="Show the frontier table instead of the leaderboard (tables show both)."),
    min_rate: float = typer.Option(FRONTIER_MIN_RATE, "--min-rate",
                                   help="Frontier: share of seeds that must reach the target at a scale (every report "
                                        "uses the default)."),
    test: Optional[tuple[str, str]] = typer.Option(None, "--test",
                                                   help="Two configs (the config column, or a unique prefix): Fisher's "
                                                        "exact test on success over seeds and a paired permutation "
                                                        "test on per-problem answers."),
    sweep: Optional[str] = typer.Option(None, "--sweep",
                                        help="Only the cells of this sweep (its name under results/sweeps/)."),
    axis: Optional[str] = typer.Option(None, "--axis",
                                       help="Frontier over this task parameter (e.g. sort's length) instead of each "
                                            "task's --max."),
) -> None:
    """Leaderboard over stored runs: per task, scale and configuration, across seeds.

    Example: bench compare --task add --sort success;  bench compare --task sort --frontier --axis length
    """
    if sort not in SORT_KEYS:
        raise UserError(f"--sort {sort!r} is not valid; valid: {', '.join(SORT_KEYS)}")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not valid; valid: {', '.join(FORMATS)}")
    if not 0.0 < min_rate <= 1.0:
        raise UserError(f"--min-rate {min_rate} must be in (0, 1]")
    check_axis(axis, task)
    root = readable_root(results)
    if test is not None:
        from bench.analysis.compare import compare_configs, comparison_lines, load_runs

        runs, _ = load_runs(root)
        result = compare_configs(runs, *test)
        if fmt == "json":
            print(json.dumps(result, default=lambda value: value.item() if hasattr(value, "item") else str(value)))
        else:
            print("\n".join(comparison_lines(result)))
        return
    canonical = canonical_solver(solver) if solver else None
    run_ids = sweep_run_ids(root, sweep) if sweep else None
    if frontier and fmt != "table":
        print_frontier_data(frontier_board(root, task, canonical, min_rate, run_ids, axis), fmt)
        return
    board, notes = compare(root, task, canonical, max_value, sort, run_ids)
    err = Console(stderr=True, highlight=False)
    for line in notes_text(notes):
        err.print(line)
    if board.empty:
        filters = ", ".join(f"{k}={v}"
                            for k, v in (("task", task), ("solver", solver), ("max", max_value), ("sweep", sweep))
                            if v is not None)
        message = f"no finished runs under {root}" + (f" match {filters}" if filters else "")
        if fmt == "table":
            Console(highlight=False).print(message)
        else:
            err.print(message)
    if fmt == "json":
        print(json.dumps(board_records(board)))
    elif fmt == "csv":
        print(board.to_csv(index=False), end="")
    elif fmt == "markdown":
        print(markdown_table(display_rows(board)))
    elif not board.empty:
        table = Table(
            title=f"leaderboard: {len(board)} configurations, ranked by {sort} within task and scale",
            caption=INTERVAL_NOTE,
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        for header, column in TABLE_SHOWN:
            # Only the settings column wraps: in a narrow terminal it gives way, the numbers never fold.
            table.add_column(header, justify="right" if column in RIGHT else "left", no_wrap=column != "settings",
                             overflow="fold", style="dim" if column == "settings" else None)
        for row in display_rows(board):
            table.add_row(*(escape(row[column]) for _, column in TABLE_SHOWN))
        console = Console(highlight=False)
        if not console.is_terminal:  # a file or a pipe has no width to respect: do not fold numbers
            console = Console(highlight=False, width=max(console.width, 180))
        console.print(table)
        console.print(frontier_rich_table(frontier_board(root, task, canonical, min_rate, run_ids, axis), min_rate,
                                          axis))


def sweep_run_ids(root: Any, name: str) -> set[str]:
    """The run ids of a sweep's cells (one-line error naming the known sweeps when there is none)."""
    from bench.sweep.plan import read_record

    return {cell["run_id"] for cell in read_record(root, name)["cells"]}


def frontier_rich_table(table: pd.DataFrame, min_rate: float, axis: str | None = None) -> Table:
    """The frontier per task, solver and configuration as a rich table."""
    scale = f"value of {axis}" if axis else "scale"
    rich_table = Table(
        title=f"frontier: largest {scale} up to which >= {min_rate:.0%} of seeds reach the target at every tested "
              f"{scale}",
        caption="success by scale: scale:k/n seeds reaching the target; auc: mean accuracy over log2(scale), "
                "normalised to [0, 1]; none: even the smallest scale fails",
        box=box.SIMPLE_HEAD,
    )
    for header in ("task", "solver", "settings", "frontier", "largest tested", "success by scale", "AUC"):
        rich_table.add_column(header, justify="right" if header in ("frontier", "largest tested", "AUC") else "left")
    for row in table.to_dict("records"):
        rich_table.add_row(*(escape(cell) for cell in frontier_cells(row)))
    return rich_table


def print_frontier_data(table: pd.DataFrame, fmt: str) -> None:
    """The frontier table as json, csv or markdown."""
    table = table[FRONTIER_COLUMNS]
    if fmt == "json":
        records = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                   for row in table.to_dict("records")]
        print(json.dumps(records))
    elif fmt == "csv":
        print(table.to_csv(index=False), end="")
    else:
        print(frontier_markdown(table))
