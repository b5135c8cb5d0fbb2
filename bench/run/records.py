"""The one validated reader of the results store: every stored file is checked (UTF-8, JSON, schema,
types, ranges) before any command uses it, and a bad file is a one-line `StoreError` naming it.

Commands that show one run (`show`, `inspect`, `run`) stop on a bad file with that line; commands
that read many runs (`compare`, `plot`, `experiment`) skip a bad folder with one warning naming it
(`scan_runs`), and accept only folders whose name is their spec's hash, so a copied or edited run
folder can never count as another seed. Validators accept extra keys, so newer writers stay readable.
"""

from __future__ import annotations

import json
import math
import os
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from bench.errors import COMMAND_RESETS, UserError, shorten

STATES = ("running", "interrupted", "finished")
RUNS_DIR = "runs"  # run folders under a results root; here, so the store imports this module, never the reverse


class StoreError(UserError):
    """A stored file that is missing a part, of the wrong type, out of range or not UTF-8 JSON."""


class _Bad(Exception):
    """Raised by the validators; becomes a StoreError naming the file."""


# ---- value checks ---------------------------------------------------------------------------------


def _int(value: Any, what: str, low: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{what} is {value!r}, not an integer")
    if low is not None and value < low:
        raise _Bad(f"{what} is {value}, below {low}")
    return value


def _number(value: Any, what: str, low: float | None = None, high: float | None = None, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"{what} is {value!r}, not a number")
    if finite and not math.isfinite(value):
        raise _Bad(f"{what} is {value!r}, not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _Bad(f"{what} is {value}, outside [{low}, {high}]")
    return float(value)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{what} is {type(value).__name__}, not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(f"{what} is {type(value).__name__}, not a list")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{what} is {value!r}, not a string")
    return value


def _interval(record: dict[str, Any], what: str, optional_bounds: bool = False, bracket: bool = True) -> None:
    """accuracy, low, high: numbers in [0, 1] with low <= accuracy <= high (the bounds may be absent
    where `optional_bounds`)."""
    acc = _number(record.get("accuracy"), f"{what}.accuracy", 0.0, 1.0)
    if optional_bounds and record.get("low") is None and record.get("high") is None:
        return
    low, high = (_number(record.get(k), f"{what}.{k}", 0.0, 1.0) for k in ("low", "high"))
    if bracket and not low <= acc <= high:
        raise _Bad(f"{what}: interval {low}-{high} does not contain accuracy {acc}")


# ---- per-file validators --------------------------------------------------------------------------


def check_spec(value: Any) -> dict[str, Any]:
    from bench.run.spec import RunSpec

    spec = _dict(value, "spec")
    for key in ("task", "solver", "device"):
        _str(spec.get(key), key)
    for key in ("task_params", "solver_options", "model", "optim", "train"):
        _dict(spec.get(key), key)
    if spec.get("init") is not None:
        _str(spec["init"], "init")
    model, train = spec["model"], spec["train"]
    for key in ("d_model", "layers", "heads"):
        _int(model.get(key), f"model.{key}", 1)
    _number(spec["optim"].get("lr"), "optim.lr", 0.0)
    for key in ("steps", "batch", "eval_size"):
        _int(train.get(key), f"train.{key}", 1)
    _int(train.get("seed"), "train.seed", 0)
    _number(train.get("target"), "train.target", 0.0, 1.0)
    try:
        problems = RunSpec.from_json(spec).train.validate()
    except (TypeError, ValueError) as exc:
        raise _Bad(str(exc).splitlines()[0]) from None
    if problems:
        raise _Bad(problems[0].replace("--", "train.").replace("-", "_"))
    _check_task_params(spec["task"], spec["task_params"])
    return spec


def _check_task_params(task: str, params: dict[str, Any]) -> None:
    """A registered task's parameters must build (so `max = -7` is refused); an unregistered one's
    must at least be plain values."""
    from tasks.base import TaskError
    from tasks.registry import make_task, task_class

    try:
        task_class(task)
    except TaskError:
        for key, value in params.items():
            if not isinstance(value, (int, float, str, bool, type(None))):
                raise _Bad(f"task_params.{key} is {value!r}, not a plain value") from None
        return
    try:
        make_task(task, overrides=params)
    except (TaskError, TypeError, ValueError) as exc:
        raise _Bad(f"task_params: {str(exc).splitlines()[0]}") from None


def check_status(value: Any) -> dict[str, Any]:
    status = _dict(value, "status")
    if status.get("state") not in STATES:
        raise _Bad(f"state is {status.get('state')!r}, not one of {', '.join(STATES)}")
    _int(status.get("step"), "step")
    if status.get("elapsed") is not None:
        _number(status["elapsed"], "elapsed", 0.0)
    if status.get("pid") is not None:
        _int(status["pid"], "pid", 1)
    if status.get("host") is not None:
        _str(status["host"], "host")
    if status["state"] == "finished":
        _interval(status, "status", optional_bounds=True)
        if status.get("steps_to_target") is not None:
            _int(status["steps_to_target"], "steps_to_target", 1)
        if status.get("parameters") is not None:
            _int(status["parameters"], "parameters", 1)
        if status.get("reached_target") is not None and not isinstance(status["reached_target"], bool):
            raise _Bad(f"reached_target is {status['reached_target']!r}, not true or false")
    return status


def check_curve(value: Any) -> list[dict[str, Any]]:
    for i, row in enumerate(_list(value, "curve")):
        _dict(row, f"curve[{i}]")
        _int(row.get("step"), f"curve[{i}].step", 1)
        _number(row.get("accuracy"), f"curve[{i}].accuracy", 0.0, 1.0)
        _number(row.get("elapsed"), f"curve[{i}].elapsed", 0.0)
        for key, metric in row.items():  # the solver's own metrics: numbers (a diverged loss may be NaN)
            if key not in ("step", "accuracy", "elapsed") and metric is not None:
                _number(metric, f"curve[{i}].{key}", finite=False)
    return value


def _check_scores(entry: Any, what: str, bracket: bool = True) -> None:
    entry = _dict(entry, what)
    overall = _dict(entry.get("overall"), f"{what}.overall")
    _interval(overall, f"{what}.overall", bracket=bracket)
    _int(overall.get("n"), f"{what}.overall.n", 1)
    if entry.get("thoughts") is not None:
        _int(entry["thoughts"], f"{what}.thoughts")
    for key, rows in _dict(entry.get("by"), f"{what}.by").items():
        for i, row in enumerate(_list(rows, f"{what}.by.{key}")):
            _dict(row, f"{what}.by.{key}[{i}]")
            _interval(row, f"{what}.by.{key}[{i}]", bracket=bracket)
            _int(row.get("n"), f"{what}.by.{key}[{i}].n")
            _int(row.get("bucket"), f"{what}.by.{key}[{i}].bucket", None)


def check_evaluation(value: Any) -> dict[str, Any]:
    evaluation = _dict(value, "evaluation")
    _check_scores(evaluation.get("final"), "final")
    for i, entry in enumerate(_list(evaluation.get("budgets", []), "budgets")):
        _check_scores(entry, f"budgets[{i}]", bracket=False)  # ranges only
    for key, item in _dict(evaluation.get("diagnostics") or {}, "diagnostics").items():
        values = item if isinstance(item, list) else [item]
        for v in values:
            if v is not None and not isinstance(v, (int, float, str)):
                raise _Bad(f"diagnostics.{key} holds {v!r}, not numbers")
    return evaluation


def check_environment(value: Any) -> dict[str, Any]:
    return _dict(value, "environment")


def check_answers(value: Any) -> dict[str, Any]:
    """answers.json (bench/run/evaluate.py): one answer (a list of token ids) and one 0/1 per test problem."""
    record = _dict(value, "answers")
    n = _int(record.get("n"), "n", 1)
    digest = _str(record.get("problems_sha256"), "problems_sha256")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise _Bad(f"problems_sha256 is {digest[:80]!r}, not a sha256 hex digest")
    if record.get("thoughts") is not None:
        _int(record["thoughts"], "thoughts")
    correct = _str(record.get("correct"), "correct")
    if len(correct) != n or set(correct) - {"0", "1"}:
        raise _Bad(f"correct must be {n} characters 0 or 1")
    answers = _list(record.get("answers"), "answers")
    if len(answers) != n:
        raise _Bad(f"answers holds {len(answers)} rows, not n={n}")
    for i, row in enumerate(answers):
        for token in _list(row, f"answers[{i}]"):
            _int(token, f"answers[{i}] token", None)
    return record


VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "spec.json": check_spec,
    "status.json": check_status,
    "curve.json": check_curve,
    "evaluation.json": check_evaluation,
    "environment.json": check_environment,
    "answers.json": check_answers,
}


def check_checkpoint(state: Any) -> dict[str, Any]:
    """A loaded checkpoint: {"solver": {"model": {name: tensor}, "optimizer": {...}}, "step", ...}."""
    import torch

    state = _dict(state, "checkpoint")
    solver = _dict(state.get("solver"), "solver")
    model = _dict(solver.get("model"), "solver.model")
    if not model or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        raise _Bad("solver.model is not a mapping of tensor names to tensors")
    _dict(solver.get("optimizer"), "solver.optimizer")
    _int(state.get("step"), "step")
    _number(state.get("elapsed"), "elapsed", 0.0)
    _int(state.get("steps_to_target"), "steps_to_target", -1)
    return state


# ---- reading --------------------------------------------------------------------------------------


def read_regular_file(path: Path) -> bytes:
    """The bytes of `path`, which must be a regular file: a FIFO named status.json would block the
    reader forever and a device never end, so the file is opened without blocking and checked
    before it is read (a one-line StoreError otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise StoreError(f"{path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # checked before fdopen, which refuses a folder with its own error
        os.close(fd)
        raise StoreError(f"{path} is not a regular file; delete the run folder to start over")
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise StoreError(f"{path} cannot be read ({exc.strerror or type(exc).__name__})") from None


def read_json_file(path: Path) -> Any:
    """UTF-8 JSON from `path` (a regular file), or a one-line StoreError (unreadable, not UTF-8, not JSON)."""
    data = read_regular_file(path)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise StoreError(f"{path} is corrupt (not UTF-8 text); delete the run folder to start over") from None
    except (ValueError, RecursionError):  # ValueError: bad JSON, or an integer of over 4300 digits
        raise StoreError(f"{path} is corrupt (not JSON); delete the run folder to start over") from None


def read_validated(path: Path) -> Any:
    """The file at `path`, validated by its name's validator (StoreError naming the file and the fault)."""
    value = read_json_file(path)
    check = VALIDATORS.get(path.name)
    if check is None:
        return value
    try:
        return check(value)
    except _Bad as exc:
        raise StoreError(f"{path} is invalid ({exc}); delete the run folder to start over") from None


def validate_checkpoint(path: Path, state: Any) -> dict[str, Any]:
    try:
        return check_checkpoint(state)
    except _Bad as exc:
        raise StoreError(f"checkpoint {path} is not a thinkbench checkpoint ({exc})") from None


# ---- many runs ------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One run folder's validated files (evaluation only when finished)."""

    run_id: str
    path: Path
    spec: dict[str, Any]
    status: dict[str, Any]
    evaluation: dict[str, Any] | None


def load_record(folder: Path) -> RunRecord:
    """A run folder, validated; its name must be its spec's hash (StoreError otherwise)."""
    from bench.run.spec import RunSpec

    spec = read_validated(folder / "spec.json")
    run_id = RunSpec.from_json(spec).run_id
    if folder.name != run_id:
        raise StoreError(f"{folder} is not named after its spec's hash {run_id} (a copied or edited run folder)")
    status_path = folder / "status.json"
    status = read_validated(status_path) if status_path.exists() else {"state": "new", "step": 0}
    evaluation = None
    if status["state"] == "finished":
        evaluation_path = folder / "evaluation.json"
        if not evaluation_path.exists():
            raise StoreError(f"{folder} says finished but has no evaluation.json (running it again re-evaluates it)")
        evaluation = read_validated(evaluation_path)
    return RunRecord(run_id, folder, spec, status, evaluation)


_warned: set[str] = set()
COMMAND_RESETS.append(_warned.clear)  # once per folder per command


def warn_once(key: str, line: str) -> None:
    """One warning line per key per command, on stderr."""
    if key not in _warned:
        _warned.add(key)
        print(f"warning: {shorten(line)}", file=sys.stderr)


def warn_skipped(folder: Path, reason: str) -> None:
    """One warning line per bad folder per command, on stderr."""
    warn_once(str(folder), f"skipped run folder {folder.name}: {reason}")


def scan_runs(root: Path, run_ids: Iterable[str] | None = None, warn: bool = True) -> tuple[list[RunRecord], list[str]]:
    """Every valid run folder under root/runs (or those in run_ids), and the names of the bad ones
    (each warned about once on stderr when `warn`). Hidden folders (a --force retrain) are not runs."""
    runs = Path(root) / RUNS_DIR
    wanted = None if run_ids is None else set(run_ids)
    records: list[RunRecord] = []
    bad: list[str] = []
    if not runs.is_dir():
        return records, bad
    for folder in sorted(runs.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir() or (wanted is not None and folder.name not in wanted):
            continue
        if not (folder / "spec.json").exists():
            continue
        try:
            records.append(load_record(folder))
        except StoreError as exc:
            bad.append(folder.name)
            if warn:
                warn_skipped(folder, str(exc).replace(f"{folder}/", "").replace(str(folder), "folder"))
    return records, bad


# ---- who is running a run ------------------------------------------------------------------------


def owner() -> dict[str, Any]:
    """This process as a run's owner, for status.json and the lock file."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def shown_state(status: dict[str, Any]) -> str:
    """The state to show: "running" becomes "stale" when its owner was on this host and is gone
    (a crash or kill -9 that never wrote "interrupted"). A run on another host cannot be checked."""
    state = str(status.get("state", "new"))
    pid, host = status.get("pid"), status.get("host")
    if state == "running" and isinstance(pid, int) and host == socket.gethostname() and not pid_alive(pid):
        return "stale"
    return state
