"""One process per run: the run lock, RESULTS/locks/<run id>.lock (an flock, so a dead owner's lock
is free by construction; an O_EXCL file where flock is missing)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from bench.errors import UserError
from bench.run.files import FILE_MODE
from bench.run.records import owner, pid_alive

LOCKS_DIR = "locks"  # one lock file per run id, kept (removing one would race with its next taker)


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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
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
                raise RunLocked(f"run {self.run_id} is being trained by {holder}; "
                                "wait for it with --wait, or stop that process") from None
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
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
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
                    raise RunLocked(f"run {self.run_id} is being trained by {self.holder()}; "
                                    "wait for it with --wait, or stop that process") from None
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
