"""`continuous`'s options, torch-free (the harness reads them for `bench run`'s flags, bench/config.py);
the solver is solvers/continuous.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from solvers.errors import SolverError
from solvers.options import ThoughtBudgetOptions


@dataclass(frozen=True)
class ContinuousOptions(ThoughtBudgetOptions):
    LABEL: ClassVar[str] = "Continuous"
    think_layer: int = -1
    """Layer whose output is fed back: 0 = input embeddings, i = after block i; -1 = the last block
    (before the final LayerNorm), -2 the one before, ..."""
    normalize: Literal["none", "final", "embedding"] = "none"
    """Rescale the fed-back state: none; final = the model's final LayerNorm when think_layer is the
    last block (the model's last hidden state, what Coconut feeds back; a learned LayerNorm at other
    layers); embedding = LayerNorm without gain, scaled to the mean token-embedding norm. none is the
    default by measurement: add mod 200, 3 seeds, 2/3 at 99% against final's 1/3
    (experiments/continuous_feedback.toml)."""
    projection: bool = False
    """Pass the fed-back state through a learned linear map (initialised to the identity)."""
    blind: bool = False
    """<eot> and answer positions may not attend to the question or <bot> (also the name continuous_blind)."""
    curriculum: int = 0
    """Coconut stages S (0 = off): stage s replaces the first s/S of the reference trace with s*K/S thoughts."""
    stage_steps: int = 300
    """Training steps per curriculum stage."""
    reset_optimizer: bool = False
    """Start a fresh optimizer at each curriculum stage (Coconut does)."""
    stop_head: bool = False
    """Variable-length thinking: a learned stop head ends thinking early, capped at the budget."""

    def validate(self) -> None:
        super().validate()
        if self.curriculum < 0:
            raise SolverError(f"--curriculum={self.curriculum} must be >= 0 (0 = off)")
        if self.stage_steps < 1:
            raise SolverError(f"--stage-steps={self.stage_steps} must be at least 1")
        if self.curriculum:
            if self.thoughts % self.curriculum:
                raise SolverError(
                    f"--thoughts={self.thoughts} must be a multiple of --curriculum={self.curriculum} "
                    "(each stage adds thoughts/curriculum continuous thoughts)"
                )
            if self.vary_thoughts or self.stop_head:
                raise SolverError("--curriculum cannot be combined with vary_thoughts or stop_head")
        elif self.reset_optimizer:
            raise SolverError("--reset-optimizer applies only with --curriculum S (S >= 1)")


def think_layer_problem(layers: int, think_layer: int) -> str | None:
    """Why `think_layer` does not exist in a `layers`-block model, or None."""
    if -(layers + 1) <= think_layer <= layers:
        return None
    return (
        f"--think-layer={think_layer} is out of range for a {layers}-layer model; valid: 0..{layers} "
        f"(0 = input embeddings, {layers} = last block) or -{layers + 1}..-1 counting back from the last"
    )
