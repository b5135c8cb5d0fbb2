"""A solver's own options, torch-free: the Options base class, the task's shape, and the thought budget.

The harness reads option tables (names, types, defaults, help) from here without loading torch:
`bench run` and `bench sweep` generate their solver flags from these dataclasses (bench/config.py).

The thought budget K is one concept for every solver that has one (the discrete thinkers, `pause`,
`continuous`, `looped`): declared with `thoughts_field` (one doc, BUDGET_HELP; one range rule,
`check_thoughts`: a solver declares its minimum, the maximum and the message are shared).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from solvers.errors import SolverError

DEFAULT_THOUGHTS = 4
"""K when not given (thinkers without super too): more than add's and multiadd's traces (2-3 digits) and
in Coconut's range (3-6); a continuous step then costs about 1.1-1.4x a gpt step of the same length
on CPU (bench perf continuous)."""
MAX_THOUGHTS = 512
"""The largest thought budget K any solver trains with (beyond it a rollout's positions and the
position table grow past what a run on this benchmark's scales needs)."""
MAX_BUDGET = 4096
"""The largest budget a model may be run at (`--eval-thoughts`, `--max-thoughts`)."""
BUDGET_HELP = (
    "Thought budget K: the thoughts between question and answer (think_*: thought tokens; pause: pause "
    "tokens; continuous: fed-back hidden states; looped: r, the times the block stack is applied with "
    f"shared weights). Default {DEFAULT_THOUGHTS} (think_* with super: the task's trace length). Valid: 0 to "
    f"{MAX_THOUGHTS} (think_*: 1 to {MAX_THOUGHTS}); pause, continuous and looped also at most --max-thoughts."
)


@dataclass(frozen=True)
class TaskShape:
    """What a solver may know about a task."""

    vocab_size: int
    question_len: int
    answer_len: int
    trace_vocab_size: int
    trace_len: int
    pad_id: int = 0

    @classmethod
    def of(cls, task: Any) -> TaskShape:
        return cls(task.vocab_size, task.question_len, task.answer_len, task.trace_vocab_size, task.trace_len)


@dataclass(frozen=True)
class SolverOptions:
    """Base of every solver's Options: a frozen dataclass of typed fields, each with a default and a
    docstring (what `bench solvers` lists). Values arrive typed: the harness parses command-line text."""

    AUTO: ClassVar[dict[str, str]] = {}
    """Option name -> how its default is chosen per task, shown by `bench solvers` instead of the default."""
    LATE: ClassVar[tuple[str, ...]] = ()
    """Options added after runs were stored: written into a spec (so into its run id) only when they
    differ from their default, so the ids of the runs made before them stay valid (as tasks' late_params)."""
    LABEL: ClassVar[str] = ""
    """Which solvers take these options, prefixed to their help in `bench run --help` (e.g. Thinkers)."""

    def spec_dict(self) -> dict[str, object]:
        """The options as a run spec writes them: every field, except late ones at their default."""
        values, defaults = dataclasses.asdict(self), {f.name: f.default for f in dataclasses.fields(self)}
        return {k: v for k, v in values.items() if k not in self.LATE or v != defaults[k]}

    def validate(self) -> None:
        """Raise a one-line SolverError for a bad value or combination (called by make_options)."""

    def resolved(self, shape: TaskShape) -> SolverOptions:
        """These options with per-task defaults written out (e.g. a thinker's group size G), so the
        run id names what ran. Default: unchanged."""
        return self


@dataclass(frozen=True)
class NoOptions(SolverOptions):
    """This solver has no options of its own."""


# ---- the thought budget ---------------------------------------------------------------------------


def thoughts_field(default: int | None, minimum: int) -> Any:
    """The `thoughts` field of a solver with a thought budget: its default (None: chosen per task by
    `resolved`) and its minimum (0 where no thoughts is meaningful). Help and maximum are shared."""
    if minimum not in (0, 1):  # BUDGET_HELP names these two
        raise ValueError(f"a thought budget's minimum is 0 or 1, not {minimum}")
    return dataclasses.field(default=default, metadata={"budget_minimum": minimum, "help": BUDGET_HELP, "short": "-k"})


def budget_range(options: Any) -> tuple[int, int] | None:
    """(minimum, maximum) of an Options class's (or instance's) thought budget, or None without one."""
    for f in dataclasses.fields(options):
        if "budget_minimum" in f.metadata:
            return f.metadata["budget_minimum"], MAX_THOUGHTS
    return None


def check_thoughts(options: SolverOptions) -> None:
    """The one range rule of the thought budget: a one-line SolverError outside minimum..MAX_THOUGHTS
    (None, a budget chosen per task later, passes). Called by make_options for every solver."""
    bounds = budget_range(options)
    k = getattr(options, "thoughts", None)
    if bounds is None or k is None:
        return
    low, high = bounds
    if not low <= k <= high:
        raise SolverError(f"--thoughts={k} must be >= {low} and <= {high}")


@dataclass(frozen=True)
class ThoughtBudgetOptions(SolverOptions):
    """The thought-budget options `pause`, `continuous` and `looped` share: K, the longest budget the
    model can be run at, and per-step budgets. K = 0 is meaningful (no thoughts: a gpt)."""

    thoughts: int = thoughts_field(DEFAULT_THOUGHTS, minimum=0)
    max_thoughts: int = 16
    """Longest budget the model can be run at (sets its position table or recurrence limit; --eval-thoughts
    above it is refused)."""
    vary_thoughts: bool = False
    """Train each step at a budget drawn uniformly from 0..K, so every budget up to K is trained."""

    def validate(self) -> None:
        check_budget_options(self)


def check_budget_options(options: Any) -> None:
    """One-line SolverError for a budget the model cannot be run at (the range of K itself is
    `check_thoughts`, which make_options applies to every solver)."""
    if not 0 <= options.max_thoughts <= MAX_BUDGET:
        raise SolverError(f"--max-thoughts={options.max_thoughts} must be >= 0 and <= {MAX_BUDGET}")
    if options.thoughts > options.max_thoughts:
        raise SolverError(
            f"--thoughts={options.thoughts} exceeds --max-thoughts={options.max_thoughts} "
            "(the longest budget the position table holds); raise --opt max_thoughts=N"
        )
