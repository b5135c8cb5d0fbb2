"""`bench tasks`, `bench sample`, `bench verify`: list the tasks, draw problems, score answers.

`bench verify` reads the JSONL that `bench sample --format jsonl` writes (one problem a line: "task",
the problem's fields, "answer"; other fields such as "params" are ignored), takes each line's
"answer" as the candidate from any solver, inside thinkbench or not, and checks it with the task's
own verifier. The scoring rules (missing answers count as wrong, a time limit per line, malformed
lines named and skipped) are in bench/analysis/verify.py.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
import sys
import tempfile
import textwrap
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import app
from bench.errors import UserError, fail, user_errors_exit
from bench.analysis.verify import DEFAULT_TIME_LIMIT, TaskScore, read_lines, score_lines
from tasks import Batch, Task, make_task, parse_assignments, stream_rng, task_class, task_names

MAX_PROBLEMS = 1_000_000
# A file of garbage must not flood the terminal; the summary line still counts every bad line.
MAX_REPORTED_BAD_LINES = 50


def check_choice(option: str, value: str, choices: Iterable[str]) -> str:
    """Return `value` if it is one of `choices`, else raise a one-line UserError naming them."""
    choices = list(choices)
    if value not in choices:
        raise UserError(f"{option} {value!r} is not valid; valid: {', '.join(choices)}")
    return value


# ---- bench tasks ------------------------------------------------------------------------------

def difficulty_text(cls: type[Task]) -> str:
    """One line: which parameter drives which difficulty (serial depth, width, answer mix): the task's own."""
    return cls.difficulty_help


