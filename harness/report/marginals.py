"""Marginals: the metric per value of one grid axis (with a 95% CI), and seed-mean grids over two axes.

One-axis marginal of `model.activation = relu`: every counted trial (not failed, not diverged) whose
grid point has activation relu, whatever its other axes and seed, summarized as mean, std, n
(trials) and interval; `best` is the best configuration mean with that value. Two-axis grids
(for heatmaps) hold the mean over counted trials in each cell. `heatmap_pairs` picks which pairs of
axes are worth a heatmap: known interacting pairs first (lr x optimizer, activation x loss, ...),
then any remaining pairs, at most three.
"""

from __future__ import annotations

import itertools

import pandas as pd

from harness.config import format_value
from harness.report.results import Results, varying_axes
from harness.report.stats import summarize
from harness.report.tables import Table, fmt, fmt_int, fmt_interval, view
from harness.vocabulary import direction, metric_range

# Pairs of axes whose interaction matters, most telling first (row axis, column axis).
PREFERRED_PAIRS = [
    ("optimizer.lr", "optimizer.name"),
    ("model.activation", "loss.name"),
    ("model.activation", "optimizer.name"),
    ("model.arch", "train.precision"),
    ("model.arch", "optimizer.name"),
    ("train.batch_size", "optimizer.lr"),
    ("model.activation", "optimizer.lr"),
]
MAX_HEATMAPS = 3


def _values(frame: pd.DataFrame, metric: str) -> pd.Series:
    return pd.to_numeric(frame[metric], errors="coerce")


def marginal(results: Results, metric: str, axis: str) -> pd.DataFrame:
    """One row per value of `axis`, best mean first: axis, value, mean, std, n, ci_low, ci_high, best, configs."""
    counted = results.included()
    sign = 1 if direction(metric) == "max" else -1
    rows = []
    for value, group in counted.groupby(counted[axis].map(format_value), sort=False):
        s = summarize(_values(group, metric), metric_range(metric))
        config_means = _values(group, metric).groupby(group["config_key"]).mean().dropna()
        best = (config_means.max() if sign > 0 else config_means.min()) if len(config_means) else float("nan")
        rows.append({"axis": axis, "value": value, "mean": s.mean, "std": s.std, "n": s.n,
                     "ci_low": s.lo, "ci_high": s.hi, "best": best, "configs": group["config_key"].nunique()})
    frame = pd.DataFrame(rows, columns=["axis", "value", "mean", "std", "n", "ci_low", "ci_high", "best", "configs"])
    frame["_key"] = -sign * frame["mean"].fillna(-sign * float("inf"))
    return frame.sort_values(["_key", "value"]).drop(columns="_key").reset_index(drop=True)


def marginals(results: Results, metric: str) -> pd.DataFrame:
    """Every varying grid axis's marginal, stacked (plus model.arch when it varies but is no grid axis)."""
    axes = varying_axes(results)
    if "model.arch" not in axes and "model.arch" in results.trials and results.included()["model.arch"].nunique() > 1:
        axes.append("model.arch")
    frames = [marginal(results, metric, axis) for axis in axes]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["axis", "value", "mean"])


def marginal_tables(frame: pd.DataFrame, metric: str) -> list[Table]:
    tables = []
    for axis, part in frame.groupby("axis", sort=False):
        shown = view(part, {"value": axis, "mean": f"mean {metric}", "std": "std", "n": "n trials"}, {"n": fmt_int})
        shown["95% CI"] = [fmt_interval(lo, hi, n) for lo, hi, n in zip(part["ci_low"], part["ci_high"], part["n"])]
        shown["best config mean"] = [fmt(b) for b in part["best"]]
        shown["configs"] = [fmt_int(c) for c in part["configs"]]
        tables.append(Table(f"marginal_{axis}", f"{metric} by {axis}", part.reset_index(drop=True), shown))
    if tables:
        tables[-1].note = (
            "Each row pools every counted trial (not failed, not diverged) with that value, over all other axes "
            "and seeds; `best config mean` is the best configuration with that value."
        )
    return tables


def grid2d(results: Results, metric: str, rows: str, cols: str) -> pd.DataFrame:
    """Mean of the metric over counted trials for each (rows value, cols value); NaN where none."""
    counted = results.included()
    frame = pd.DataFrame({
        "r": counted[rows].map(format_value), "c": counted[cols].map(format_value), "v": _values(counted, metric),
    })
    order = lambda axis: list(dict.fromkeys(results.trials[axis].map(format_value)))  # noqa: E731 - a one-line function, named where it is used
    table = frame.groupby(["r", "c"])["v"].mean().unstack("c")
    return table.reindex(index=_sorted(order(rows)), columns=_sorted(order(cols)))


def _sorted(values: list[str]) -> list[str]:
    """Numbers in numeric order, names as they first appear."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return values


def heatmap_pairs(results: Results) -> list[tuple[str, str]]:
    axes = varying_axes(results)
    pairs = [(a, b) for a, b in PREFERRED_PAIRS if a in axes and b in axes]
    for a, b in itertools.combinations(axes, 2):
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))
    return pairs[:MAX_HEATMAPS]
