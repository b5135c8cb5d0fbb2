"""The harness's folders are its layers: cli on top; sweep over run (an experiment file names plot
kinds, so its loader reads them from analysis); analysis reads the store; run below them all. A
module never imports a layer above its own (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
# What each package may import from bench (besides itself and the shared errors, stats and config modules).
ALLOWED = {
    "run": set(),
    "sweep": {"run", "analysis"},
    "analysis": {"run"},
    "perf": {"run", "sweep"},
}


def bench_imports(path: Path) -> set[str]:
    """The bench subpackages a module imports (`from bench.X...`, `import bench.X`, `from bench import X`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "bench":
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("bench.")}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_module_imports_a_layer_above_its_own(package: str) -> None:
    modules = sorted((BENCH / package).glob("*.py"))
    assert modules, package
    for module in modules:
        wrong = bench_imports(module) - ALLOWED[package] - {package, "errors", "stats", "config"}
        assert not wrong, f"{module.relative_to(BENCH.parent)} imports bench.{', bench.'.join(sorted(wrong))}"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from bench.cli.commands_compare import display_rows\n    import bench.sweep.plan\n")
    assert bench_imports(module) == {"cli", "sweep"}
