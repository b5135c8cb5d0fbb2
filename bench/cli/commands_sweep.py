"""`bench sweep`: run a grid of settings (size x thought budget x seed x anything), resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bench.analysis.frontier import FRONTIER_MIN_RATE
from bench.cli import app
from bench.cli.options import ResultsOption, split_assignment
from bench.cli.sweep_view import err_console, run_and_show
from bench.config import SOLVER_FLAGS, command_options, run_options
from bench.errors import UserError, user_errors_exit
from bench.sweep.plan import Grid, split_values

# Run options as flags, each a comma-separated list (a list of more than one is an axis): every field of
# bench/config.py's dataclasses (flag, help) but seed (--seeds) and eval_thoughts (one list of budgets),
# then the solver flags of `bench run` (--thoughts, --estimator, ...: bench.config.SOLVER_FLAGS).
LIST_FLAGS = [name for name in run_options() if name not in ("seed", "eval_thoughts")] + list(SOLVER_FLAGS)


def grid_from_cli(values: dict[str, Optional[str]], grid: list[str] | None, sets: list[str] | None,
                  eval_thoughts: Optional[str], name: Optional[str]) -> Grid:
    out = Grid(name=name)
    for key in values:
        text = values.get(key)
        if text is not None:
            out.set(key, split_values(str(text), f"--{key.replace('_', '-')}"))
    for item in grid or []:
        key, text = split_assignment(item, "--grid", "name=v1,v2,...")
        if key.replace("-", "_") == "eval_thoughts":
            raise UserError(
                "--grid eval_thoughts=... is ambiguous (budgets are a list); use --eval-thoughts 0,2,4, "
                "or a list of lists in a sweep file"
            )
        out.set(key, split_values(text, f"--grid {key}"))
    for item in sets or []:
        key, text = split_assignment(item, "--set", "name=value")
        out.set(key, [text.strip()])
    if eval_thoughts is not None:
        out.set("eval_thoughts", [eval_thoughts])
    return out


@app.command()
@user_errors_exit
@command_options(LIST_FLAGS, as_text=True)
def sweep(
    file: Optional[Path] = typer.Option(
        None, "--file", "-f", help="A sweep file (TOML, see experiments/); command-line settings override it."
    ),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds, e.g. 0-4 or 0,1,2."),
    grid: Optional[list[str]] = typer.Option(
        None,
        "--grid",
        help="Any setting as an axis, name=v1,v2 (repeatable): run options, task parameters, solver options.",
    ),
    set_values: Optional[list[str]] = typer.Option(None, "--set", help="Any setting fixed, name=value (repeatable)."),
    eval_thoughts: Optional[str] = typer.Option(
        None, "--eval-thoughts", help="Also evaluate thinkers at these budgets, e.g. 0,2,4,8."
    ),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", help="Cells at once (default: one per core; on Ray, the cluster's CPUs)."
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="local (this machine), ray (a Ray cluster; pip install 'thinkbench\\[ray]'), slurm (one Slurm job "
        "array through submitit, parameters from $THINKBENCH_SLURM, e.g. slurm_partition=gpu,timeout_min=120; "
        "pip install 'thinkbench\\[slurm]') or slurm-local (the same jobs through submitit's local executor on this "
        "machine, to try it without a cluster).",
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)."
    ),
    name: Optional[str] = typer.Option(
        None, help="Sweep name for results/sweeps/NAME.json (default: the file's name, or a hash of the cells)."
    ),
    min_rate: float = typer.Option(
        FRONTIER_MIN_RATE,
        "--min-rate",
        help="Frontier: share of seeds that must reach the target at a scale (the default is every report's one rule).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    results: Optional[str] = ResultsOption,
    **settings: Optional[str],
) -> None:
    """Run every cell of a grid as an ordinary run; finished cells are skipped, so a stopped sweep resumes.
    Each run option takes a comma-separated list of values; a list of more than one is an axis.

    Example: bench sweep --task add --solver gpt,think_fixed_blind_super --max 50,100,200 --thoughts 2,4 --seeds 0-4
    """
    from bench.sweep.executors import EXECUTORS
    from bench.run.store import results_root
    from bench.sweep.plan import load_toml

    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r} is not valid; valid: {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs={jobs} must be at least 1")
    if not 0.0 < min_rate <= 1.0:
        raise UserError(f"--min-rate={min_rate} must be in (0, 1]")
    root = results_root(results)
    cli = grid_from_cli({**settings, "seeds": seeds}, grid, set_values, eval_thoughts, name)
    plan = cli
    if file is not None:
        from_file = load_toml(file)
        from_file.name = from_file.name or file.stem
        plan = from_file.merged(cli)
    swept = run_and_show(plan, root, jobs, executor, ray_address, quiet, dry_run, min_rate)
    if swept is None:
        return
    if swept.stopped:
        err_console.print("sweep interrupted; run the same command again to resume")
        raise typer.Exit(130)
    if swept.counts.get("failed"):
        raise typer.Exit(1)
