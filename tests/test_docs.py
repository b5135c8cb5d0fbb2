"""docs/ARCHITECTURE.md stays true to the tree: every Python file it names exists, and it refers to
nothing outside the repository."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
# A file name as the document writes one: `bench/run/store.py`, `cli/commands_*.py`, or a bare `store.py`
# in the layout tree (its folder is the heading above it).
PY_NAME = re.compile(r"[A-Za-z0-9_*./-]*[A-Za-z0-9_*]\.py\b")


def project_files() -> list[Path]:
    skip = {".venv", ".git", "results", "__pycache__"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def named_files(text: str) -> set[str]:
    return {name.lstrip("./") for name in PY_NAME.findall(text)}


def test_every_python_file_named_in_architecture_exists() -> None:
    relative = [p.relative_to(ROOT).as_posix() for p in project_files()]
    missing = []
    for name in sorted(named_files(ARCHITECTURE.read_text())):
        if "/" not in name:  # a bare name in the layout tree: some file of the project has it
            found = any(fnmatch(path.rsplit("/", 1)[-1], name) for path in relative)
        else:  # a path from the repository root, or from its package in the layout tree (`cli/...`)
            found = any(fnmatch(path, name) or fnmatch(path, "*/" + name) for path in relative)
        if not found:
            missing.append(name)
    assert not missing, f"docs/ARCHITECTURE.md names files that do not exist: {missing}"


def test_the_names_the_check_reads_include_the_real_paths() -> None:
    # guards the pattern: a regex that matched nothing would pass the test above vacuously
    names = named_files(ARCHITECTURE.read_text())
    assert {"bench/run/store.py", "bench/analysis/thought_code.py", "bench/sweep/session.py"} <= names
    assert len(names) > 40


def test_architecture_refers_to_nothing_outside_the_repository() -> None:
    text = ARCHITECTURE.read_text()
    for outside in ("shared/", "../", "/work"):
        assert outside not in text, f"docs/ARCHITECTURE.md refers to {outside!r}, outside the repository"
