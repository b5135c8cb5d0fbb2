"""`bench inspect RUN_ID`: held-out problems with the model's thoughts beside the reference trace.

Loads the run's checkpoint (weights_only), rebuilds its task and solver, answers the first N
held-out problems and shows, for each: the problem with the reference answer and trace (the task's
own rendering), the model's thoughts (decoded as trace tokens where the thoughts speak the trace's
alphabet, i.e. under `super`; raw thought ids otherwise), the model's answer and whether the task's
verifier accepts it. Then the solver's diagnostics, where it has them: the usefulness check (accuracy
with its own thoughts versus random thoughts) and agreement with the trace per position.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from bench.cli import app
from bench.cli.options import ResultsOption
from bench.errors import UserError, user_errors_exit

console = Console()


@app.command()
@user_errors_exit
def inspect(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    n: int = typer.Option(10, "-n", help="Held-out problems to show."),
    thoughts: Optional[int] = typer.Option(None, "--thoughts", "-k",
                                           help="Answer with this thought budget (default: the trained one)."),
    wrong: bool = typer.Option(False, "--wrong", help="Show only problems the model gets wrong."),
    code: bool = typer.Option(False, "--code",
                              help="Thinkers: what each thought position encodes (lookup probes to the task's "
                                   "features, fitted on training problems, scored on held-out ones)."),
    results: Optional[str] = ResultsOption,
) -> None:
    """Show a run's held-out problems with its thoughts, the reference trace and the answer, right or wrong.

    Example: bench inspect 3f2a -n 10   (and with --code: what its thoughts encode)
    """
    import torch

    from bench.run.evaluate import predict_answers
    from bench.run.spec import RunSpec
    from bench.run.store import find_run, restore_solver, results_root
    from bench.run.train import build, held_out_problems

    if n < 1:
        raise UserError(f"-n={n} must be at least 1")
    if thoughts is not None and thoughts < 0:
        raise UserError(f"--thoughts={thoughts} must be >= 0")
    root = results_root(results)
    run_dir = find_run(root, run_id)
    checkpoint = run_dir.file("checkpoint.pt")
    if not checkpoint.exists():
        from bench.run.store import missing_checkpoint_message

        if run_dir.status().get("state") == "finished":  # a committed record: the checkpoint is left out
            raise UserError(missing_checkpoint_message(run_dir.path))
        raise UserError(f"run {run_dir.run_id} has no checkpoint yet (state: {run_dir.status().get('state')})")
    spec = RunSpec.from_json(run_dir.read("spec.json"))
    device = spec.device if spec.device == "cpu" or torch.cuda.is_available() else "cpu"
    task, solver = build(dataclasses.replace(spec, device=device))
    state = restore_solver(solver, checkpoint)

    if thoughts is not None and solver.thought_budget() is None:
        raise UserError(f"--thoughts {thoughts}: run {run_dir.run_id} is a {spec.solver} run, which does not think; "
                        "leave --thoughts out")
    held_out = held_out_problems(task, spec.train_config)
    # --wrong looks further into the held-out set for enough wrong answers.
    pool = held_out if wrong else held_out.take(slice(0, min(n, len(held_out))))
    answers, thought_ids = predict_answers(solver, pool.questions, torch.device(device), thoughts)
    if code and (thought_ids is None or thought_ids.shape[1] == 0):
        raise UserError(f"--code probes thought tokens, and run {run_dir.run_id} ({spec.solver}) answers with none; "
                        "use a discrete thinker's run (think_*) with at least one thought")
    correct = task.verify_batch(pool.questions, answers)
    rows = np.flatnonzero(~correct)[:n] if wrong else np.arange(len(pool))
    decodes_as_trace = bool(spec.solver_options.get("super"))
    budget = thoughts if thoughts is not None else solver.thought_budget()

    status = run_dir.status()
    console.print(
        f"run [bold]{run_dir.run_id}[/]: {spec.solver} on {spec.task} {spec.task_params}, seed {spec.train.seed}, "
        f"step {state['step']} ({status.get('state')})" + (f", {budget} thoughts" if budget is not None else "")
    )
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("problem, reference answer and trace", overflow="fold")
    table.add_column("model thoughts" + (" (as trace)" if decodes_as_trace else " (thought ids)"), overflow="fold")
    table.add_column("model answer", overflow="fold")
    table.add_column("", justify="center")
    for i in rows:
        table.add_row(
            str(int(i)),
            task.render(pool.questions[i], pool.answers[i], pool.traces[i]),
            render_thoughts(task, None if thought_ids is None else thought_ids[i], decodes_as_trace),
            json.dumps(_plain(task.answer_json(answers[i]))),
            "[green]✓[/]" if correct[i] else "[red]✗[/]",
        )
    console.print(table)
    if wrong:
        console.print(f"{int((~correct).sum())} of {len(pool)} held-out problems wrong; showing {len(rows)}")
    else:
        console.print(f"{int(correct.sum())} of {len(pool)} shown problems right")
    evaluation = run_dir.read("evaluation.json") or {}
    overall = (evaluation.get("final") or {}).get("overall")
    if overall:
        console.print(f"held-out accuracy (final evaluation, n={overall['n']}): {overall['accuracy']:.4f}")

    diagnostics = evaluation.get("diagnostics") or {}
    note = "stored at the end of training"
    if not diagnostics and hasattr(solver, "diagnostics"):
        diagnostics = solver.diagnostics(task, held_out, torch.device(device))
        note = "computed now on the held-out problems"
    if diagnostics:
        print_diagnostics(diagnostics, note)
    else:
        console.print("[dim]this solver reports no thought diagnostics (usefulness, agreement with the trace)[/]")
    if code:
        print_code_probes(task, solver, held_out, torch.device(device), thoughts, spec.train.seed)


CODE_FIT_PROBLEMS = 10_000  # training problems the lookup probes are fitted on


def print_code_probes(task: Any, solver: Any, held_out: Any, device: Any, thoughts: int | None, seed: int) -> None:
    """Per feature of the task: held-out accuracy of a lookup probe from each thought position to
    the feature, beside chance (bench/analysis/thought_code.py)."""
    from bench.analysis.thought_code import probe_table
    from bench.run.evaluate import predict_answers
    from tasks import stream_rng

    fit = task.sample(stream_rng(seed, "code-probe"), CODE_FIT_PROBLEMS, "train")
    _, fit_thoughts = predict_answers(solver, fit.questions, device, thoughts)
    _, test_thoughts = predict_answers(solver, held_out.questions, device, thoughts)
    assert fit_thoughts is not None and test_thoughts is not None  # checked by the caller
    rows = probe_table(fit_thoughts, task.code_features(fit), test_thoughts, task.code_features(held_out))
    table = Table(title=f"what the thoughts encode: lookup-probe accuracy on {len(held_out)} held-out problems "
                        f"(fitted on {len(fit)} training problems)")
    table.add_column("feature")
    table.add_column("values", justify="right")
    table.add_column("chance", justify="right")
    for j in range(test_thoughts.shape[1]):
        table.add_column(f"thought {j + 1}", justify="right")
    for row in rows:
        table.add_row(row.feature, str(row.values), f"{row.chance:.3f}", *(f"{v:.3f}" for v in row.per_position))
    console.print(table)
    distinct = len(np.unique(test_thoughts, axis=0))
    answers = len(np.unique(held_out.answers, axis=0))
    console.print(
        f"{distinct} distinct thought strings on the held-out problems, which have {answers} distinct answers")


def render_thoughts(task: Any, row: np.ndarray | None, as_trace: bool) -> str:
    """A row of thought indices as text; -1 marks slots after the model's own end of thinking."""
    if row is None:
        return "-"
    used = [int(t) for t in row if int(t) >= 0]
    if not used:
        return "(no thoughts)"
    if as_trace and all(t < task.trace_vocab_size for t in used):
        return " ".join(str(v) for v in _plain(task.trace_json(np.asarray(used)))) or "(only pads)"
    return " ".join(str(t) for t in used)


def print_diagnostics(diagnostics: dict[str, Any], note: str) -> None:
    if "usefulness" in diagnostics:
        own, rand = diagnostics.get("accuracy_own_thoughts"), diagnostics.get("accuracy_random_thoughts")
        verdict = "the answers use the thoughts" if diagnostics["usefulness"] > 0.05 else "the thoughts barely matter"
        console.print(
            f"[bold]usefulness[/]: accuracy with its own thoughts {own} vs random thoughts {rand} "
            f"(difference {diagnostics['usefulness']}: {verdict})"
        )
    per_position = {k: v for k, v in diagnostics.items()
                    if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v)}
    if per_position:
        table = Table(title=f"per position ({note})")
        table.add_column("position", justify="right")
        for key in per_position:
            table.add_column(key.replace("_per_position", "").replace("_", " "), justify="right")
        for i in range(max(len(v) for v in per_position.values())):
            table.add_row(str(i + 1), *(f"{v[i]:.3f}" if i < len(v) else "" for v in per_position.values()))
        console.print(table)
    skip = set(per_position) | {"usefulness", "accuracy_own_thoughts", "accuracy_random_thoughts"}
    for key, value in diagnostics.items():
        if key not in skip:
            console.print(f"{key}: {value}")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
