"""Leaderboard and frontier tables as text: the cells `bench compare` shows and the markdown that
`bench compare --format markdown` prints and experiment reports commit (one definition for both)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.analysis.compare import board_records

# (header, column) for markdown; the rich table folds settings under the solver and leaves out config.
SHOWN: list[tuple[str, str]] = [
    ("task", "task"), ("scale", "scale"), ("solver", "solver"), ("settings", "settings"), ("seeds", "seeds"),
    ("accuracy", "accuracy"), ("95% CI", "ci"), ("success", "success"), ("success 95% CI", "success_ci"),
    ("FLOPs/step", "flops_per_step"), ("train FLOPs", "train_flops"), ("time s", "time_s"),
    ("steps", "steps_to_target"), ("params", "parameters"), ("config", "config"),
]
TABLE_SHOWN = [(h, c) for h, c in SHOWN if c != "config"]
INTERVAL_NOTE = (
    "accuracy: mean over seeds of the final test-split accuracy; 95% CI: percentile bootstrap over seeds "
    "(* one seed: Wilson interval over its held-out problems); success: seeds whose final accuracy reaches the "
    "target, k/n, with Clopper-Pearson's exact 95% interval; FLOPs/step: one training step, counted by torch at "
    "run time; train FLOPs, time s, steps: medians over seeds (steps: to the target, over seeds that reached it)"
)
RIGHT = {"scale", "seeds", "accuracy", "ci", "success", "success_ci", "flops_per_step", "train_flops", "time_s",
         "steps_to_target", "parameters"}


def flops_text(value: Any) -> str:
    """A FLOP count in three significant digits: 1.23e9 (no '+', no leading zeros in the exponent)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    mantissa, exponent = f"{float(value):.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def display_rows(board: pd.DataFrame) -> list[dict[str, str]]:
    """Leaderboard rows as text cells for table and markdown output."""

    def number(value: Any, pattern: str) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else pattern.format(value)

    rows = []
    for record in board_records(board):
        rows.append({
            "task": record["task"],
            "scale": number(record["scale"], "{}"),
            "solver": record["solver"],
            "settings": record["settings"] or "",
            "seeds": str(record["seeds"]),
            "accuracy": number(record["accuracy"], "{:.3f}"),
            "ci": "-" if record["low"] is None or record["high"] is None
            else f"{record['low']:.3f}-{record['high']:.3f}" + ("*" if record["interval"] == "wilson" else ""),
            "success": f"{record['successes']}/{record['seeds']}",
            "success_ci": f"{record['success_low']:.2f}-{record['success_high']:.2f}",
            "flops_per_step": flops_text(record["flops_per_step"]),
            "train_flops": flops_text(record["train_flops"]),
            "time_s": number(record["time_s"], "{:.1f}"),
            "steps_to_target": number(record["steps_to_target"], "{:g}"),
            "parameters": number(record["parameters"], "{:,.0f}"),
            "config": record["config"],
        })
    return rows


def markdown_table(rows: list[dict[str, str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header for header, _ in SHOWN) + " |"]
    lines.append("|" + "|".join("---:" if column in RIGHT else "---" for _, column in SHOWN) + "|")
    for row in rows:
        lines.append("| " + " | ".join(cell(row[column]) for _, column in SHOWN) + " |")
    return "\n".join(lines) + f"\n\n{INTERVAL_NOTE}" if rows else "\n".join(lines)


FRONTIER_COLUMNS = ["task", "solver", "settings", "frontier", "largest_tested", "rates", "auc"]


def frontier_cells(row: dict[str, Any]) -> list[str]:
    reached = row["frontier"]
    shown = "none" if reached is None or reached != reached else f"{reached:g}"
    return [row["task"], row["solver"], row["settings"] or "", shown, f"{row['largest_tested']:g}", row["rates"],
            f"{row['auc']:.3f}"]


def frontier_markdown(table: pd.DataFrame) -> str:
    """The frontier table as a markdown table."""
    lines = ["| task | solver | settings | frontier | largest tested | success by scale | AUC |",
             "|---|---|---|---:|---:|---|---:|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in frontier_cells(row)) + " |"
              for row in table.to_dict("records")]
    return "\n".join(lines)
