"""Fault injection, part 2: processes killed at random points, two processes on one run, a killed
parallel sweep, `--force` interrupted, and unwritable parts of the store.

Kills are real (`bench` subprocesses, SIGKILL / SIGTERM). Unwritable folders: the tests run as root
here, where file modes do not stop writes, so they use `chattr +i` (immutable) where the filesystem
supports it and otherwise make the folder's creation fail by monkeypatching `tempfile.mkstemp` (the
one call every write and writability probe goes through); `unwritable()` says which was used.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cli_checks import bench_executable
from test_faults import RUN_ARGS, bench

from bench.run.records import pid_alive
from bench.run.spec import RunSpec
from bench.run.store import RunDir, RunLock, RunLocked, recover_run, retrain_path
from bench.run.train import RunInterrupted, start_run

LONG = [a if a != "20" else "3000" for a in RUN_ARGS]  # the same tiny model, 3000 steps at most


def spawn(root: Path, *args: str, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen([bench_executable(), *args, "--results", str(root)], stdout=subprocess.DEVNULL, stderr=out,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def statuses(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for folder in (root / "runs").glob("[0-9a-f]*"):
        try:
            out[folder.name] = json.loads((folder / "status.json").read_text())
        except (OSError, ValueError):
            pass
    return out


def at_step(root: Path, step: int, count: int = 1) -> bool:
    return sum(s.get("step", 0) >= step for s in statuses(root).values()) >= count


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"  # a zombie is dead
    except (OSError, IndexError):
        return not pid_alive(pid)


def test_kill_9_at_random_points_then_rerun_resumes_and_finishes(tmp_path: Path) -> None:
    rng = random.Random(15)
    args = ["run", *[a if a != "20" else "150" for a in RUN_ARGS], "--seed", "3"]
    for _ in range(1):
        process = spawn(tmp_path, *args)
        wait_for(lambda: at_step(tmp_path, rng.choice([10, 20, 30, 40])) or process.poll() is not None, what="training")
        process.kill()
        process.wait()
        (run_id, status), = statuses(tmp_path).items()
        if status["state"] == "running":  # its owner is gone: shown as stale, not as running forever
            assert "stale" in bench("show", run_id, "--results", tmp_path).stdout
    had_checkpoint = (tmp_path / "runs" / run_id / "checkpoint.pt").exists()
    log = tmp_path / "final.log"
    assert spawn(tmp_path, *args, log=log).wait(timeout=120) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text and "being trained" not in text  # a killed owner leaves no live lock
    assert ("resuming run" in text) == had_checkpoint, text
    assert statuses(tmp_path)[run_id]["state"] == "finished"


def test_a_second_run_is_refused_then_waits_and_resumes(tmp_path: Path) -> None:
    args = ["run", *LONG, "--seed", "4"]
    first = spawn(tmp_path, *args)
    wait_for(lambda: at_step(tmp_path, 10), what="the first run to train")
    refused = bench(*args, "--results", tmp_path)
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"being trained by pid {first.pid}" in refused.stderr and "--wait" in refused.stderr
    log = tmp_path / "second.log"
    second = spawn(tmp_path, *args, "--wait", log=log)
    wait_for(lambda: "waiting for pid" in log.read_text(), what="the second run to wait")
    first.send_signal(signal.SIGTERM)  # checkpoints at the next step and exits 130
    assert first.wait(timeout=60) == 130
    wait_for(lambda: "resuming run" in log.read_text(), what="the second run to take over")
    second.send_signal(signal.SIGTERM)  # 130 when it checkpoints; -15 if it came before the training loop
    assert second.wait(timeout=120) in (130, -signal.SIGTERM), log.read_text()
    assert "Traceback" not in log.read_text()


def test_a_duplicate_cannot_hide_a_finished_run(tmp_path: Path) -> None:
    assert bench("run", *RUN_ARGS, "--results", tmp_path).exit_code == 0
    (run_id, finished), = statuses(tmp_path).items()
    spec = RunSpec.from_json(json.loads((tmp_path / "runs" / run_id / "spec.json").read_text()))
    lock = RunLock(tmp_path, run_id).acquire()
    with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):  # a --force while another process holds it
        start_run(spec, tmp_path, force=True)
    assert start_run(spec, tmp_path)[2] is True  # a plain rerun reads the finished result, unlocked
    lock.release()
    assert statuses(tmp_path)[run_id] == finished


def test_a_killed_parallel_sweep_leaves_no_worker_behind(tmp_path: Path) -> None:
    log = tmp_path / "sweep.log"
    args = [a for a in LONG if a not in ("-q",)]
    args[args.index("--max") + 1] = "10,12"
    sweep = spawn(tmp_path, "sweep", *args, "--jobs", "2", "-q", log=log)
    wait_for(lambda: at_step(tmp_path, 10, count=2), timeout=90, what="both cells to train")
    workers = {json.loads(p.read_text())["pid"] for p in (tmp_path / "locks").glob("*.lock")}
    assert len(workers) == 2 and sweep.pid not in workers
    sweep.kill()
    sweep.wait()
    wait_for(lambda: all(gone(pid) for pid in workers), timeout=20, what="the workers to die with their parent")
    assert {s["state"] for s in statuses(tmp_path).values()} <= {"interrupted", "running"}  # checkpointed or stale


def test_force_keeps_the_finished_result_until_the_new_one_is_complete(tmp_path: Path) -> None:
    assert bench("run", *RUN_ARGS, "--results", tmp_path).exit_code == 0
    (run_id, _), = statuses(tmp_path).items()
    folder = tmp_path / "runs" / run_id
    before = {name: (folder / name).read_bytes() for name in ("status.json", "evaluation.json", "checkpoint.pt")}
    spec = RunSpec.from_json(json.loads((folder / "spec.json").read_text()))
    with pytest.raises(RunInterrupted):  # killed mid-retrain (files as a kill leaves them)
        start_run(spec, tmp_path, force=True, stop_after_steps=5)
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert json.loads(bench("compare", "--format", "json", "--results", tmp_path).stdout)[0]["seeds"] == 1
    again = bench("run", *RUN_ARGS, "--force", "--results", tmp_path)
    assert again.exit_code == 0 and f"resuming run {run_id} from step 5" in again.stderr
    assert not retrain_path(tmp_path, run_id).exists()
    assert (folder / "evaluation.json").read_bytes() == before["evaluation.json"]  # same spec, same result


def test_a_swap_cut_between_its_two_renames_is_repaired(tmp_path: Path) -> None:
    assert bench("run", *RUN_ARGS, "--results", tmp_path).exit_code == 0
    (run_id, _), = statuses(tmp_path).items()
    final, fresh = tmp_path / "runs" / run_id, retrain_path(tmp_path, run_id)
    shutil.copytree(final, fresh)
    os.rename(final, final.parent / f".{run_id}.old")  # killed after the first rename
    recover_run(tmp_path, run_id)
    assert RunDir(tmp_path, run_id).status()["state"] == "finished" and not fresh.exists()


@contextlib.contextmanager
def unwritable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`folder` cannot be written in: chattr +i where it works, else mkstemp fails there."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        try:
            yield "chattr +i"
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        return
    real = tempfile.mkstemp

    def refuse(*args: Any, dir: Any = None, **kwargs: Any) -> Any:
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", refuse)
        yield "monkeypatched mkstemp"


def one_line(result: Any, *fragments: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_unwritable_parts_of_the_store_are_one_line_before_training(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    interrupted = bench("run", *RUN_ARGS, "--results", tmp_path)  # then made unfinished
    (run_id, _), = statuses(tmp_path).items()
    folder = tmp_path / "runs" / run_id
    (folder / "status.json").write_text(json.dumps({"state": "interrupted", "step": 10, "elapsed": 0.1}))
    assert interrupted.exit_code == 0
    with unwritable(folder, monkeypatch):
        one_line(bench("run", *RUN_ARGS, "--results", tmp_path), "run folder", "not writable")
    assert json.loads((folder / "status.json").read_text())["state"] == "interrupted"
    runs_before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    with unwritable(tmp_path / "sweeps", monkeypatch):
        one_line(bench("sweep", *RUN_ARGS, "--seeds", "7", "--name", "s", "--results", tmp_path), "sweeps")
    experiment = tmp_path / "e.toml"
    experiment.write_text('name = "e"\n[grid]\ntask = "add"\nmax = 10\nsteps = 20\nseed = 8\n')
    with unwritable(tmp_path / "experiments" / "e", monkeypatch):
        one_line(bench("experiment", experiment, "--results", tmp_path), "experiment report folder", "not writable")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs_before  # nothing was trained
    (tmp_path / "a-file").write_text("")
    one_line(bench("plot", "--out", tmp_path / "a-file" / "plots", "--results", tmp_path), "--out folder")
    with unwritable(tmp_path / "plots-here", monkeypatch):
        one_line(bench("plot", "--out", tmp_path / "plots-here", "--results", tmp_path), "--out folder")


def test_python_dash_m_bench_works() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "run", "-t", "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "nope" in done.stderr, done.stderr
