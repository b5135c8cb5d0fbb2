"""The results store: results/runs/<run id>/ with every file written atomically.

    spec.json        the frozen spec (its hash is the directory name)
    status.json      {"state": "running" | "interrupted" | "finished", "step": ..., ...}
    curve.json       the training curve: [{"step", "loss", "train_acc", "accuracy", "elapsed"}, ...]
    evaluation.json  the final evaluation (overall, per size / depth bucket, per thought budget)
    environment.json torch version, device, git commit, host facts
    answers.json     every test problem's answer and whether it was right (bench/run/evaluate.py)
    checkpoint.pt    model + optimizer state (tensors and plain containers only: weights_only loads)

A *run record* is this folder without checkpoint.pt (and without temp files, locks or tensorboard
events): what the repository commits (.gitignore). A record reads as a finished run everywhere
(compare, show, experiment reports); what needs the model (`--init` from it, `bench inspect`)
says in one line that the checkpoint is not in the record (`missing_checkpoint_message`).

This module finds runs (the results folder, `RunDir`, run id prefixes) and swaps a `--force`
retrain into place. Its parts live beside it, one job each, and are re-exported here so
`from bench.run.store import ...` keeps working:

    bench/run/files.py       atomic writes (temporary file, fsync, `os.replace`), the write probe, read_json
    bench/run/checkpoint.py  checkpoints: `torch.save` of tensors, loaded with `weights_only=True` only
    bench/run/lock.py        the run lock (one process per run)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.run.checkpoint import (
    CheckpointMissing, atomic_torch_save, load_checkpoint, missing_checkpoint_message, restore_solver,
)
from bench.run.files import StoreWriteError, atomic_write_bytes, atomic_write_json, check_writable, read_json
from bench.run.lock import LOCKS_DIR, RunLock, RunLocked

# The store writes what records.py reads and validates; records.py never imports the store.
# (RUNS_DIR, the runs folder's name, is defined beside its reader and re-exported here)
from bench.run.records import RUNS_DIR, warn_once

__all__ = [  # this module's names and its parts' (re-exported, so `from bench.run.store import ...` keeps working)
    "RUNS_DIR", "LOCKS_DIR", "RunDir", "RunLock", "RunLocked", "StoreWriteError", "CheckpointMissing",
    "atomic_write_bytes", "atomic_write_json", "atomic_torch_save", "check_writable", "read_json",
    "load_checkpoint", "missing_checkpoint_message", "restore_solver", "results_root", "readable_root",
    "find_run", "all_runs", "retrain_path", "replace_run", "recover_run",
]


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

    def __init__(self, root: Path, run_id: str, path: Path | None = None) -> None:
        if not run_id or not all(c in "0123456789abcdef" for c in run_id):
            raise UserError(f"run id {run_id!r} is not a run id (12 hex digits)")
        self.run_id = run_id
        self.path = path if path is not None else root / RUNS_DIR / run_id  # path: a --force retrain's folder

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.file("spec.json").exists()

    def status(self) -> dict[str, Any]:
        """The status record (corrupt: a one-line UserError). A "finished" run whose evaluation.json
        is gone counts as interrupted, with one warning: running it again resumes from its
        checkpoint at the last step, which only evaluates (or retrains, if the checkpoint is gone too)."""
        status = self.read("status.json", {"state": "new"})
        if status.get("state") == "finished" and not self.file("evaluation.json").exists():

            again = ("re-evaluates it from its checkpoint" if self.file("checkpoint.pt").exists()
                     else "retrains it (its checkpoint.pt is gone too)")
            warn_once(f"{self.path}:evaluation", f"run {self.run_id} says finished but its evaluation.json is missing; "
                      f"running it again (the same bench run or sweep) {again}")
            return {**status, "state": "interrupted"}
        return status

    def write(self, name: str, value: Any) -> None:
        atomic_write_json(self.file(name), value)

    def read(self, name: str, default: Any = None) -> Any:
        """A stored file through the one validated reader (bench/run/records.py): a file that is not
        UTF-8 JSON of the right shape, types and ranges is a one-line StoreError naming it."""
        path = self.file(name)
        if not path.exists():
            return default
        return read_json(path)


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
    run = RunDir(root, matches[0])
    _warn_if_copied(run)
    return run


def _warn_if_copied(run: RunDir) -> None:
    """The warning `bench compare` gives, for commands that show one run: a folder whose name is not
    its spec's hash was copied or edited, so it is not the run its name says."""
    from bench.run.spec import RunSpec

    try:
        real = RunSpec.from_json(run.read("spec.json")).run_id
    except (UserError, TypeError, ValueError, KeyError):
        return  # a bad spec is one line from whoever reads it next
    if real != run.run_id:
        warn_once(f"{run.path}:copied", f"run folder {run.run_id} is not named after its spec's hash {real} "
                  f"(a copied or edited run folder); compare, plot and experiment skip it")


def all_runs(root: Path) -> list[RunDir]:
    runs = root / RUNS_DIR
    if not runs.exists():
        return []
    # Hidden folders (a --force retrain, a swap's leftover) are not runs.
    return [RunDir(root, p.name) for p in sorted(runs.iterdir())
            if not p.name.startswith(".") and (p / "spec.json").exists()]


# ---- --force: retrain beside the finished result, swap at the end ---------------------------------


def retrain_path(root: Path, run_id: str) -> Path:
    """Where `--force` retrains a finished run: hidden, so no reader counts it before it finishes."""
    return root / RUNS_DIR / f".{run_id}.retrain"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_run(final: Path, fresh: Path) -> None:
    """Put a finished retrain (`fresh`) in place of `final`: at every moment one of the two finished
    results is under the run's name (atomic exchange), or, without renameat2, for at most the gap
    between two renames, which `recover_run` repairs."""
    old = final.parent / f".{final.name}.old"
    try:
        if old.exists():
            shutil.rmtree(old)
        if final.exists() and _exchange(fresh, final):
            os.rename(fresh, old)
        else:
            if final.exists():
                os.rename(final, old)
            os.rename(fresh, final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise UserError(f"cannot move the retrained run into {final} ({exc.strerror or type(exc).__name__})") from None


def recover_run(root: Path, run_id: str) -> None:
    """Under the run's lock: finish or undo a swap a kill interrupted, and drop a leftover copy."""
    final = root / RUNS_DIR / run_id
    fresh, old = retrain_path(root, run_id), final.parent / f".{run_id}.old"
    try:
        fresh_done = RunDir(root, run_id, fresh).read("status.json", {}).get("state") == "finished"
    except UserError:  # a corrupt leftover is no result
        fresh_done = False
    if not final.exists():
        if fresh_done:
            os.rename(fresh, final)
        elif old.exists():
            os.rename(old, final)
    elif fresh_done:  # the old result, exchanged out and not yet moved aside: the new one is in place
        shutil.rmtree(fresh, ignore_errors=True)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
