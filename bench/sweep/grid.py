"""A sweep's grid: setting name -> values, from the command line (`split_values`) or a TOML file
(`load_toml`, `load_experiment`), before any cell is built (bench/sweep/plan.py expands it into runs).
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import run_option_types
from bench.errors import UserError

# Settings given as a list of values per cell: an axis over them needs a list of lists (TOML).
LIST_VALUED = {name for name, kind in run_option_types().items() if typing.get_origin(kind) is tuple}  # eval_thoughts
ALIASES = {"seeds": "seed", "solvers": "solver", "tasks": "task", "k": "thoughts"}
SPAN = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
# Real sweep files are a few kilobytes; the bound keeps a huge file from being read into memory.
MAX_TOML_BYTES = 1_000_000


def normalise_name(name: str) -> str:
    key = name.strip().replace("-", "_")
    return ALIASES.get(key, key)


# ---- parsing values ------------------------------------------------------------------------------


def split_values(text: str, option: str) -> list[str]:
    """'50,100,200' -> ['50', '100', '200']; '0-4' -> ['0', ..., '4'] (integer spans, inclusive)."""
    values: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        span = SPAN.match(part)
        if span:
            low, high = int(span.group(1)), int(span.group(2))
            if high < low:
                raise UserError(f"{option} {text!r}: span {part!r} runs backwards; write low-high, e.g. 0-4")
            if high - low >= 10_000:
                raise UserError(f"{option} {text!r}: span {part!r} has over 10000 values")
            values.extend(str(v) for v in range(low, high + 1))
        else:
            values.append(part)
    if not values:
        raise UserError(f"{option} {text!r} gives no values; e.g. {option} 1,2,3")
    return values


# ---- the grid ------------------------------------------------------------------------------------


@dataclass
class Grid:
    """Setting name -> values, in the order given; a one-value list is a fixed setting."""

    axes: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    name: str | None = None
    description: str = ""
    # A sweep file's [[part]] tables: each adds its own settings to `axes`, and the sweep is the union
    # of the parts' grids (e.g. gpt over five moduli, thinkers at one). Empty: the one grid `axes`.
    parts: list[dict[str, list[Any]]] = dataclasses.field(default_factory=list)

    def set(self, name: str, values: list[Any]) -> None:
        key = normalise_name(name)
        if not key:
            raise UserError(f"empty setting name in {name!r}")
        if not values:
            raise UserError(f"setting {key!r} has no values")
        self.axes[key] = list(values)

    def merged(self, other: Grid) -> Grid:
        """This grid with `other`'s settings replacing same-named ones (the CLI over a TOML file)."""
        axes = dict(self.axes)
        axes.update(other.axes)
        parts = [{k: v for k, v in part.items() if k not in other.axes} for part in self.parts + other.parts]
        return Grid(axes, other.name or self.name, other.description or self.description, parts)

    def subgrids(self) -> list[Grid]:
        """The grids whose union this is: one per part (the part's settings over the shared ones)."""
        if not self.parts:
            return [self]
        return [Grid({**self.axes, **part}, self.name, self.description) for part in self.parts]

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "description": self.description,
               "axes": json.loads(json.dumps(self.axes, default=list))}
        if self.parts:
            out["parts"] = json.loads(json.dumps(self.parts, default=list))
        return out


def load_toml(path: Path) -> Grid:
    """A sweep file: optional `name` and `description`, a `[grid]` table of settings, and optional
    `[[part]]` tables (the sweep is then the union of the parts, each over the shared [grid]).

        name = "width-vs-depth"
        [grid]
        task = "add"
        max = [50, 100, 200]      # a list is an axis
        d_model = [64, 128, 256]
        seed = [0, 1, 2]
        steps = 3000              # a single value is fixed

        [[part]]                  # optional: gpt at every scale ...
        solver = "gpt"
        [[part]]                  # ... and a thinker at two
        solver = "think_fixed_blind_super_clean"
        max = [50, 100]
    """
    return _grid_from(_read_toml(path), path)


def load_experiment(path: Path) -> tuple[Grid, dict[str, Any]]:
    """An experiment file, read once: its grid (as load_toml) and its validated [report] options."""
    data = _read_toml(path)
    return _grid_from(data, path), _report_options(data, path)


