"""Where a sweep's cells run: in this process, in a local process pool, as Ray tasks, or as Slurm jobs
(submitit; `slurm-local` runs the same jobs through submitit's local executor, for a machine without Slurm).

Every executor runs the same function on a cell, `execute_cell`: an ordinary `start_run` into the
shared results store, with torch limited to its share of the cores. Executors report through one
callback, `on_event(kind, run_id, data)`, called in the calling process only (workers never draw
progress bars; they send their progress back):

    ("start", run_id, {})                    a cell began training (or resuming)
    ("step", run_id, {"step", "accuracy"})   progress, a few times a second at most
    ("done", run_id, result)                 result: {"outcome", "status", "error", "wall"}

Outcomes: trained, skipped (already finished), interrupted, failed, not started.

Stopping: `stop()` is polled; once it returns True no new cell starts, and running cells checkpoint
at their next step boundary and end as "interrupted" (resumable). Local pool workers run in their
own process group, so a terminal's Ctrl-C reaches only the parent, which tells them through an
event; Ray tasks are cancelled with `ray.cancel`, which interrupts them the same way.

Dying with the parent (pool workers, Ray cells on the driver's host): bench/sweep/exec_pool.py.

The executors, one module each, re-exported here so `from bench.sweep.executors import ...` keeps working:

    bench/sweep/exec_cell.py   execute_cell (what every executor runs), run_in_process (--jobs 1)
    bench/sweep/exec_pool.py   a local process pool (--jobs N)
    bench/sweep/exec_ray.py    Ray tasks (--executor ray); joining the cluster: connect_ray, below
    bench/sweep/exec_slurm.py  Slurm jobs through submitit (--executor slurm, slurm-local)
"""

from __future__ import annotations

from bench.sweep.exec_cell import (
    PROGRESS_INTERVAL, WATCH_INTERVAL, EventHandler, StopCheck, execute_cell, run_in_process,
)
from bench.sweep.exec_pool import GRACE_S, PR_SET_PDEATHSIG, die_with_parent, run_pool
from bench.sweep.exec_ray import run_ray
from bench.sweep.exec_slurm import (
    SLURM_DEFAULT_CPUS, SLURM_ENV, SLURM_POLL_S, require_slurm, run_slurm, slurm_available, slurm_cpus, slurm_executor,
    slurm_parameters,
)

__all__ = [  # the executors' names, from the modules above and from this one
    "EXECUTORS", "EventHandler", "StopCheck", "PROGRESS_INTERVAL", "WATCH_INTERVAL", "execute_cell", "run_in_process",
    "GRACE_S", "PR_SET_PDEATHSIG", "die_with_parent", "run_pool", "ray_available", "connect_ray", "run_ray",
    "SLURM_ENV", "SLURM_DEFAULT_CPUS", "SLURM_POLL_S",
    "slurm_available", "require_slurm", "slurm_executor", "slurm_parameters", "slurm_cpus", "run_slurm",
]

EXECUTORS = ("local", "ray", "slurm", "slurm-local")


# Joining Ray stays here, beside the executor names, so a sweep is refused before any cell is drawn
# (and tests replace `ray_available` on this module).
def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def connect_ray(address: str | None) -> int:
    """Join the Ray cluster at `address` (or $RAY_ADDRESS, or start a local one); returns its CPUs."""
    from bench.errors import UserError

    if not ray_available():
        raise UserError("--executor ray needs Ray: pip install 'thinkbench[ray]' (or pip install 'ray>=2.9')")
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserError(f"--executor ray: cannot reach a Ray cluster at {address or 'the default address'} "
                            f"({str(exc).splitlines()[0]})") from None
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
