"""One declaration per option (issue 28, items 1 and 3).

`bench run`'s and `bench sweep`'s solver flags are generated from the solvers' Options dataclasses;
one `bench run` builds its task once and resolves its solver once, and `--thoughts` goes CLI ->
config -> build -> solver. The thought budget is one concept: one declaration (`thoughts_field`),
one range rule and message (`check_thoughts`), one doc (BUDGET_HELP) for every solver that has one.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

import bench.run.build as build_module
import solvers.base
import tasks.registry
from bench.cli import app
from bench.config import SOLVER_FLAGS, solver_flag_options
from cli_checks import assert_one_line_error
from solvers.base import SolverError, TaskShape, make_options, solver_families
from solvers.config import ModelConfig, field_help
from solvers.core import CoreConfig
from solvers.options import BUDGET_HELP, MAX_THOUGHTS, budget_range

runner = CliRunner()
TINY_RUN = ["--task", "add", "--max", "20", "--d-model", "16", "--layers", "1", "--heads", "2", "--batch", "8",
            "--steps", "1", "--eval-every", "1", "--eval-size", "16", "--device", "cpu", "-q"]


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def budget_families() -> list[Any]:
    return [f for f in solver_families() if "thoughts" in {x.name for x in dataclasses.fields(f.cls.Options)}]


# ---- one task, one resolution, --thoughts from the CLI to the solver ------------------------------


@pytest.mark.parametrize("solver, thoughts", [("gpt", None), ("pause", 3), ("think_fixed", 2)])
def test_bench_run_builds_its_task_once_and_resolves_its_solver_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, solver: str, thoughts: int | None
) -> None:
    built: list[str] = []  # the module asking for each task built
    resolved: list[str] = []
    trained: list[Any] = []
    make_task, resolve_solver, new_solver = (
        tasks.registry.make_task,
        solvers.base.resolve_solver,
        build_module.new_solver,
    )

    def counting_make_task(*args: Any, **kwargs: Any) -> Any:
        built.append(sys._getframe(1).f_globals["__name__"])
        return make_task(*args, **kwargs)

    def counting_resolve(*args: Any, **kwargs: Any) -> Any:
        resolved.append(sys._getframe(1).f_globals["__name__"])
        return resolve_solver(*args, **kwargs)

    def recording_new_solver(*args: Any, **kwargs: Any) -> Any:
        solver_object = new_solver(*args, **kwargs)
        trained.append(solver_object)
        return solver_object

    monkeypatch.setattr(tasks.registry, "make_task", counting_make_task)  # records' spec check imports it late
    monkeypatch.setattr(build_module, "make_task", counting_make_task)
    monkeypatch.setattr(solvers.base, "resolve_solver", counting_resolve)
    monkeypatch.setattr(build_module, "resolve_solver", counting_resolve)
    monkeypatch.setattr(build_module, "new_solver", recording_new_solver)
    args = ["run", *TINY_RUN, "--solver", solver, "--results", str(tmp_path)]
    result = invoke(*args, *(["--thoughts", str(thoughts)] if thoughts is not None else []))
    assert result.exit_code == 0, result.output
    # The run's task is built once, where the spec is resolved; the only other construction is the
    # check of the stored spec.json when `bench run` reads it back to show the result.
    assert built.count("bench.run.build") == 1, built
    assert set(built) <= {"bench.run.build", "bench.run.records"}, built
    assert resolved == ["bench.run.build"], resolved
    # The training solver and the FLOP counter's fresh copy, both from the one resolution.
    assert len(trained) == 2 and trained[0].options is trained[1].options
    if thoughts is not None:
        assert trained[0].options.thoughts == thoughts and trained[0].thought_budget() == thoughts


def test_a_thinkers_defaults_note_comes_from_the_one_resolution(tmp_path: Path) -> None:
    result = invoke("run", *TINY_RUN, "--solver", "think_fixed", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "defaults: batch 8 (given); K = 4, short rollouts" in result.stderr.replace("\n", " ")
    assert "given; G" not in result.stderr  # the resolved G is the default, not a given one


# ---- flags generated from the Options dataclasses ----------------------------------------------------


def command_params(name: str) -> dict[str, Any]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {param.name: param for param in command.params}


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_solver_flags_take_type_and_help_from_the_options_fields(command: str) -> None:
    params = command_params(command)
    for name, owner in SOLVER_FLAGS.items():
        param = params[name]
        assert param.opts[0] == "--" + name.replace("_", "-")
        assert field_help(owner)[name][1:] in " ".join(param.help.split()), (name, param.help)  # [1:]: lower-cased
        assert param.default is None  # None: the solver's own default
    assert "-k" in params["thoughts"].opts
    assert params["thoughts"].help == BUDGET_HELP
    assert (
        params["estimator"].help.startswith("Thinkers: ")
        and "Valid: reinforce, gumbel, straight, imitate." in params["estimator"].help
    )
    assert params["think_layer"].help.startswith("Continuous: ")


def test_bench_run_help_lists_the_solver_flags() -> None:
    shown = " ".join(invoke("run", "--help").output.split())
    for option in solver_flag_options().values():
        assert option.flag in shown, option.flag
    assert "-k" in shown and "Thought budget K" in shown and "Rollouts per question G".lower() in shown.lower()


def test_every_solver_flag_names_a_field_of_its_owner_and_no_run_option() -> None:
    from bench.config import run_options

    for name, owner in SOLVER_FLAGS.items():
        assert name in {f.name for f in dataclasses.fields(owner)}
        assert name not in run_options()


def test_sweep_takes_the_solver_flags_as_axes() -> None:
    result = invoke("sweep", "--task", "add", "--max", "20", "--solver", "think_fixed", "--thoughts", "1,2",
                   "--estimator", "reinforce,gumbel", "--steps", "1", "--device", "cpu", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "4 cells" in result.output


# ---- the thought budget: one declaration, one range rule, one doc -----------------------------------


def test_every_solver_with_a_budget_declares_it_with_the_shared_field() -> None:
    families = {f.examples[0]: f for f in budget_families()}
    assert {"think", "pause", "continuous", "looped"} <= set(families)
    for name, family in families.items():
        assert field_help(family.cls.Options)["thoughts"] == BUDGET_HELP, name
        assert budget_range(family.cls.Options) == ((1 if name == "think" else 0), MAX_THOUGHTS), name


@pytest.mark.parametrize("family", ["think_fixed", "pause", "continuous", "looped"])
def test_one_range_rule_and_message(family: str) -> None:
    cls, canonical, flags = solvers.base.resolve_solver(family)
    low, high = budget_range(cls.Options)  # type: ignore[misc]
    room = {} if family.startswith("think") else {"max_thoughts": high}
    for bad in (low - 1, high + 1):
        with pytest.raises(SolverError, match=f"^--thoughts={bad} must be >= {low} and <= {high}$"):
            make_options(cls, canonical, flags, {"thoughts": bad, **room})
    for good in (low, high):
        assert make_options(cls, canonical, flags, {"thoughts": good, **room}).thoughts == good


def test_a_budget_out_of_range_is_one_line_on_the_cli(tmp_path: Path) -> None:
    result = invoke("run", *TINY_RUN, "--solver", "pause", "--thoughts", "600", "--results", str(tmp_path))
    assert_one_line_error(result, f"--thoughts=600 must be >= 0 and <= {MAX_THOUGHTS}")
    assert not list(tmp_path.rglob("spec.json"))  # refused before any run folder


def test_bench_solvers_shows_the_budget_doc_and_each_solvers_range() -> None:
    result = invoke("solvers")
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    assert " ".join(BUDGET_HELP.split()) in shown
    assert f"0..{MAX_THOUGHTS}" in shown and f"1..{MAX_THOUGHTS}" in shown


def test_thinker_auto_budget_is_resolved_into_the_options() -> None:
    cls, canonical, flags = solvers.base.resolve_solver("think_fixed_blind_super")
    shape = TaskShape(vocab_size=12, question_len=4, answer_len=2, trace_vocab_size=11, trace_len=3)
    assert make_options(cls, canonical, flags, {}).resolved(shape).thoughts == 3  # the trace length under super


# ---- CoreConfig from a ModelConfig -------------------------------------------------------------------


def test_core_config_from_model_copies_the_model_size() -> None:
    model = ModelConfig(d_model=48, layers=3, heads=6, weight_init="gpt2")
    cfg = CoreConfig.from_model(model, vocab_size=20, max_len=9)
    assert (cfg.vocab_size, cfg.max_len, cfg.d_model, cfg.layers, cfg.heads, cfg.init) == (20, 9, 48, 3, 6, "gpt2")
    assert CoreConfig.from_model(model, 20, 9, mlp_ratio=2).mlp_ratio == 2
