"""Give stored run folders the spec, and so the run id, that the current code builds for them.

Issue 28: a thinker's spec used to leave `thoughts` null when K was the solver's default (the
reference trace's length under super, else 4), so its run id did not pin the number of thoughts;
the spec now names K (solvers/think_options.py, `ThinkOptions.resolved`). For every run folder under
RESULTS/runs whose spec changes this way, this script

- rewrites spec.json and renames the folder to the new run id;
- rewrites every reference to the old id (and to its configuration's key, the leaderboards' `config`
  column: the spec's hash without the seed): another run's `init` (whose own id then changes too),
  the sweep and tune records (RESULTS/sweeps, RESULTS/tune), the experiment reports
  (RESULTS/experiments/*/report.md), RESULTS/REPORT.md and any text file given with --rewrite
  (e.g. README.md);
- prints one line per migrated run: `old -> new (solver, task, K)`.

Nothing is retrained and no result changes: the run trained with exactly the K its new spec names.
A run that is running now (its lock held) is left alone, and so is a run whose new id is taken by
another folder (reported): running the script again later migrates what is left; it is idempotent.

    .venv/bin/python scripts/migrate_run_ids.py [RESULTS] [--dry-run] [--rewrite README.md ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.analysis.frontier import config_key  # noqa: E402
from bench.run.build import model_task  # noqa: E402
from bench.run.records import RUNS_DIR  # noqa: E402
from bench.run.spec import RunSpec  # noqa: E402
from bench.run.store import RunLock, atomic_write_bytes, atomic_write_json  # noqa: E402
from solvers.base import TaskShape, make_options, resolve_solver  # noqa: E402
from solvers.think_options import ThinkOptions, step_defaults  # noqa: E402

RUN_ID = re.compile(r"\b[0-9a-f]{12}\b")


def migrated_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every value that shapes training resolved: a thinker's K written out."""
    options = spec.get("solver_options") or {}
    if options.get("thoughts", 0) is not None:  # K named already, or not a thinker
        return spec
    cls, canonical, flags = resolve_solver(spec["solver"])
    if not issubclass(cls.Options, ThinkOptions):
        return spec
    typed = RunSpec.from_json(spec)
    shape = TaskShape.of(model_task(typed.task, None, typed.task_params, typed.model))
    values = {k: v for k, v in options.items() if k not in flags}
    K = step_defaults(shape, make_options(cls, canonical, flags, values)).thoughts
    return {**spec, "solver_options": {**options, "thoughts": K}}


def with_init(spec: dict[str, Any], renamed: dict[str, str]) -> dict[str, Any]:
    """The spec with its `init` (a run id or a unique prefix of one) pointing at the renamed run."""
    init = spec.get("init")
    if not init:
        return spec
    matches = [old for old in renamed if old.startswith(init)]
    return {**spec, "init": renamed[matches[0]]} if len(matches) == 1 else spec


def spec_id(spec: dict[str, Any]) -> str:
    return RunSpec.from_json(spec).run_id


def migrate(root: Path, dry_run: bool = False, also: Sequence[Path] = ()) -> dict[str, str]:
    """Migrate every run folder under root/runs (references in `also` too); returns {old id: new id}."""
    runs = root / RUNS_DIR
    specs: dict[str, dict[str, Any]] = {}
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        if folder.name.startswith(".") or not (folder / "spec.json").is_file():
            continue
        specs[folder.name] = json.loads((folder / "spec.json").read_text())
    original = {old: spec for old, spec in specs.items()}
    renamed: dict[str, str] = {}
    changed = True
    while changed:  # again until no `init` points at a run renamed in the last pass
        changed = False
        for old, spec in specs.items():
            current = renamed.get(old, old)  # the folder's name now (a run may move twice: K, then its init)
            new_spec = with_init(migrated_spec(spec), renamed)
            new = spec_id(new_spec)
            if new == current:
                continue
            if RunLock(root, current).held_by() is not None:
                print(f"skipped {current}: running now (run the script again once it ends)")
                continue
            if (runs / new).exists():
                print(f"skipped {current}: its new id {new} is another folder's already")
                continue
            print(f"{current} -> {new} ({spec['solver']}, {spec['task']}, "
                  f"K={new_spec['solver_options'].get('thoughts')})")
            renamed[old] = new
            specs[old] = new_spec
            changed = True
            if not dry_run:
                atomic_write_json(runs / current / "spec.json", RunSpec.from_json(new_spec).to_json())
                os.rename(runs / current, runs / new)
    if renamed and not dry_run:
        configs = {config_key(original[old]): config_key(specs[old]) for old in renamed}
        rewrite_references(root, {**configs, **renamed}, also)
    return renamed


def rewrite_references(root: Path, renamed: dict[str, str], also: Sequence[Path] = ()) -> None:
    """Old run ids (and configuration keys) -> new ones in the records and reports that name them."""
    files = [*root.glob("sweeps/*.json"), *root.glob("tune/*.json"), *root.glob("experiments/*/report.md"),
             root / "REPORT.md", *also]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text()
        new_text = RUN_ID.sub(lambda m: renamed.get(m.group(0), m.group(0)), text)
        if new_text != text:
            atomic_write_bytes(path, new_text.encode())
            print(f"rewrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default="results", help="results folder (default: ./results)")
    parser.add_argument("--dry-run", action="store_true", help="list what would change, change nothing")
    parser.add_argument("--rewrite", action="append", default=[], type=Path,
                        help="another text file naming run ids (repeatable)")
    args = parser.parse_args()
    root = Path(args.results)
    if not (root / RUNS_DIR).is_dir():
        print(f"error: {root / RUNS_DIR} is not a folder; give the results folder", file=sys.stderr)
        raise SystemExit(2)
    missing = [str(path) for path in args.rewrite if not path.is_file()]
    if missing:
        print(f"error: --rewrite {missing[0]} is not a file", file=sys.stderr)
        raise SystemExit(2)
    renamed = migrate(root, args.dry_run, args.rewrite)
    print(f"{len(renamed)} run(s) {'would be ' if args.dry_run else ''}migrated")


if __name__ == "__main__":
    main()
