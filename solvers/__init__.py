"""Solvers built on one transformer core: the GPT baseline, discrete and continuous thinkers, pause."""

from solvers.base import (
    ModelConfig,
    OptimConfig,
    Prediction,
    Solver,
    SolverError,
    TaskShape,
    TensorBatch,
    make_solver,
    register_solver,
    resolve_solver,
    solver_families,
)
from solvers.core import CoreConfig, Transformer

__all__ = [
    "ModelConfig", "OptimConfig", "Prediction", "Solver", "SolverError", "TaskShape", "TensorBatch",
    "make_solver", "register_solver", "resolve_solver", "solver_families", "CoreConfig", "Transformer",
]
