"""scripts/migrate_run_ids.py (issue 28): a thinker's spec names its K, and older run folders move to
the id the current code gives them, with every reference to the old id rewritten."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bench.analysis.frontier import config_key
from bench.config import TrainConfig
from bench.run.build import build_spec
from bench.run.spec import RunSpec
from bench.run.store import RunDir
from solvers.config import ModelConfig, OptimConfig

REPO = Path(__file__).resolve().parent.parent


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("migrate_run_ids", REPO / "scripts" / "migrate_run_ids.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def thinker(seed: int = 0, init: str | None = None) -> RunSpec:
    return build_spec("add", 20, {}, "think_fixed_super", {}, ModelConfig(d_model=16, layers=1, heads=4), OptimConfig(),
                      TrainConfig(steps=10, seed=seed), "cpu", init=init)


def store(root: Path, spec: dict) -> str:
    run_id = RunSpec.from_json(spec).run_id
    run = RunDir(root, run_id)
    run.write("spec.json", RunSpec.from_json(spec).to_json())
    run.write("status.json", {"state": "interrupted", "step": 5, "elapsed": 1.0})
    return run_id


def test_a_thinker_spec_names_its_number_of_thoughts() -> None:
    spec = thinker()
    assert spec.solver_options["thoughts"] == 2  # under super, K = the reference trace: the 2 digits of a sum mod 20
    given = build_spec("add", 20, {}, "think_fixed_super", {"thoughts": 2}, ModelConfig(d_model=16, layers=1, heads=4),
                       OptimConfig(), TrainConfig(steps=10, seed=0), "cpu")
    assert given.run_id == spec.run_id  # K typed or left to the default: one run


def test_old_folders_move_to_the_current_id_with_their_references(tmp_path: Path) -> None:
    migrate = load_script().migrate
    current = thinker()
    old_spec = current.to_json()
    old_spec["solver_options"]["thoughts"] = None  # as specs were written before issue 28
    old = store(tmp_path, old_spec)
    assert old != current.run_id
    # a warm start from the old run: its init, and so its own id, change too
    warm_old_spec = {**thinker(seed=1).to_json(), "init": old}
    warm_old_spec["solver_options"]["thoughts"] = None
    warm_old = store(tmp_path, warm_old_spec)
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "s.json").write_text(json.dumps({"cells": [{"run_id": old}, {"run_id": warm_old}]}))
    (tmp_path / "experiments" / "e").mkdir(parents=True)
    (tmp_path / "experiments" / "e"
     / "report.md").write_text(f"| add | 20 | think_fixed_super | {config_key(old_spec)} |\n")

    assert migrate(tmp_path, dry_run=True) and (tmp_path / "runs" / old).is_dir()  # a dry run changes nothing
    renamed = migrate(tmp_path)
    warm_new = thinker(seed=1, init=current.run_id).run_id
    assert renamed == {old: current.run_id, warm_old: warm_new}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([current.run_id, warm_new])
    assert json.loads((tmp_path / "runs" / warm_new / "spec.json").read_text())["init"] == current.run_id
    assert RunDir(tmp_path, current.run_id).status()["step"] == 5  # the folder moved, its files kept
    cells = json.loads((tmp_path / "sweeps" / "s.json").read_text())["cells"]
    assert [c["run_id"] for c in cells] == [current.run_id, warm_new]
    report = (tmp_path / "experiments" / "e" / "report.md").read_text()
    # the leaderboard's config key
    assert report == f"| add | 20 | think_fixed_super | {config_key(current.to_json())} |\n"
    assert migrate(tmp_path) == {}  # idempotent