def field_docs(params_cls: type) -> dict[str, str]:
    """The one-line docstrings written under each field of a Params dataclass (empty if unknown)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(params_cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for statement, following in zip(body, body[1:]):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = following.value.value.strip().splitlines()[0]
    return docs


def type_name(kind: Any) -> str:
    """A parameter's type as a user types it: int, float, bool, a|b|c, int or none."""
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return "|".join(map(str, typing.get_args(kind)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if k is type(None) else type_name(k) for k in typing.get_args(kind))
    return getattr(kind, "__name__", str(kind))


def describe_params(cls: type[Task]) -> list[dict[str, Any]]:
    """One dict per parameter: name, type, default, help, and whether `--max` sets it."""
    hints = typing.get_type_hints(cls.Params)
    docs = field_docs(cls.Params)
    rows = []
    for f in dataclasses.fields(cls.Params):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        rows.append(
            {
                "name": f.name,
                "type": type_name(hints.get(f.name, "")),
                "default": default,
                "help": cls.param_help.get(f.name) or docs.get(f.name, ""),
                "is_scale": f.name == cls.scale_param,
            }
        )
    return rows


def task_summary(cls: type[Task]) -> str:
    """First line of the task module's docstring, e.g. "`add`: (a + b) mod m ..."."""
    module = sys.modules.get(cls.__module__)
    doc = (module.__doc__ if module else None) or cls.__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@app.command("tasks")
@user_errors_exit
def tasks_command() -> None:
    """List the tasks, their parameters with defaults, what --max sets, and which parameter drives
    which difficulty (see also `bench floors` for each task's shortcut floors)."""
    table = Table(title="thinkbench tasks: --max sets the scale, --set name=value the others")
    table.add_column("task", style="bold", no_wrap=True)
    table.add_column("--max sets")
    table.add_column("parameter", no_wrap=True)
    table.add_column("type")
    table.add_column("default", justify="right")
    table.add_column("meaning")
    for name in task_names():
        cls = task_class(name)
        params = describe_params(cls)
        scale = cls.scale_help or cls.scale_param
        for i, p in enumerate(params):
            table.add_row(
                name if i == 0 else "",
                scale if i == 0 else "",
                p["name"] + (" (--max)" if p["is_scale"] else ""),
                p["type"],
                str(p["default"]),
                p["help"],
                end_section=i == len(params) - 1 and not difficulty_text(cls),
            )
        if difficulty_text(cls):
            table.add_row("", "", "(difficulty)", "", "", difficulty_text(cls), end_section=True)
    Console(highlight=False).print(table)


# ---- bench sample -----------------------------------------------------------------------------


def write_text(path: Path | None, text: str) -> None:
    """Write to stdout, or atomically to `path` (temp file + rename: no half-written files)."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException as exc:
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {path}: {exc.strerror}") from None
        raise


def check_output_path(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"--out {path} is a directory; give a file path")
    if not path.parent.is_dir():
        raise UserError(f"--out {path}: folder {path.parent} does not exist")


def write_hf(out: Path | None, task: str, max_value: int | None, overrides: dict[str, str], n: int, seed: int) -> None:
    """`--format hf`: bench.api.hf_dataset (train, monitor and test, n problems each) saved in folder
    `out` for `datasets.load_from_disk`; written beside it and renamed into place when complete."""
    import shutil

    if out is None:
        raise UserError("--format hf writes a folder: give --out DIR")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; --format hf writes a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "dataset_dict.json").exists():
        raise UserError(f"--out {out} holds files that are not a dataset; give a new or empty folder")
    if not out.absolute().parent.is_dir():
        raise UserError(f"--out {out}: folder {out.absolute().parent} does not exist")
    from bench.api import hf_dataset  # one line naming the hf extra when `datasets` is missing

    dataset = hf_dataset(task, n, seed, max_value, **overrides)
    import datasets

    datasets.disable_progress_bars()
    try:
        temp = Path(tempfile.mkdtemp(dir=out.absolute().parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None
    try:
        dataset.save_to_disk(str(temp))
        if out.exists():  # an earlier dataset (checked above): replaced only once the new one is whole
            shutil.rmtree(out)
        os.replace(temp, out)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {out}: {exc.strerror}") from None
        raise
    Console(stderr=True).print(f"wrote {', '.join(f'{len(dataset[s])} {s}' for s in dataset)} problems to {out} "
                               f"(datasets.load_from_disk)", highlight=False)


def render_text(task: Task, batch: Batch, seed: int, split: str) -> str:
    settings = " ".join(f"{k}={v}" for k, v in task.param_dict().items())
    lines = [f"{task.name}  {settings}  ·  split {split}  ·  seed {seed}"]
    for i in range(len(batch)):
        meta = "  ".join(f"{k} {int(v[i])}" for k, v in batch.meta.items())
        lines.append(f"#{i + 1}  {meta}")
        shown = task.render(batch.questions[i], batch.answers[i], batch.traces[i])
        lines.extend("  " + line for line in shown.splitlines())
    return "\n".join(lines) + "\n"


@app.command("sample")
@user_errors_exit
def sample_command(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task name (see `bench tasks`)."),
    max_value: Optional[int] = typer.Option(None, "--max", help="The task's scale; default: the task's own."),
    n: int = typer.Option(5, "-n", "--n", help="Number of problems (per split with --format hf)."),
    assignments: Optional[list[str]] = typer.Option(
        None, "--set", help="Parameter override key=value; repeatable."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same problems."),
    split: str = typer.Option("train", "--split",
                              help="train, monitor or test (disjoint problem sets; eval is the old name of test)."),
    fmt: str = typer.Option("text", "--format",
                            help="text (for people), jsonl (for programs) or hf (a Hugging Face `datasets` folder with "
                                 "the train, monitor and test splits, -n each; needs --out DIR and the hf extra)."),
    out: Optional[Path] = typer.Option(None, "--out",
                                       help="Write to this file instead of stdout (--format hf: this folder)."),
) -> None:
    """Draw problems of a task and show them with answers and reference traces."""
    if task is None:
        raise UserError(f"missing --task; valid: {', '.join(task_names())}")
    check_choice("--split", split, ("train", "monitor", "test", "eval"))
    check_choice("--format", fmt, ("text", "jsonl", "hf"))
    if not 1 <= n <= MAX_PROBLEMS:
        raise UserError(f"-n {n} out of range; valid: 1..{MAX_PROBLEMS}")
    if seed < 0:
        raise UserError(f"--seed {seed} out of range; valid: a non-negative integer")
    if fmt == "hf":
        write_hf(out, task, max_value, parse_assignments(assignments), n, seed)
        return
    if out is not None:
        check_output_path(out)
    problem_task = make_task(task, max_value, parse_assignments(assignments))
    # Each split draws from its own stream, as the training harness does (stream_rng(seed, "test")).
    batch = problem_task.sample(stream_rng(seed, split), n, split)  # type: ignore[arg-type]
    text = problem_task.to_jsonl(batch) if fmt == "jsonl" else render_text(problem_task, batch, seed, split)
    write_text(out, text)


# ---- bench verify -----------------------------------------------------------------------------


def open_input(file: str) -> Any:
    if file == "-":
        return sys.stdin.buffer
    path = Path(file)
    if not path.exists():
        raise UserError(f"file not found: {file}")
    if path.is_dir():
        raise UserError(f"{file} is a directory; give a JSONL file")
    try:
        return path.open("rb")
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from None


@app.command("verify")
@user_errors_exit
def verify_command(
    file: Optional[str] = typer.Argument(None, help="JSONL file of problems with answers, or - for stdin."),
    fmt: str = typer.Option("table", "--format", help="table (for people) or json (one object, for programs)."),
    time_limit: float = typer.Option(
        DEFAULT_TIME_LIMIT, "--time-limit",
        help="Seconds per line (a sat UNSAT claim is a proof search); lines that hit it are unverified, never right."
    ),
) -> None:
    """Check each line's answer with its task's verifier and print accuracy per task.

    A line without an "answer" counts as wrong (column "no answer"); a line whose check runs past
    --time-limit counts as unverified, never right; malformed lines are named on stderr and skipped.
    A line longer than MAX_LINE_BYTES (32 MiB) stops the command with one error.
    """
    if file is None:
        raise UserError("missing FILE: give a JSONL file written like `bench sample --format jsonl`, or -")
    check_choice("--format", fmt, ("table", "json"))
    if not 0 < time_limit <= 3600:
        raise UserError(f"--time-limit {time_limit} out of range; valid: more than 0, at most 3600 seconds")
    source = open_input(file)
    shown = "stdin" if file == "-" else file
    try:
        scores, bad = score_lines(read_lines(source, shown), time_limit)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    for number, reason in bad[:MAX_REPORTED_BAD_LINES]:
        print(f"error: {shown} line {number}: {reason}", file=sys.stderr)
    if len(bad) > MAX_REPORTED_BAD_LINES:
        print(f"error: {shown}: {len(bad) - MAX_REPORTED_BAD_LINES} more malformed lines", file=sys.stderr)
    if not scores:
        fail(f"no valid problem line in {shown} ({len(bad)} malformed)" if bad else f"{shown} has no problem lines")

    total = TaskScore(*(sum(getattr(s, key) for s in scores.values())
                        for key in ("n", "correct", "unanswered", "unverified")))
    if fmt == "json":
        summary = {
            "file": shown,
            "tasks": {name: scores[name].as_dict() for name in sorted(scores)},
            "total": total.as_dict(),
            "malformed_lines": len(bad),
            "time_limit": time_limit,
        }
        print(json.dumps(summary))
        return
    caption = "no answer and unverified (past --time-limit) count as wrong"
    table = Table(title=f"verify {shown}", caption=caption + (f"; {len(bad)} malformed lines skipped" if bad else ""))
    table.add_column("task", style="bold", no_wrap=True)
    for column in ("n", "correct", "accuracy", "no answer", "unverified"):
        table.add_column(column, justify="right")
    table.add_column("95% interval", justify="right")
    rows = [(name, scores[name]) for name in sorted(scores)]
    if len(rows) > 1:
        rows.append(("all", total))
    for name, score in rows:
        result = score.as_dict()
        low, high = result["interval95"]
        table.add_row(name, str(score.n), str(score.correct), f"{result['accuracy']:.3f}", str(score.unanswered),
                      str(score.unverified), f"{low:.3f}-{high:.3f}")
    Console(highlight=False).print(table)
