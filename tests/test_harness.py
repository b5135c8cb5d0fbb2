"""The harness end to end on tiny real runs: learning, resume = no interruption, caching, run ids,
atomic files, bad checkpoints, the fixed-dataset mode."""

from __future__ import annotations

import dataclasses
import math
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench.errors import UserError
from bench.run.spec import RunSpec, TrainConfig
from bench.run.store import RUNS_DIR, atomic_write_json, load_checkpoint
from bench.run.train import (
    RunInterrupted,
    build_spec,
    fixed_training_set,
    held_out_problems,
    start_run,
    training_batch,
)
from solvers.base import ModelConfig, OptimConfig
from tasks.registry import make_task
from tiny_runs import learning_spec, report_margin

RUN_FILES = {"spec.json", "status.json", "curve.json", "evaluation.json", "environment.json", "checkpoint.pt"}


def spec_for(
    *, max_value: int = 50, d_model: int = 64, layers: int = 1, lr: float = 1e-2, **train: Any
) -> RunSpec:
    settings = {"steps": 1000, "batch": 128, "eval_every": 25, "eval_size": 400, "monitor_size": 400,
                "target": 0.95, "seed": 0, **train}
    # the separated layout: at d_model 64 it learns add mod 50 in a few hundred steps, plain does not
    return build_spec("add", max_value, {}, "gpt", {}, ModelConfig(d_model, layers, 4, prompt="separated"),
                      OptimConfig(lr=lr),
                      TrainConfig(**settings), "cpu")


def short_spec(**train: Any) -> RunSpec:
    """A few dozen steps of a small model: for tests about state, not accuracy."""
    settings = {"steps": 50, "batch": 32, "eval_every": 20, "eval_size": 64, "monitor_size": 64, "target": 1.0, **train}
    return spec_for(d_model=32, **settings)


def leftover_temp_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def assert_same_tensors(left: Any, right: Any, where: str = "state") -> None:
    """Equal nested containers whose tensors are torch.equal (same dtype, shape and bits)."""
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor) and left.dtype == right.dtype, where
        assert torch.equal(left, right), where
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), where
        for key in left:
            assert_same_tensors(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, (list, tuple)):
        assert isinstance(right, (list, tuple)) and len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right)):
            assert_same_tensors(a, b, f"{where}[{index}]")
    else:
        assert left == right, (where, left, right)


def without_time(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in curve]


# ---- a real run learns --------------------------------------------------------------------------------


@pytest.mark.learning
def test_tiny_gpt_run_learns_and_stores_every_file(tmp_path: Path) -> None:
    # margin: test accuracy 0.938-1.00 on seeds 0-4 under default/avx2/native at step 600; asserts >= 0.8
    run_dir, status, cached = start_run(learning_spec(), tmp_path)
    report_margin("harness_gpt_sort", status["accuracy"], 0.8)
    assert not cached and status["state"] == "finished"
    assert status["accuracy"] >= 0.8, status
    assert status["steps_to_target"] is not None and status["step"] <= 600
    assert RUN_FILES <= {p.name for p in run_dir.path.iterdir()}
    evaluation = run_dir.read("evaluation.json")
    overall = evaluation["final"]["overall"]
    # n counts distinct test problems: sorting 4 of [0, 10) has 715 multisets, the test split holds 65
    # of them (fewer than eval_size), so all of them are scored
    test_split = evaluation["final"]["test_split"]
    assert test_split["exhaustive"] and overall["n"] == test_split["distinct"] < 400
    assert overall["low"] <= overall["accuracy"] <= overall["high"]
    assert {"size", "depth"} <= set(evaluation["final"]["by"])
    assert sum(row["n"] for row in evaluation["final"]["by"]["depth"]) == overall["n"]
    curve = run_dir.read("curve.json")
    assert [row["step"] for row in curve] == [600]
    assert curve[-1]["accuracy"] >= 0.8 and curve[-1]["loss"] < math.log(10) / 4  # chance: ln 10 a token
    assert status["parameters"] == sum(t.numel()
                                       for t in load_checkpoint(run_dir.file(
                                           "checkpoint.pt"))["solver"]["model"].values())


# ---- resume --------------------------------------------------------------------------------------------


