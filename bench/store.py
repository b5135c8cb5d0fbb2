"""The results store: results/runs/<run id>/ with every file written atomically.

    spec.json        the frozen spec (its hash is the directory name)
    status.json      {"state": "running" | "interrupted" | "finished", "step": ..., ...}
    curve.json       the training curve: [{"step", "loss", "train_acc", "accuracy", "elapsed"}, ...]
    evaluation.json  the final evaluation (overall, per size / depth bucket, per thought budget)
    environment.json torch version, device, git commit, host facts
    checkpoint.pt    model + optimizer state (tensors and plain containers only: weights_only loads)

Writes go to a temporary file in the same folder, then `os.replace`, so a crash at any moment leaves
either the old file or the new one, never half of one. Nothing is pickled except through
`torch.save` of tensors, and checkpoints load with `weights_only=True`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import UserError

RUNS_DIR = "runs"


def _file_mode() -> int:
    # mkstemp creates 0600 files; results are shared data, so honour the user's umask instead.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def atomic_torch_save(path: Path, state: dict[str, Any]) -> None:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True); a corrupt or foreign file is a one-line UserError."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise UserError(f"checkpoint {path} is corrupt or not a thinkbench checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "solver" not in state or "step" not in state:
        raise UserError(f"checkpoint {path} is not a thinkbench checkpoint (missing solver state)")
    return state


def results_root(path: str | os.PathLike[str] | None) -> Path:
    """Validate the results folder: it must be a directory we can create and write in."""
    root = Path(path if path is not None else os.environ.get("THINKBENCH_RESULTS", "results")).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"results folder {root} is a file, not a folder")
    try:
        (root / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root / RUNS_DIR, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise UserError(f"results folder {root} is not writable ({exc.strerror or exc})") from None
    return root


def readable_root(path: str | os.PathLike[str] | None) -> Path:
    """The results folder for commands that only read (show, compare): never created or probed, so
    a read-only or not yet existing folder is fine. A file in its place is a one-line UserError."""
    root = Path(path if path is not None else os.environ.get("THINKBENCH_RESULTS", "results")).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"results folder {root} is a file, not a folder")
    return root


class RunDir:
    """One run's folder."""

    def __init__(self, root: Path, run_id: str) -> None:
        if not run_id or not all(c in "0123456789abcdef" for c in run_id):
            raise UserError(f"run id {run_id!r} is not a run id (12 hex digits)")
        self.run_id = run_id
        self.path = root / RUNS_DIR / run_id

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.file("spec.json").exists()

    def status(self) -> dict[str, Any]:
        return self.read("status.json", {"state": "new"})  # corrupt JSON: a one-line UserError

    def write(self, name: str, value: Any) -> None:
        atomic_write_json(self.file(name), value)

    def read(self, name: str, default: Any = None) -> Any:
        path = self.file(name)
        if not path.exists():
            return default
        try:
            return read_json(path)
        except json.JSONDecodeError:
            raise UserError(f"{path} is corrupt (not JSON); delete the run folder to start over") from None


def find_run(root: Path, prefix: str) -> RunDir:
    """A run by its id or a unique prefix of it."""
    runs = root / RUNS_DIR
    if not prefix or not all(c in "0123456789abcdef" for c in prefix):
        raise UserError(f"run id {prefix!r} is not a run id (hex digits)")
    matches = sorted(p.name for p in runs.glob(f"{prefix}*") if (p / "spec.json").exists()) if runs.exists() else []
    if not matches:
        raise UserError(f"no run {prefix!r} under {runs}")
    if len(matches) > 1:
        raise UserError(f"run id prefix {prefix!r} is ambiguous: {', '.join(matches[:5])}")
    return RunDir(root, matches[0])


def all_runs(root: Path) -> list[RunDir]:
    runs = root / RUNS_DIR
    if not runs.exists():
        return []
    return [RunDir(root, p.name) for p in sorted(runs.iterdir()) if (p / "spec.json").exists()]
