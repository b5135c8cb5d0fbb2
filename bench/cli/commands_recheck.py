"""`bench recheck RUN`: retrain a run from its record (its spec) in a temporary results folder and say
whether it lands bit for bit on the record (curve, accuracy, every answer) or how far off it lands.

Bit for bit is expected when the floating-point path is the one the record names (environment.json:
torch, threads, ATen's CPU capability, CPU model, ISA settings); on another path a run agrees only in
distribution over seeds, and the verdict says which facts differ."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from bench.cli import app
from bench.cli.options import ResultsOption
from bench.errors import UserError, user_errors_exit

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
CURVE_IGNORED = {"elapsed"}  # wall time is not a result


def curve_difference(recorded: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> str | None:
    """None when the curves agree exactly (every metric but wall time), else where they first part."""
    for old, new in zip(recorded, fresh):
        keys = (set(old) | set(new)) - CURVE_IGNORED
        differing = sorted(key for key in keys if old.get(key) != new.get(key))
        if differing:
            shown = ", ".join(f"{key} {old.get(key)} vs {new.get(key)}" for key in differing[:3])
            return f"curve parts at step {old.get('step')}: {shown}"
    if len(recorded) != len(fresh):
        return f"curve has {len(fresh)} points, the record {len(recorded)}"
    return None


def recheck_run(root: Path, run_id: str, keep: bool = False, notify: Any = None) -> dict[str, Any]:
    """Retrain `run_id`'s spec under a temporary results folder and compare it with the record."""
    from bench.run.facts import float_path_differences
    from bench.run.spec import RunSpec
    from bench.run.store import find_run
    from bench.run.train import start_run
    from bench.stats import paired_permutation_test

    run_dir = find_run(root, run_id)
    status = run_dir.status()
    if status.get("state") != "finished":
        raise UserError(f"run {run_dir.run_id} has not finished (state: {status.get('state')}); there is no result to "
                        "recheck")
    spec = RunSpec.from_json(run_dir.read("spec.json"))
    if spec.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"run {run_dir.run_id} was trained on cuda; rechecking it needs a CUDA GPU (its float "
                            "path), and none is here")
    scratch = Path(tempfile.mkdtemp(prefix="thinkbench-recheck-"))
    keep_scratch = False  # only a kept retrain that differs from the record outlives this call
    try:
        if spec.init:  # a warm start needs its source's checkpoint beside it
            source = find_run(root, spec.init)
            if not source.file("checkpoint.pt").exists():
                raise UserError(f"run {run_dir.run_id} was warm-started from run {source.run_id}, whose checkpoint.pt "
                                f"is not in its record; recheck {source.run_id} with --keep first")
            shutil.copytree(source.path, scratch / "runs" / source.run_id)
        fresh_dir, fresh_status, _ = start_run(spec, scratch, notify=notify)
        recorded_curve, fresh_curve = run_dir.read("curve.json", []), fresh_dir.read("curve.json", [])
        result: dict[str, Any] = {
            "run_id": run_dir.run_id,
            "recorded_accuracy": status.get("accuracy"),
            "accuracy": fresh_status.get("accuracy"),
            "curve": curve_difference(recorded_curve, fresh_curve),
            "float_path": float_path_differences(run_dir.read("environment.json", {}) or {},
                                                 fresh_dir.read("environment.json", {}) or {}),
            "steps": (status.get("step"), fresh_status.get("step")),
        }
        recorded_answers, fresh_answers = run_dir.read("answers.json"), fresh_dir.read("answers.json")
        if (recorded_answers is not None and fresh_answers is not None
                and recorded_answers["problems_sha256"] == fresh_answers["problems_sha256"]):
            a = [int(c) for c in recorded_answers["correct"]]
            b = [int(c) for c in fresh_answers["correct"]]
            result["answers_differ"] = sum(x != y
                                           for x, y in zip(recorded_answers["answers"], fresh_answers["answers"]))
            result["answers_n"] = len(a)
            result["paired_p"] = paired_permutation_test(a, b)
        else:
            result["answers_differ"] = None
        result["exact"] = (result["curve"] is None and result["accuracy"] == result["recorded_accuracy"]
                           and result["steps"][0] == result["steps"][1] and result.get("answers_differ") in (0, None))
        if keep and result["exact"]:
            shutil.copy2(fresh_dir.file("checkpoint.pt"), run_dir.file("checkpoint.pt"))
            result["kept"] = str(run_dir.file("checkpoint.pt"))
        elif keep:
            result["kept"] = str(fresh_dir.path)  # not the record's model: left beside it for the user to judge
            keep_scratch = True
        return result
    finally:
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def verdict_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    if result["exact"]:
        what = "curve, steps, accuracy" + (f" and all {result['answers_n']} answers"
                                           if result.get("answers_differ") == 0 else "")
        lines.append(f"run {result['run_id']}: reproduced bit for bit ({what}); accuracy {result['accuracy']:.4f}")
    else:
        lines.append(f"run {result['run_id']}: NOT bit-identical; accuracy {result['accuracy']:.4f} vs recorded "
                     f"{result['recorded_accuracy']:.4f} ({result['accuracy'] - result['recorded_accuracy']:+.4f}), "
                     f"steps {result['steps'][1]} vs {result['steps'][0]}")
        if result["curve"]:
            lines.append(result["curve"])
        if result.get("answers_differ") is not None:
            lines.append(f"answers differ on {result['answers_differ']} of {result['answers_n']} test problems; "
                         f"paired permutation test on right/wrong: p = {result['paired_p']:.4g}")
    if result["float_path"]:
        lines.append("floating-point path differs from the record's (then only agreement in distribution over seeds is "
                     "expected): " + "; ".join(result["float_path"]))
    else:
        lines.append("floating-point path: the same facts as the record's environment.json (where the record has them)")
    if result.get("kept"):
        lines.append(f"kept: {result['kept']}"
                     + ("" if result["exact"] else " (the retrained run, which differs from the record)"))
    return lines


@app.command()
@user_errors_exit
def recheck(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix) of a finished run or committed run record."),
    keep: bool = typer.Option(False, "--keep",
                              help="Keep the retrained checkpoint: copied into the record when it reproduces exactly, "
                                   "else the retrained folder is kept and named."),
    results: Optional[str] = ResultsOption,
) -> None:
    """Retrain a run from its record in a temporary folder and report whether it matches exactly, or
    how far it lands (curve, accuracy, answers; which floating-point facts differ). Exit 1 if not exact.

    Example: OMP_NUM_THREADS=1 bench recheck 3f2a
    """
    from bench.run.store import readable_root, results_root

    root = results_root(results) if keep else readable_root(results)
    result = recheck_run(root, run_id, keep, notify=lambda line: err_console.print(line))
    for line in verdict_lines(result):
        console.print(line)
    if not result["exact"]:
        raise typer.Exit(1)