def test_resume_after_interruptions_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    spec = short_spec()
    whole_dir, whole, _ = start_run(spec, tmp_path / "whole")

    root = tmp_path / "stopped"
    with pytest.raises(RunInterrupted) as first:
        start_run(spec, root, stop_after_steps=13)  # between evaluations
    assert first.value.step == 13
    stopped = root / RUNS_DIR / spec.run_id
    assert json.loads((stopped / "status.json").read_text())["state"] == "interrupted"
    with pytest.raises(RunInterrupted) as second:
        start_run(spec, root, stop_after_steps=27)  # resumes at 13, stops at 40, past an evaluation
    assert second.value.step == 40
    resumed_dir, resumed, cached = start_run(spec, root)
    assert not cached and resumed["state"] == "finished" and resumed["step"] == whole["step"] == 50

    assert resumed["accuracy"] == whole["accuracy"]
    assert without_time(resumed_dir.read("curve.json")) == without_time(whole_dir.read("curve.json"))
    assert resumed_dir.read("evaluation.json") == whole_dir.read("evaluation.json")
    left = load_checkpoint(whole_dir.file("checkpoint.pt"))["solver"]
    right = load_checkpoint(resumed_dir.file("checkpoint.pt"))["solver"]
    assert_same_tensors(left["model"], right["model"], "model")
    assert_same_tensors(left["optimizer"], right["optimizer"], "optimizer")
    assert leftover_temp_files(tmp_path) == []


def test_an_interrupted_run_keeps_what_it_had_written(tmp_path: Path) -> None:
    spec = short_spec()
    with pytest.raises(RunInterrupted):
        start_run(spec, tmp_path, stop_after_steps=25)
    run = tmp_path / RUNS_DIR / spec.run_id
    assert {"spec.json", "status.json", "curve.json", "checkpoint.pt",
            "environment.json"} <= {p.name for p in run.iterdir()}
    assert [row["step"] for row in json.loads((run / "curve.json").read_text())] == [20]
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 25
    assert leftover_temp_files(tmp_path) == []


# ---- caching and run ids ----------------------------------------------------------------------------------


def test_a_finished_spec_is_not_retrained_unless_forced(tmp_path: Path) -> None:
    spec = short_spec(steps=20)
    run_dir, first, cached = start_run(spec, tmp_path)
    assert not cached
    checkpoint = run_dir.file("checkpoint.pt")
    before = (checkpoint.read_bytes(), checkpoint.stat().st_mtime_ns)

    def fail(step: int, metrics: dict[str, Any]) -> None:
        raise AssertionError("a cached run must not train")

    again_dir, again, cached = start_run(spec, tmp_path, on_progress=fail)
    assert cached and again == first and again_dir.path == run_dir.path
    assert (checkpoint.read_bytes(), checkpoint.stat().st_mtime_ns) == before

    steps_seen: list[int] = []
    _, forced, cached = start_run(spec, tmp_path, force=True, on_progress=lambda step, _: steps_seen.append(step))
    assert not cached and steps_seen == list(range(1, 21))
    assert forced["accuracy"] == first["accuracy"]  # same seed, same result


def test_run_ids_are_equal_for_default_and_explicit_values() -> None:
    implicit = build_spec("add", None, {}, "gpt", {}, ModelConfig(), OptimConfig(), TrainConfig(), "cpu")
    explicit = build_spec(
        "add", 100, {"base": "10"}, "gpt", {}, ModelConfig(d_model=128, layers=2, heads=4),
        OptimConfig(lr=1e-3, weight_decay=0.0, grad_clip=1.0),
        TrainConfig(steps=5000, batch=256, target=0.99, eval_every=100, monitor_size=512, eval_size=2000,
                    train_size=0, seed=0, eval_thoughts=()),
        "cpu",
    )
    assert implicit.run_id == explicit.run_id
    assert len(implicit.run_id) == 12 and int(implicit.run_id, 16) >= 0
    assert implicit.run_id != build_spec("add", None, {}, "gpt", {}, ModelConfig(), OptimConfig(), TrainConfig(seed=1),
                                         "cpu").run_id
    assert implicit.run_id != build_spec("add", 101, {}, "gpt", {}, ModelConfig(), OptimConfig(), TrainConfig(),
                                         "cpu").run_id
    assert RunSpec.from_json(implicit.to_json()).run_id == implicit.run_id