def _grid_from(data: dict[str, Any], path: Path) -> Grid:
    unknown = set(data) - {"name", "description", "grid", "part", "report"}
    if unknown:
        raise UserError(f"sweep file {path}: unknown top-level keys {sorted(unknown)}; valid: name, description, "
                        "[grid], [[part]], [report]")
    table = data.get("grid", {})
    parts = data.get("part", [])
    if not isinstance(table, dict) or not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise UserError(f"sweep file {path}: [grid] must be a table and [[part]] an array of tables")
    if not table and not parts:
        raise UserError(f"sweep file {path} has no [grid] table of settings")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"sweep file {path}: {key} = {data[key]!r} must be a string, e.g. {key} = "
                            "\"width-vs-depth\"")
    grid = Grid(name=data.get("name"), description=str(data.get("description", "")))
    grid.axes = _settings(table, path, "[grid]")
    for number, part in enumerate(parts, start=1):
        if not part:
            raise UserError(f"sweep file {path}: [[part]] number {number} is empty")
        grid.parts.append(_settings(part, path, f"[[part]] {number}"))
    return grid


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise UserError("reading a TOML sweep file needs Python >= 3.11 or the tomli package") from None
    if not path.exists():
        raise UserError(f"sweep file {path} does not exist")
    if not path.is_file():  # a FIFO or a device would block or never end
        raise UserError(f"sweep file {path} is not a file")
    if path.stat().st_size > MAX_TOML_BYTES:
        raise UserError(f"sweep file {path} is {path.stat().st_size:,} bytes; sweep files are at most "
                        f"{MAX_TOML_BYTES:,}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"sweep file {path} is not valid TOML ({str(exc).splitlines()[0]})") from None
    except RecursionError:  # tomllib parses nested arrays recursively
        raise UserError(
            f"sweep file {path}: a value is nested too deeply (settings take a value or a list of values)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UserError(
            f"sweep file {path} has a value TOML cannot read ({str(exc).split(':')[0].split(';')[0]})") from None


def _settings(table: dict[str, Any], path: Path, where: str) -> dict[str, list[Any]]:
    """A TOML table of settings as name -> values (a single value becomes a one-value list)."""
    out: dict[str, list[Any]] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            raise UserError(f"sweep file {path}: {where} {key} is a table; give a value or a list of values")
        name = normalise_name(key)
        if name in LIST_VALUED:
            # [0, 2, 4] is one list of budgets; [[0, 2], [0, 4]] is an axis over two lists.
            values = value if isinstance(value, list) and value and all(isinstance(v, list) for v in value) else [value]
        else:
            values = value if isinstance(value, list) else [value]
        if not values:
            raise UserError(f"sweep file {path}: {where} {key} is an empty list")
        out[name] = list(values)
    return out


def _report_options(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A sweep file's optional [report] table, for `bench experiment` (validated, with defaults)."""
    report = data.get("report", {})
    if not isinstance(report, dict):
        raise UserError(f"sweep file {path}: [report] must be a table")
    if "min_rate" in report:
        raise UserError(f"sweep file {path}: [report] min_rate is not a setting: every report counts a scale as "
                        "solved when 60% of its seeds reach the target (bench.analysis.frontier.FRONTIER_MIN_RATE); "
                        "remove the key")
    unknown = set(report) - set(REPORT_DEFAULTS)
    if unknown:
        raise UserError(f"sweep file {path}: unknown [report] keys {sorted(unknown)}; valid: "
                        f"{', '.join(REPORT_DEFAULTS)}")
    options = {**REPORT_DEFAULTS, **report}
    kinds = options["plots"]
    from bench.analysis.plots import KINDS

    if not isinstance(kinds, list) or any(k not in KINDS for k in kinds):
        raise UserError(f"sweep file {path}: [report] plots={kinds!r}; valid: a list of {', '.join(KINDS)}")
    if not isinstance(options["per_seed"], bool):
        raise UserError(f"sweep file {path}: [report] per_seed={options['per_seed']!r}; valid: true or false")
    return options


REPORT_DEFAULTS: dict[str, Any] = {"plots": ["scale", "budget", "curves"], "per_seed": False}


