"""How the sweep commands (`bench sweep`, `bench experiment`, `bench tune`) show a sweep: the cells, the
progress bars, the summary over seeds. The work is bench/sweep/session.py; this module only prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.analysis.frontier import FRONTIER_MIN_RATE
from bench.sweep.plan import Grid
from bench.sweep.session import SweepRun, SweepSummary, plan_sweep, run_sweep, sweep_summary
from bench.sweep.session import cell_text as show  # 2 not 2.0, '-' for a setting a solver lacks

console = Console()
err_console = Console(stderr=True)


def run_and_show(grid: Grid, root: Path, jobs: int | None, executor: str, ray_address: str | None, quiet: bool,
                 dry_run: bool, min_rate: float = FRONTIER_MIN_RATE, train: bool = True,
                 before_training: Callable[[str], None] | None = None) -> SweepRun | None:
    """Plan the sweep (printing refused cells); on a dry run list its cells and return None; else run it
    (bench.sweep.session.run_sweep) with a progress display and, when trained, print its summary."""
    sweep = plan_sweep(grid, root)
    for line in sweep.expansion.refused:
        err_console.print(f"[yellow]skipped[/]: {line}")
    if dry_run:
        print_cells(sweep.expansion)
        return None
    display = None if quiet else (lambda finished: SweepProgress(sweep.expansion, finished))
    run_sweep(sweep, grid, root, jobs, executor, ray_address, err_console.print, display, train, before_training)
    if train:
        print_summary(sweep_summary(sweep.expansion, root, min_rate), min_rate)
        err_console.print(f"[dim]sweep record: {sweep.record}[/]")
    return sweep


class SweepProgress:
    """The rich progress display of a sweep: one overall bar, one bar per running cell. A listener for
    bench.sweep.execute (called with each start/step/done event) and a context that shows it."""

    def __init__(self, expansion: Any, already_finished: int) -> None:
        cells = expansion.cells
        self.names = {c.run_id: c.label([k for k in expansion.varying if k != "device"]) for c in cells}
        self.steps = {c.run_id: c.spec.train.steps for c in cells}
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=err_console, transient=False,
        )
        self.overall = self.progress.add_task("[bold]cells", total=len(cells), completed=already_finished, info="")
        self.done, self.failed = already_finished, 0
        self.rows: dict[str, Any] = {}

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, kind: str, run_id: str, data: dict[str, Any]) -> None:
        progress = self.progress
        if kind == "start" and run_id not in self.rows:
            self.rows[run_id] = progress.add_task(f"  {run_id} {self.names.get(run_id, '')}",
                                                  total=self.steps.get(run_id), info="")
        elif kind == "step" and run_id in self.rows:
            accuracy = data.get("accuracy")
            progress.update(self.rows[run_id], completed=data["step"],
                            info="" if accuracy is None else f"acc {accuracy:.3f}")
        elif kind == "done":
            if run_id in self.rows:
                progress.remove_task(self.rows.pop(run_id))
            self.done += data["outcome"] not in ("interrupted", "not started")
            self.failed += data["outcome"] == "failed"
            progress.update(self.overall, completed=self.done, info=f"{self.failed} failed" if self.failed else "")


def print_cells(expansion: Any) -> None:
    table = Table(title=f"{len(expansion.cells)} cells")
    columns = [k for k in expansion.varying] or ["solver"]
    table.add_column("run id")
    for column in columns:
        table.add_column(column)
    for cell in expansion.cells:
        table.add_row(cell.run_id, *(str(cell.settings.get(k, "-")) for k in columns))
    console.print(table)


def print_summary(summary: SweepSummary | None, min_rate: float) -> None:
    """Per configuration (seeds pooled): accuracy, success rate; then the frontier and AUC."""
    if summary is None:
        console.print("no finished cells yet")
        return
    by = summary.by
    table = Table(title="sweep summary (over seeds)")
    widths = {"scale": 5, "seeds": 5, "acc": 5, "95% CI": 9, "success": 7}
    for column in [*by, "scale", "seeds", "acc", "95% CI", "success"]:
        table.add_column(column, justify="right" if column in widths else "left", min_width=widths.get(column),
                         overflow="ellipsis" if column in widths else "fold")
    for values in summary.per_scale.to_dict("records"):
        table.add_row(
            *(show(values[k]) for k in by), show(values["scale"]), f"{values['seeds']}/{values['cells']}",
            f"{values['accuracy']:.3f}", f"{values['low']:.2f}-{values['high']:.2f}", f"{values['success_rate']:.2f}",
        )
    console.print(table)
    if summary.frontier is not None:
        table = Table(title=f"frontier: largest scale where >= {min_rate:.0%} of seeds reach the target")
        for column in [*by, "frontier", "AUC", "success rate by scale"]:
            table.add_column(column, min_width={"frontier": 8, "AUC": 5}.get(column), overflow="fold")
        for values in summary.frontier.to_dict("records"):
            reached = (f"< {show(summary.smallest_scale)}" if values["frontier"] != values["frontier"]
                       else show(values["frontier"]))
            table.add_row(*(show(values[k]) for k in by), reached, f"{values['auc']:.3f}", values["rates"])
        console.print(table)
