"""`bench sweep`: grid expansion, the CLI and TOML, real tiny sweeps in process, in a process pool
(interrupted by a real SIGINT, then resumed) and on a local Ray instance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.run.spec import TrainConfig
from bench.run.store import RunDir
from bench.sweep.plan import Grid, expand, load_toml, split_values, threads_per_job
from bench.run.train import build_spec
from solvers.base import ModelConfig, OptimConfig
from cli_checks import assert_one_line_error

runner = CliRunner()
THINKER = "think_fixed_blind_super"
# Tiny runs: seconds for a whole sweep on a shared 2-core CPU.
TINY = ["--steps", "20", "--eval-every", "10", "--eval-size", "64", "--batch", "32", "--d-model", "16",
        "--layers", "1", "--heads", "2"]
# The acceptance sweep: gpt and a thinker on add, three scales, three seeds.
ACCEPTANCE = ["sweep", "--task", "add", "--solver", f"gpt,{THINKER}", "--max", "12,14,16", "--thoughts", "2",
              "--seeds", "0-2", "--eval-thoughts", "0,1,2", *TINY]


def bench(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def grid(**axes) -> Grid:
    out = Grid()
    for key, values in axes.items():
        out.set(key, values if isinstance(values, list) else [values])
    return out


def states(root: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["state"] for p in (root / "runs").glob("*/status.json")}


# ---- expansion -----------------------------------------------------------------------------------


def test_split_values_spans_and_lists():
    assert split_values("0-2,5", "--seeds") == ["0", "1", "2", "5"]
    assert split_values(" 50, 100 ,200", "--max") == ["50", "100", "200"]
    assert split_values("1e-3,3e-4", "--lr") == ["1e-3", "3e-4"]  # not a span


def test_thoughts_multiply_only_thinkers_and_ids_match_bench_run():
    expansion = expand(grid(task="add", solver=["gpt", THINKER], max=[7, 11], thoughts=[1, 2], seed=[0, 1],
                            eval_thoughts=[[0, 1]], steps=20))
    by_solver: dict[str, list] = {}
    for cell in expansion.cells:
        by_solver.setdefault(cell.spec.solver, []).append(cell)
    assert len(by_solver["gpt"]) == 2 * 2  # scales x seeds: --thoughts does not multiply gpt
    assert len(by_solver[THINKER]) == 2 * 2 * 2
    assert all("thoughts" not in c.settings and tuple(c.spec.train.eval_thoughts) == () for c in by_solver["gpt"])
    assert {c.spec.solver_options["thoughts"] for c in by_solver[THINKER]} == {1, 2}
    assert all(tuple(c.spec.train.eval_thoughts) == (0, 1) for c in by_solver[THINKER])
    assert len({c.run_id for c in expansion.cells}) == len(expansion.cells)
    assert expansion.cells[0].settings["seed"] == 0 and expansion.cells[-1].settings["seed"] == 1  # seeds vary slowest
    # A cell is an ordinary run: the same id `bench run` gives the same settings.
    gpt = next(c for c in by_solver["gpt"] if c.settings["max"] == 11 and c.settings["seed"] == 1)
    single = build_spec("add", 11, {}, "gpt", {}, ModelConfig(), OptimConfig(),
                        TrainConfig(steps=20, seed=1, monitor_size=512), "auto")
    assert gpt.run_id == single.run_id


def test_any_setting_is_an_axis_run_options_task_params_solver_options():
    expansion = expand(grid(task="add", solver="gpt", d_model=["16", "32"], layers=["1", "2"], base=["2", "10"],
                            weight_decay="0.1", lr=0.01))
    assert len(expansion.cells) == 8
    assert {(c.spec.model.d_model, c.spec.model.layers)
            for c in expansion.cells} == {(16, 1), (16, 2), (32, 1), (32, 2)}
    assert {c.spec.task_params["base"] for c in expansion.cells} == {2, 10}
    assert all(c.spec.optim == OptimConfig(lr=0.01, weight_decay=0.1, grad_clip=1.0, warmup=0) for c in expansion.cells)
    assert expansion.varying == ["d_model", "layers", "base"]
    estimators = expand(grid(task="add", solver=["gpt", THINKER], estimator=["reinforce", "gumbel"]))
    assert len(estimators.cells) == 1 + 2  # a solver option multiplies only the solver that has it


def test_toml_file_and_command_line_override(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "demo"\n[grid]\ntask = "add"\nmax = [12, 14]\nseed = [0, 1, 2]\nd_model = 16\n'
                    'eval_thoughts = [0, 2]\n')
    from_file = load_toml(path)
    assert from_file.name == "demo" and from_file.axes["eval_thoughts"] == [[0, 2]]  # one list, not an axis
    cli = grid(seed=["0"])
    merged = from_file.merged(cli)
    assert len(expand(merged).cells) == 2
    result = bench("sweep", "--file", str(path), "--seeds", "0", "--dry-run", "--results", str(tmp_path / "r"))
    assert result.exit_code == 0, result.stderr
    assert "2 cells" in result.stdout


def test_default_threads_share_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_per_job(1, cores=8) == 8 and threads_per_job(3, cores=8) == 2 and threads_per_job(16, cores=8) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # an explicit limit wins on a shared machine
    assert threads_per_job(1, cores=8) == 1


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--task", "add", "--grid", "widht=1,2"], ["'widht'", "d_model"]),
        (["--task", "add", "--solver", "gpt", "--thoughts", "2"], ["'thoughts'", "solver gpt"]),
        (["--task", "add", "--seeds", "4-1"], ["runs backwards"]),
        (["--task", "add", "--executor", "kubernetes"], ["kubernetes", "local, ray, slurm, slurm-local"]),
        (["--task", "add", "--jobs", "0"], ["--jobs=0"]),
        (["--task", "add", "--grid", "d_model=16,wide"], ["d_model='wide'"]),
        (["--task", "add", "--grid", "nothing"], ["--grid expects name=v1,v2"]),
        (["--task", "nope"], ["unknown task 'nope'"]),
        (["--task", "add", "--solver", "gpt,nope"], ["unknown solver 'nope'"]),
        (["--solver", "gpt"], ["needs --task"]),
    ],
)
def test_bad_sweeps_are_one_line_errors(tmp_path, args, fragments):
    assert_one_line_error(bench("sweep", *args, "--dry-run", "--results", str(tmp_path)), *fragments)


def test_bad_sweep_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\ntask = 'add'\n")
    assert_one_line_error(bench("sweep", "--file", str(bad), "--results", str(tmp_path)), "not valid TOML")
    bad.write_text("jobs = 2\n[grid]\ntask = 'add'\n")
    assert_one_line_error(bench("sweep", "--file", str(bad), "--results", str(tmp_path)), "unknown top-level keys")
    assert_one_line_error(bench("sweep", "--file", str(tmp_path / "none.toml"), "--results", str(tmp_path)),
                          "does not exist")


# ---- real sweeps -----------------------------------------------------------------------------------


def test_acceptance_sweep_in_process_then_skipped_then_plotted(tmp_path):
    root = tmp_path / "results"
    began = time.perf_counter()
    result = bench(*ACCEPTANCE, "--jobs", "1", "--name", "acc", "--results", str(root))
    first = time.perf_counter() - began
    assert result.exit_code == 0, result.stderr + result.stdout
    assert "18 trained" in result.stderr  # gpt 3 scales x 3 seeds + thinker 3 x 3
    assert set(states(root).values()) == {"finished"} and len(states(root)) == 18
    assert "sweep summary" in result.stdout and "frontier" in result.stdout
    record = json.loads((root / "sweeps" / "acc.json").read_text())
    assert len(record["cells"]) == 18 and "solver" in record["varying"]
    thinker_eval = json.loads(next(
        RunDir(root, c["run_id"]).file("evaluation.json").read_text() for c in record["cells"]
        if c["settings"]["solver"] == THINKER))
    assert [b["thoughts"] for b in thinker_eval["budgets"]] == [0, 1, 2]

    mtimes = {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*/status.json")}
    again = bench(*ACCEPTANCE, "--jobs", "1", "--name", "acc", "--results", str(root))
    assert again.exit_code == 0 and "18 skipped" in again.stderr
    assert mtimes == {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*/status.json")}  # nothing re-run

    plots = bench("plot", "--sweep", "acc", "--results", str(root))
    assert plots.exit_code == 0, plots.stderr
    paths = [Path(line) for line in plots.stdout.split()]
    names = {p.name for p in paths}
    assert {"acc-accuracy-vs-scale-add.png", "acc-accuracy-vs-budget-add.png", "acc-curves-add.png"} == names
    for path in paths:
        assert path.parent == root / "plots" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"acceptance sweep, 18 cells in process: {first:.1f} s")


def test_pool_sweep_interrupted_by_sigint_resumes_without_rerunning(tmp_path):
    """A real `bench sweep --jobs 2` process, stopped with SIGINT once a cell has finished and another
    is mid-training; the same command (here in process) then finishes the rest."""
    root = tmp_path / "results"
    args = ["sweep", "--task", "add", "--max", "12,14,16", "--seeds", "0-1", "--steps", "300", "--eval-every", "20",
            "--eval-size", "64", "--batch", "32", "--d-model", "16", "--layers", "1", "--heads", "2",
            "--quiet", "--results", str(root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", "from bench.cli import main; main()", *args, "--jobs", "2"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def mid_run() -> bool:  # one cell finished and another well inside its training
        statuses = [json.loads(p.read_text()) for p in (root / "runs").glob("*/status.json")]
        return any(s["state"] == "finished" for s in statuses) and any(
            s["state"] == "running" and 20 <= s["step"] <= 200 for s in statuses)

    deadline = time.time() + 120
    while time.time() < deadline and not mid_run():
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, (out, err)
    assert "run the same command again to resume" in err
    before = states(root)
    done = {run for run, state in before.items() if state == "finished"}
    stopped = {run for run, state in before.items() if state == "interrupted"}
    assert done and len(done) < 6, before
    assert stopped, before  # the cells running at the signal checkpointed and said so
    assert all(RunDir(root, run).file("checkpoint.pt").exists() for run in stopped)
    mtimes = {run: RunDir(root, run).file("status.json").stat().st_mtime_ns for run in done}

    again = bench(*args, "--jobs", "1")
    assert again.exit_code == 0, again.stderr
    assert f"{len(done)} skipped" in again.stderr and f"{len(stopped)} resumed" in again.stderr
    assert set(states(root).values()) == {"finished"} and len(states(root)) == 6
    assert mtimes == {run: RunDir(root, run).file("status.json").stat().st_mtime_ns for run in done}
    for run in stopped:  # resumed from its checkpoint: the curve runs on from where it stopped, once
        steps = [point["step"] for point in json.loads(RunDir(root, run).file("curve.json").read_text())]
        assert steps == sorted(set(steps)) and steps[-1] == 300


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_acceptance_sweep_on_a_local_ray_instance(tmp_path, local_ray):
    root = tmp_path / "results"
    began = time.perf_counter()
    result = bench(*ACCEPTANCE, "--executor", "ray", "--name", "on-ray", "--results", str(root))
    assert result.exit_code == 0, result.stderr + result.stdout
    assert "18 trained" in result.stderr and "on ray with 2 job(s)" in result.stderr.replace("\n", " ")
    assert set(states(root).values()) == {"finished"} and len(states(root)) == 18
    # The same cells as the local executor: the same run ids, so the store is shared.
    local = {c.run_id for c in expand(grid(task="add", solver=["gpt", THINKER], max=["12", "14", "16"], thoughts=["2"],
                                           seed=["0", "1", "2"], eval_thoughts=["0,1,2"], steps="20", eval_every="10",
                                           eval_size="64", batch="32", d_model="16", layers="1", heads="2")).cells}
    assert set(states(root)) == local
    again = bench(*ACCEPTANCE, "--executor", "ray", "--results", str(root))
    assert again.exit_code == 0 and "18 already finished" in again.stderr.replace("\n", " ")
    print(f"acceptance sweep on ray (2 CPUs): {time.perf_counter() - began:.1f} s")


def test_ray_executor_without_ray_is_a_one_line_error(tmp_path, monkeypatch):
    from bench.sweep import executors

    monkeypatch.setattr(executors, "ray_available", lambda: False)
    result = bench("sweep", "--task", "add", *TINY, "--executor", "ray", "--results", str(tmp_path))
    assert_one_line_error(result, "pip install 'thinkbench[ray]'")
    assert not list((tmp_path / "runs").glob("*/status.json"))  # nothing started
