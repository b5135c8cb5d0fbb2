"""credit truncate (issue 14): a clean-reward rollout ends at its first thought off the reference
trace. Properties of the truncated rollout, equality with the untruncated sampler where nothing is
cut, the cost it saves (tree nodes) and the one-line refusals. The tiny run that must learn with it is
test_think.py's test_blind_super_clean_learns_small_addition_in_seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from solvers.base import ModelConfig, TaskShape, TensorBatch, make_solver
from tasks.base import stream_rng
from tasks.registry import make_task

TINY = ModelConfig(d_model=32, layers=1, heads=2)
CLEAN = "think_fixed_blind_super_clean"


def clean_thinker(scale: int, group: int, seed: int = 0):
    torch.manual_seed(seed)
    task = make_task("add", scale)
    solver = make_solver(CLEAN, TaskShape.of(task), TINY, options={"group": group, "credit": "truncate"})
    batch = TensorBatch.from_numpy(task.sample(stream_rng(seed, "train", 0), 12), "cpu")
    return solver, batch


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), group=st.integers(2, 6), scale=st.sampled_from([20, 100, 1000]))
def test_truncated_rows_end_at_their_first_wrong_thought(seed: int, group: int, scale: int) -> None:
    solver, batch = clean_thinker(scale, group, seed)
    K = solver.K
    reference, _ = solver.reference_thoughts(batch.traces, K)
    torch.manual_seed(seed)
    roll = solver.rollout(batch.questions, K, group, "sample", reference=reference)
    wanted = reference.repeat_interleave(group, dim=0)
    for row in range(roll.ids.shape[0]):
        wrong = (roll.ids[row] != wanted[row]).nonzero()
        end = int(wrong[0]) if len(wrong) else K - 1  # the last slot the row acted at
        assert roll.acted[row, : end + 1].all() and roll.valid[row, : end + 1].all()
        assert not roll.acted[row, end + 1 :].any() and not roll.valid[row, end + 1 :].any()
        assert (roll.ids[row, end + 1 :] == solver.eot).all()
        assert (roll.logp[row, end + 1 :] == 0).all() and (roll.entropy[row, end + 1 :] == 0).all()
        assert (roll.logp[row, : end + 1] < 0).all()
    # Only prefixes still on the reference were extended: at most one tree node per question.
    assert roll.cache[0][0].shape[0] <= batch.questions.shape[0]


def test_nothing_cut_means_the_same_rollout() -> None:
    """Greedy thoughts used as the reference: no row leaves it, so ids, log-probs and entropies equal
    the untruncated sampler's bit for bit."""
    solver, batch = clean_thinker(1000, 3)
    plain = solver.rollout(batch.questions, solver.K, 3, "greedy")
    greedy = plain.ids[::3]
    truncated = solver.rollout(batch.questions, solver.K, 3, "greedy", reference=greedy)
    for field in ("ids", "valid", "acted", "logp", "entropy"):
        assert torch.equal(getattr(plain, field), getattr(truncated, field)), field


def test_rows_all_off_the_reference_leave_the_rest_empty() -> None:
    """A reference no thought can equal (<bot> ids): every row ends after its first thought, and the
    loop stops running the model."""
    solver, batch = clean_thinker(1000, 4)
    impossible = torch.full((batch.questions.shape[0], solver.K), solver.bot)
    roll = solver.rollout(batch.questions, solver.K, 4, "sample", reference=impossible)
    assert roll.acted[:, 0].all() and not roll.acted[:, 1:].any()
    assert (roll.ids[:, 1:] == solver.eot).all() and roll.valid.sum() == roll.ids.shape[0]


def test_truncate_trains_and_costs_fewer_rows_than_position_credit() -> None:
    """One loss on the same batch: finite, and the rollout's final tree (the rows the model ran at the
    last position) is no larger than position credit's, strictly smaller for a diffuse fresh policy."""
    sizes = {}
    for credit in ("position", "truncate"):
        torch.manual_seed(0)
        task = make_task("add", 1000)
        solver = make_solver(CLEAN, TaskShape.of(task), TINY, options={"group": 8, "credit": credit})
        batch = TensorBatch.from_numpy(task.sample(stream_rng(0, "train", 0), 32), "cpu")
        metrics = solver.train_step(batch)
        assert np.isfinite(metrics["loss"])
        reference, _ = solver.reference_thoughts(batch.traces, solver.K)
        torch.manual_seed(1)
        roll = solver.rollout(batch.questions, solver.K, 8, "sample",
                              reference=reference if credit == "truncate" else None)
        sizes[credit] = roll.cache[0][0].shape[0]
    assert sizes["truncate"] < sizes["position"] / 4, sizes


@pytest.mark.parametrize("solver", ["think_fixed_blind_super", "think_fixed_blind_super_clean_search"])
def test_bench_run_refuses_truncate_without_the_clean_reward(solver: str, tmp_path) -> None:
    from bench.cli import app

    result = CliRunner().invoke(app,
                                ["run", "--task", "add", "--max", "20", "--solver", solver, "--opt", "credit=truncate",
                                      "--steps", "1", "--results", str(tmp_path)])
    assert result.exit_code == 2 and "truncate" in result.output and "Traceback" not in result.output
    assert not any(tmp_path.rglob("spec.json"))


def test_one_rollout_per_question_truncates_too() -> None:
    """G = 1 (batch baseline) goes through the tree's bookkeeping when truncating: rows still end."""
    torch.manual_seed(0)
    task = make_task("add", 1000)
    solver = make_solver(CLEAN, TaskShape.of(task), TINY,
                         options={"group": 1, "baseline": "batch", "credit": "truncate"})
    batch = TensorBatch.from_numpy(task.sample(stream_rng(0, "train", 0), 32), "cpu")
    assert np.isfinite(solver.train_step(batch)["loss"])
    reference, _ = solver.reference_thoughts(batch.traces, solver.K)
    roll = solver.rollout(batch.questions, solver.K, 1, "sample", reference=reference)
    assert not roll.acted[:, -1].all() and roll.cache[0][0].shape[0] <= 32
