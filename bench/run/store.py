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

Writes go to a temporary file in the same folder, then `os.replace`, so a crash at any moment leaves
either the old file or the new one, never half of one. Nothing is pickled except through
`torch.save` of tensors, and checkpoints load with `weights_only=True`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bench.errors import UserError
# The store writes what records.py reads and validates; records.py never imports the store.
# (RUNS_DIR, the runs folder's name, is defined beside its reader and re-exported here)
from bench.run.records import RUNS_DIR, owner, pid_alive, read_regular_file, read_validated, validate_checkpoint, warn_once
LOCKS_DIR = "locks"  # one lock file per run id, kept (removing one would race with its next taker)


def _file_mode() -> int:
    # mkstemp creates 0600 files; results are shared data, so honour the user's umask instead.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


class StoreWriteError(UserError, OSError):
    """A store file that cannot be written: one line for the user, still an OSError for callers."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `path` atomically; a folder we cannot write (immutable, full, a file in the way) is a
    one-line UserError naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StoreWriteError(f"cannot write {path} ({exc.strerror or type(exc).__name__})") from None
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, StoreWriteError):
            raise StoreWriteError(f"cannot write {path} ({exc.strerror or type(exc).__name__})") from None
        raise


def check_writable(folder: Path, what: str) -> Path:
    """Create `folder` if needed and prove we can write in it, before any long work (training) whose
    result would go there; else a one-line UserError naming `what` and the folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {folder} is not writable ({exc.strerror or type(exc).__name__})") from None
    return folder


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    """UTF-8 JSON, validated when it is one of a run's files (bench/run/records.py); else a one-line error."""
    return read_validated(path)


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
    return [RunDir(root, p.name) for p in sorted(runs.iterdir()) if not p.name.startswith(".") and (p / "spec.json").exists()]


# ---- one process per run: the run lock ------------------------------------------------------------


class RunLocked(UserError):
    """Another live process holds this run's lock."""


class RunLock:
    """An exclusive lock on one run: RESULTS/locks/<id>.lock, holding the owner's pid, host and start time.

    The lock is an flock on that file, so the kernel drops it when its owner dies (kill -9, a crash):
    a lock left behind is stale by construction and is simply taken over. Where flock is missing
    (not POSIX) the file itself is the lock (O_EXCL) and a lock whose owner was on this host and is
    gone is stale and removed. The file lives outside the run folder, so a --force retrain
    can swap folders under it and an immutable run folder is reported as such, not as a lock failure.
    """

    def __init__(self, root: Path, run_id: str) -> None:
        self.run_id = run_id
        self.path = root / LOCKS_DIR / f"{run_id}.lock"
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
            return f"pid {int(info['pid'])} on host {info['host']} (since {info.get('since', '?')})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def held_by(self) -> str | None:
        """Who holds the lock now (None: nobody), without taking it; for a one-line refusal up front."""
        try:
            import fcntl

            fd = os.open(self.path, os.O_RDONLY)
        except (ImportError, OSError):  # no lock file yet, or not POSIX: acquire() decides
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except BlockingIOError:
            return self.holder()
        finally:
            os.close(fd)

    def acquire(self, wait: bool = False, notify: Callable[[str], None] | None = None) -> RunLock:

        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._acquire_exclusive_file(wait, notify)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            raise UserError(f"cannot create the run lock {self.path} ({exc.strerror or type(exc).__name__})") from None
        for _ in range(5):  # a few tries: held_by() of another command takes it for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.05)
        else:
            holder = self.holder()
            if not wait:
                os.close(fd)
                raise RunLocked(f"run {self.run_id} is being trained by {holder}; wait for it with --wait, or stop that process") from None
            if notify is not None:
                notify(f"waiting for {holder} to finish run {self.run_id}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        mine = json.dumps({**owner(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, mine, 0)
        self.fd = fd
        return self

    def _acquire_exclusive_file(self, wait: bool, notify: Callable[[str], None] | None) -> RunLock:  # pragma: no cover

        told = False
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _FILE_MODE)
                os.write(fd, json.dumps({**owner(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
                self.fd = fd
                return self
            except FileExistsError:
                try:
                    info = json.loads(self.path.read_text() or "{}")
                    stale = info.get("host") == owner()["host"] and not pid_alive(int(info["pid"]))
                except (OSError, ValueError, KeyError, TypeError):
                    stale = False
                if stale:
                    self.path.unlink(missing_ok=True)
                    continue
                if not wait:
                    raise RunLocked(f"run {self.run_id} is being trained by {self.holder()}; wait for it with --wait, or stop that process") from None
                if notify is not None and not told:
                    notify(f"waiting for {self.holder()} to finish run {self.run_id}")
                    told = True
                time.sleep(1.0)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover - the exclusive-file lock is its file
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


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
