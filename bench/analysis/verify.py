"""Scoring JSONL answers for `bench verify`, built so that a solver cannot game the score.

- A line's problem is checked, then its "answer" is judged by the task's own verifier. A line
  whose problem is valid but which has no "answer" counts as wrong and stays in n (`unanswered`):
  skipping hard problems never raises a score.
- Verifying may search (a sat UNSAT claim is a proof search): each line gets `time_limit` seconds;
  a line that hits it is `unverified`, counted in n and never as right.
- A malformed line (not JSON, nested too deeply, a number of more than 4300 digits, not an object,
  unknown task, a problem of the wrong shape) gets one named error and is left out of n; every
  other line is still scored. A UTF-8 byte order mark before a line is ignored.
- The time limit is real: checking and verifying a line run under an interval timer (SIGALRM, in
  the main thread) that interrupts pure-Python loops (networkx, the shape checks), so a huge graph
  at --time-limit 0.01 is unverified within about that time, not after its search ends. Parsing
  is outside the limit but bounded by the line length: a line over MAX_LINE_BYTES stops the file
  with one error (`read_lines`), so /dev/zero cannot exhaust memory.
- Problems must have their task's shape (an `add` has exactly two operands; `multiadd` 2..32).
  Fields that are not part of the problem ("params", "trace", "meta", anything unknown) are ignored
  alike: the task is rebuilt from its name alone and judges the problem's own fields.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from bench.errors import UserError, shorten
from bench.stats import wilson_interval
from tasks import Task, TaskError, make_task

DEFAULT_TIME_LIMIT = 10.0
# Keys of a JSONL record that are not part of the problem itself.
RECORD_KEYS = frozenset({"task", "params", "answer", "trace", "meta"})
# Operand counts of the modular-sum tasks (add.py and multiadd.py check values, not counts).
OPERAND_COUNTS = {"add": (2, 2), "multiadd": (2, 32)}
# Longest line read (bytes): about two million graph edges. Without a bound one endless line
# (/dev/zero, a stuck pipe) is read until memory runs out; this bounds parsing time as well.
MAX_LINE_BYTES = 32 * 2**20
# Python's own bound on int("...") (sys.get_int_max_str_digits); checked first so the message is ours.
MAX_DIGITS = 4300


@dataclass
class TaskScore:
    n: int = 0
    correct: int = 0
    unanswered: int = 0
    unverified: int = 0

    def as_dict(self) -> dict[str, Any]:
        low, high = wilson_interval(self.correct, self.n)
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.correct / self.n if self.n else 0.0,
            "interval95": [low, high],
            "unanswered": self.unanswered,
            "unverified": self.unverified,
        }


class BadLine(ValueError):
    """A JSONL line that cannot be scored; the message is one line."""


# What a malformed record can make a task's checker or verifier raise. Anything else is a bug.
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)
RIGHT, WRONG, UNANSWERED, UNVERIFIED = "right", "wrong", "unanswered", "unverified"


def check_shape(name: str, problem: dict[str, Any]) -> None:
    """Shape checks the task classes leave to the verifier (operand counts of add and multiadd)."""
    if name in OPERAND_COUNTS:
        low, high = OPERAND_COUNTS[name]
        operands = problem.get("operands")
        if isinstance(operands, list) and not low <= len(operands) <= high:
            wanted = f"exactly {low}" if low == high else f"{low}..{high}"
            raise TaskError(f"{name}: 'operands' must hold {wanted} numbers, got {len(operands)}")


def _bounded_int(digits: str) -> int:
    if len(digits) - digits.startswith("-") > MAX_DIGITS:
        raise BadLine(f"a number of {len(digits.lstrip('-'))} digits; numbers have at most {MAX_DIGITS}")
    return int(digits)


class LineTimeout(BaseException):
    """The line's time limit passed (raised by the timer's signal handler; a BaseException so that
    no `except Exception` in a task's code swallows it)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise LineTimeout in this thread after `seconds`. Only the main thread of a POSIX process
    can take SIGALRM; elsewhere this does nothing and the caller's clock check decides alone."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise LineTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
            if outer > 0:  # someone else's timer (a test's guard) was running: put back what it had left
                signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


