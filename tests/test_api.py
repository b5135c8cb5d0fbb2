"""The Python API (`import thinkbench`, bench/api.py): README's "From Python" code run as written, and
what it promises: the same problems as `bench sample`, the task's own verifier as the score, a
seeded token stream that DataLoader workers share out, and `run` giving `bench run`'s run id."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import thinkbench as tb
from bench.cli import app
from tasks import TaskError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def readme_python_block() -> str:
    """The first ```python block of README's "From Python" section, exactly as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## From Python\n", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "README's From Python section has no python block"
    return found.group(1)


def test_readme_from_python_runs_as_written_and_matches_bench_run(tmp_path: Path) -> None:
    code = readme_python_block()
    (tmp_path / "snippet.py").write_text(code, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("THINKBENCH_RESULTS", None)  # the snippet writes ./results, as a reader's would
    done = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    # the printed example values are what the code prints
    assert lines[0] == "{'operands': [76, 75], 'modulus': 100} 51 2"
    assert lines[1] == "torch.Size([64, 6]) torch.Size([64, 6]) 101"
    run_id, state = lines[2].split()[:2]
    assert state == "finished" and (tmp_path / "results" / "runs" / run_id / "evaluation.json").exists()
    # `bench run` with the same settings names the same run and serves it without training
    again = runner.invoke(app,
                          ["run", "--task", "add", "--solver", "gpt", "--max", "20", "--steps", "100", "--eval-every",
                           "50",
                                "--eval-size", "100", "--seed", "0", "--quiet", "--results", str(tmp_path / "results")])
    assert again.exit_code == 0, again.output[-2000:]
    assert f"run {run_id}" in again.stderr and "already finished" in again.stderr


def test_create_dataset_draws_what_bench_sample_draws() -> None:
    problems = tb.create_dataset("sort", size=7, seed=3, split="monitor", max=50, length=5)
    result = runner.invoke(app,
                           ["sample", "--task", "sort", "--max", "50", "--set", "length=5", "-n", "7", "--seed", "3",
                                 "--split", "monitor", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(problems) == len(records) == 7
    for entry, record in zip(problems, records):
        assert entry["question"] == {"values": record["values"]}
        assert entry["answer"] == record["answer"] == sorted(record["values"])
        assert (entry["trace"], entry["meta"], entry["params"]) == (record["trace"], record["meta"], record["params"])
        assert entry["depth"] == record["meta"]["depth"] and entry["split"] == "monitor"
    # another seed, another split: other problems
    assert [e["question"] for e in tb.create_dataset("sort", 7, seed=4, split="monitor", max=50, length=5)] != \
        [e["question"] for e in problems]


@pytest.mark.parametrize("name", tb.task_names())
def test_score_answer_is_the_tasks_verifier(name: str) -> None:
    problems = tb.create_dataset(name, size=6, seed=1, split="test")
    task = problems.task
    for entry in problems:
        assert tb.score_answer(entry["answer"], entry) == 1.0
        assert problems.score_answer(json.dumps(entry["answer"]), entry) == 1.0  # a model's text
        assert tb.score_answer("certainly not", entry) == 0.0
        assert task.verify_json(entry["question"], entry["answer"])
    # a wrong answer of the right shape scores 0 (the token-level verifier agrees)
    wrong = [tb.score_answer(task.answer_json(np.roll(problems.batch.answers, 1, axis=0)[i]), entry)
             for i, entry in enumerate(problems)]
    distinct = [json.dumps(problems[i]["answer"]) != json.dumps(problems[i - 1]["answer"])
                for i in range(len(problems))]
    # (sat: another formula's assignment may satisfy this one too)
    assert all(score == 0.0 for score, differs in zip(wrong, distinct) if differs) or name == "sat"


def test_any_shortest_path_scores_one() -> None:
    # graph: the verifier never reads the stored path; a different shortest path passes
    problems = tb.create_dataset("graph", size=40, seed=0, split="train", max=8)
    rescored = 0
    for entry in problems:
        path = entry["answer"]
        if path and len(path) >= 2:
            reversed_problem = {**entry["question"], "source": path[-1], "target": path[0]}
            if not entry["question"]["directed"]:
                assert tb.score_answer(path[::-1], {**entry, "question": reversed_problem}) == 1.0
                rescored += 1
            assert tb.score_answer(path[:-1], entry) == 0.0  # stops short of the target
    assert rescored > 5


def test_task_stream_is_seeded_verified_and_shared_by_workers() -> None:
    task = tb.make_task("add", max=50)
    stream = tb.TaskStream(task, batch_size=16, seed=2, steps=6)
    batches = list(stream)
    assert len(batches) == 6
    for batch in batches:
        assert batch["questions"].dtype == torch.long and batch["questions"].shape == (16, task.question_len)
        assert batch["answers"].shape == (16, task.answer_len) and batch["depth"].shape == (16,)
        assert task.verify_batch(batch["questions"].numpy(), batch["answers"].numpy()).all()
        assert int(batch["questions"].max()) < task.vocab_size
    again = list(tb.TaskStream(task, batch_size=16, seed=2, steps=6))
    assert all(torch.equal(a["questions"], b["questions"]) for a, b in zip(batches, again))
    assert not torch.equal(batches[0]["questions"], batches[1]["questions"])
    # a restart at step 3 continues the same stream
    resumed = list(tb.TaskStream(task, batch_size=16, seed=2, steps=3, start=3))
    assert all(torch.equal(a["questions"], b["questions"]) for a, b in zip(batches[3:], resumed))
    # two DataLoader workers yield every step once between them
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    seen = sorted(tuple(batch["questions"].flatten().tolist()) for batch in loader)
    assert seen == sorted(tuple(batch["questions"].flatten().tolist()) for batch in batches)
    # the train split only
    assert task.split_mask(torch.cat([b["questions"] for b in batches]).numpy(), "train").all()


def test_bad_input_is_one_line_naming_the_valid_values(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"unknown task 'nope'; valid: .*add"):
        tb.create_dataset("nope", 3)
    with pytest.raises(TaskError, match=r"unknown parameter 'lenght'; valid: length, max"):
        tb.make_task("sort", lenght=5)
    with pytest.raises(tb.UserError, match=r"size=0 out of range"):
        tb.create_dataset("add", 0)
    with pytest.raises(TaskError, match=r"unknown split 'validation'; valid: train, monitor, test"):
        tb.create_dataset("add", 3, split="validation")
    with pytest.raises(tb.UserError, match=r"unknown run setting 'stpes'; valid: .*steps"):
        tb.run("add", max=20, stpes=10, results=tmp_path)
    with pytest.raises(tb.UserError, match=r"--log 'mlflow' is not one of|log 'mlflow' is not one of"):
        tb.run("add", max=20, steps=10, log="mlflow", results=tmp_path)
    with pytest.raises(tb.UserError, match=r"entry must be a dict"):
        tb.score_answer(3, {"question": {"operands": [1, 2]}})
    with pytest.raises(tb.UserError, match=r"batch_size=0"):
        tb.TaskStream(tb.make_task("add"), batch_size=0)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
