"""`bench plot`: PNGs of accuracy versus scale, versus thought budget, and training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bench.cli import app
from bench.cli.options import ResultsOption
from bench.errors import UserError, user_errors_exit


@app.command()
@user_errors_exit
def plot(
    run_ids: Optional[list[str]] = typer.Argument(None,
                                                  help="Runs to plot (ids or unique prefixes); default: all finished "
                                                       "runs."),
    sweep: Optional[str] = typer.Option(None, "--sweep",
                                        help="Plot the cells of this sweep (its name under results/sweeps/)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Only this task."),
    solver: Optional[str] = typer.Option(None, "--solver", "-s", help="Only these solvers, comma-separated."),
    kind: str = typer.Option("scale,budget,curves", "--kind",
                             help="Which figures, comma-separated: scale, budget, curves."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the PNGs (default: RESULTS/plots)."),
    results: Optional[str] = ResultsOption,
    axis: Optional[str] = typer.Option(None, "--axis",
                                       help="Scale axis: this task parameter (e.g. sort's length) instead of each "
                                            "task's --max."),
) -> None:
    """Write PNG figures of finished runs under results/plots/ and print each file's path.

    Example: bench plot --sweep width-vs-depth;  bench plot --task sort --axis length
    """
    from bench.analysis.frontier import check_axis, run_table
    from bench.analysis.plots import KINDS, make_plots
    from bench.run.store import check_writable, find_run, results_root
    from bench.sweep.plan import read_record

    kinds = [k.strip() for k in kind.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise UserError(f"--kind {kind!r} is not valid; valid: {', '.join(KINDS)} (comma-separated)")
    check_axis(axis, task)
    root = results_root(results)
    out_dir = check_writable(out if out is not None else root / "plots", "--out folder")
    wanted: set[str] | None = None
    prefix = ""
    if run_ids:
        wanted = {find_run(root, run_id).run_id for run_id in run_ids}
        prefix = next(iter(wanted)) if len(wanted) == 1 else "runs"
    if sweep:
        cells = {cell["run_id"] for cell in read_record(root, sweep)["cells"]}
        wanted = cells if wanted is None else wanted & cells
        prefix = sweep
    runs = run_table(root, wanted)
    if not runs.empty and task:
        runs = runs[runs["task"] == task]
    if not runs.empty and solver:
        from solvers.base import resolve_solver

        names = {resolve_solver(name.strip())[1] for name in solver.split(",") if name.strip()}
        runs = runs[runs["solver"].isin(names)]
    if runs.empty:
        where = f"sweep {sweep}" if sweep else (f"runs {', '.join(sorted(wanted))}" if wanted else str(root))
        raise UserError(f"no finished runs to plot in {where}" + (f" for task {task}" if task else "")
                        + (f" and solver {solver}" if solver else ""))
    if axis is not None and (axis not in runs or runs[axis].isna().all()):
        raise UserError(f"no finished run to plot has a task parameter {axis!r}")
    paths = make_plots(runs, root, out_dir, kinds, prefix, axis)
    if not paths:
        raise UserError(f"nothing to draw for --kind {kind}: no run has a thought budget (budget needs thinkers)")
    for path in paths:
        print(path)
