"""Fault injection, part 1: every command against every kind of corrupted stored file.

A store of two tiny finished runs (seeds 0 and 1) is copied per corruption kind; one file of run A
(seed 0) is corrupted; then every command runs in this process (typer's CliRunner, so an uncaught
exception is caught here instead of printing a traceback). Each outcome must be either success, a
success that skips A with one warning naming it, or one line on stderr with exit code 2; never an
exception, and the leaderboard never counts a bad folder (a copy, an accuracy of 7.5, a scale of -7).

`python tests/test_faults.py` prints the matrix of kinds x commands with each outcome (the report
of issue 15 was made with it, once at the commit before the fix and once after).
Part 2 (kills, locks, --force, unwritable folders): tests/test_faults_processes.py.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()
RUN_ARGS = ["-t", "add", "--max", "10", "--steps", "20", "--eval-every", "10", "--batch", "16", "--d-model", "16",
            "--layers", "1", "--heads", "2", "--eval-size", "40", "--device", "cpu", "-q"]


def bench(*args: str) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def make_store(root: Path) -> tuple[str, str]:
    """Two finished tiny runs under root; returns their ids (seed 0, seed 1)."""
    ids = []
    for seed in (0, 1):
        result = bench("run", *RUN_ARGS, "--seed", seed, "--results", root)
        assert result.exit_code == 0, result.output
        ids.append(re.search(r"run ([0-9a-f]{12})", result.stderr).group(1))
    return ids[0], ids[1]


# ---- corruptions of run A ------------------------------------------------------------------------


def _bytes(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _json(name: str, value: Any) -> Callable[[Path], None]:
    return _bytes(name, json.dumps(value).encode())


def _edit(name: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        value = json.loads((folder / name).read_text())
        change(value)
        (folder / name).write_text(json.dumps(value))
    return corrupt


def _torch(value: Any) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        buffer = io.BytesIO()
        torch.save(value, buffer)
        (folder / "checkpoint.pt").write_bytes(buffer.getvalue())
    return corrupt


def _folder_for(name: str) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()
    return corrupt


def _truncate(name: str) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    return corrupt


def _interrupted_with(corrupt_checkpoint: Callable[[Path], None]) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:  # an unfinished run: `bench run` resumes from the checkpoint
        (folder / "status.json").write_text(json.dumps({"state": "interrupted", "step": 10, "elapsed": 0.1}))
        (folder / "evaluation.json").unlink()
        corrupt_checkpoint(folder)
    return corrupt


def _copy(folder: Path) -> None:
    shutil.copytree(folder, folder.parent / "0123456789ab")  # a second "seed" that is the same run


def _set(path: str, value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        *parents, last = path.split(".")
        for key in parents:
            data = data[key]
        data[last] = value
    return change


NOT_UTF8 = b'{"state": "fini\xff\xfe"}'
BAD_CHECKPOINT = {"solver": 5, "step": "x", "elapsed": 0.0, "steps_to_target": -1}
CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "status.json = []": _bytes("status.json", b"[]"),
    "status.json = null": _bytes("status.json", b"null"),
    "status.json not UTF-8": _bytes("status.json", NOT_UTF8),
    "status.json truncated": _truncate("status.json"),
    "status.json is a folder": _folder_for("status.json"),
    "status accuracy 7.5, low -3": _edit("status.json", lambda s: s.update(accuracy=7.5, low=-3, high=9)),
    "status state 'bogus'": _edit("status.json", _set("state", "bogus")),
    "status step 'x'": _edit("status.json", _set("step", "x")),
    "spec.json = []": _bytes("spec.json", b"[]"),
    "spec.json = {}": _bytes("spec.json", b"{}"),
    "spec.json not UTF-8": _bytes("spec.json", NOT_UTF8),
    "spec max = -7": _edit("spec.json", _set("task_params.max", -7)),
    "spec d_model 'x'": _edit("spec.json", _set("model.d_model", "x")),
    "curve.json non-numbers": _json("curve.json", [{"step": "x", "accuracy": "y", "elapsed": None}]),
    "curve.json = {}": _bytes("curve.json", b"{}"),
    "evaluation.json non-numbers": _edit("evaluation.json", _set("final.overall.accuracy", "high")),
    "evaluation.json not UTF-8": _bytes("evaluation.json", NOT_UTF8),
    "evaluation.json = []": _bytes("evaluation.json", b"[]"),
    "environment.json not UTF-8": _bytes("environment.json", NOT_UTF8),
    "checkpoint {'solver': 5}": _torch(BAD_CHECKPOINT),
    "checkpoint plain pickle": _bytes("checkpoint.pt", pickle.dumps({"solver": {"model": {}}, "step": 1})),
    "checkpoint garbage": _bytes("checkpoint.pt", b"\x00not a checkpoint"),
    "checkpoint truncated": _truncate("checkpoint.pt"),
    "checkpoint {'solver': 5}, run interrupted": _interrupted_with(_torch(BAD_CHECKPOINT)),
    "checkpoint truncated, run interrupted": _interrupted_with(_truncate("checkpoint.pt")),
    "run folder copied under another name": _copy,
}

# ---- the commands --------------------------------------------------------------------------------


def commands(root: Path, a: str, b: str, out: Path) -> dict[str, list[Any]]:
    return {
        "show": ["show", a, "--results", root],
        "inspect": ["inspect", a, "-n", "2", "--results", root],
        "run": ["run", *RUN_ARGS, "--seed", "0", "--results", root],
        "run --init": ["run", *RUN_ARGS, "--seed", "2", "--steps", "1", "--init", a, "--results", root],
        "compare": ["compare", "--results", root],
        "compare json": ["compare", "--format", "json", "--results", root],
        "compare --frontier": ["compare", "--frontier", "--format", "json", "--results", root],
        "plot": ["plot", "--kind", "curves", "--out", out, "--results", root],
        "sweep": ["sweep", *[x for x in RUN_ARGS if x != "-q"], "--seeds", "0-1", "--jobs", "1", "-q", "--name", "s",
                  "--results", root],
    }


def outcome(result: Any, command: str) -> str:
    """One word (and detail) for a result: ok, warned (ok, bad folder named), one-line (exit 2), or a failure."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"TRACEBACK {type(result.exception).__name__}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.exit_code == 2:
        return "one-line" if len(lines) == 1 and lines[0].startswith("error:") else f"exit 2, {len(lines)} lines"
    if result.exit_code == 1 and command == "sweep":  # a cell failed: the sweep goes on, says which, exits 1
        return "cell failed"
    if result.exit_code != 0:
        return f"exit {result.exit_code}"
    if command.startswith("compare") and result.stdout.lstrip().startswith("["):
        rows = json.loads(result.stdout)
        if any((row.get("seeds") or 0) > 2 for row in rows) or any(not 0 <= (row.get("accuracy") or 0) <= 1
                                                                   for row in rows) or any(
                (row.get("scale") or 0) < 0 or (row.get("largest_tested") or 0) < 0 for row in rows):
            return "WRONG (counts a bad folder)"
    return "warned" if any(line.startswith("warning: skipped run folder") for line in lines) else "ok"


