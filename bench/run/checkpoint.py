"""Checkpoints: saved atomically through `torch.save` of tensors and plain containers, loaded with
`weights_only=True` only (never a pickle of code); a run record without its checkpoint.pt (committed
records leave it out) says so in one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.run.files import atomic_write_bytes
from bench.run.records import read_regular_file, validate_checkpoint


def atomic_torch_save(path: Path, state: dict[str, Any]) -> None:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True); a corrupt or foreign file is a one-line UserError."""
    import io
    import warnings

    import torch

    if path.name == "checkpoint.pt" and not os.path.lexists(path):  # a committed record: no checkpoint
        raise CheckpointMissing(missing_checkpoint_message(path.parent))
    data = io.BytesIO(read_regular_file(path))  # a FIFO named checkpoint.pt would block torch.load
    try:
        with warnings.catch_warnings():  # torch warns about plain pickles before refusing them: one line only
            warnings.simplefilter("ignore")
            state = torch.load(data, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise UserError(f"checkpoint {path} is corrupt or not a thinkbench checkpoint ({type(exc).__name__})") from None
    return validate_checkpoint(path, state)


class CheckpointMissing(UserError):
    """A run record without its checkpoint (committed records leave checkpoint.pt out)."""


def missing_checkpoint_message(folder: Path) -> str:
    """One line: this run's checkpoint is not in its record, and how to get it back."""
    return (f"run {folder.name}: checkpoint.pt is not in the record (committed run records leave checkpoints out); "
            f"retrain the spec to get it: bench recheck {folder.name} --keep")


def restore_solver(solver: Any, path: Path) -> dict[str, Any]:
    """Load a run's checkpoint (weights_only) into `solver` and return it (its step counters are the
    caller's); a checkpoint that does not fit the solver is a one-line UserError naming the file."""
    saved = load_checkpoint(path)
    try:
        solver.restore(saved["solver"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise UserError(f"checkpoint {path} does not fit this run's solver ({type(exc).__name__})") from None
    return saved
