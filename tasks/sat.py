"""`sat`: is a random k-CNF formula satisfiable? Answer a satisfying assignment, or UNSAT.

Formulas are uniform random k-CNF over n = `max` variables: m = round(ratio * n) clauses, each of
`width` distinct variables with random signs (clauses drawn independently, so repeats can occur).
Per problem a coin with probability `unsat_share` (default 0.5) decides whether the problem must be
unsatisfiable; formulas are drawn until one of that kind turns up, satisfiability being decided by
python-sat (Minisat 2.2). So by default half the problems are UNSAT and always answering one way
scores 50%. The default ratio 4.26 is the 3-SAT phase transition, where both kinds are common (at
small n most formulas there are still satisfiable: P(UNSAT) is about 0.15 at n = 5 and 0.28 at
n = 20, so about 3.5 formulas are drawn per problem at n = 5). A ratio far from the transition makes
one kind so rare that generation stops with a TaskError saying so.
Literals in a clause are sorted by variable and clauses sorted, so a formula has one written form.

Tokens (vocab 2n + 2): PAD=0, literal +v is token 2v - 1, literal -v is token 2v, UNSAT = 2n + 1.
Question (m * width tokens): the clauses' literals, clause after clause.
Answer (n tokens): one literal per variable, variables 1..n in order; or UNSAT, then PAD.

Reference trace: the trail of `dpll`, a textbook recursive DPLL (unit propagation, then a branch on
the first literal of a shortest clause, trying the literal and then its negation), run on the
formula simplified by each assignment. Events, one token each (trace vocab 4n + 2):
TRACE_PAD=0, decide literal l: token(l), propagate l: 2n + token(l), CONFLICT = 4n + 1 (an empty
clause: this branch fails and DPLL backtracks). The reference assignment is the one DPLL finds,
variables it left free set false. trace_len = `trace_len_for(n, width, m)`; longer trails (a few
UNSAT proofs at large n) are cut there. As JSON a trace is a list of events: ["d", 3], ["p", -1],
["conflict"].
Serial depth: the number of DPLL decisions (both branches count). Size: the number of variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pysat.solvers import Minisat22

from tasks.base import PAD, TRACE_PAD, Batch, Task, TaskError, is_int
from tasks.registry import register_task

MIN_VARIABLES, MAX_VARIABLES = 3, 24
MIN_WIDTH, MAX_WIDTH = 2, 5
MIN_RATIO, MAX_RATIO = 0.5, 12.0
# Candidate formulas drawn per wanted problem before giving up on a kind that hardly occurs.
_MAX_DRAWS_PER_PROBLEM = 200

DECIDE, PROPAGATE, CONFLICT = "d", "p", "conflict"
Clause = tuple[int, ...]


@dataclass(frozen=True)
class SatParams:
    max: int = 5
    """Number of variables n."""
    width: int = 3
    """Literals per clause (k of k-CNF)."""
    ratio: float = 4.26
    """Clauses per variable: m = round(ratio * n)."""
    unsat_share: float = 0.5
    """Share of problems that are unsatisfiable."""


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


def is_satisfiable(clauses: list[list[int]]) -> bool:
    with Minisat22(bootstrap_with=clauses) as solver:
        return bool(solver.solve())


def trace_len_for(variables: int) -> int:
    """Room for about 99% of DPLL trails at the phase transition (measured for n = 3..24), and
    for all but about 1 in 10,000 at the default n = 5."""
    return 4 * variables + variables * variables // 2 + 8


MAX_JSON_VARIABLES = 1_000_000  # bound on structured problems read by `bench verify`


@register_task("sat")
class SatTask(Task):
    Params = SatParams
    scale_param = "max"
    scale_help = "number of variables n"
    param_help = {
        "max": "number of variables n (the scale)",
        "width": "literals per clause (k of k-CNF)",
        "ratio": "clauses per variable; 4.26 is the 3-SAT phase transition",
        "unsat_share": "share of unsatisfiable problems (answer UNSAT)",
    }

    def validate(self) -> None:
        p = self.params
        if isinstance(p.max, bool) or not isinstance(p.max, int) or not MIN_VARIABLES <= p.max <= MAX_VARIABLES:
            raise TaskError(f"sat: max={p.max!r} out of range; valid: {MIN_VARIABLES}..{MAX_VARIABLES}")
        top_width = min(MAX_WIDTH, p.max)
        if isinstance(p.width, bool) or not isinstance(p.width, int) or not MIN_WIDTH <= p.width <= top_width:
            raise TaskError(f"sat: width={p.width!r} out of range; valid: {MIN_WIDTH}..{top_width} (at most max)")
        if not isinstance(p.ratio, (int, float)) or not MIN_RATIO <= p.ratio <= MAX_RATIO:
            raise TaskError(f"sat: ratio={p.ratio!r} out of range; valid: {MIN_RATIO}..{MAX_RATIO}")
        if not isinstance(p.unsat_share, (int, float)) or not 0.0 <= p.unsat_share <= 1.0:
            raise TaskError(f"sat: unsat_share={p.unsat_share!r} out of range; valid: 0..1")

    # ---- shapes and vocabularies ------------------------------------------------------------
    @property
    def num_clauses(self) -> int:
        return max(1, round(self.params.ratio * self.params.max))

    @property
    def unsat_token(self) -> int:
        return 2 * self.params.max + 1

    @property
    def conflict_token(self) -> int:
        return 4 * self.params.max + 1

    @property
    def vocab_size(self) -> int:
        return 2 * self.params.max + 2

    @property
    def question_len(self) -> int:
        return self.num_clauses * self.params.width

    @property
    def answer_len(self) -> int:
        return self.params.max

    @property
    def trace_vocab_size(self) -> int:
        return 4 * self.params.max + 2

    @property
    def trace_len(self) -> int:
        return trace_len_for(self.params.max)

    # ---- generation -------------------------------------------------------------------------
    def _draw_formulas(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """k random formulas as (k, m, width) literal tokens, in their sorted written form."""
        n, m, width = self.params.max, self.num_clauses, self.params.width
        variables = np.sort(np.argsort(rng.random((k, m, n)), axis=2)[:, :, :width], axis=2) + 1
        negative = rng.random((k, m, width)) < 0.5
        tokens = 2 * variables - 1 + negative
        # Sort clauses by their tokens read as base-(2n + 1) numbers: one canonical order.
        keys = np.zeros((k, m), dtype=np.int64)
        for column in range(width):
            keys = keys * (2 * n + 1) + tokens[:, :, column]
        order = np.argsort(keys, axis=1, kind="stable")
        return np.take_along_axis(tokens, order[:, :, None], axis=1)

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        p = self.params
        want_unsat = rng.random(n) < p.unsat_share
        formulas = np.zeros((n, self.num_clauses, p.width), dtype=np.int64)
        # Slots still waiting for a formula, per kind, each queue in slot order.
        open_slots = {kind: list(np.flatnonzero(want_unsat == kind)[::-1]) for kind in (False, True)}
        drawn = kept = 0
        while open_slots[False] or open_slots[True]:
            pending = len(open_slots[False]) + len(open_slots[True])
            # Draw about as many as the share kept so far says will fill the open slots.
            draw = min(int(1.1 * pending * drawn / max(kept, 1)) if drawn else pending, 100 * pending) + 8
            for formula in self._draw_formulas(rng, draw):
                unsat = not is_satisfiable(_literals(formula).tolist())
                if open_slots[unsat]:  # else this kind is full: drop the formula
                    formulas[open_slots[unsat].pop()] = formula
                    kept += 1
            drawn += draw
            if drawn > _MAX_DRAWS_PER_PROBLEM * n + 1000 and (open_slots[False] or open_slots[True]):
                kind = "unsatisfiable" if open_slots[True] else "satisfiable"
                raise TaskError(
                    f"sat: at ratio={p.ratio}, width={p.width}, max={p.max} almost no formulas are {kind}; "
                    f"move ratio toward the phase transition (4.26 for width 3) or change unsat_share"
                )

        answers = np.zeros((n, self.answer_len), dtype=np.int64)
        traces = np.zeros((n, self.trace_len), dtype=np.int64)
        depth = np.zeros(n, dtype=np.int64)
        for i in range(n):
            clauses = [tuple(clause) for clause in _literals(formulas[i]).tolist()]
            trail: list[tuple] = []
            assigned = dpll(clauses, trail)
            if (assigned is None) != bool(want_unsat[i]):
                raise RuntimeError("dpll disagrees with Minisat: a bug in tasks/sat.py")
            if assigned is None:
                answers[i, 0] = self.unsat_token
            else:
                answers[i] = self._assignment_tokens(assigned)
            events = [self._event_token(event) for event in trail][: self.trace_len]
            traces[i, : len(events)] = events
            depth[i] = sum(1 for event in trail if event[0] == DECIDE)
        meta = {
            "size": np.full(n, p.max, dtype=np.int64),
            "depth": depth,
            "satisfiable": (~want_unsat).astype(np.int64),
        }
        return Batch(formulas.reshape(n, -1), answers, traces, meta)

    def _assignment_tokens(self, true_literals: tuple[int, ...]) -> np.ndarray:
        """One literal token per variable, in variable order; variables DPLL left free are false."""
        value = np.zeros(self.params.max + 1, dtype=bool)
        for literal in true_literals:
            value[abs(literal)] = literal > 0
        variables = np.arange(1, self.params.max + 1)
        return 2 * variables - value[1:].astype(np.int64)

    def _event_token(self, event: tuple) -> int:
        if event[0] == CONFLICT:
            return self.conflict_token
        token = _token(event[1])
        return token if event[0] == DECIDE else 2 * self.params.max + token

    # ---- structured form -------------------------------------------------------------------
    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        literals = _literals(np.asarray(question).reshape(-1, self.params.width))
        return {"variables": self.params.max, "clauses": literals.tolist()}

    def answer_json(self, answer: np.ndarray) -> Any:
        tokens = [int(t) for t in answer]
        if tokens and tokens[0] == self.unsat_token:
            if any(t != PAD for t in tokens[1:]):
                raise ValueError("UNSAT followed by more tokens")
            return None
        length = tokens.index(PAD) if PAD in tokens else len(tokens)
        literal_tokens, rest = tokens[:length], tokens[length:]
        if any(t != PAD for t in rest) or not all(1 <= t <= 2 * self.params.max for t in literal_tokens):
            raise ValueError("malformed assignment tokens")
        return _literals(np.asarray(literal_tokens, dtype=np.int64)).tolist()

    def trace_json(self, trace: np.ndarray) -> list[Any]:
        n = self.params.max
        events: list[Any] = []
        for token in (int(t) for t in trace if t != TRACE_PAD):
            if token == self.conflict_token:
                events.append([CONFLICT])
            elif token > 2 * n:
                events.append([PROPAGATE, int(_literals(np.int64(token - 2 * n)))])
            else:
                events.append([DECIDE, int(_literals(np.int64(token)))])
        return events

    def check_problem_json(self, problem: dict[str, Any]) -> None:
        variables = problem.get("variables")
        if not is_int(variables) or not 1 <= variables <= MAX_JSON_VARIABLES:
            raise TaskError(f"sat: 'variables' must be an integer in 1..{MAX_JSON_VARIABLES}, got {variables!r}")
        clauses = problem.get("clauses")
        if not isinstance(clauses, list) or not all(
            isinstance(c, list) and all(is_int(x) and 0 < abs(x) <= variables for x in c) for c in clauses
        ):
            raise TaskError(
                f"sat: 'clauses' must be a list of clauses, each a list of nonzero DIMACS literals "
                f"within +-{variables}"
            )

    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        clauses = problem["clauses"]
        if answer is None:
            return not is_satisfiable(clauses)
        if not isinstance(answer, list) or not all(is_int(x) for x in answer):
            return False
        # A complete assignment: each variable exactly once.
        variables = problem["variables"]
        if len(answer) != variables or len({abs(x) for x in answer}) != variables:
            return False
        if not all(1 <= abs(x) <= variables for x in answer):
            return False
        true_literals = set(answer)
        return all(any(x in true_literals for x in clause) for clause in clauses)

    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        problem = self.problem_json(question)
        formula = " & ".join("(" + " | ".join(_show(x) for x in clause) + ")" for clause in problem["clauses"])
        try:
            shown = self.answer_json(answer)
            answer_text = "UNSAT" if shown is None else " ".join(_show(x) for x in shown) or "?"
        except ValueError:
            answer_text = "? (malformed)"
        text = f"CNF over x1..x{problem['variables']}: {formula}\nanswer: {answer_text}"
        if trace is not None:
            words = {DECIDE: "decide", PROPAGATE: "propagate"}
            steps = [
                "conflict" if event[0] == CONFLICT else f"{words[event[0]]} {_show(event[1])}"
                for event in self.trace_json(trace)
            ]
            text += f"\ntrace (DPLL trail): {', '.join(steps)}"
        return text


def _token(literal: int) -> int:
    """Literal +v -> 2v - 1, -v -> 2v."""
    return 2 * abs(literal) - (literal > 0)


def _literals(tokens: np.ndarray) -> np.ndarray:
    """Literal tokens -> signed DIMACS literals (elementwise)."""
    variables = (tokens + 1) // 2
    return np.where(tokens % 2 == 1, variables, -variables)


def _show(literal: int) -> str:
    return f"x{literal}" if literal > 0 else f"~x{-literal}"


