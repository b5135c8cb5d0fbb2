"""The training loop's listeners (bench/run/listeners.py): what each hook hears on a real tiny run,
the store as one listener among others, and `--log tensorboard` read back from its event files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.run import listeners as listeners_module
from bench.run.listeners import TENSORBOARD_DIR, TrainingListener, loggers
from bench.run.train import RunInterrupted, start_run
from cli_checks import assert_one_line_error
from test_harness import short_spec
from tiny_runs import learning_spec, report_margin

runner = CliRunner()


class Recorder(TrainingListener):
    """Keeps every call, and what the store had written when the listener heard it."""

    def __init__(self, run_dir: Any) -> None:
        self.run_dir = run_dir
        self.calls: list[tuple[str, Any]] = []

    def on_start(self, run_id: str, step: int) -> None:
        self.calls.append(("start", (run_id, step)))

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        self.calls.append(("step", (step, dict(metrics))))

    def on_eval(self, row: dict[str, Any]) -> None:
        # the store listens first: the checkpointed curve already ends with this row
        stored = json.loads(self.run_dir.file("curve.json").read_text())
        self.calls.append(("eval", (dict(row), stored[-1])))

    def on_end(self, state: str, status: dict[str, Any]) -> None:
        self.calls.append(("end", (state, dict(status))))


def test_listeners_hear_every_step_evaluation_and_the_end(tmp_path: Path) -> None:
    heard: list[Recorder] = []

    def factory(run_dir: Any) -> Recorder:
        heard.append(Recorder(run_dir))
        return heard[-1]

    progress: list[int] = []
    run_dir, status, cached = start_run(short_spec(), tmp_path, on_progress=lambda step, _: progress.append(step),
                                        listeners=[factory])
    assert not cached and len(heard) == 1
    calls = heard[0].calls
    kinds = [kind for kind, _ in calls]
    assert kinds[0] == "start" and calls[0][1] == (run_dir.run_id, 0)
    assert kinds[-1] == "end" and calls[-1][1] == ("finished", status)
    assert json.loads(run_dir.file("status.json").read_text()) == status  # the store wrote the same record
    steps = [value[0] for kind, value in calls if kind == "step"]
    assert steps == list(range(1, 51)) == progress  # the progress callback is a listener too
    assert all("loss" in value[1] for kind, value in calls if kind == "step")
    curve = json.loads(run_dir.file("curve.json").read_text())
    rows = [value for kind, value in calls if kind == "eval"]
    assert [row for row, _ in rows] == curve and [row["step"] for row in curve] == [20, 40, 50]
    assert all(row == stored for row, stored in rows)


def test_interrupted_run_ends_with_interrupted_and_resumes_from_its_step(tmp_path: Path) -> None:
    heard: list[Recorder] = []

    def factory(run_dir: Any) -> Recorder:
        heard.append(Recorder(run_dir))
        return heard[-1]

    spec = short_spec()
    with pytest.raises(RunInterrupted):
        start_run(spec, tmp_path, stop_after_steps=25, listeners=[factory])
    kind, (state, status) = heard[0].calls[-1]
    assert (kind, state, status["state"], status["step"]) == ("end", "interrupted", "interrupted", 25)
    start_run(spec, tmp_path, listeners=[factory])
    # resumed from the checkpoint the interrupt wrote at step 25
    assert heard[1].calls[0] == ("start", (spec.run_id, 25))
    assert [value[0] for kind, value in heard[1].calls if kind == "step"] == list(range(26, 51))
    assert heard[1].calls[-1][1][0] == "finished"


def test_log_names_are_checked_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loggers(None) == [] and loggers("") == []
    with pytest.raises(Exception, match=r"--log 'mlflow' is not one of: tensorboard, wandb"):
        loggers("mlflow")
    result = runner.invoke(app, ["run", "--task", "add", "--max", "30", "--log", "mlflow"])
    assert_one_line_error(result, "--log 'mlflow'", "tensorboard")
    # without the package: one line naming the extra that installs it
    monkeypatch.setattr(listeners_module.importlib.util, "find_spec", lambda name: None)
    result = runner.invoke(app, ["run", "--task", "add", "--max", "30", "--log", "tensorboard"])
    assert_one_line_error(result, "--log tensorboard needs the tensorboard extra", "pip install -e '.[tensorboard]'")


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.learning
def test_tensorboard_logs_a_real_run(tmp_path: Path) -> None:
    # margin: the spec of test_harness's learning test: 0.938-1.00 on seeds 0-2 under default/avx2/native; asserts >=
    # 0.8
    pytest.importorskip("tensorboard",
                        reason="the tensorboard extra is not installed (scripts/setup.sh --test installs it)")
    run_dir, status, _ = start_run(learning_spec(), tmp_path, listeners=loggers("tensorboard"))
    report_margin("tensorboard_gpt_sort", status["accuracy"], 0.8)
    assert status["accuracy"] >= 0.8  # the run learns
    scalars = _scalars(run_dir.path / TENSORBOARD_DIR)
    curve = json.loads(run_dir.file("curve.json").read_text())
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, status["step"] + 1))
    assert [step for step, _ in scalars["monitor/accuracy"]] == [row["step"] for row in curve]
    assert [value for _, value in scalars["monitor/accuracy"]] == pytest.approx([row["accuracy"] for row in curve])
    assert scalars["monitor/accuracy"][-1][1] >= 0.8
    assert scalars["train/loss"][-1][1] < scalars["train/loss"][0][1] / 4  # the curve a researcher sees falls
    assert scalars["test/accuracy"] == [(status["step"], pytest.approx(status["accuracy"]))]


class Crash(Exception):
    pass


class CrashAt(TrainingListener):
    """Kills the run (no checkpoint) after a given step, like a power cut."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        if step == self.step:
            raise Crash(step)


def test_tensorboard_resume_after_a_crash_keeps_one_value_per_step(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard",
                        reason="the tensorboard extra is not installed (scripts/setup.sh --test installs it)")
    spec = short_spec()
    with pytest.raises(Crash):
        start_run(spec, tmp_path, listeners=[*loggers("tensorboard"), lambda run_dir: CrashAt(23)])
    run_dir, status, _ = start_run(spec, tmp_path, listeners=loggers("tensorboard"))
    assert run_dir.run_id == short_spec().run_id and status["state"] == "finished"  # logging is not in the spec
    scalars = _scalars(run_dir.path / TENSORBOARD_DIR)
    # steps 21..23 ran twice (before the crash and after the resume from the step-20 checkpoint): kept once
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, 51))
    assert [step for step, _ in scalars["monitor/accuracy"]] == [20, 40, 50]


def test_sweep_cells_log_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard",
                        reason="the tensorboard extra is not installed (scripts/setup.sh --test installs it)")
    from bench.sweep.executors import execute_cell

    spec = short_spec()
    monkeypatch.setenv("THINKBENCH_LOG", "tensorbored")
    failed = execute_cell(spec.to_json(), str(tmp_path), threads=None)
    assert failed["outcome"] == "failed"
    assert "$THINKBENCH_LOG 'tensorbored' is not one of: tensorboard" in failed["error"]
    monkeypatch.setenv("THINKBENCH_LOG", "tensorboard")
    result = execute_cell(spec.to_json(), str(tmp_path), threads=None)
    assert result["outcome"] == "trained", result
    scalars = _scalars(tmp_path / "runs" / spec.run_id / TENSORBOARD_DIR)
    assert [step for step, _ in scalars["monitor/accuracy"]] == [20, 40, 50]
