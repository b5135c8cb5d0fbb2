"""Issue 28's structure, kept: solvers never import tasks, the store's reader never imports its writer,
command modules never import each other, each shared option is declared once, and task knowledge
(difficulty, shortcut-floor rules) lives in the task's own file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tasks.registry import task_class, task_names

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_solvers_never_import_tasks() -> None:
    wrong = {p.name: sorted(m for m in imported_modules(p) if m.split(".")[0] == "tasks")
             for p in (ROOT / "solvers").glob("*.py")}
    assert not {k: v for k, v in wrong.items() if v}


def test_the_store_imports_its_reader_and_never_the_reverse() -> None:
    assert "bench.run.records" in imported_modules(ROOT / "bench/run/store.py")
    assert "bench.run.store" not in imported_modules(ROOT / "bench/run/records.py")


def test_command_modules_never_import_each_other() -> None:
    for path in (ROOT / "bench/cli").glob("commands_*.py"):
        others = {m for m in imported_modules(path) if m.startswith("bench.cli.commands_")}
        assert not others, (path.name, others)


def test_results_option_is_declared_once() -> None:
    declared = [p.name for p in (ROOT / "bench").rglob("*.py") if '"--results"' in p.read_text()]
    assert declared == ["options.py"]


def test_one_run_table_and_one_scale_lookup() -> None:
    analysis = {p.name: p.read_text() for p in (ROOT / "bench/analysis").glob("*.py")}
    assert [name for name, text in analysis.items()
            if "def run_table(" in text or "def runs_frame(" in text] == ["frontier.py"]
    assert [name for name, text in analysis.items() if ".scale_param" in text] == ["frontier.py"]


@pytest.mark.parametrize("name", task_names())
def test_every_task_declares_its_difficulty_and_floors_in_its_file(name: str) -> None:
    cls = task_class(name)
    assert cls.difficulty_help, name
    assert callable(getattr(cls, "surface_floors", None)), name
    assert "SURFACE_RULES" not in (ROOT / "bench/analysis/floors.py").read_text()
