"""`bench run`, `bench show`, `bench compare` through typer's runner, and a real `bench run` process
interrupted with Ctrl-C and resumed. Bad input: exit code 2, one line, no traceback, nothing lost."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app
from cli_checks import assert_one_line_error, bench_executable
from tiny_runs import LEARNS, learning_seed, report_margin

runner = CliRunner()

# A tiny model that learns add mod 20 to 95% in a few hundred steps (seconds).
# The separated layout: at d_model 64 it learns add mod 50 in a few hundred steps, the plain one does not.
# A tiny model on add mod 50: a long run to interrupt, not a learning outcome.
TINY = ["--task", "add", "--max", "50", "--prompt", "separated", "--d-model", "64", "--layers", "1", "--heads", "4",
        "--lr", "0.01",
        "--batch", "128", "--eval-every", "25", "--eval-size", "400", "--target", "0.95", "--device", "cpu", "-q"]
# Fewer steps of a smaller model, for tests about files and errors.
SHORT = ["--task", "add", "--max", "20", "--d-model", "32", "--layers", "1", "--heads", "4", "--batch", "32",
         "--steps", "20", "--eval-every", "10", "--eval-size", "64", "--device", "cpu", "-q"]


def bench(*args: str):
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    # An exception other than SystemExit means a traceback would have reached the user.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def run_id_of(result) -> str:
    match = re.search(r"run ([0-9a-f]{12})", result.stderr)
    assert match, result.stderr
    return match.group(1)


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A results folder holding one finished run."""
    root = tmp_path_factory.mktemp("results")
    result = bench("run", *SHORT, "--results", str(root))
    assert result.exit_code == 0, result.output
    return root, run_id_of(result)


# ---- good runs ---------------------------------------------------------------------------------------------


@pytest.mark.learning
def test_run_learns_and_compare_shows_it(tmp_path: Path) -> None:
    # margin: the spec of test_harness's learning test, 0.938-1.00 on seeds 0-2 under default/avx2/native; asserts >=
    # 0.8
    started = time.perf_counter()
    result = bench("run", *LEARNS, "--seed", str(learning_seed()), "-q", "--results", str(tmp_path))
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    run_id = run_id_of(result)
    status = json.loads((tmp_path / "runs" / run_id / "status.json").read_text())
    report_margin("cli_run_gpt_sort", status["accuracy"], 0.8)
    assert status["state"] == "finished" and status["accuracy"] >= 0.8, status
    assert "test accuracy" in result.stdout and "accuracy by depth" in result.stdout
    print(f"tiny bench run: {status['step']} steps, {status['elapsed']:.1f} s training, {seconds:.1f} s in all")

    board = json.loads(bench("compare", "--results", str(tmp_path), "--format", "json").stdout)
    assert len(board) == 1 and board[0]["run_ids"] == run_id
    assert board[0]["accuracy"] == pytest.approx(status["accuracy"]) and board[0]["seeds"] == 1


def test_same_spec_spelled_out_is_cached_and_show_prints_it(stored: tuple[Path, str]) -> None:
    root, run_id = stored
    before = files_under(root)
    explicit = ["--seed", "0", "--weight-decay", "0", "--target", "0.99", "--solver", "gpt", "--train-size", "0"]
    result = bench("run", *SHORT, *explicit, "--results", str(root))
    assert result.exit_code == 0, result.output
    assert run_id_of(result) == run_id
    assert "already finished" in result.stderr
    assert files_under(root) == before

    shown = bench("show", run_id[:6], "--results", str(root))
    assert shown.exit_code == 0 and run_id in shown.stdout and "test accuracy" in shown.stdout


# ---- bad input -----------------------------------------------------------------------------------------------

BAD_RUNS = [
    (["--solver", "nosuch"], ["unknown solver", "nosuch", "gpt"]),
    (["--task", "nosuch"], ["unknown task", "nosuch", "add"]),
    (["--heads", "3"], ["--heads=3", "--d-model=32"]),
    (["--steps", "0"], ["--steps=0"]),
    (["--max", "1"], ["max=1"]),
    (["--device", "tpu"], ["tpu", "cpu"]),
]


@pytest.mark.parametrize(("extra", "fragments"), BAD_RUNS, ids=[" ".join(a) for a, _ in BAD_RUNS])
def test_bad_run_input_is_one_line_exit_2_and_loses_nothing(stored: tuple[Path, str], extra: list[str],
                                                            fragments: list[str]) -> None:
    root, _ = stored
    before = files_under(root)
    assert_one_line_error(bench("run", *SHORT, *extra, "--results", str(root)), *fragments)
    assert files_under(root) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_one_line_exit_2(stored: tuple[Path, str]) -> None:
    root, _ = stored
    before = files_under(root)
    assert_one_line_error(bench("run", *SHORT, "--device", "cuda", "--results", str(root)), "cuda", "no CUDA")
    assert files_under(root) == before


