"""The discrete thinkers' names, options and per-task step defaults (K, G, batch).

Step defaults (issue 14): a thinker step samples batch x G rollouts of K thoughts and, unless the
reward is clean, scores each with the answerer; its cost grows with batch x G x (K + answer length).
On add (K + answer <= 5 tokens) G = 32 and batch 256, the settings the learning results in
docs/THINKERS.md were measured with. On longer rollouts (sort, graph, sat) G = 4 and batch 64, so a
step samples 256 rollouts, as many rows as a gpt step at batch 256 has: `think_fixed` on sort max
1000 at G = 32, batch 256 ran 0.1 steps/s on the 2-core CPU. `--group` and `--batch` override them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

from solvers.errors import SolverError
from solvers.options import DEFAULT_THOUGHTS, SolverOptions, TaskShape, thoughts_field

SHORT_ROLLOUT = 5
"""K + answer tokens up to which a rollout is short (add) and keeps G = 32, batch 256."""
LONG_GROUP, LONG_BATCH = 4, 64

FLAGS = ("fixed", "blind", "split", "super", "clean", "search")
EXAMPLES = (
    "think",
    "think_fixed",
    "think_fixed_blind_super",
    "think_fixed_blind_super_clean",
    "think_fixed_blind_split_super_clean_search",
)


def parse_think_name(name: str) -> tuple[str, dict[str, bool]] | None:
    """'think_super_fixed' -> ('think_fixed_super', flags); None for names of other families."""
    parts = name.split("_")
    if parts[0] != "think":
        return None
    given = parts[1:]
    unknown = [flag for flag in given if flag not in FLAGS]
    if unknown:
        raise SolverError(f"solver {name!r}: unknown flag {unknown[0]!r}; valid flags: {', '.join(FLAGS)}")
    repeated = sorted({flag for flag in given if given.count(flag) > 1})
    if repeated:
        raise SolverError(f"solver {name!r}: flag {repeated[0]!r} given twice")
    if "clean" in given and "super" not in given:
        raise SolverError(
            f"solver {name!r}: clean needs super (the clean reward compares thoughts with the reference "
            "trace, which only super teaches the answerer to read)"
        )
    flags = {flag: flag in given for flag in FLAGS}
    return "_".join(["think", *(flag for flag in FLAGS if flags[flag])]), flags


STRAIGHT_THROUGH = ("gumbel", "straight")
"""Estimators whose gradient reaches the thinker through its thoughts' embeddings (one rollout a question)."""


