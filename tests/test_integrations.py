"""Where researchers already work, each for real on this machine: `--log wandb` read back from W&B's
offline run files, `bench sample --format hf` loaded with `datasets.load_from_disk` and every answer
verified, `bench sweep --executor slurm-local` through submitit's local executor into the resumable
store, and, without each extra, one line naming what to install."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

import thinkbench as tb
from bench.cli import app
from cli_checks import assert_one_line_error, bench_executable
from tasks import make_task, task_names

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def quiet_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


# ---- Weights & Biases --------------------------------------------------------------------------

W_BLOCK, W_HEADER = 32768, 7  # W&B's transaction log: LevelDB's log format after a 7-byte file header


def wandb_records(path: Path) -> Iterator[bytes]:
    """The records of an offline run's .wandb file (LevelDB log blocks; checksums not checked)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    pos, pending = W_HEADER, b""
    while pos + W_HEADER <= len(data):
        left = W_BLOCK - pos % W_BLOCK
        if left < W_HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + W_HEADER])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + W_HEADER:pos + W_HEADER + length]
        pos += W_HEADER + length
        if kind == 1:  # FULL
            yield chunk
        elif kind == 2:  # FIRST
            pending = chunk
        elif kind == 3:  # MIDDLE
            pending += chunk
        elif kind == 4:  # LAST
            yield pending + chunk
            pending = b""


def read_offline_run(path: Path) -> dict[str, Any]:
    """name, group, config, history rows and summary of one offline W&B run file."""
    from wandb.proto import wandb_internal_pb2

    out: dict[str, Any] = {"history": [], "summary": {}, "config": {}}
    for data in wandb_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["group"] = record.run.display_name, record.run.run_group
            out["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            out["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            out["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.history.item})
        elif kind == "summary":
            out["summary"].update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.summary.update})
    return out


