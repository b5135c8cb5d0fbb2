"""`bench experiment FILE`: one command per experiment: its sweep, then its committed report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from bench.cli import app
from bench.cli.options import ResultsOption
from bench.errors import UserError, user_errors_exit

err_console = Console(stderr=True)


@app.command()
@user_errors_exit
def experiment(
    file: Path = typer.Argument(..., help="The experiment's sweep file (TOML under experiments/)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Cells at once (default: one per core)."),
    report_only: bool = typer.Option(False, "--report-only",
                                     help="Do not train: rebuild the report from the runs finished so far."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    results: Optional[str] = ResultsOption,
) -> None:
    """Run an experiment's sweep (finished cells are reused, a stopped one resumes), then write its
    report (leaderboard, frontier, thought diagnostics, figures) under RESULTS/experiments/NAME/.

    Example: bench experiment experiments/add_solvers.toml
    """
    from bench.cli.sweep_view import run_and_show
    from bench.analysis.experiment import report_dir, write_report
    from bench.run.store import check_writable, results_root
    from bench.sweep.plan import load_experiment

    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs={jobs} must be at least 1")
    plan, options = load_experiment(file)
    plan.name = plan.name or file.stem
    root = results_root(results)
    swept = run_and_show(plan, root, jobs, "local", None, quiet, dry_run, train=not report_only,
                         before_training=lambda label: check_writable(report_dir(root, label),
                                                                      "experiment report folder"))
    if swept is None:
        return
    cells = swept.expansion.cells
    report = write_report(root, swept.name, plan.description, f"bench experiment {file.as_posix()}",
                          {cell.run_id for cell in cells}, options["plots"], len(cells), options["per_seed"])
    print(report)
    if swept.stopped:
        err_console.print("experiment interrupted; the report covers the finished runs; run the same command again to "
                          "resume")
        raise typer.Exit(130)
    if swept.counts.get("failed"):
        raise typer.Exit(1)
