"""User-facing errors: one line naming the bad value and the valid ones, exit code 2, no traceback."""

from __future__ import annotations

import functools
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


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit."""
    print(f"error: {message}", file=sys.stderr)
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
