"""Reading results: the frontier and the area under the curve, `bench plot`, `bench inspect`."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench.cli import app
from bench.analysis.frontier import area_under_curve, config_columns, frontier, normalised_auc, run_table, seed_summary
from bench.run.spec import TrainConfig
from bench.run.store import RunDir, atomic_write_json
from bench.run.train import build_spec, start_run
from solvers.base import ModelConfig, OptimConfig

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def bench(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def table(rows: list[tuple]) -> pd.DataFrame:
    """(solver, scale, seed, accuracy) rows with target 0.9."""
    return pd.DataFrame([{"task": "add", "solver": s, "scale": m, "seed": k, "accuracy": a, "target": 0.9}
                         for s, m, k, a in rows])


# ---- frontier and AUC ------------------------------------------------------------------------------


def test_frontier_is_the_largest_scale_reached_contiguously_by_most_seeds():
    runs = table([
        # gpt: 2/2 seeds at 10, 1/2 at 20 (a rate of 0.5), 0/2 at 40, then a lucky 2/2 at 80
        ("gpt", 10, 0, 1.0), ("gpt", 10, 1, 0.95), ("gpt", 20, 0, 0.91), ("gpt", 20, 1, 0.2),
        ("gpt", 40, 0, 0.1), ("gpt", 40, 1, 0.3), ("gpt", 80, 0, 0.99), ("gpt", 80, 1, 0.99),
        # think: fails at the smallest scale already
        ("think", 10, 0, 0.5), ("think", 10, 1, 0.5), ("think", 20, 0, 1.0), ("think", 20, 1, 1.0),
    ])
    result = frontier(runs, min_rate=0.5).set_index("solver")
    assert result.loc["gpt", "frontier"] == 20  # the lucky pass at 80 does not count: 40 failed
    assert math.isnan(result.loc["think", "frontier"])
    assert frontier(runs, min_rate=1.0).set_index("solver").loc["gpt", "frontier"] == 10
    summary = seed_summary(runs).set_index(["solver", "scale"])
    assert summary.loc[("gpt", 20), "success_rate"] == 0.5 and summary.loc[("gpt", 20), "seeds"] == 2
    assert summary.loc[("gpt", 20), "accuracy"] == pytest.approx(0.555)


def test_auc_is_a_mean_accuracy_over_log_scale():
    assert normalised_auc([10, 20, 40], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert normalised_auc([10, 20, 80], [1.0, 1.0, 0.0]) == pytest.approx((1 * 1 + 2 * 0.5) / 3)  # log2 spacing
    assert normalised_auc([10, 20, 80], [1.0, 1.0, 0.0], log_scale=False) == pytest.approx((10 * 1 + 60 * 0.5) / 70)
    assert normalised_auc([50], [0.7]) == 0.7
    runs = table([("gpt", 10, 0, 1.0), ("gpt", 10, 1, 0.0), ("gpt", 20, 0, 0.0), ("gpt", 20, 1, 0.0)])
    assert area_under_curve(runs).loc[0, "auc"] == pytest.approx(0.25)  # seeds averaged first


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([8, 16, 32, 64, 128]), st.integers(0, 3), st.floats(0, 1)), min_size=1,
                max_size=25))
def test_frontier_and_auc_properties(points):
    runs = table([("gpt", m, k, a) for m, k, a in points]).drop_duplicates(["scale", "seed"])
    auc = area_under_curve(runs).loc[0, "auc"]
    assert 0.0 <= auc <= 1.0 + 1e-12
    strict, lenient = (frontier(runs, min_rate=r).loc[0, "frontier"] for r in (1.0, 0.25))
    tested = sorted(runs["scale"].unique())
    for value in (strict, lenient):
        assert math.isnan(value) or value in tested
    # Asking more of the seeds never moves the frontier up.
    assert math.isnan(strict) or (not math.isnan(lenient) and strict <= lenient)
    constant = runs.assign(accuracy=0.4)
    assert area_under_curve(constant).loc[0, "auc"] == pytest.approx(0.4)


# ---- plots from a results store -----------------------------------------------------------------------


def fake_run(root: Path, solver: str, scale: int, seed: int, accuracy: float, thoughts: int | None = None,
             budgets: dict[int, float] | None = None) -> str:
    """A finished run written straight into the store (no training): spec, status, evaluation, curve."""
    options = {"thoughts": thoughts} if thoughts is not None else {}
    spec = build_spec("add", scale, {}, solver, options, ModelConfig(16, 1, 2), OptimConfig(),
                      TrainConfig(steps=20, eval_every=10, seed=seed, eval_thoughts=tuple(budgets or ())), "cpu")
    run = RunDir(root, spec.run_id)
    overall = {"n": 100, "correct": int(accuracy * 100), "accuracy": accuracy, "low": max(0, accuracy - 0.1),
               "high": min(1, accuracy + 0.1)}
    atomic_write_json(run.file("spec.json"), spec.to_json())
    atomic_write_json(run.file("status.json"), {"state": "finished", "step": 20, "elapsed": 1.0, "accuracy": accuracy})
    atomic_write_json(run.file("curve.json"), [{"step": 10, "loss": 2.0, "accuracy": accuracy / 2, "elapsed": 0.5},
                                               {"step": 20, "loss": 1.0, "accuracy": accuracy, "elapsed": 1.0}])
    budget_entries = [{"thoughts": k, "overall": {**overall, "accuracy": a}, "by": {}}
                      for k, a in (budgets or {}).items()]
    atomic_write_json(run.file("evaluation.json"), {"final": {"thoughts": thoughts, "overall": overall, "by": {}},
                                                    "budgets": budget_entries, "diagnostics": {}})
    return spec.run_id


@pytest.fixture
def store(tmp_path) -> Path:
    root = tmp_path / "results"
    for seed in (0, 1, 2):
        for scale in (8, 16, 32):
            fake_run(root, "gpt", scale, seed, 1.0 if scale == 8 else 0.1 * seed)
            for k in (1, 2):
                fake_run(root, "pause", scale, seed, 0.5, thoughts=k, budgets={0: 0.2, 1: 0.4, 3: 0.6})
    return root


def test_plot_writes_the_three_figures_and_prints_their_paths(store):
    result = bench("plot", "--results", str(store))
    assert result.exit_code == 0, result.stderr
    paths = [Path(line) for line in result.stdout.split()]
    assert sorted(p.name for p in paths) == ["accuracy-vs-budget-add.png", "accuracy-vs-scale-add.png",
                                             "curves-add.png"]
    for path in paths:
        assert path.parent == store / "plots" and path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000
    runs = run_table(store)
    assert len(runs) == 3 * 3 * 3 and config_columns(runs) == ["task", "solver", "thoughts"]


def test_plot_filters_and_kinds(store, tmp_path):
    only_gpt = bench("plot", "--results", str(store), "--solver", "gpt", "--kind", "scale,budget", "--out",
                     str(tmp_path / "p"))
    assert only_gpt.exit_code == 0, only_gpt.stderr
    assert [Path(p).name for p in only_gpt.stdout.split()] == ["accuracy-vs-scale-add.png"]  # gpt has no budgets
    some = run_table(store)["run_id"].tolist()[:2]
    two = bench("plot", *some, "--results", str(store), "--kind", "curves", "--out", str(tmp_path / "p"))
    assert two.exit_code == 0 and [Path(p).name for p in two.stdout.split()] == ["runs-curves-add.png"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--kind", "pie"], "--kind 'pie' is not valid"),
        (["--task", "sort"], "no finished runs to plot"),
        (["--sweep", "nosuch"], "no sweep 'nosuch'"),
        (["abc123"], "no run 'abc123'"),
        (["--solver", "gpt", "--kind", "budget"], "nothing to draw for --kind budget"),
    ],
)
def test_plot_bad_input_is_one_line(store, args, fragment):
    result = bench("plot", *args, "--results", str(store))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr


# ---- inspect -------------------------------------------------------------------------------------------


def test_inspect_shows_thoughts_trace_answers_and_diagnostics(tmp_path):
    root = tmp_path / "results"
    train = TrainConfig(steps=20, eval_every=10, eval_size=64, monitor_size=64, batch=32)
    thinker = build_spec("add", 11, {}, "think_fixed_blind_super", {"thoughts": 2}, ModelConfig(16, 1, 2),
                         OptimConfig(), train, "cpu")
    gpt = build_spec("add", 11, {}, "gpt", {}, ModelConfig(16, 1, 2), OptimConfig(), train, "cpu")
    for spec in (thinker, gpt):
        start_run(spec, root)

    result = bench("inspect", thinker.run_id[:6], "-n", "5", "--results", str(root))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "model thoughts (as trace)" in out and "(mod 11)" in out and "trace" in out
    assert out.count("✓") + out.count("✗") == 5
    assert "shown problems right" in out and "usefulness" in out and "trace match" in out

    wrong = bench("inspect", thinker.run_id, "-n", "3", "--wrong", "--results", str(root))
    assert wrong.exit_code == 0 and wrong.stdout.count("✗") == 3 and "✓" not in wrong.stdout

    plain = bench("inspect", gpt.run_id, "-n", "2", "--results", str(root))
    assert plain.exit_code == 0 and "reports no thought diagnostics" in plain.stdout

    code = bench("inspect", thinker.run_id, "-n", "1", "--code", "--results", str(root))  # what the thoughts encode
    assert code.exit_code == 0, code.stderr
    for text in ("what the thoughts encode", "thought 1", "thought 2", "answer digit 1", "carry out of column 1",
                 "chance",
                 "distinct thought strings", "distinct answers"):
        assert text in " ".join(code.stdout.split())  # rich wraps long lines
    for refused in (bench("inspect", gpt.run_id, "--code", "--results", str(root)),
                    bench("inspect", thinker.run_id, "--code", "-k", "0", "--results", str(root))):
        assert refused.exit_code == 2 and "answers with none" in refused.stderr and "Traceback" not in refused.output

    missing = bench("inspect", "0000", "--results", str(root))
    assert missing.exit_code == 2 and "no run '0000'" in missing.stderr


def test_curve_key_groups_the_seeds_and_scales_of_one_configuration():
    from bench.analysis.frontier import curve_key

    def spec(scale: int, seed: int, d_model: int = 16) -> dict:
        return build_spec("add", scale, {}, "gpt", {}, ModelConfig(d_model, 1, 2), OptimConfig(),
                          TrainConfig(seed=seed), "cpu").to_json()

    assert curve_key(spec(8, 0)) == curve_key(spec(32, 3))
    assert curve_key(spec(8, 0)) != curve_key(spec(8, 0, d_model=32))
