"""Options that several `bench` commands take, declared once (name, default, help), and their parsing."""

from __future__ import annotations

import typer

from bench.errors import UserError

# Every command that reads or writes the results store: `results: Optional[str] = ResultsOption`.
ResultsOption = typer.Option(None, "--results", help="Results folder (default: ./results or $THINKBENCH_RESULTS).")


def split_assignment(item: str, option: str, form: str) -> tuple[str, str]:
    """'name=text' -> (name, text), or a one-line UserError saying that `option` expects `form`."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{option} expects {form}, got {item!r}")
    return key.strip(), text
