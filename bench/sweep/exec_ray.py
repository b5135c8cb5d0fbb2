"""Ray (--executor ray): cells as Ray tasks, progress through a Ray queue, stopping by `ray.cancel`.
Joining the cluster (`connect_ray`, `ray_available`) is in bench/sweep/executors.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.sweep.exec_cell import WATCH_INTERVAL, EventHandler, StopCheck, cell_run_id, execute_cell


def _ray_cell(spec_json: dict[str, Any], root: str, threads: int, queue: Any, driver: dict[str, Any]) -> dict[str, Any]:
    from bench.run.records import owner, pid_alive

    def report(kind: str, run_id: str, data: dict[str, Any]) -> None:
        try:
            queue.put_nowait((kind, run_id, data))
        except Exception:  # progress is best-effort; the result still comes back
            pass

    same_host = driver.get("host") == owner()["host"]
    checked = {"time": 0.0, "gone": False}

    def driver_gone() -> bool:  # on the driver's host: stop (checkpoint) once the driver is gone
        now = time.monotonic()
        if same_host and not checked["gone"] and now - checked["time"] >= WATCH_INTERVAL:
            checked["time"], checked["gone"] = now, not pid_alive(int(driver["pid"]))
        return checked["gone"]

    return execute_cell(spec_json, root, threads, report, driver_gone)


def run_ray(cells: list[dict[str, Any]], root: Path, jobs: int, threads: int, on_event: EventHandler,
            stop: StopCheck) -> None:
    """Cells as Ray tasks, at most `jobs` at a time, each asking Ray for `threads` CPUs (one GPU for
    CUDA cells). Ray places them; the results store must be a folder every node can write to."""
    import ray
    from ray.util.queue import Empty, Queue

    from bench.run.records import owner

    events = Queue(actor_options={"num_cpus": 0})
    remote = ray.remote(_ray_cell)
    driver = owner()
    waiting = list(cells)
    running: dict[Any, str] = {}
    stopping = False

    def drain() -> None:
        while True:
            try:
                batch = events.get_nowait_batch(events.qsize())
            except Empty:
                return
            if not batch:
                return
            for kind, run_id, data in batch:
                on_event(kind, run_id, data)

    try:
        while waiting or running:
            if stop() and not stopping:
                stopping = True
                for ref in running:
                    ray.cancel(ref)  # raises KeyboardInterrupt in the task: it ends as interrupted
            while waiting and len(running) < jobs and not stopping:
                spec_json = waiting.pop(0)
                options: dict[str, Any] = {"num_cpus": threads}
                if spec_json.get("device") == "cuda":
                    options["num_gpus"] = 1
                running[remote.options(**options).remote(spec_json, str(root), threads, events,
                                                         driver)] = cell_run_id(spec_json)
            if stopping:
                for spec_json in waiting:
                    on_event("done", cell_run_id(spec_json),
                             {"outcome": "not started", "status": {}, "error": None, "wall": 0.0})
                waiting.clear()
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.2) if running else ([], [])
            drain()
            for ref in done:
                run_id = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    result = {"outcome": "interrupted", "status": {}, "error": None, "wall": 0.0}
                except ray.exceptions.RayError as exc:
                    result = {"outcome": "failed", "status": {}, "error": f"ray: {str(exc).splitlines()[0]}",
                              "wall": 0.0}
                on_event("done", run_id, result)
    finally:
        drain()
        events.shutdown()