def test_a_file_in_place_of_the_results_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("keep me")
    assert_one_line_error(bench("run", *SHORT, "--results", str(blocker)), str(blocker), "not a folder")
    assert blocker.read_text() == "keep me"
    # a file where the runs folder should be
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "runs").write_text("keep me too")
    assert_one_line_error(bench("run", *SHORT, "--results", str(tmp_path / "other")), "not writable")
    assert (tmp_path / "other" / "runs").read_text() == "keep me too"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through file permissions")
def test_a_read_only_results_folder(stored: tuple[Path, str], tmp_path: Path) -> None:
    root = tmp_path / "results"
    shutil.copytree(stored[0], root)
    before = files_under(root)
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")] if p.is_dir()}
    try:
        for folder in modes:
            folder.chmod(0o555)
        assert_one_line_error(bench("run", *SHORT, "--results", str(root)), "not writable")
    finally:
        for folder, mode in modes.items():
            folder.chmod(mode)
    assert files_under(root) == before


def test_show_of_an_unknown_or_malformed_id(stored: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = stored
    assert_one_line_error(bench("show", "abcdef012345", "--results", str(root)), "no run", "abcdef012345")
    assert_one_line_error(bench("show", "not-an-id", "--results", str(root)), "not-an-id")
    # show only reads: a missing results folder is not created
    assert_one_line_error(bench("show", "abcdef", "--results", str(tmp_path / "none")), "no run")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("name", ["status.json", "spec.json"])
def test_a_corrupt_run_file_is_one_line_exit_2(stored: tuple[Path, str], tmp_path: Path, name: str) -> None:
    root = tmp_path / "results"
    shutil.copytree(stored[0], root)
    run_id = stored[1]
    (root / "runs" / run_id / name).write_text("{half a file")
    before = files_under(root)
    assert_one_line_error(bench("run", *SHORT, "--results", str(root)), name, "corrupt")
    assert_one_line_error(bench("show", run_id, "--results", str(root)), name, "corrupt")
    assert files_under(root) == before


# ---- a real process: Ctrl-C, a corrupt checkpoint, resume ---------------------------------------------------------




def test_ctrl_c_leaves_a_resumable_run_and_a_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    args = [*TINY, "--steps", "3000", "--target", "0.97", "--results", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen([bench_executable(), "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        checkpoints: list[Path] = []
        while not checkpoints and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            checkpoints = list(tmp_path.glob("runs/*/checkpoint.pt"))
        assert checkpoints, "no checkpoint appeared"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, (process.returncode, stderr)
    assert "interrupted at step" in stderr and "Traceback" not in stderr
    run = checkpoints[0].parent
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "interrupted" and status["step"] >= 25
    curve = json.loads((run / "curve.json").read_text())
    assert curve and curve[-1]["step"] <= status["step"]

    # A corrupt checkpoint: one line, exit 2, and everything else in the run is kept.
    good = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(good[: len(good) // 2])
    before = files_under(tmp_path)
    assert_one_line_error(bench("run", *args), "checkpoint", "corrupt")
    assert files_under(tmp_path) == before

    # The real checkpoint back: the same command resumes and finishes, keeping the curve it had.
    (run / "checkpoint.pt").write_bytes(good)
    result = bench("run", *args)
    assert result.exit_code == 0, result.output
    final = json.loads((run / "status.json").read_text())
    assert final["state"] == "finished" and final["step"] > status["step"]
    assert json.loads((run / "curve.json").read_text())[: len(curve)] == curve


# ---- bench perf train ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["encoder", "blocks"])
def test_perf_train_reports_both_sides_and_their_ratio(reference: str) -> None:
    result = bench("perf", "train", "--d-model", "16", "--layers", "1", "--batch", "8", "--steps", "2", "--rounds", "2",
                   "--reference", reference, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["project_tokens_per_s"] > 0 and report["reference_tokens_per_s"] > 0
    assert report["tokens_per_step"] == 8 * 2  # add: two question tokens in, one answer token predicted
    # same shape on both sides: the same number of parameters
    assert report["parameters"]["project"] == report["parameters"]["reference"]
    assert len(report["rounds"]["ratio"]) == 2 and report["ratio"] > 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--heads", "3"], "--heads=3"), (["--reference", "keras"], "keras"), (["--steps", "0"], "--steps 0"),
     (["--format", "xml"], "xml"), (["--task", "nosuch"], "nosuch")],
)
def test_perf_train_bad_input(args: list[str], fragment: str) -> None:
    assert_one_line_error(bench("perf", "train", *args), fragment)
