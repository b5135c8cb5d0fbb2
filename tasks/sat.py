"""`sat`: is a random k-CNF formula satisfiable? Answer a satisfying assignment, or UNSAT.

Formulas come in NeuroSAT pairs (Selsam et al. 2019), so that no size statistic tells SAT from
UNSAT: random clauses of `width` distinct variables with random signs (no clause twice) over
n = `max` variables are added one at a time until the formula becomes unsatisfiable (python-sat's
Minisat 2.2 decides, incrementally). That formula is the UNSAT member of the pair; the SAT member is
the same formula with one literal of its last clause negated (satisfiable: every model of the
clauses before it falsified that literal). Both members have the same clauses but one, so the same
number of clauses and of literals of each sign up to one. The negated literal is one whose negation
does not repeat a clause already present (a pair with none is redrawn), and among those one that
lowers the polarity imbalance most (the sum, then the largest, over variables of |positive -
negative occurrences|; ties at random): a uniform pick would leave the SAT twin visibly less
balanced, since the clause that makes a formula UNSAT tends to hold each variable's rarer sign.
Per problem a coin with probability `unsat_share` (default 0.5) decides which member is kept, so
by default half the problems are UNSAT and always answering one way scores 50%.

Formulas hold at most round(`ratio` * n) clauses; a sequence still satisfiable there is redrawn
(both members alike). Width 3 needs about 5n clauses on average (8-9n for 99% of formulas at
n = 5..10), so the default ratio 6 keeps about 80% of sequences at n = 5. A ratio too small for
any formula to become unsatisfiable stops generation with a TaskError saying so. The width must be
below n (with width = n there is a single UNSAT formula: all 2^n possible clauses), and n >= 4.
Width 2 keeps a polarity signal the twin choice cannot remove (two literals to pick from): a
logistic regression on size and polarity statistics tells SAT from UNSAT 56-63% of the time at
n = 4..8 (`bench floors --task sat --set width=2`); the default width 3 stays within noise of 50%.
Literals in a clause are sorted by variable and clauses sorted, so a formula has one written form.

Tokens (vocab 2n + 2): PAD=0, literal +v is token 2v - 1, literal -v is token 2v, UNSAT = 2n + 1.
Question (round(ratio * n) * width tokens): the clauses' literals, clause after clause, then PAD.
Answer (n tokens): one literal per variable, variables 1..n in order; or UNSAT, then PAD.

Reference trace: the trail of `dpll`, a textbook recursive DPLL (unit propagation, then a branch on
the first literal of a shortest clause, trying the literal and then its negation), run on the
formula simplified by each assignment. Events, one token each (trace vocab 4n + 2):
TRACE_PAD=0, decide literal l: token(l), propagate l: 2n + token(l), CONFLICT = 4n + 1 (an empty
clause: this branch fails and DPLL backtracks). The reference assignment is the one DPLL finds,
variables it left free set false. trace_len = `trace_len_for(n)`; longer trails (a few
UNSAT proofs at large n) are cut there. As JSON a trace is a list of events: ["d", 3], ["p", -1],
["conflict"].
Serial depth: the number of DPLL decisions (both branches count). Size: the number of variables.
Meta also records `clauses`, the formula's number of clauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pysat.solvers import Minisat22

from tasks.base import PAD, TRACE_PAD, Batch, Task, TaskError, is_int
from tasks.registry import register_task
from tasks.sat_solving import CONFLICT, DECIDE, PROPAGATE, Clause, dpll, is_satisfiable
from tasks.surface import sat_rules

MIN_VARIABLES, MAX_VARIABLES = 4, 24  # at n = 3 too few formulas exist for balanced, shortcut-free pairs
MIN_WIDTH, MAX_WIDTH = 2, 5
MIN_RATIO, MAX_RATIO = 0.5, 12.0
# Candidate formulas drawn per wanted problem before giving up on a kind that hardly occurs.
_MAX_DRAWS_PER_PROBLEM = 200


@dataclass(frozen=True)
class SatParams:
    max: int = 5
    """Number of variables n."""
    width: int = 3
    """Literals per clause (k of k-CNF)."""
    ratio: float = 6.0
    """Most clauses per variable: a formula holds at most round(ratio * n) clauses."""
    unsat_share: float = 0.5
    """Share of problems that are unsatisfiable."""


def trace_len_for(variables: int) -> int:
    """Room for more than 99% of DPLL trails of these pairs (measured on 600 problems each at
    n = 3..24: the 99th percentile is 28 events at n = 5, 102 at n = 12, 451 at n = 24)."""
    return 4 * variables + 3 * variables * variables // 4 + 8


MAX_JSON_VARIABLES = 1_000_000  # bound on structured problems read by `bench verify`


@register_task("sat")
class SatTask(Task):
    Params = SatParams
    scale_param = "max"
    scale_help = "number of variables n"
    difficulty_help = (
        "max (variables) drives serial depth: DPLL decisions grow with n; ratio only caps the clause "
        "count (question length); width 2 keeps a polarity shortcut (see bench floors)"
    )
    param_help = {
        "max": "number of variables n (the scale)",
        "width": "literals per clause (k of k-CNF)",
        "ratio": "most clauses per variable (question length); pairs needing more are redrawn",
        "unsat_share": "share of unsatisfiable problems (answer UNSAT)",
    }

    def validate(self) -> None:
        p = self.params
        if isinstance(p.max, bool) or not isinstance(p.max, int) or not MIN_VARIABLES <= p.max <= MAX_VARIABLES:
            raise TaskError(f"sat: max={p.max!r} out of range; valid: {MIN_VARIABLES}..{MAX_VARIABLES}")
        # width = max would leave a single UNSAT formula (all 2^max clauses): no balanced splits.
        top_width = min(MAX_WIDTH, p.max - 1)
        if isinstance(p.width, bool) or not isinstance(p.width, int) or not MIN_WIDTH <= p.width <= top_width:
            raise TaskError(f"sat: width={p.width!r} out of range; valid: {MIN_WIDTH}..{top_width} (below max)")
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
    def _draw_sequences(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """k sequences of random clauses as (k, L, width) signed literals, each clause's literals
        sorted by variable; L leaves room for the repeats that are skipped."""
        n, width = self.params.max, self.params.width
        length = 2 * self.num_clauses + 16
        variables = np.sort(np.argsort(rng.random((k, length, n)), axis=2)[:, :, :width], axis=2) + 1
        return np.where(rng.random((k, length, width)) < 0.5, -variables, variables)

    def _draw_pair(self, sequence: np.ndarray, pick: float) -> tuple[list[Clause], list[Clause]] | None:
        """(UNSAT formula, its SAT twin) from one clause sequence, or None to redraw."""
        n = self.params.max
        clauses = list(dict.fromkeys(map(tuple, sequence.tolist())))[: self.num_clauses]
        with Minisat22() as solver:
            # Clause i carries the selector n + 1 + i: assuming a prefix of selectors switches on
            # that prefix, and the core of a refutation bounds the first unsatisfiable prefix.
            for i, clause in enumerate(clauses):
                solver.add_clause([*clause, -(n + 1 + i)])
            selectors = list(range(n + 1, n + 1 + len(clauses)))
            if solver.solve(assumptions=selectors):
                return None  # still satisfiable at the clause cap
            m = max(solver.get_core()) - n
            while m > 1 and not solver.solve(assumptions=selectors[: m - 1]):
                m = max(solver.get_core()) - n
        unsat, last = clauses[:m], clauses[m - 1]
        present = set(unsat)
        twins = [last[:i] + (-last[i],) + last[i + 1 :] for i in range(len(last))]
        twins = [twin for twin in twins if twin not in present]
        if not twins:
            return None
        balance = np.zeros(n + 1, dtype=np.int64)  # per variable: positive minus negative occurrences
        for clause in unsat:
            for literal in clause:
                balance[abs(literal)] += 1 if literal > 0 else -1
        total, top = int(np.abs(balance).sum()), int(np.abs(balance).max())

        def imbalance_change(twin: Clause) -> tuple[int, int]:
            flipped = next(x for x in twin if x not in last)
            changed = balance.copy()
            changed[abs(flipped)] += 2 if flipped > 0 else -2
            return int(np.abs(changed).sum()) - total, int(np.abs(changed).max()) - top

        changes = [imbalance_change(twin) for twin in twins]
        twins = [twin for twin, change in zip(twins, changes) if change == min(changes)]
        return unsat, unsat[:-1] + [twins[int(pick * len(twins))]]

    def _written_form(self, clauses: list[Clause]) -> np.ndarray:
        """(num_clauses, width) literal tokens: clauses sorted by their tokens, then PAD rows."""
        tokens = np.zeros((self.num_clauses, self.params.width), dtype=np.int64)
        literals = np.asarray(clauses, dtype=np.int64)
        rows = 2 * np.abs(literals) - (literals > 0)
        tokens[: len(rows)] = rows[np.lexsort(rows.T[::-1])]  # rows in ascending (first, second, ...) order
        return tokens

    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        p = self.params
        want_unsat = rng.random(n) < p.unsat_share
        formulas = np.zeros((n, self.num_clauses, p.width), dtype=np.int64)
        clause_counts = np.zeros(n, dtype=np.int64)
        filled = drawn = 0
        while filled < n:
            if drawn > _MAX_DRAWS_PER_PROBLEM * n + 1000:
                raise TaskError(
                    f"sat: at ratio={p.ratio}, width={p.width}, max={p.max} almost no clause sequences become "
                    f"unsatisfiable within {self.num_clauses} clauses; raise ratio (width 3 needs about 5 per variable)"
                )
            k = min(256, 2 * (n - filled) + 8)  # about half the sequences make a pair at the default ratio
            picks = rng.random(k)
            for sequence, pick in zip(self._draw_sequences(rng, k), picks):
                pair = self._draw_pair(sequence, float(pick))
                if pair is None:
                    continue
                chosen = pair[0] if want_unsat[filled] else pair[1]
                formulas[filled] = self._written_form(chosen)
                clause_counts[filled] = len(chosen)
                filled += 1
                if filled == n:
                    break
            drawn += k

        answers = np.zeros((n, self.answer_len), dtype=np.int64)
        traces = np.zeros((n, self.trace_len), dtype=np.int64)
        depth = np.zeros(n, dtype=np.int64)
        for i in range(n):
            clauses = [tuple(clause) for clause in _literals(formulas[i, : clause_counts[i]]).tolist()]
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
            "clauses": clause_counts,
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

    def surface_floors(self, train: Batch, test: Batch) -> list[tuple[str, np.ndarray, str]]:
        """Shortcut floors (`bench floors`): thresholds and a logistic regression on size statistics."""
        return sat_rules(self, train, test)

    # ---- structured form -------------------------------------------------------------------
    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        rows = np.asarray(question).reshape(-1, self.params.width)
        literals = _literals(rows[rows[:, 0] != PAD])  # PAD rows fill the question after the formula
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
        if any(not clause for clause in clauses):
            raise TaskError("sat: a clause is empty; each clause holds at least one literal")

    def verify_json_within(self, problem: dict[str, Any], answer: Any, time_limit: float) -> bool | None:
        if answer is None:  # an UNSAT claim: a proof search, interrupted after time_limit seconds
            satisfiable = is_satisfiable(problem["clauses"], time_limit)
            return None if satisfiable is None else not satisfiable
        return self.verify_json(problem, answer)

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


