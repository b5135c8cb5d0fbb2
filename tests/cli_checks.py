"""Assertions shared by the CLI tests (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest


def assert_one_line_error(result: Any, *fragments: str) -> None:
    """A typer CliRunner result is a user error: exit code 2, one line on stderr holding every
    fragment, and no traceback anywhere."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def bench_executable() -> str:
    """The console script next to the interpreter running the tests (.venv/bin/bench), else PATH's;
    skips the test when neither exists."""
    candidate = Path(sys.executable).parent / "bench"
    found = str(candidate) if candidate.exists() else shutil.which("bench")
    if found is None:
        pytest.skip("the bench console script is not installed")
    return found
