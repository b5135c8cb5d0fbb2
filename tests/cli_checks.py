"""Assertions shared by the CLI tests (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from typing import Any


def assert_one_line_error(result: Any, *fragments: str) -> None:
    """A typer CliRunner result is a user error: exit code 2, one line on stderr holding every
    fragment, and no traceback anywhere."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
