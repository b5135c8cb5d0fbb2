"""The baselines the field compares thinking against (issue 31): `cot` (chain of thought in one
stream), gpt with intermediate trace targets (`--opt aux=trace`), and `looped` (recurrent depth).

Fast checks of their contracts and refusals, and tiny real training runs (marked `learning`) that
each learns a task with a margin against gpt.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_checks import assert_one_line_error
from tiny_runs import learning_seed, report_margin
from typer.testing import CliRunner

from bench.cli import app
from bench.config import TrainConfig
from bench.run.build import build_spec, model_task
from bench.errors import UserError
from solvers.base import TaskShape, TensorBatch, configure, make_solver
from solvers.config import ModelConfig, OptimConfig
from solvers.errors import SolverError, Unsupported
from tasks.base import stream_rng

runner = CliRunner()
SMALL = ModelConfig(d_model=32, layers=2, heads=4)


def shape_of(task: str, max_value: int, **params: object):  # type: ignore[no-untyped-def]
    task_obj = model_task(task, max_value, dict(params), ModelConfig())
    return task_obj, TaskShape.of(task_obj)


def spec(solver: str, options: dict, task: str = "multiadd", **train: object):  # type: ignore[no-untyped-def]
    return build_spec(task, 100, {"terms": 4} if task == "multiadd" else {}, solver, options, ModelConfig(),
                      OptimConfig(),
                      TrainConfig(steps=3000, **train), device="cpu")


# ---- gpt --opt aux=trace -------------------------------------------------------------------------------


def test_gpt_default_is_unchanged() -> None:
    """No aux: nothing in the spec (so gpt's run ids stay), no extra weights, the core's init untouched."""
    assert spec("gpt", {}).solver_options == {}
    assert spec("gpt", {}).run_id == spec("gpt", {"aux": "none"}).run_id
    assert spec("gpt", {"aux": "trace"}).run_id != spec("gpt", {}).run_id
    _, shape = shape_of("multiadd", 100, terms=4)
    torch.manual_seed(0)
    plain = make_solver("gpt", shape, SMALL)
    torch.manual_seed(0)
    aux = make_solver("gpt", shape, SMALL, options={"aux": "trace"})
    assert set(plain.state_dict()) == {f"net.{k}" for k in plain.net.state_dict()}
    for name, tensor in plain.net.state_dict().items():  # the heads are built after the core
        assert torch.equal(tensor, aux.net.state_dict()[name]), name


def test_gpt_aux_positions_and_loss() -> None:
    _, shape = shape_of("multiadd", 100, terms=4)
    assert spec("gpt", {"aux": "trace"}).solver_options == {"aux": "trace", "aux_at": "aligned"}  # T = Lq - 1
    _, add_shape = shape_of("add", 100)
    assert configure("gpt", add_shape, {"aux": "trace"})[2].aux_at == "last"
    task, _ = shape_of("multiadd", 100, terms=4)
    batch = TensorBatch.from_numpy(task.sample(stream_rng(0, "train", 0), 16), "cpu")
    for at, heads in (("aligned", 1), ("last", 3)):
        torch.manual_seed(0)
        solver = make_solver("gpt", shape, SMALL, options={"aux": "trace", "aux_at": at, "aux_layer": 1})
        assert len(solver.aux_heads) == heads
        metrics = solver.train_step(batch)
        assert metrics["aux_loss"] > 0 and 0 <= metrics["aux_match"] <= 1
        assert solver.predict(batch.questions).answers.shape == (16, 1)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"aux": "bogus"}, "--aux='bogus' is not one of none, trace"),
        ({"aux": "trace", "aux_weight": 0.0}, "--aux-weight=0.0 is out of range"),
        ({"aux_at": "last"}, "apply only with --opt aux=trace"),
        ({"aux": "trace", "aux_layer": 0}, "--aux-layer=0 is not valid"),
    ],
)
def test_gpt_aux_bad_options(options: dict, fragment: str) -> None:
    _, shape = shape_of("multiadd", 100, terms=4)
    with pytest.raises(SolverError, match=fragment.replace("(", r"\(")):
        configure("gpt", shape, options)


def test_gpt_aux_refusals() -> None:
    no_trace = TaskShape(vocab_size=11, question_len=2, answer_len=1, trace_vocab_size=0, trace_len=0)
    with pytest.raises(Unsupported, match="needs the task's reference traces"):
        configure("gpt", no_trace, {"aux": "trace"})
    _, sort_shape = shape_of("sort", 10)  # trace longer than the question
    with pytest.raises(Unsupported, match="use aux_at=last"):
        configure("gpt", sort_shape, {"aux": "trace", "aux_at": "aligned"})
    with pytest.raises(UserError, match="--aux-layer=3 exceeds --layers=2"):
        spec("gpt", {"aux": "trace", "aux_layer": 3})
    result = runner.invoke(app, ["run", "--task", "multiadd", "--max", "100", "--solver", "gpt", "--opt", "aux=trace",
                                 "--opt", "aux_weight=-1", "--steps", "1"])
    assert_one_line_error(result, "--aux-weight=-1.0")


# ---- cot -----------------------------------------------------------------------------------------------


def test_cot_stream_and_predict() -> None:
    task, shape = shape_of("multiadd", 100, terms=4)
    torch.manual_seed(0)
    solver = make_solver("cot", shape, SMALL)
    assert solver.thought_budget() == 3 and solver.net.cfg.vocab_size == shape.vocab_size + shape.trace_vocab_size
    batch = TensorBatch.from_numpy(task.sample(stream_rng(0, "train", 0), 8), "cpu")
    assert {"train_acc", "trace_match", "loss"} <= set(solver.train_step(batch))
    prediction = solver.predict(batch.questions)
    assert prediction.answers.shape == (8,
                                        1) and prediction.thoughts is not None and prediction.thoughts.shape == (8, 3)
    assert int(prediction.answers.max()) < shape.vocab_size  # answers are task tokens, never trace tokens
    assert int(prediction.thoughts.min()) >= 0 and int(prediction.thoughts.max()) < shape.trace_vocab_size
    # The answer reads the trace: with the model's own trace teacher-forced, greedy answers agree.
    stream = torch.cat([batch.questions, prediction.thoughts + shape.vocab_size], dim=1)
    logits, _, _ = solver.net(stream)
    assert torch.equal(logits[:, -1, : shape.vocab_size].argmax(-1), prediction.answers[:, 0])
    with pytest.raises(SolverError, match="valid: 3"):
        solver.predict(batch.questions, thoughts=2)
    held_out = task.sample(stream_rng(0, "test"), 32, "test")
    diagnostics = solver.diagnostics(task, held_out, "cpu")
    assert len(diagnostics["trace_match_per_position"]) == 3 and 0 <= diagnostics["accuracy_random_thoughts"] <= 1
    forced = solver.decode(batch.questions, prediction.thoughts)  # its own trace, teacher-forced: the same answers
    assert torch.equal(forced.answers, prediction.answers) and torch.equal(forced.thoughts, prediction.thoughts)


def test_cot_refusals() -> None:
    no_trace = TaskShape(vocab_size=11, question_len=2, answer_len=1, trace_vocab_size=0, trace_len=0)
    with pytest.raises(Unsupported, match="needs the task's reference traces"):
        configure("cot", no_trace, {})
    result = runner.invoke(app,
                           ["run", "--task", "multiadd", "--max", "100", "--solver", "cot", "--eval-thoughts", "2,3",
                            "--steps", "1"])
    assert_one_line_error(result, "--eval-thoughts 2", "valid: 3")
    result = runner.invoke(app,
                           ["run", "--task", "multiadd", "--max", "100", "--solver", "cot", "--opt", "thoughts=3",
                            "--steps", "1"])
    assert_one_line_error(result, "--thoughts does not apply to solver cot")


# ---- looped --------------------------------------------------------------------------------------------


def test_looped_once_is_gpt() -> None:
    """r = 1 without injection is gpt's computation: same weights, same logits."""
    task, shape = shape_of("add", 100)
    torch.manual_seed(0)
    gpt = make_solver("gpt", shape, SMALL)
    looped = make_solver("looped", shape, SMALL, options={"thoughts": 1})
    looped.net.load_state_dict(gpt.net.state_dict())
    questions = torch.from_numpy(task.sample(stream_rng(0, "test"), 16).questions)
    expected, _, _ = gpt.net(questions)
    got, cache = looped.forward_looped(questions, 1)
    assert torch.allclose(got, expected, atol=1e-5) and len(cache) == 2


@pytest.mark.parametrize("inject", [False, True])
def test_looped_cached_decoding_matches_full_pass(inject: bool) -> None:
    task, shape = shape_of("sort", 10, length=4)  # four answer tokens: decoding uses the cache
    torch.manual_seed(0)
    looped = make_solver("looped", shape, SMALL, options={"thoughts": 3, "inject": inject})
    questions = torch.from_numpy(task.sample(stream_rng(0, "test"), 8).questions)
    answers = looped.predict(questions).answers
    assert answers.shape == (8, shape.answer_len)
    full, cache = looped.forward_looped(torch.cat([questions, answers[:, :-1]], dim=1), 3)
    assert len(cache) == 3 * 2
    assert torch.equal(full[:, shape.question_len - 1 :].argmax(-1), answers)
    # r = 0 (the embeddings alone) keeps no cache, so positions must still advance while decoding.
    bare = looped.predict(questions, thoughts=0).answers
    full, _ = looped.forward_looped(torch.cat([questions, bare[:, :-1]], dim=1), 0)
    assert torch.equal(full[:, shape.question_len - 1 :].argmax(-1), bare)


def test_looped_budget_and_refusals() -> None:
    _, shape = shape_of("multiadd", 100, terms=4)
    with pytest.raises(SolverError, match="exceeds --max-thoughts=16"):
        configure("looped", shape, {"thoughts": 17})
    with pytest.raises(UserError, match="--eval-thoughts 20 exceeds --max-thoughts=16"):
        spec("looped", {}, eval_thoughts=(2, 20))
    torch.manual_seed(0)
    varied = make_solver("looped", shape, SMALL, options={"thoughts": 4, "vary_thoughts": True})
    drawn = {varied.sample_r() for _ in range(200)}
    assert drawn == {1, 2, 3, 4}  # Geiping's per-step depth, never the empty stack
    result = runner.invoke(app,
                           ["run", "--task", "multiadd", "--max", "100", "--solver", "looped", "--opt", "inject=maybe",
                            "--steps", "1"])
    assert result.exit_code == 2 and "inject" in result.stderr and "Traceback" not in result.output


# ---- bench perf looped / baselines -----------------------------------------------------------------------


def test_perf_looped_counts_shared_depth_as_depth() -> None:
    from bench.perf.baselines import looped_step_cost

    rows = looped_step_cost([1, 3], "multiadd", 10, {"terms": 3}, batch=8, d_model=16, layers=1, heads=4, repeats=1)
    one, three = rows
    assert one["flop_ratio"] == pytest.approx(1.0, rel=0.02) and three["flop_ratio"] == pytest.approx(1.0, rel=0.02)
    assert three["looped_flops"] > 2.5 * one["looped_flops"]  # compute grows with r
    assert three["looped_params"] == one["looped_params"] < three["gpt_params"]  # weights shared
    assert_one_line_error(runner.invoke(app, ["perf", "looped", "--rounds", "0"]), "--rounds '0'", "1..16")
    assert_one_line_error(runner.invoke(app, ["perf", "baselines", "--format", "csv"]), "--format 'csv'")


# ---- learning ----------------------------------------------------------------------------------------------


def train(solver_name: str, task: object, shape: TaskShape, steps: int, seed: int, d_model: int, lr: float,
          options: dict | None = None) -> float:
    """Train on fresh batches of 64 training problems; accuracy on 400 fixed training-split
    questions (this tests that the loop learns, not generalisation)."""
    torch.manual_seed(seed)
    solver = make_solver(solver_name, shape, ModelConfig(d_model=d_model, layers=2, heads=4), OptimConfig(lr=lr),
                         options or {})
    seen = task.sample(stream_rng(7, "train"), 400, "train")  # type: ignore[attr-defined]
    for step in range(steps):
        torch.manual_seed(step)
        solver.train_step(TensorBatch.from_numpy(task.sample(stream_rng(seed, "train", step), 64), "cpu"))  # type: ignore[attr-defined]
    answers = solver.predict(torch.from_numpy(seen.questions)).answers.numpy()
    return float(np.mean(task.verify_batch(seen.questions, answers)))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def multiadd_gpt() -> float:
    """gpt on multiadd mod 10 with 4 terms, 500 steps: the bar cot and aux must clear."""
    task, shape = shape_of("multiadd", 10, terms=4)
    return train("gpt", task, shape, 500, learning_seed(), 64, 3e-3)


@pytest.mark.learning
def test_cot_learns_multiadd_where_gpt_does_not(multiadd_gpt: float) -> None:
    # margin: cot 0.988-1.000 at step 300, gpt 0.150-0.180 at step 500, seeds 0-2 under default/avx2/native;
    # asserts cot >= 0.9 and gpt <= 0.5
    task, shape = shape_of("multiadd", 10, terms=4)
    accuracy = train("cot", task, shape, 300, learning_seed(), 64, 3e-3)
    report_margin("cot_multiadd", accuracy, 0.9)
    assert accuracy >= 0.9 and multiadd_gpt <= 0.5, (accuracy, multiadd_gpt)


@pytest.mark.learning
def test_gpt_aux_learns_multiadd_better_than_gpt(multiadd_gpt: float) -> None:
    # margin: aux 0.733-0.830 against gpt's 0.150-0.180 at step 500 (gap >= 0.575), seeds 0-2 under
    # default/avx2/native; asserts a gap >= 0.3
    task, shape = shape_of("multiadd", 10, terms=4)
    accuracy = train("gpt", task, shape, 500, learning_seed(), 64, 3e-3, {"aux": "trace"})
    report_margin("gpt_aux_gap_multiadd", accuracy - multiadd_gpt, 0.3)
    assert accuracy >= multiadd_gpt + 0.3, (accuracy, multiadd_gpt)


@pytest.mark.learning
def test_looped_learns_as_well_as_gpt() -> None:
    # margin: looped (r = 2, injection) and gpt both 1.000 at step 200, seeds 0-2 under default/avx2/native;
    # asserts looped >= 0.95 and >= gpt - 0.05
    task, shape = shape_of("multiadd", 5, terms=3)
    looped = train("looped", task, shape, 200, learning_seed(), 32, 3e-3, {"thoughts": 2, "inject": True})
    gpt = train("gpt", task, shape, 200, learning_seed(), 32, 3e-3)
    report_margin("looped_multiadd", looped, 0.95)
    assert looped >= 0.95 and looped >= gpt - 0.05, (looped, gpt)


def test_bench_solvers_lists_the_baselines() -> None:
    result = runner.invoke(app, ["solvers"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for fragment in ("cot", "explicit chain of thought", "looped", "recurrent depth", "--inject", "--aux-at"):
        assert fragment in result.output, fragment
