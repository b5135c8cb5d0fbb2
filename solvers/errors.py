"""Solver errors: torch-free, so the harness (bench/errors.py) can name them without importing torch.

A SolverError's message is one line written for the user (the bad value and the valid ones); bench
turns it into `error: ...` and exit code 2.
"""

from __future__ import annotations


class SolverError(ValueError):
    """Bad solver input (unknown name, invalid flag combination, bad option). One line for users."""


class Unsupported(SolverError):
    """A solver refuses a task (`Solver.supports` gave a reason); the harness names the task."""

    def __init__(self, solver: str, reason: str) -> None:
        super().__init__(f"solver {solver} cannot do this task: {reason}")
        self.solver, self.reason = solver, reason
