"""The `sat` task's solvers: the reference DPLL whose trail is the task's trace, and Minisat's verdict
(python-sat) that `bench verify` uses to check UNSAT claims under a time limit."""

from __future__ import annotations

import threading

from pysat.solvers import Minisat22

DECIDE, PROPAGATE, CONFLICT = "d", "p", "conflict"
Clause = tuple[int, ...]


def simplify(clauses: list[Clause], literal: int) -> list[Clause]:
    """The formula with `literal` set true: drop the clauses it satisfies, drop its negation."""
    negation = -literal
    return [
        tuple(x for x in clause if x != negation) if negation in clause else clause
        for clause in clauses
        if literal not in clause
    ]


def dpll(clauses: list[Clause], trail: list[tuple], assigned: tuple[int, ...] = ()) -> tuple[int, ...] | None:
    """Davis-Putnam-Logemann-Loveland. Returns the true literals of a satisfying partial
    assignment, or None if the formula is unsatisfiable. Appends its events to `trail`."""
    while True:  # unit propagation
        if () in clauses:  # an empty clause: every literal false
            trail.append((CONFLICT,))
            return None
        unit = next((clause[0] for clause in clauses if len(clause) == 1), None)
        if unit is None:
            break
        trail.append((PROPAGATE, unit))
        clauses, assigned = simplify(clauses, unit), assigned + (unit,)
    if not clauses:
        return assigned
    literal = min(clauses, key=len)[0]
    for choice in (literal, -literal):
        trail.append((DECIDE, choice))
        result = dpll(simplify(clauses, choice), trail, assigned + (choice,))
        if result is not None:
            return result
    return None


def is_satisfiable(clauses: list[list[int]], time_limit: float | None = None) -> bool | None:
    """Minisat's verdict; None if `time_limit` seconds pass first (the search is interrupted)."""
    with Minisat22(bootstrap_with=clauses) as solver:
        if time_limit is None:
            return bool(solver.solve())
        timer = threading.Timer(time_limit, solver.interrupt)
        timer.start()
        try:
            verdict = solver.solve_limited(expect_interrupt=True)
        finally:
            timer.cancel()
        return None if verdict is None else bool(verdict)