def read_lines(stream: IO[bytes], shown: str, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary stream, each at most `max_bytes` long; a longer one is a one-line
    UserError naming the source and the line (nothing of the file is scored: an endless line, as
    from /dev/zero, has no end to skip to)."""
    number = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes:
            raise UserError(f"{shown} line {number} is longer than {max_bytes // 2**20} MiB, bench verify's limit "
                            f"per line; nothing was scored")
        yield line


def parse_record(text: str) -> dict[str, Any]:
    """One JSONL line as a record with a string "task", or BadLine naming what is wrong."""
    try:
        record = json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise BadLine("nested too deeply (RecursionError)") from None
    except ValueError as exc:  # _bounded_int's BadLine, or any other conversion json gives up on
        raise BadLine(str(exc) if isinstance(exc, BadLine) else f"not valid JSON ({shorten(str(exc))})") from None
    if not isinstance(record, dict):
        raise BadLine(f"expected a JSON object, got {type(record).__name__}")
    name = record.get("task")
    if not isinstance(name, str):
        raise BadLine("missing field 'task'" if name is None else f"'task' must be a string, got {str(name)[:80]!r}")
    return record


def verify_record(text: str, tasks: dict[str, Task], time_limit: float = DEFAULT_TIME_LIMIT) -> tuple[str, str]:
    """Check one JSONL line: (task name, outcome: right, wrong, unanswered or unverified).
    Raises BadLine if the line cannot be scored."""
    record = parse_record(text)
    name = record["task"]
    try:
        if name not in tasks:
            tasks[name] = make_task(name)  # params are ignored: the problem's own fields decide
        task = tasks[name]
        problem = {k: v for k, v in record.items() if k not in RECORD_KEYS}
        start = time.perf_counter()
        try:
            # The timer fires a little after the limit, so a task's own interruption (sat's Minisat)
            # normally comes first; a problem too big to even check in time is unverified too.
            with deadline(time_limit * 1.05 + 0.01):
                task.check_problem_json(problem)
                check_shape(name, problem)
                if "answer" not in record:
                    return name, UNANSWERED
                verdict = task.verify_json_within(problem, record["answer"], time_limit)
        except LineTimeout:
            return name, UNVERIFIED
        if verdict is None or time.perf_counter() - start > time_limit:
            return name, UNVERIFIED
        return name, RIGHT if verdict else WRONG
    except TaskError as exc:
        raise BadLine(str(exc).splitlines()[0] if str(exc) else "invalid problem") from None
    except RecursionError:
        raise BadLine(f"invalid problem for task {name!r} (RecursionError: nested too deeply)") from None
    except _MALFORMED as exc:
        raise BadLine(f"invalid problem for task {name!r} ({type(exc).__name__}: {shorten(str(exc))})") from None


def score_lines(
    lines: Iterable[bytes | str], time_limit: float = DEFAULT_TIME_LIMIT
) -> tuple[dict[str, TaskScore], list[tuple[int, str]]]:
    """Score JSONL lines: per-task scores and the (line number, reason) of every malformed line."""
    scores: dict[str, TaskScore] = {}
    bad: list[tuple[int, str]] = []
    tasks: dict[str, Task] = {}
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            bad.append((number, "not UTF-8 text"))
            continue
        text = text.removeprefix("\ufeff")  # a byte order mark (Windows editors write one at the start)
        if not text.strip():
            continue
        try:
            name, outcome = verify_record(text, tasks, time_limit)
        except BadLine as exc:
            bad.append((number, shorten(str(exc).replace("\n", " "))))
            continue
        score = scores.setdefault(name, TaskScore())
        score.n += 1
        score.correct += outcome == RIGHT
        score.unanswered += outcome == UNANSWERED
        score.unverified += outcome == UNVERIFIED
    return scores, bad
