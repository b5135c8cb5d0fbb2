"""Atomic writes for the results store: a temporary file in the same folder, fsync, then `os.replace`,
so a crash at any moment leaves either the old file or the new one, never half of one. Also the
write probe run before long work (`check_writable`) and the store's JSON reader (`read_json`)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.run.records import read_validated


def _file_mode() -> int:
    # mkstemp creates 0600 files; results are shared data, so honour the user's umask instead.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()  # new store files and lock files get this mode


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
        os.fchmod(fd, FILE_MODE)
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
