"""Solvers built on one transformer core: the GPT baseline, discrete and continuous thinkers, pause.

The names below load lazily (PEP 562), so importing a torch-free part of the package
(`solvers.errors`, `solvers.config`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "ModelConfig": "solvers.config", "OptimConfig": "solvers.config", "SolverError": "solvers.errors",
    "Prediction": "solvers.base", "Solver": "solvers.base", "SolverOptions": "solvers.base",
    "TaskShape": "solvers.base",
    "TensorBatch": "solvers.base", "make_solver": "solvers.base", "register_solver": "solvers.base",
    "resolve_solver": "solvers.base", "solver_families": "solvers.base",
    "CoreConfig": "solvers.core", "Transformer": "solvers.core",
}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'solvers' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
