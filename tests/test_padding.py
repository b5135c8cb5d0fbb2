"""gpt's `--opt pad=trim` (issue 27, no padding work): question PADs masked as keys and not computed.

Trimmed and untrimmed (full layout, same key mask) forward passes agree at every kept position, for
graph's PAD-in-the-middle layout, sat's PAD-at-the-end one and a hand-made batch of mixed lengths;
the gpt solver's loss and cached decoding match the untrimmed masked model; the option enters the
spec only when set (existing run ids stay), and bad values are refused in one line.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app
from bench.config import configs_from
from bench.run.build import build_spec
from cli_checks import assert_one_line_error
from solvers.base import TaskShape, TensorBatch, make_solver
from solvers.config import ModelConfig
from solvers.core import CoreConfig, Transformer
from solvers.gpt import answer_loss
from solvers.padding import (kept_share, key_padding_mask, masked_greedy_decode, masked_hidden, question_padding,
                             trimmed_tail_hidden)
from tasks.base import stream_rng
from tasks.registry import make_task

runner = CliRunner()


def task_sequence(name: str, max_value: int, rows: int = 96) -> tuple[torch.Tensor, int, int, int]:
    """(inputs fed in training (B, Lq + La - 1), Lq, La, vocab) of a real task batch."""
    task = make_task(name, max_value, {})
    batch = task.sample(stream_rng(0, "test-padding", 0), rows, "train")
    sequence = torch.cat([torch.as_tensor(batch.questions), torch.as_tensor(batch.answers)], dim=1)[:, :-1]
    return sequence, task.question_len, task.answer_len, task.vocab_size


def core(vocab: int, max_len: int) -> Transformer:
    torch.manual_seed(0)
    return Transformer(CoreConfig(vocab_size=vocab, max_len=max_len, d_model=32, layers=2, heads=4)).eval()


@pytest.mark.parametrize(("task", "max_value"), [("graph", 6), ("sat", 4)])
@pytest.mark.parametrize("chunks", [1, 3])
def test_trimmed_forward_equals_the_masked_full_layout(task: str, max_value: int, chunks: int) -> None:
    sequence, q_len, a_len, vocab = task_sequence(task, max_value)
    net = core(vocab, q_len + a_len)
    full = masked_hidden(net, sequence, q_len)[:, q_len - 1 :]
    trimmed = trimmed_tail_hidden(net, sequence, q_len, chunks=chunks)
    assert trimmed.shape == full.shape
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16: the same up to bf16 rounding
        full_bf16 = masked_hidden(net, sequence, q_len)[:, q_len - 1 :].float()
        trimmed_bf16 = trimmed_tail_hidden(net, sequence, q_len, chunks=chunks).float()
    torch.testing.assert_close(trimmed_bf16, full_bf16, atol=4e-3, rtol=2e-2)
    # and the mask matters: the plain model (attending to PADs) computes something else
    _, _, plain = net(sequence, hidden_layer=2, compute_logits=False)
    assert (plain[:, q_len - 1 :] - full).abs().max() > 1e-3


def test_graph_layout_has_pad_between_the_edges_and_the_query() -> None:
    sequence, q_len, _, _ = task_sequence("graph", 6)
    pad = question_padding(sequence[:, :q_len])
    assert pad.any() and not pad[:, -2:].any()  # source and target come after the PAD pairs
    edges_end = (~pad[:, :-2]).sum(dim=1)  # every row: edges first, then only PAD up to the query
    for row, end in enumerate(edges_end.tolist()):
        assert not pad[row, :end].any() and pad[row, end : q_len - 2].all()
    # a batch of 96 drops the columns no problem uses; the share computed is well under 1
    assert 0.4 < kept_share(sequence[:, :q_len], 6, chunks=3) < 0.8


def test_mixed_lengths_keep_positions_and_row_order() -> None:
    # Hand-made: 4 rows with 0..3 trailing PADs before the last question token, PAD also mid-question.
    questions = torch.tensor([[3, 4, 5, 6, 7, 2], [3, 4, 5, 6, 0, 2], [3, 4, 0, 0, 0, 2], [3, 0, 5, 0, 0, 0]])
    answers = torch.tensor([[1, 2], [2, 0], [1, 1], [2, 2]])
    sequence = torch.cat([questions, answers], dim=1)[:, :-1]
    net = core(8, 8)
    full = masked_hidden(net, sequence, 6)[:, 5:]
    for chunks in (1, 2, 4):
        torch.testing.assert_close(trimmed_tail_hidden(net, sequence, 6, chunks=chunks), full, atol=1e-5, rtol=1e-5)
    # a PAD at the last question position is not padding (it reads out the first answer token)
    assert question_padding(questions)[3].tolist() == [False, True, False, True, True, False]
    mask = key_padding_mask(question_padding(questions))
    assert mask.shape == (4, 1, 6, 6) and mask[:, 0].diagonal(dim1=1, dim2=2).all()  # no empty softmax row
    assert not mask[2, 0, 5, 2] and mask[2, 0, 5, 1] and not mask[0, 0, 1, 2]  # PAD key masked; causal


def test_positions_are_checked() -> None:
    net = core(8, 8)
    with pytest.raises(ValueError, match="positions"):
        net(torch.ones(1, 3, dtype=torch.long), positions=torch.tensor([0, 1, 9]))


def gpt_pair(task: str, max_value: int) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    shape = TaskShape.of(make_task(task, max_value, {}))
    torch.manual_seed(0)
    plain = make_solver("gpt", shape, ModelConfig(32, 2, 4))
    torch.manual_seed(0)
    trim = make_solver("gpt", shape, ModelConfig(32, 2, 4), options={"pad": "trim"})
    return plain, trim, shape


def test_gpt_pad_trim_loss_and_decoding_match_the_masked_model() -> None:
    plain, trim, _ = gpt_pair("graph", 6)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), trim.parameters()))  # same init draws
    batch = make_task("graph", 6, {}).sample(stream_rng(1, "test-padding", 0), 64, "train")
    tensors = TensorBatch.from_numpy(batch, "cpu")
    loss, _ = trim.loss(tensors)
    q_len = tensors.questions.shape[1]
    sequence = torch.cat([tensors.questions, tensors.answers], dim=1)[:, :-1]
    hidden = masked_hidden(trim.net, sequence, q_len)[:, q_len - 1 :]
    reference, _ = answer_loss(trim.net.head(trim.net.ln_f(hidden)), tensors.answers)
    torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-5)
    assert abs(float(plain.loss(tensors)[0].detach()) - float(loss.detach())) > 1e-4  # not the plain model
    # cached decoding under the mask = decoding without a cache, recomputing the full masked layout
    predicted = trim.predict(tensors.questions).answers
    assert torch.equal(predicted, masked_greedy_decode(trim.net, tensors.questions, 6))
    prefix = tensors.questions
    with torch.no_grad():
        for _ in range(6):
            hidden = masked_hidden(trim.net, prefix, q_len)
            prefix = torch.cat([prefix, trim.net.head(trim.net.ln_f(hidden[:, -1])).argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(predicted, prefix[:, q_len:])
    trim.train_step(tensors)  # a training step runs end to end (backward through the trimmed groups)


def test_pad_trim_enters_the_spec_only_when_set() -> None:
    _, train, model, optim = configs_from({"steps": 3000, "seed": 0})
    default = build_spec("add", 200, {}, "gpt", {}, model, optim, train, device="cpu")
    assert default.run_id == "ba94c602ce18"  # pinned in tests/test_precision.py: unchanged by the new option
    assert "pad" not in default.solver_options
    trimmed = build_spec("add", 200, {}, "gpt", {"pad": "trim"}, model, optim, train, device="cpu")
    assert trimmed.solver_options["pad"] == "trim" and trimmed.run_id != default.run_id


@pytest.mark.parametrize(
    ("args", "fragments"),
    [(["run", "--task", "graph", "--max", "6", "--opt", "pad=pack"], ("pack", "trim")),
     (["run", "--task", "multiadd", "--max", "10", "--opt", "pad=trim", "--opt", "aux=trace"], ("pad=trim", "aux")),
     (["perf", "train", "--threads", "0,2"], ("--threads", "1..1024")),
     (["perf", "train", "--threads", "one"], ("one",))],
)
def test_bad_padding_and_thread_input_is_one_line(args: list[str], fragments: tuple[str, ...]) -> None:
    assert_one_line_error(runner.invoke(app, args), *fragments)


def test_kept_share_of_unpadded_tasks_is_one() -> None:
    questions = torch.as_tensor(np.arange(1, 65).reshape(32, 2))
    assert kept_share(questions, 1) == 1.0


def test_perf_train_times_trim_at_each_thread_count() -> None:
    import json

    result = runner.invoke(app, ["perf", "train", "--task", "graph", "--max", "6", "--d-model", "16", "--layers", "1",
                                 "--batch", "64", "--steps", "1", "--rounds", "2", "--threads", "1,2",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["by_threads"]) == {"1", "2"} and report["threads"] == 1
    for figures in report["by_threads"].values():
        assert figures["bf16_trim_ratio"] > 0 and len(figures["rounds"]["project_bf16_trim"]) == 2
        assert 0 < figures["trim_roofline_share"] < 1.5
    assert 0.4 < report["trim_kept_share"] < 0.8  # graph 6 drops its PAD edge pairs
    assert report["trim_gflop_per_step"] < report["gflop_per_step"]


def test_pad_trim_is_the_plain_model_where_nothing_is_padded() -> None:
    plain, trim, _ = gpt_pair("add", 50)  # add's questions hold no PAD: the mask is the causal one
    problems = make_task("add", 50, {}).sample(stream_rng(2, "test-padding", 0), 64, "train")
    batch = TensorBatch.from_numpy(problems, "cpu")
    torch.testing.assert_close(trim.loss(batch)[0], plain.loss(batch)[0], atol=1e-6, rtol=1e-6)
    assert torch.equal(trim.predict(batch.questions).answers, plain.predict(batch.questions).answers)
