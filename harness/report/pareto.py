"""Pareto fronts of configurations: the metric (mean over counted seeds) vs a cost (mean training time,
parameter count), lower cost better.

A configuration is on the front (non-dominated) when no other configuration is at least as good on both
(metric no worse, cost no higher) and strictly better on one. Configurations without a value for either
are not on it. Identical points do not dominate each other: both are on the front.

    config_means(results, metric)         label, metric mean, mean total_seconds, mean params, n per config
    pareto_front(frame, x, y, ...)        a boolean Series: which rows are non-dominated (pure)
    pareto_table(means, x, metric)        the front as a Table, cheapest first (None without `x` values)
    plot_pareto(frame, x, metric, path)   every configuration, the front highlighted and joined
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib
import numpy as np
import pandas as pd

from harness.report.plots import ACCENT, MUTED, STYLE, _figure, _save, _short
from harness.report.results import Results
from harness.report.tables import Table, fmt, fmt_int, fmt_si, view
from harness.vocabulary import direction

COSTS = {"total_seconds": "mean training time (s)", "params": "parameter count"}


def config_means(results: Results, metric: str) -> pd.DataFrame:
    """One row per configuration with a counted trial: config_key, label, the mean of `metric` and of each cost
    column present (NaN where a configuration has no value), and n (counted trials with a metric value)."""
    counted = results.included()
    columns = [c for c in (metric, *COSTS) if c in counted]
    numbers = counted[columns].apply(pd.to_numeric, errors="coerce")
    numbers["config_key"] = counted["config_key"]
    means = numbers.groupby("config_key", sort=False).mean()
    means["n"] = numbers.groupby("config_key", sort=False)[metric].count() if metric in numbers else 0
    labels = counted.groupby("config_key", sort=False)["label"].first()
    means.insert(0, "label", labels)
    for column in (metric, *COSTS):
        if column not in means:
            means[column] = np.nan
    return means.reset_index()


def pareto_front(frame: pd.DataFrame, x: str, y: str, minimize_x: bool = True, maximize_y: bool = True) -> pd.Series:
    """True for the rows of `frame` no other row dominates on (`x`, `y`); False where either is missing."""
    xs = pd.to_numeric(frame[x], errors="coerce").to_numpy(dtype=float) * (1 if minimize_x else -1)
    ys = pd.to_numeric(frame[y], errors="coerce").to_numpy(dtype=float) * (-1 if maximize_y else 1)
    known = ~(np.isnan(xs) | np.isnan(ys))
    front = np.zeros(len(frame), dtype=bool)
    for i in np.flatnonzero(known):  # both now lower-is-better
        others = known & (xs <= xs[i]) & (ys <= ys[i]) & ((xs < xs[i]) | (ys < ys[i]))
        front[i] = not others.any()
    return pd.Series(front, index=frame.index, name="pareto")


def pareto_table(means: pd.DataFrame, x: str, metric: str) -> Optional[Table]:
    """The front of `metric` vs cost column `x` over `means` (as config_means returns), cheapest first;
    None when no configuration has both values."""
    if x not in means or means[[x, metric]].dropna().empty:
        return None
    front = pareto_front(means, x, metric, maximize_y=direction(metric) == "max")
    rows = means[front].sort_values([x, "label"]).reset_index(drop=True)
    known = int(means[[x, metric]].notna().all(axis=1).sum())
    cost = fmt_si if x == "params" else fmt
    shown = view(rows, {"label": "configuration", metric: f"mean {metric}", x: COSTS.get(x, x), "n": "n"},
                 {x: cost, "n": fmt_int})
    better = "higher" if direction(metric) == "max" else "lower"
    note = (f"Pareto front of {len(rows)} of {known} configurations: none of the others has a {better}-or-equal mean "
            f"`{metric}` with a lower-or-equal {COSTS.get(x, x)}, better on at least one (means over counted seeds).")
    return Table(f"pareto_{x}", f"Pareto front: {metric} vs {COSTS.get(x, x)}", rows, shown, note)


def plot_pareto(frame: pd.DataFrame, x: str, metric: str, path: Path) -> Optional[Path]:
    """Every configuration of `frame` (as config_means returns) as a grey dot at (`x`, `metric`), the front in
    red, joined as a step line and labelled; log x when it spans more than a decade. None without points."""
    data = frame[["label", x, metric]].dropna() if {x, metric} <= set(frame.columns) else pd.DataFrame()
    if data.empty:
        return None
    higher = direction(metric) == "max"
    front = pareto_front(data, x, metric, maximize_y=higher)
    xs, ys = data[x].to_numpy(dtype=float), data[metric].to_numpy(dtype=float)
    with matplotlib.rc_context(STYLE):
        fig = _figure(8, 4.8)
        ax = fig.subplots()
        ax.scatter(xs[~front], ys[~front], s=28, color=MUTED, alpha=0.7, label="dominated")
        order = np.argsort(xs[front], kind="stable")
        fx, fy = xs[front][order], ys[front][order]
        ax.scatter(fx, fy, s=42, color=ACCENT, zorder=3, label=f"Pareto front ({len(fx)})")
        ax.step(fx, fy, where="post", color=ACCENT, linewidth=1.2, alpha=0.8)
        for px, py, label in zip(fx, fy, data["label"].to_numpy()[front][order]):
            ax.annotate(_short(str(label), 36), (px, py), textcoords="offset points", xytext=(5, 4), fontsize=7)
        if xs.min() > 0 and xs.max() / xs.min() > 10:
            ax.set_xscale("log")
        ax.set_xlabel(COSTS.get(x, x))
        ax.set_ylabel(f"mean {metric} ({'higher' if higher else 'lower'} is better)")
        ax.set_title(f"Pareto front: {metric} vs {COSTS.get(x, x)}")
        ax.legend(loc="best", fontsize=8)
        return _save(fig, path)
