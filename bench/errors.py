"""User-facing errors: one line naming the bad value and the valid ones, exit code 2, no traceback."""

from __future__ import annotations

import functools
import re
import sys
from typing import Any, Callable, TypeVar

from solvers.errors import SolverError
from tasks.base import TaskError

F = TypeVar("F", bound=Callable[..., Any])


class UserError(ValueError):
    """Bad input from the user. The message is a single line shown as-is."""


# Errors whose message is written for the user: the harness's, the tasks' and the solvers' (their
# own torch-free module, solvers/errors.py, so this import loads no torch).
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, TaskError, SolverError)


# An error line names the bad value, but a 10,000-character value would bury the rest of the line
# (the valid values): runs of more than LONGEST_WORD non-space characters are cut in the middle,
# and a line still longer than LONGEST_LINE keeps its start and its end.
LONGEST_WORD = 200
LONGEST_LINE = 1000
_LONG_WORD = re.compile(r"\S{%d,}" % (LONGEST_WORD + 1))


def _cut_word(match: re.Match[str]) -> str:
    word = match.group()
    return f"{word[:120]}...{word[-40:]} ({len(word):,} characters)"


def shorten(message: str) -> str:
    """`message` as one line of bounded length: long values cut in the middle, newlines as spaces."""
    line = _LONG_WORD.sub(_cut_word, message.replace("\r", " ").replace("\n", " "))
    if len(line) > LONGEST_LINE:
        line = f"{line[:700]} ... {line[-250:]}"
    return line


def fail(message: str, code: int = 2) -> None:
    """Print one line (long values cut, see `shorten`) to stderr and exit."""
    print(f"error: {shorten(message)}", file=sys.stderr)
    raise SystemExit(code)


# Per-command state to clear when a command starts (e.g. which bad run folders were warned about,
# so one command warns once per folder and the next command in the same process warns again).
COMMAND_RESETS: list[Callable[[], None]] = []


def user_errors_exit(func: F) -> F:
    """Decorator for CLI commands: user errors become one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for reset in COMMAND_RESETS:
            reset()
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    return wrapper  # type: ignore[return-value]
