"""Leak-free evaluation (canonical-form splits, distinct test problems, monitor apart from test), the
question layout (query and separator tokens), the weight init and the learning-rate warm-up."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench.cli import app
from bench.run.spec import TrainConfig
from bench.run.train import model_task, monitor_set, evaluation_set
from cli_checks import assert_one_line_error
from solvers.base import ModelConfig, OptimConfig, set_learning_rate
from solvers.core import CoreConfig, Transformer
from tasks import make_task, stream_rng
from tasks.prompt import PromptedTask


def split_name(task, questions: np.ndarray) -> list[str]:
    return [next(s for s in ("train", "monitor", "test") if task.split_mask(q[None], s)[0]) for q in questions]


@settings(max_examples=60, deadline=None)
@given(m=st.integers(9, 2000), data=st.data())
def test_add_swapped_operands_share_a_split(m: int, data: st.DataObject) -> None:
    task = make_task("add", m)
    a = data.draw(st.integers(0, m - 1))
    b = data.draw(st.integers(0, m - 1))
    pair = np.array([[a + 1, b + 1], [b + 1, a + 1]])
    first, second = split_name(task, pair)
    assert first == second


@pytest.mark.parametrize("name", ["multiadd", "sort"])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_permutations_share_a_split(name: str, seed: int, data: st.DataObject) -> None:
    task = make_task(name, data.draw(st.sampled_from([7, 50, 1000])))
    question = task.sample(stream_rng(seed, "train"), 1).questions[0]
    order = data.draw(st.permutations(list(range(len(question)))))
    shuffled = question[np.array(order)]
    assert split_name(task, np.stack([question, shuffled])) == split_name(task, question[None]) * 2


def test_small_test_split_is_evaluated_exhaustively() -> None:
    task = make_task("add", 20)
    every = np.array([(a + 1, b + 1) for a in range(20) for b in range(a, 20)])
    expected = {tuple(q) for q in every[task.split_mask(every, "test")]}
    batch, exhaustive = task.distinct_problems(stream_rng(0, "test"), 2000, "test")
    assert exhaustive
    assert {tuple(sorted(q)) for q in batch.questions} == expected
    assert len(batch) == len(expected)


def test_large_test_split_is_sampled_not_exhausted() -> None:
    batch, exhaustive = make_task("add", 1000).distinct_problems(stream_rng(0, "test"), 500, "test")
    assert len(batch) == 500 and not exhaustive


@pytest.mark.parametrize("max_value", [20, 200])
def test_no_monitor_problem_is_a_test_problem(max_value: int) -> None:
    task = model_task("add", max_value, {}, ModelConfig())
    cfg = TrainConfig()
    test, _ = evaluation_set(task, cfg)
    monitor = monitor_set(task, cfg)
    canon = lambda batch: {r.tobytes() for r in np.ascontiguousarray(task.canonical_questions(batch.questions))}  # noqa: E731
    assert canon(test) and canon(monitor)
    assert not canon(test) & canon(monitor)
    # and every one of them is distinct: n counts distinct problems
    assert len(canon(test)) == len(test)


@pytest.mark.parametrize("style, expected",
                         [("plain", [[3, 5]]), ("query", [[3, 5, 21]]), ("separated", [[3, 21, 5, 21]])])
def test_prompt_layouts(style: str, expected: list[list[int]]) -> None:
    task = PromptedTask(make_task("add", 20), style)
    laid = task.lay_out(np.array([[3, 5]]))
    assert laid.tolist() == expected
    assert task.question_len == len(expected[0])
    assert task.vocab_size == 21 + (style != "plain")
    np.testing.assert_array_equal(task.strip(laid), [[3, 5]])


@pytest.mark.parametrize("name", ["add", "multiadd", "sort", "graph", "sat"])
@pytest.mark.parametrize("style", ["query", "separated"])
def test_prompted_tasks_verify_their_own_answers(name: str, style: str) -> None:
    task = PromptedTask(make_task(name), style)
    batch = task.sample(stream_rng(3, "test"), 16, "test")
    assert batch.questions.shape == (16, task.question_len)
    assert (batch.questions < task.vocab_size).all()
    assert task.verify_batch(batch.questions, batch.answers).all()
    assert task.render(batch.questions[0],
                       batch.answers[0]) == task.inner.render(task.strip(batch.questions[0]), batch.answers[0])


def test_weight_inits_differ_in_scale() -> None:
    torch.manual_seed(0)
    small = Transformer(CoreConfig(vocab_size=50, max_len=4, init="gpt2"))
    default = Transformer(CoreConfig(vocab_size=50, max_len=4, init="pytorch"))
    assert abs(float(small.tok_emb.weight.detach().std()) - 0.02) < 0.005
    assert abs(float(default.tok_emb.weight.detach().std()) - 1.0) < 0.1
    with pytest.raises(ValueError, match="init"):
        Transformer(CoreConfig(vocab_size=5, max_len=4, init="xavier"))


def test_warmup_scales_every_group_from_its_base_rate() -> None:
    cfg = OptimConfig(lr=1e-3, warmup=4)
    assert [cfg.lr_factor(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert OptimConfig().lr_factor(0) == 1.0
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [param], "lr": 2e-3}])
    for step in (0, 1, 0):
        set_learning_rate(optimizer, cfg.lr_factor(step))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-3 * 0.25)


@pytest.mark.parametrize(
    "flag, value, fragment",
    [("--prompt", "colon", "plain, query, separated"), ("--weight-init", "xavier", "gpt2, pytorch"),
     ("--warmup", "-1", "--warmup=-1")],
)
def test_bad_model_settings_are_one_line(tmp_path, flag: str, value: str, fragment: str) -> None:
    result = CliRunner().invoke(app, ["run", "--task", "add", "--max", "20", flag, value, "--results", str(tmp_path)])
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
