"""PNG figures of stored runs (matplotlib, Agg: no display needed).

- accuracy versus scale, one figure per task: one line per configuration (solver and whatever else
  differs), the mean over seeds with its 95% band (Student t over seeds; one seed: its Wilson
  interval), and every seed as a faint point;
- accuracy versus thought budget, one figure per task with a panel per scale: for each thinking
  configuration, accuracy at each budget it was evaluated at (`--eval-thoughts`; the trained budget is
  the big marker); where runs were evaluated only at their trained budget, the line joins the trained
  budgets instead. Solvers without thoughts are a dashed reference line;
- training curves (held-out accuracy and loss versus step), one figure per task, a panel per scale.

The runs come from `bench.analysis.frontier.run_table`; the groupings are `bench.analysis.frontier.config_columns`, so
the lines here are the rows of the sweep summary.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.analysis.frontier import config_columns, mean_interval, scale_param_of, seed_summary, with_scale_axis  # noqa: E402
from bench.run.records import StoreError, warn_skipped  # noqa: E402
from bench.run.store import RunDir  # noqa: E402

KINDS = ("scale", "budget", "curves")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def line_label(row: Any, columns: Sequence[str]) -> str:
    """'think_fixed_blind_super thoughts=2 d_model=64' for the configuration columns of a row."""
    parts = [str(row["solver"])]
    for column in columns:
        if column in ("task", "solver"):
            continue
        value = row[column]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        parts.append(f"{column}={value}")
    return " ".join(parts)


def _labelled(runs: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return runs.assign(line=[line_label(row, columns) for _, row in runs.iterrows()])


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def _filename(out_dir: Path, prefix: str, kind: str, task: str) -> Path:
    return out_dir / _SAFE.sub("-", f"{prefix}-{kind}-{task}.png" if prefix else f"{kind}-{task}.png")


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    tmp.replace(path)  # a reader never sees half a PNG
    return path


def _log_x(scales: Sequence[float]) -> bool:
    positive = [s for s in scales if s and s > 0]
    return bool(positive) and max(positive) / min(positive) >= 8


def accuracy_vs_scale(runs: pd.DataFrame, out_dir: Path, prefix: str = "", axis: str | None = None) -> list[Path]:
    """One PNG per task: accuracy versus scale (or the task parameter `axis`), a line per configuration."""
    paths = []
    for task, task_runs in runs.groupby("task", sort=True):
        columns = config_columns(task_runs)
        labelled = _labelled(task_runs, columns)
        summary = seed_summary(labelled, ["line"])
        colors = _colors(list(summary["line"].unique()))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, line in summary.groupby("line", sort=True):
            line = line.sort_values("scale")
            color = colors[label]
            ax.plot(line["scale"], line["accuracy"], marker="o", color=color, label=label, lw=1.8)
            ax.fill_between(line["scale"], line["low"], line["high"], color=color, alpha=0.15, lw=0)
            seeds = labelled[labelled["line"] == label]
            ax.scatter(seeds["scale"], seeds["accuracy"], color=color, alpha=0.3, s=14, lw=0)
        if _log_x(task_runs["scale"].tolist()):
            ax.set_xscale("log", base=2)
        scales = sorted(task_runs["scale"].unique())
        ax.set_xticks(scales, [str(int(s)) for s in scales])
        ax.minorticks_off()
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(f"scale ({axis or scale_param_of(str(task))})")
        ax.set_ylabel("held-out accuracy")
        seeds_note = f"{int(task_runs['seed'].nunique())} seed(s)"
        ax.set_title(f"{task}: accuracy vs {axis or 'scale'} (mean over seeds, 95% band; dots: seeds; {seeds_note})",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        paths.append(_save(fig, _filename(out_dir, prefix, f"accuracy-vs-{axis or 'scale'}", str(task))))
    return paths


def _budget_rows(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, run in runs.iterrows():
        trained = run.get("thoughts_evaluated")
        for budget, accuracy in run["budget_points"] or ():
            rows.append({**run.to_dict(), "budget": int(budget), "budget_accuracy": float(accuracy),
                         "is_trained": trained is not None and int(budget) == int(trained)})
    return pd.DataFrame(rows)


def accuracy_vs_budget(runs: pd.DataFrame, out_dir: Path, prefix: str = "", axis: str | None = None) -> list[Path]:
    """One PNG per task with thinking runs: accuracy versus thought budget, a panel per scale."""
    paths = []
    for task, task_runs in runs.groupby("task", sort=True):
        thinking = task_runs[task_runs["budget_points"].map(bool)]
        if thinking.empty:
            continue
        evaluated_at_several = bool((thinking["budget_points"].map(len) > 1).any())
        # Several budgets per run: one line per trained model. One each: a line across trained budgets.
        columns = [c for c in config_columns(task_runs) if evaluated_at_several or c != "thoughts"]
        points = _labelled(_budget_rows(thinking), columns)
        references = _labelled(task_runs[~task_runs["budget_points"].map(bool)], columns)
        scales = sorted(task_runs["scale"].unique())
        colors = _colors(sorted(set(points["line"]) | set(references["line"])))
        fig, axes = plt.subplots(1, len(scales), figsize=(4.2 * len(scales) + 1, 4), squeeze=False, sharey=True)
        for ax, scale in zip(axes[0], scales):
            here = points[points["scale"] == scale]
            for label, line in here.groupby("line", sort=True):
                stats = []
                for budget, at in line.groupby("budget", sort=True):
                    mean, low, high = mean_interval(at["budget_accuracy"].tolist())
                    stats.append((budget, mean, low, high, bool(at["is_trained"].any())))
                xs, means, lows, highs, trained = (np.array(v) for v in zip(*stats))
                color = colors[label]
                ax.plot(xs, means, marker="o", ms=4, color=color, label=label, lw=1.6)
                ax.fill_between(xs, lows, highs, color=color, alpha=0.15, lw=0)
                ax.scatter(xs[trained], means[trained], s=70, color=color, edgecolor="black", zorder=3)
                ax.scatter(line["budget"], line["budget_accuracy"], color=color, alpha=0.3, s=12, lw=0)
            for label, ref in references[references["scale"] == scale].groupby("line", sort=True):
                ax.axhline(float(ref["accuracy"].mean()), color=colors[label], ls="--", lw=1.2,
                           label=f"{label} (no thoughts)")
            ax.set_title(f"{axis or 'scale'} {int(scale)}", fontsize=9)
            ax.set_xlabel("thought budget K" + (" (evaluated)" if evaluated_at_several else " (trained)"))
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0][0].set_ylabel("held-out accuracy")
        handles, labels = {}, []
        for ax in axes[0]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                if label not in handles:
                    handles[label] = handle
                    labels.append(label)
        fig.legend([handles[name] for name in labels], labels, fontsize=7, loc="upper center", ncol=min(3, len(labels)),
                   bbox_to_anchor=(0.5, 0.0))
        fig.suptitle(f"{task}: accuracy vs thought budget (big marker: trained budget)", fontsize=9)
        fig.tight_layout()
        paths.append(_save(fig, _filename(out_dir, prefix, "accuracy-vs-budget", str(task))))
    return paths


def training_curves(runs: pd.DataFrame, root: Path, out_dir: Path, prefix: str = "",
                    axis: str | None = None) -> list[Path]:
    """One PNG per task: held-out accuracy (top) and loss (bottom) versus step, a column per scale."""
    paths = []
    for task, task_runs in runs.groupby("task", sort=True):
        labelled = _labelled(task_runs, config_columns(task_runs))
        scales = sorted(task_runs["scale"].unique())
        colors = _colors(list(labelled["line"].unique()))
        fig, axes = plt.subplots(2, len(scales), figsize=(4.2 * len(scales) + 1, 6), squeeze=False, sharex="col")
        drawn: set[str] = set()
        for column, scale in enumerate(scales):
            top, bottom = axes[0][column], axes[1][column]
            panel_losses: list[float] = []
            for _, run in labelled[labelled["scale"] == scale].iterrows():
                try:
                    curve = RunDir(root, run["run_id"]).read("curve.json", []) or []
                except StoreError as exc:  # a bad curve: this run's line is left out, with one warning
                    warn_skipped(Path(root) / "runs" / run["run_id"], f"curve: {exc}")
                    continue
                if not curve:
                    continue
                steps = [point["step"] for point in curve]
                label = run["line"] if run["line"] not in drawn else None
                drawn.add(run["line"])
                top.plot(steps, [point.get("accuracy", math.nan) for point in curve], color=colors[run["line"]],
                         alpha=0.75, lw=1.2, label=label)
                losses = [point.get("loss", math.nan) for point in curve]
                panel_losses.extend(v for v in losses if isinstance(v, (int, float)) and not math.isnan(v))
                bottom.plot(steps, losses, color=colors[run["line"]], alpha=0.75, lw=1.2)
            # Log scale only when every loss is positive (RL losses of thinkers can go below zero).
            if panel_losses and min(panel_losses) > 0:
                bottom.set_yscale("log")
            top.set_title(f"{axis or 'scale'} {int(scale)}", fontsize=9)
            top.set_ylim(-0.03, 1.03)
            top.grid(alpha=0.3)
            bottom.grid(alpha=0.3)
            bottom.set_xlabel("step")
        axes[0][0].set_ylabel("held-out accuracy (monitor)")
        axes[1][0].set_ylabel("training loss (solver's own)")
        if drawn:
            fig.legend(fontsize=7, loc="upper center", ncol=min(3, len(drawn)), bbox_to_anchor=(0.5, 0.0))
        fig.suptitle(f"{task}: training curves (one line per seed)", fontsize=9)
        fig.tight_layout()
        paths.append(_save(fig, _filename(out_dir, prefix, "curves", str(task))))
    return paths


def make_plots(
    runs: pd.DataFrame, root: Path, out_dir: Path, kinds: Sequence[str] = KINDS, prefix: str = "",
    axis: str | None = None
) -> list[Path]:
    """Every figure of `kinds` that the runs allow; returns the files written. `axis` names the task
    parameter on the scale axis (e.g. sort's `length`; default: each task's --max parameter): runs
    whose task lacks it are left out, and the usual scale parameter becomes a line's setting."""
    paths: list[Path] = []
    runs = with_scale_axis(runs, axis)
    if axis is not None:
        prefix = f"{prefix}-by-{axis}" if prefix else f"by-{axis}"  # never overwrite the default figures
    if "scale" in kinds:
        paths += accuracy_vs_scale(runs, out_dir, prefix, axis)
    if "budget" in kinds:
        paths += accuracy_vs_budget(runs, out_dir, prefix, axis)
    if "curves" in kinds:
        paths += training_curves(runs, root, out_dir, prefix, axis)
    return paths