GOOD = {"ok", "warned", "one-line", "cell failed"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("faults") / "results"
    a, b = make_store(root)
    return root, a, b


def run_matrix(template: tuple[Path, str, str], workdir: Path, kinds: list[str]) -> dict[str, dict[str, str]]:
    root0, a, b = template
    matrix: dict[str, dict[str, str]] = {}
    for number, kind in enumerate(kinds):
        root = workdir / f"case{number}"
        shutil.copytree(root0, root)
        CORRUPTIONS[kind](root / "runs" / a)
        matrix[kind] = {name: outcome(bench(*args), name)
                        for name, args in commands(root, a, b, workdir / f"plots{number}").items()}
    return matrix


@pytest.mark.parametrize("kinds", [list(CORRUPTIONS)[i::3] for i in range(3)], ids=["part1", "part2", "part3"])
def test_every_command_against_every_corrupted_file(template: tuple[Path, str, str], tmp_path: Path,
                                                    kinds: list[str]) -> None:
    matrix = run_matrix(template, tmp_path, kinds)
    bad = {(kind, command): result for kind, row in matrix.items() for command, result in row.items()
           if result not in GOOD}
    assert not bad, bad


def test_a_copied_or_edited_folder_never_counts(template: tuple[Path, str, str], tmp_path: Path) -> None:
    root0, a, _ = template
    root = tmp_path / "results"
    shutil.copytree(root0, root)
    _copy(root / "runs" / a)
    CORRUPTIONS["spec max = -7"](root / "runs" / a)
    result = bench("compare", "--format", "json", "--results", root)
    rows = json.loads(result.stdout)
    assert [row["seeds"] for row in rows] == [1] and rows[0]["scale"] == 10
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: skipped run folder")]
    assert len(warnings) == 2 and "0123456789ab" in warnings[0] and "spec's hash" in warnings[0]


def test_plain_pickle_checkpoint_is_one_line_without_a_torch_warning(template: tuple[Path, str, str],
                                                                     tmp_path: Path) -> None:
    root0, a, _ = template
    root = tmp_path / "results"
    shutil.copytree(root0, root)
    CORRUPTIONS["checkpoint plain pickle"](root / "runs" / a)
    result = bench("inspect", a, "--results", root)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not a thinkbench checkpoint" in result.stderr


def test_inspect_thoughts_on_a_gpt_run_is_refused(template: tuple[Path, str, str]) -> None:
    root, a, _ = template
    result = bench("inspect", a, "-k", "4", "--results", root)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "does not think" in result.stderr


@pytest.mark.parametrize("flag, value, valid", [
    ("--batch", "1000000000", "1 to 65,536"), ("--eval-size", "1000000000", "1 to 1,000,000"),
    ("--d-model", "1048576", "1 to 16,384"), ("--layers", "100000", "1 to 256"),
    ("--seed", "99999999999999999999", "0 to 4,294,967,295"),
])
def test_sizes_out_of_range_are_refused_up_front(tmp_path: Path, flag: str, value: str, valid: str) -> None:
    result = bench("run", "-t", "add", "--max", "10", flag, value, "--device", "cpu", "--results", tmp_path)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and valid in result.stderr, result.stderr
    assert not any((tmp_path / "runs").iterdir())  # no run folder left behind


def test_a_run_too_big_for_memory_is_refused_with_an_estimate(tmp_path: Path) -> None:
    result = bench("run", "-t", "add", "--max", "10", "--batch", "65536", "--d-model", "8192", "--layers", "64",
                   "--device", "cpu", "--results", tmp_path)
    assert result.exit_code == 2 and "GiB" in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_memory_estimate_counts_the_trace_only_for_a_solver_that_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """gpt never reads mult's 2,575-token trace (n = 32) as tokens; cot writes it into its stream."""
    from bench.run import spec as spec_module
    from bench.run.spec import TrainConfig, check_memory
    from solvers.base import TaskShape
    from solvers.config import ModelConfig
    from tasks.registry import make_task

    task = make_task("mult", 32)
    shape = TaskShape.of(task)
    model, train = ModelConfig(d_model=128, layers=2), TrainConfig(batch=256)
    have = 64 * 2**30  # a 64 GiB machine, whatever this one has
    monkeypatch.setattr(spec_module, "memory_available", lambda device: have)
    assert check_memory(shape, model, None, train, "cpu", trace_in_stream=False) is None
    refused = check_memory(shape, model, None, train, "cpu", trace_in_stream=True)
    assert refused is not None and "GiB" in refused


def test_toml_name_must_be_a_string(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = 5\n[grid]\ntask = "add"\nmax = 10\n')
    result = bench("sweep", "--file", path, "--dry-run", "--results", tmp_path / "r")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "must be a string" in result.stderr


if __name__ == "__main__":  # print the matrix (markdown), for the report
    import tempfile

    work = Path(tempfile.mkdtemp())
    store = work / "template"
    ids = make_store(store)
    table = run_matrix((store, *ids), work, list(CORRUPTIONS))
    names = list(next(iter(table.values())))
    print("| corrupted file | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for kind, row in table.items():
        print(f"| {kind} | " + " | ".join(row[name] for name in names) + " |")
    shutil.rmtree(work)
    sys.exit(0)
