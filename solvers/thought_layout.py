"""What `pause` and `continuous` share: the thought budget, its limits, and the blind attention mask.

Both solvers put their thoughts between the question and the answer:

    pause:       [question] p p .. p [answer]                 (K copies of one learned token)
    continuous:  [question] <bot> h1 .. hK <eot> [answer]     (K fed-back hidden states)

Positions are learned, so the position table must be long enough for the largest budget the model
will ever be run at: `max_thoughts` sets it (evaluating at a budget above it is refused up front).
Budgets above the trained one use positions training never saw; that is part of what
`--eval-thoughts` measures, and `vary_thoughts` (train each step at a budget drawn from 0..K)
is the remedy one can test.
"""

from __future__ import annotations

from typing import Any

import torch

from solvers.base import ModelConfig, Solver, TaskShape
from solvers.errors import SolverError
from solvers.options import ThoughtBudgetOptions, check_budget_options  # noqa: F401 (declared torch-free there)


class ThoughtBudgetSolver(Solver):
    """Base of `pause` and `continuous`: refuses evaluation budgets the position table cannot hold."""

    @classmethod
    def check_run(cls, shape: TaskShape, model: ModelConfig, options: Any, train: Any) -> str | None:
        return check_eval_budgets(options, tuple(train.eval_thoughts))


def check_eval_budgets(options: Any, budgets: tuple[int, ...]) -> str | None:
    """Why evaluation budgets cannot be run, or None."""
    too_long = [k for k in budgets if k > options.max_thoughts]
    if too_long:
        return (
            f"--eval-thoughts {','.join(map(str, too_long))} exceeds --max-thoughts={options.max_thoughts}; "
            f"raise it with --opt max_thoughts={max(too_long)}"
        )
    return None


def resolve_budget(requested: int | None, options: Any) -> int:
    """The budget to run at: the trained one by default; SolverError outside 0..max_thoughts."""
    k = options.thoughts if requested is None else int(requested)
    if not 0 <= k <= options.max_thoughts:
        raise SolverError(f"thought budget {k} is outside 0..{options.max_thoughts} (--max-thoughts)")
    return k


def sample_budget(options: Any) -> int:
    """This step's training budget: K, or uniform in 0..K with `vary_thoughts` (seeded by the
    harness's per-step torch seed, so runs stay reproducible)."""
    if not options.vary_thoughts or options.thoughts == 0:
        return options.thoughts
    return int(torch.randint(0, options.thoughts + 1, (1,)).item())


def blind_mask(
    t_new: int, t_total: int, hidden_len: int, first_blind: int, device: torch.device | str
) -> torch.Tensor:
    """Bool (t_new, t_total) attention mask, True = may attend, for the last t_new positions of a
    t_total-long sequence: causal, and positions at or after `first_blind` (the <eot> and answer
    positions) may not see positions [0, hidden_len) (the question, and <bot> if there is one:
    its keys and values at deeper layers are computed from the question).

    In one model this hides those positions' own keys and values only: thought positions attend to
    the question, so their deeper-layer keys and values still carry question information besides
    the fed-back vector (the same holds for a discrete thinker's single-model `blind`).
    """
    rows = torch.arange(t_total - t_new, t_total, device=device)[:, None]
    cols = torch.arange(t_total, device=device)[None, :]
    causal = cols <= rows
    hidden = (rows >= first_blind) & (cols < hidden_len)
    return causal & ~hidden