def test_run_ids_are_stable_across_processes() -> None:
    code = (
        "from bench.run.train import build_spec; from bench.run.spec import TrainConfig;"
        "from solvers.base import ModelConfig, OptimConfig;"
        "print(build_spec('add', 50, {}, 'gpt', {}, ModelConfig(64, 1, 4, prompt='separated'), OptimConfig(lr=1e-2),"
        " TrainConfig(steps=1000, batch=128, eval_every=25, eval_size=400, monitor_size=400, target=0.95), "
        "'cpu').run_id)"
    )
    # another process, with another string-hash seed than this one (pytest's is random)
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip()
    assert other == spec_for().run_id


# ---- files ----------------------------------------------------------------------------------------------


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "status.json"
    atomic_write_json(path, {"state": "finished"})

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_json(path, {"state": "running"})
    assert json.loads(path.read_text()) == {"state": "finished"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def interrupted_run(root: Path) -> tuple[RunSpec, Path]:
    spec = short_spec()
    with pytest.raises(RunInterrupted):
        start_run(spec, root, stop_after_steps=20)
    return spec, root / RUNS_DIR / spec.run_id


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "checkpoint.pt"}


def assert_one_line_user_error(error: pytest.ExceptionInfo[UserError], *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_corrupt_checkpoint_is_a_one_line_error_and_nothing_is_lost(tmp_path: Path) -> None:
    spec, run = interrupted_run(tmp_path)
    kept = snapshot(run)
    (run / "checkpoint.pt").write_bytes(b"\x80\x02 this is not a checkpoint")
    with pytest.raises(UserError) as error:
        start_run(spec, tmp_path)
    assert_one_line_user_error(error, "corrupt", "checkpoint.pt")
    assert snapshot(run) == kept


class PlantsAFile:
    """Unpickling this (without weights_only) would create a file: a stand-in for hostile code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["foreign", "hostile", "other_model"])
def test_a_foreign_checkpoint_is_refused_safely(tmp_path: Path, kind: str) -> None:
    spec, run = interrupted_run(tmp_path)
    kept = snapshot(run)
    marker = tmp_path / "code-ran"
    if kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt")
        fragments: tuple[str, ...] = ("not a thinkbench checkpoint",)
    elif kind == "hostile":
        torch.save({"solver": PlantsAFile(marker), "step": 1}, run / "checkpoint.pt")
        fragments = ("corrupt",)
    else:  # a real checkpoint of a wider model
        other = short_spec()
        other = spec_for(d_model=64,
                         **{k: v for k, v in dataclasses.asdict(other.train).items() if k != "eval_thoughts"})
        with pytest.raises(RunInterrupted):
            start_run(other, tmp_path / "other", stop_after_steps=5)
        (run
         / "checkpoint.pt").write_bytes((tmp_path / "other" / RUNS_DIR / other.run_id / "checkpoint.pt").read_bytes())
        fragments = ("does not fit",)
    with pytest.raises(UserError) as error:
        start_run(spec, tmp_path)
    assert_one_line_user_error(error, *fragments)
    assert not marker.exists()
    assert snapshot(run) == kept


# ---- the fixed-dataset mode ---------------------------------------------------------------------------------


def test_train_size_trains_on_a_fixed_set_disjoint_from_evaluation(tmp_path: Path) -> None:
    spec = short_spec(train_size=48, steps=30)
    cfg = spec.train
    task = make_task("add", 50)
    fixed = fixed_training_set(task, cfg)
    assert fixed is not None and len(fixed) == 48
    assert np.array_equal(fixed.questions, fixed_training_set(task, cfg).questions)  # same seed, same set
    allowed = {tuple(q) for q in fixed.questions}
    for step in range(5):
        batch = training_batch(task, cfg, step, fixed)
        assert len(batch) == cfg.batch and {tuple(q) for q in batch.questions} <= allowed
    held_out = {tuple(q) for q in held_out_problems(task, cfg).questions}
    assert not held_out & allowed
    assert fixed_training_set(task, short_spec().train) is None  # the default: a fresh stream

    assert spec.run_id != short_spec(steps=30).run_id
    run_dir, status, _ = start_run(spec, tmp_path)
    assert status["state"] == "finished" and status["step"] == 30
    assert run_dir.read("spec.json")["train"]["train_size"] == 48
