"""`--precision fp32|bf16|auto` (issue 27): parsed, stored in the spec and run id (fp32 ids unchanged),
refused in one line when bad, resolved by the CPU's matrix engine, and a bf16 run still learns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from bench.cli import app
from bench.config import TrainConfig, configs_from
from bench.run.build import build_spec
from bench.run.precision import precision_context, resolve_precision
from bench.run.spec import RunSpec
from bench.run.train import start_run
from cli_checks import assert_one_line_error
from tiny_runs import learning_spec, report_margin
from solvers.core import BF16_SOFTMAX_FROM_KEYS, attention, causal_mask

runner = CliRunner()


def add200_spec(**train: object) -> RunSpec:
    """`bench run --task add --solver gpt --max 200 --steps 3000 --seed 0` (plus train settings)."""
    choice, train_cfg, model, optim = configs_from({"steps": 3000, "seed": 0, **train})
    return build_spec("add", 200, {}, "gpt", {}, model, optim, train_cfg, device="cpu")


def test_fp32_spec_keeps_its_old_run_id_and_bf16_is_another_run() -> None:
    fp32 = add200_spec()
    # The run id of this spec before --precision existed (pinned for experiments/add_frontier.toml
    # in tests/test_new_parts.py): a spec at the default precision hashes as it did.
    assert fp32.run_id == "ba94c602ce18"
    assert "precision" not in fp32.to_json()["train"]
    assert add200_spec(precision="fp32").run_id == "ba94c602ce18"
    bf16 = add200_spec(precision="bf16")
    assert bf16.train.precision == "bf16" and bf16.to_json()["train"]["precision"] == "bf16"
    assert bf16.run_id != fp32.run_id
    # Round trip through the stored JSON (an old spec.json without the field reads as fp32).
    assert RunSpec.from_json(bf16.to_json()) == bf16
    assert RunSpec.from_json(fp32.to_json()).train.precision == "fp32"


def test_auto_is_resolved_into_the_spec() -> None:
    auto = add200_spec(precision="auto")
    assert auto.train.precision in ("fp32", "bf16")
    assert auto.train.precision == resolve_precision("auto", "cpu")
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"


def test_auto_is_fp32_on_a_cpu_without_a_bf16_matrix_engine() -> None:
    # oneDNN capped at AVX2 has no bf16 matrix engine, whatever this machine has.
    code = "from bench.run.precision import resolve_precision; print(resolve_precision('auto', 'cpu'))"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == "fp32", out.stderr


@pytest.mark.parametrize("value", ["fp16", "BF16", ""])
def test_bad_precision_is_one_line(value: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--task", "add", "--max", "20", "--steps", "5", "--precision", value,
                                 "--results", str(tmp_path), "-q"])
    assert_one_line_error(result, f"--precision {value!r}", "fp32, bf16, auto")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_precision_in_a_sweep_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", "--task", "add", "--max", "20", "--steps", "5", "--precision", "fp32,half",
                                 "--results", str(tmp_path), "-q", "--dry-run"])
    assert_one_line_error(result, "'half'", "fp32, bf16, auto")


def test_precision_context_runs_matmuls_in_bf16_and_keeps_fp32_weights() -> None:
    layer = torch.nn.Linear(8, 8)
    with precision_context("cpu", "bf16"):
        out = layer(torch.randn(2, 8))
    assert out.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    with precision_context("cpu", "fp32"):
        assert layer(torch.randn(2, 8)).dtype == torch.float32


@pytest.mark.parametrize("keys", [7, BF16_SOFTMAX_FROM_KEYS + 8])  # softmax in fp32 / on the bf16 scores
@pytest.mark.parametrize("masked", [False, True])
def test_written_out_bf16_attention_matches_sdpa(masked: bool, keys: int) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, keys, 16) for _ in range(3))
    mask = causal_mask(keys - 2, keys, "cpu") if masked else None  # the new positions after a cache of 2
    q_new = q[:, :, 2:] if masked else q
    expected = F.scaled_dot_product_attention(q_new, k, v, attn_mask=mask, is_causal=not masked)
    got = attention(q_new.bfloat16(), k.bfloat16(), v.bfloat16(), is_causal=not masked, attn_mask=mask)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, atol=3e-2, rtol=3e-2)
    # and through backward: the gradients agree with fp32's within bf16's precision
    qb = q_new.bfloat16().requires_grad_()
    attention(qb, k.bfloat16(), v.bfloat16(), is_causal=not masked, attn_mask=mask).float().sum().backward()
    qf = q_new.clone().requires_grad_()
    F.scaled_dot_product_attention(qf, k, v, attn_mask=mask, is_causal=not masked).sum().backward()
    torch.testing.assert_close(qb.grad.float(), qf.grad, atol=6e-2, rtol=6e-2)


@pytest.mark.learning
def test_tiny_bf16_run_learns(tmp_path: Path) -> None:
    # margin: tests/tiny_runs.py's learning spec (gpt sorting 4 values in [0, 10)) in bf16 reaches 0.923-1.00
    # on seeds 0-2 under default/avx2/native; asserts >= 0.8
    spec = learning_spec(precision="bf16")
    run_dir, status, _ = start_run(spec, tmp_path)
    assert json.loads((run_dir.path / "spec.json").read_text())["train"]["precision"] == "bf16"
    report_margin("bf16_gpt_sort", status["accuracy"], 0.8)
    assert status["state"] == "finished" and status["accuracy"] >= 0.8 and status["steps_to_target"] is not None, status


def test_perf_train_reports_bf16_ratio_and_roofline() -> None:
    result = runner.invoke(app, ["perf", "train", "--d-model", "16", "--layers", "1", "--batch", "8", "--steps", "1",
                                 "--rounds", "2", "--threads", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bf16_ratio"] > 0 and report["project_bf16_tokens_per_s"] > 0
    assert report["gflop_per_step"] > 0 and set(report["roofline_share"]) == {"fp32", "bf16"}
    assert all(0 < share < 1.5 for share in report["roofline_share"].values())
    assert report["matmul_peak_gflops"]["fp32"] > 0 and len(report["rounds"]["project_bf16"]) == 2
    table = runner.invoke(app, ["perf", "train", "--d-model", "16", "--layers", "1", "--batch", "8", "--steps", "1",
                                "--rounds", "1", "--threads", "1"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "bf16/fp32" in table.output and "roofline bf16" in table.output, table.output


def test_train_config_default_is_fp32() -> None:
    assert TrainConfig().precision == "fp32" and TrainConfig().validate() == []
    assert TrainConfig(precision="int8").validate() == ["--precision 'int8' is not valid; valid: fp32, bf16, auto"]


@pytest.mark.parametrize(("solver", "task", "options"), [
    ("gpt", "graph", {}), ("pause", "add", {}), ("continuous", "multiadd", {}),
    ("think_fixed_blind_super_clean", "add", {}),
    ("think_fixed_blind_super_clean", "multiadd", {"estimator": "imitate"}),
    ("think_fixed", "sort", {}), ("think_fixed_blind_split_super", "add", {}),
])
def test_every_solver_family_trains_and_predicts_in_bf16(solver: str, task: str, options: dict) -> None:
    # Rollouts with the KV cache, blind masks, fed-back hidden states: all under bf16 autocast, with
    # the weights (and so the optimizer's state) staying fp32 and the loss finite.
    from solvers.base import ModelConfig, TaskShape, TensorBatch, make_solver
    from tasks.base import stream_rng
    from tasks.registry import make_task

    problems = make_task(task, None, {})
    torch.manual_seed(0)
    model = make_solver(solver, TaskShape.of(problems), ModelConfig(16, 1, 2), options=options)
    batch = TensorBatch.from_numpy(problems.sample(stream_rng(0, "train", 0), 8), "cpu")
    with precision_context("cpu", "bf16"):
        metrics = model.train_step(batch)
        prediction = model.predict(batch.questions)
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    assert prediction.answers.shape == batch.answers.shape
    assert all(p.dtype == torch.float32 for p in model.parameters())