def test_wandb_offline_logs_the_spec_curves_and_final_tables(tmp_path: Path) -> None:
    pytest.importorskip("wandb", reason="the wandb extra is not installed (scripts/setup.sh --test installs it)")
    results, wandb_dir = tmp_path / "results", tmp_path / "wandb-files"
    wandb_dir.mkdir()
    # Offline, silent, and any attempt at the network would hit a closed local port.
    env = quiet_env(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(wandb_dir),
                    WANDB_BASE_URL="http://127.0.0.1:9",
                    HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", WANDB_DISABLE_GIT="true")
    env.pop("WANDB_API_KEY", None)
    done = subprocess.run([bench_executable(), "run", "--task", "add", "--max", "20", "--steps", "30", "--eval-every",
                           "10",
                           "--eval-size", "60", "--d-model", "32", "--log", "wandb", "--quiet", "--results",
                           str(results)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (results / "runs").iterdir()
    run_id = run_dir.name
    files = list(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    logged = read_offline_run(files[0])
    spec = json.loads((run_dir / "spec.json").read_text())
    status = json.loads((run_dir / "status.json").read_text())
    curve = json.loads((run_dir / "curve.json").read_text())
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert logged["name"] == run_id and logged["group"] == run_id
    assert logged["config"]["run_id"] == run_id
    for key in ("task", "task_params", "solver", "model", "optim", "train"):
        assert logged["config"][key] == spec[key], key
    rows = {row["_step"]: row for row in logged["history"]}
    assert sorted(step for step, row in rows.items() if "train/loss" in row) == list(range(1, 31))
    assert [(step, rows[step]["monitor/accuracy"]) for step in sorted(rows) if "monitor/accuracy" in rows[step]] == \
        [(row["step"], row["accuracy"]) for row in curve]
    assert rows[30]["test/accuracy"] == pytest.approx(status["accuracy"])
    assert logged["summary"]["test/accuracy"] == pytest.approx(status["accuracy"])
    assert (logged["summary"]["test/low"],
            logged["summary"]["test/high"]) == pytest.approx((status["low"], status["high"]))
    assert logged["summary"]["state"] == "finished"
    # the final evaluation's tables, as W&B wrote them beside the run
    for name, rows_by in evaluation["final"]["by"].items():
        table_path = files[0].parent / "files" / logged["summary"][f"test/by_{name}/path"]
        table = json.loads(table_path.read_text())
        assert table["columns"] == ["bucket", "n", "correct", "accuracy", "low", "high"]
        assert [row[:4] for row in table["data"]] == [[r["bucket"], r["n"], r["correct"], r["accuracy"]]
                                                      for r in rows_by]


# ---- Hugging Face datasets ---------------------------------------------------------------------


def test_sample_hf_loads_back_and_every_answer_verifies(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets",
                                   reason="the hf extra is not installed (scripts/setup.sh --test installs it)")
    for name in task_names():
        out = tmp_path / name
        result = runner.invoke(app,
                               ["sample", "--task", name, "-n", "12", "--seed", "5", "--format", "hf", "--out",
                                str(out)])
        assert result.exit_code == 0, result.output
        loaded = datasets.load_from_disk(str(out))
        assert sorted(loaded) == ["monitor", "test", "train"]
        task = make_task(name)  # the verifier reads the problem's own fields (as bench verify does)
        questions: dict[str, set[str]] = {}
        for split in loaded:
            rows = loaded[split]
            assert len(rows) == 12
            assert {"question", "answer", "trace", "depth", "size", "params", "task", "split"} <= set(rows.column_names)
            for row in rows:
                assert task.verify_json(json.loads(row["question"]), json.loads(row["answer"])), (name, split, row)
                assert row["split"] == split and row["task"] == name and row["params"] == make_task(name).param_dict()
                assert isinstance(row["depth"], int) and row["depth"] == row["meta"]["depth"]
            assert tb.score_answer(rows[0]["answer"], rows[0]) == 1.0  # a row is an entry, as README says
            questions[split] = set(rows["question"])
            # the same problems `--format jsonl --split S` draws
            jsonl = runner.invoke(app,
                                  ["sample", "--task", name, "-n", "12", "--seed", "5", "--split", split, "--format",
                                   "jsonl"])
            assert [json.loads(line)["answer"]
                    for line in jsonl.stdout.splitlines()] == [json.loads(a) for a in rows["answer"]]
        assert not questions["train"] & questions["test"] and not questions["monitor"] & questions["test"]
    # a second write replaces the dataset; a folder of other files is refused in one line
    again = runner.invoke(app, ["sample", "--task", "add", "-n", "3", "--format", "hf", "--out", str(tmp_path / "add")])
    assert again.exit_code == 0 and len(datasets.load_from_disk(str(tmp_path / "add"))["train"]) == 3
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    refused = runner.invoke(app, ["sample", "--task", "add", "--format", "hf", "--out", str(tmp_path / "notes")])
    assert_one_line_error(refused, "holds files that are not a dataset")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    assert_one_line_error(runner.invoke(app, ["sample", "--task", "add", "--format", "hf"]),
                          "--format hf writes a folder: give --out DIR")


# ---- Slurm (submitit's local executor) ---------------------------------------------------------


def test_sweep_on_slurm_local_runs_one_job_per_cell_into_the_store(tmp_path: Path) -> None:
    pytest.importorskip("submitit", reason="the slurm extra is not installed (scripts/setup.sh --test installs it)")
    results = tmp_path / "results"
    args = [bench_executable(), "sweep", "--task", "add", "--max", "20", "--steps", "20", "--eval-every", "10",
            "--eval-size", "40",
            "--d-model", "32", "--seeds", "0-1", "--name", "tiny", "--executor", "slurm-local", "--jobs", "2",
            "--quiet",
            "--results", str(results)]
    done = subprocess.run(args, cwd=tmp_path, env=quiet_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 trained" in done.stderr
    runs = sorted((results / "runs").iterdir())
    assert len(runs) == 2
    for run_dir in runs:
        status = json.loads((run_dir / "status.json").read_text())
        assert status["state"] == "finished" and status["step"] == 20
    jobs = sorted((results / "sweeps" / "tiny.slurm").glob("*_submitted.pkl"))
    assert len(jobs) == 2  # one submitit job per cell
    logs = "".join(p.read_text() for p in (results / "sweeps" / "tiny.slurm").glob("*_log.err"))
    assert "Traceback" not in logs
    # the same store: a second sweep submits nothing and skips both cells
    again = runner.invoke(app, args[1:])
    assert again.exit_code == 0 and "2 skipped" in again.stderr, again.output[-2000:]
    assert len(list((results / "sweeps" / "tiny.slurm").glob("*_submitted.pkl"))) == 2


def test_slurm_parameters_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("submitit", reason="the slurm extra is not installed (scripts/setup.sh --test installs it)")
    from bench.errors import UserError
    from bench.sweep.executors import SLURM_DEFAULT_CPUS, slurm_cpus, slurm_parameters

    monkeypatch.delenv("THINKBENCH_SLURM", raising=False)
    assert slurm_parameters() == {} and slurm_cpus() == SLURM_DEFAULT_CPUS
    monkeypatch.setenv("THINKBENCH_SLURM", "slurm_partition=gpu, timeout_min=90,cpus_per_task=8,mem_gb=7.5")
    assert slurm_parameters() == {"slurm_partition": "gpu", "timeout_min": 90, "cpus_per_task": 8, "mem_gb": 7.5}
    assert slurm_cpus() == 8
    monkeypatch.setenv("THINKBENCH_SLURM", "gpu")
    with pytest.raises(UserError, match=r"\$THINKBENCH_SLURM: 'gpu' is not name=value"):
        slurm_parameters()
    # what submitit refuses is one line before any cell is drawn
    for bad, fragment in (("bogus_option=3", "Unknown executor 'bogus'"),
                          ("timeout_min=soon", '"timeout_min" expected type')):
        monkeypatch.setenv("THINKBENCH_SLURM", bad)
        result = runner.invoke(app,
                               ["sweep", "--task", "add", "--max", "20", "--steps", "5", "--executor", "slurm-local",
                                     "--quiet", "--results", str(tmp_path)])
        assert_one_line_error(result, "$THINKBENCH_SLURM", fragment)
    assert not list((tmp_path / "runs").iterdir())


# ---- without the extras: one line naming what to install -----------------------------------------

MISSING_EXTRAS = r'''
import contextlib, io, json, sys
for name in ("wandb", "datasets", "submitit"):
    sys.modules[name] = None  # as if not installed: importing it fails, find_spec says None
from bench.cli import app
import thinkbench as tb
cases = {
    "wandb": ["run", "--task", "add", "--max", "20", "--steps", "5", "--log", "wandb", "--results", sys.argv[1]],
    "hf": ["sample", "--task", "add", "--format", "hf", "--out", sys.argv[1] + "/hf"],
    "slurm": ["sweep", "--task", "add", "--max", "20", "--steps", "5", "--executor", "slurm", "--results", sys.argv[1]],
}
out = {}
for key, args in cases.items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            app(args, prog_name="bench")
            code = 0
        except SystemExit as exc:
            code = exc.code
    out[key] = [code, err.getvalue()]
try:
    tb.hf_dataset("add", 3)
except tb.UserError as exc:
    out["api"] = [2, str(exc)]
print(json.dumps(out))
'''


def test_without_each_extra_one_line_says_what_to_install(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", MISSING_EXTRAS, str(tmp_path)], cwd=ROOT, env=quiet_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    expected = {"wandb": "pip install -e '.[wandb]'", "hf": "pip install -e '.[hf]'",
                "slurm": "pip install -e '.[slurm]'",
                "api": "pip install -e '.[hf]'"}
    for key, fragment in expected.items():
        code, text = out[key]
        lines = text.strip().splitlines()
        assert code == 2 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in text, (key, text)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing trained
    assert not (tmp_path / "hf").exists()