@dataclass(frozen=True)
class ThinkOptions(SolverOptions):
    AUTO: ClassVar[dict[str, str]] = {
        "thoughts": "auto: the trace length under super, else 4",
        "group": f"auto: 32 on short rollouts (add), {LONG_GROUP} with batch {LONG_BATCH} on longer ones",
    }
    """What `bench solvers` shows for the defaults chosen per task (step_defaults)."""
    LABEL: ClassVar[str] = "Thinkers"
    fixed: bool = False
    blind: bool = False
    split: bool = False
    super: bool = False
    clean: bool = False
    search: bool = False
    thoughts: int | None = thoughts_field(None, minimum=1)  # None: chosen per task (resolved); 0 is no thinker
    thought_vocab: int = 16
    """Thought tokens when not super (super uses the task's trace alphabet)."""
    estimator: Literal["reinforce", "gumbel", "straight", "imitate"] = "reinforce"
    """reinforce (log-prob gradient), gumbel (straight-through Gumbel-softmax through the thoughts),
    straight (straight-through argmax: the thinker's greedy thoughts forward, the softmax's gradient
    back, no sampling; without super) or imitate (cross-entropy on the reference trace, teacher-forced:
    supervised chain of thought, not RL; needs super)."""
    baseline: Literal["batch", "group", "loo", "reference", "value"] = "group"
    """The advantage's baseline: group (the mean of the question's G rollouts, GRPO: it credits useful
    thoughts, not easy questions), loo (that mean leaving the rollout out), batch (the batch mean),
    reference (the answerer's score without thoughts) or value (a learned value head)."""
    group: int | None = None
    """Rollouts per question G. Default (auto): per task, see step_defaults (32 on add, 4 on longer rollouts)."""
    reward: Literal["auto", "logprob", "prob", "correct", "clean"] = "auto"
    """auto: clean with clean; prob (answerer's probability of the answer) with super; else logprob."""
    equal_groups: Literal["batch", "none"] = "batch"
    """Groups whose G rewards all agree: baseline = the batch mean (a failing question is pushed off its
    wrong thoughts) or none (GRPO: no gradient; such questions can stay confidently wrong)."""
    credit: Literal["position", "truncate", "sequence"] = "position"
    """Clean reward: position (thought i scored by whether t1..ti match), truncate (position, and a
    rollout ends at its first wrong thought: nothing after it can score, so it is neither sampled nor
    trained on; far fewer rows to run while the policy is diffuse) or sequence (all by the whole)."""
    normalize: bool = True
    """Divide advantages by the std of the group's rewards (zero-std groups unscaled; std floor 0.05)."""
    epsilon: float = 0.0
    """Epsilon-greedy: share of thoughts drawn uniformly instead of from the policy."""
    entropy: float | None = None
    """Entropy bonus weight. Default: 0.01 with the clean reward; 0.1 with answerer-scored rewards,
    whose hedging saddle otherwise traps the policy (measured on add mod 100); 0 with imitate and straight."""
    tau: float = 1.0
    """Gumbel-softmax temperature (estimator gumbel)."""
    think_lr: float = 0.0
    """Learning rate of the thinking transformer `net` (0 = --lr); without split `net` also answers."""
    direct: float = 0.0
    """Weight of a direct-answer loss on the thinking transformer: at <bot> it also predicts the
    answer, as gpt does (no trace involved), so its states hold what its thoughts must carry before
    the answerer can read them. 0 = off."""
    LATE: ClassVar[tuple[str, ...]] = ("direct",)

    def validate(self) -> None:
        if not 2 <= self.thought_vocab <= 4096:
            raise SolverError(f"--thought-vocab={self.thought_vocab} out of range; valid: 2..4096")
        if self.group is not None and not 1 <= self.group <= 256:
            raise SolverError(f"--group={self.group} out of range; valid: 1..256")
        if self.baseline in ("group", "loo") and self.group is not None and self.group < 2:
            raise SolverError(
                f"--baseline {self.baseline} needs --group >= 2 (got {self.group}); or use batch, reference or value"
            )
        if self.search and self.group is not None and self.group < 2:
            raise SolverError(f"search picks the best of --group rollouts; --group={self.group} must be >= 2")
        if self.clean and self.reward not in ("auto", "clean"):
            raise SolverError(f"--reward {self.reward} conflicts with the clean flag (clean sets the reward)")
        if self.reward == "clean" and not self.clean:
            raise SolverError("--reward clean is the clean flag: use a name with _super_clean")
        if self.reward_kind == "clean" and self.baseline == "reference":
            raise SolverError(
                "--baseline reference scores the answer without thoughts, which the clean reward does not score; "
                "use group, loo, batch or value"
            )
        if self.credit == "truncate" and (self.reward_kind != "clean" or self.estimator != "reinforce" or self.search):
            raise SolverError(
                "--credit truncate ends a rollout at its first thought off the reference trace: it needs the clean "
                "reward (a name with _super_clean), --estimator reinforce and no search"
            )
        if self.estimator == "imitate" and (not self.super or self.search or self.epsilon > 0):
            raise SolverError(
                "--estimator imitate trains the thoughts on the reference trace: it needs super (a name with _super), "
                "and no search or --epsilon (nothing is sampled in training)"
            )
        if self.search and self.estimator in STRAIGHT_THROUGH:
            raise SolverError(
                "search selects sampled thoughts for REINFORCE-style targets; use --estimator reinforce with search"
            )
        if self.estimator == "straight" and self.super:
            raise SolverError(
                "--estimator straight trains the answerer on the thinker's own greedy thoughts: it is for thinkers "
                "without super; with super use reinforce, gumbel or imitate"
            )
        if not 0.0 <= self.epsilon <= 1.0:
            raise SolverError(f"--epsilon={self.epsilon} out of range; valid: 0..1")
        if self.epsilon > 0 and self.estimator in STRAIGHT_THROUGH:
            raise SolverError(
                f"--epsilon applies to sampled thoughts; the {self.estimator} estimator samples none "
                "(gumbel explores through its noise)"
            )
        if self.entropy is not None and self.entropy < 0:
            raise SolverError(f"--entropy={self.entropy} must be >= 0")
        if not self.tau > 0:
            raise SolverError(f"--tau={self.tau} must be positive")
        if self.direct < 0:
            raise SolverError(f"--direct={self.direct} must be >= 0")
        if self.think_lr < 0:
            raise SolverError(f"--think-lr={self.think_lr} must be >= 0")

    def resolved(self, shape: TaskShape) -> ThinkOptions:
        """These options with K and G written out for this task, so a spec (and its run id) names the
        number of thoughts and the group it trained with (scripts/migrate_run_ids.py moved older runs)."""
        if self.thoughts is not None and self.group is not None:
            return self
        chosen = step_defaults(shape, self)
        return dataclasses.replace(self, thoughts=chosen.thoughts, group=chosen.group)

    @property
    def entropy_weight(self) -> float:
        if self.entropy is not None:
            return self.entropy
        if self.estimator in ("imitate", "straight"):  # nothing is sampled: no exploration to keep up
            return 0.0
        return 0.01 if self.reward_kind == "clean" else 0.1

    @property
    def reward_kind(self) -> str:
        if self.reward == "auto":
            return "clean" if self.clean else ("prob" if self.super else "logprob")
        return self.reward


@dataclass(frozen=True)
class StepDefaults:
    thoughts: int
    group: int
    batch: int
    why: str


def step_defaults(shape: TaskShape, options: ThinkOptions) -> StepDefaults:
    """K, G and the batch a thinker uses on this task when not given, and why (shown by `bench run`)."""
    K = (
        options.thoughts
        if options.thoughts is not None
        else (max(shape.trace_len, 1) if options.super else DEFAULT_THOUGHTS)
    )
    length = K + shape.answer_len
    if length <= SHORT_ROLLOUT:
        G, batch = 32, 256
        why = (f"short rollouts (K + answer = {length} <= {SHORT_ROLLOUT} tokens): G = 32, batch 256, "
               "as measured on add (docs/THINKERS.md)")
    else:
        G, batch = LONG_GROUP, LONG_BATCH
        why = (f"long rollouts (K + answer = {length} > {SHORT_ROLLOUT} tokens): G = {G}, batch {batch}, "
               f"{G * batch} rollouts a step, the rows of a gpt step at batch 256")
    if options.group is not None and options.group != G:  # resolved options hold the default G: not 'given'
        G, why = options.group, why + f"; G = {options.group} given"
    if options.estimator == "imitate":
        why += "; imitate samples no rollouts in training, so G is unused"
    return StepDefaults(K, G, batch, why)
