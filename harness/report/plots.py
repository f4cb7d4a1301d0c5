"""Report figures, PNG via matplotlib's Agg canvas (no pyplot, no global backend switch), one style.

Every function takes already-aggregated data plus an output path, writes one PNG and returns the
path, or returns None when there is nothing to draw (e.g. no epoch rows):

    plot_curves       train vs validation loss and accuracy of the top configurations, overfit epochs marked
    plot_heatmap      a metric over two grid axes, seed-mean values printed in the cells
    plot_intervals    means with intervals as dots and whiskers (leaderboard, architecture comparison)
    plot_confusion    row-normalized confusion matrix of one trial
    plot_class_f1     per-class F1 of one trial, weakest class highlighted
    plot_throughput   images/s per arch x precision x batch size, TFLOP/s and % of peak annotated
    plot_compare      two result directories' means side by side
    plot_budget       expected best score vs number of trials, one line per value of an axis
    plot_performance_profile  share of runs above each normalized score, one step curve per method
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness import files
from harness.report.tables import fmt_si
from harness.vocabulary import metric_range

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "image.cmap": "viridis",
}
TRAIN, VAL, ACCENT, MUTED = "#1f77b4", "#ff7f0e", "#d62728", "#7f7f7f"
MAX_BARS = 20
MIN_HEIGHT = 3.5  # inches: even a one-bar chart stays readable


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", facecolor="white")
    return path


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------
# Curves


CURVE_NAMES = {"loss": "loss", "acc": "accuracy", "iou": "IoU", "dice": "Dice"}


def plot_curves(epochs: pd.DataFrame, trials: pd.DataFrame, labels: list[str], path: Path,
                title: str = "Train vs validation", kinds: tuple[str, str] = ("loss", "acc")) -> Optional[Path]:
    """One row per configuration label: loss and accuracy (or `kinds`: train_<kind> / val_<kind> columns)
    per epoch, mean over seeds with a min-max band."""
    if epochs.empty or not labels:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(11, 3.0 * len(labels) + 0.6)
        axes = fig.subplots(len(labels), 2, squeeze=False)
        for row, label in enumerate(labels):
            members = trials[trials["label"] == label]
            part = epochs[epochs["trial_id"].isin(members["trial_id"])]
            for col, kind in enumerate(kinds):
                ax = axes[row][col]
                for split, color, style in (("train", TRAIN, "-"), ("val", VAL, "--")):
                    name = f"{split}_{kind}"
                    if name not in part:
                        continue
                    values = pd.to_numeric(part[name], errors="coerce")
                    stats = values.groupby(part["epoch"]).agg(["mean", "min", "max"])
                    ax.plot(stats.index, stats["mean"], style, color=color, marker="o", markersize=3, label=split)
                    ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.15, linewidth=0)
                for seed, epoch in zip(members["seed"], pd.to_numeric(members.get("overfit_epoch"), errors="coerce")):
                    if not math.isnan(epoch):
                        ax.axvline(epoch, color=ACCENT, linestyle=":", linewidth=1.5)
                        ax.annotate(f"overfit (seed {seed})", (epoch, 1), xycoords=("data", "axes fraction"),
                                    xytext=(3, -12), textcoords="offset points", color=ACCENT, fontsize=8)
                ax.set_xlabel("epoch")
                ax.set_ylabel(CURVE_NAMES.get(kind, kind))
                ax.set_title(f"#{row + 1} {_short(label, 60)} — {CURVE_NAMES.get(kind, kind)}",
                             loc="left", fontsize=10)
                ax.xaxis.get_major_locator().set_params(integer=True)
                if row == 0:
                    ax.legend(loc="best")
        fig.suptitle(title, fontweight="bold")
        return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# Heatmap


def plot_heatmap(grid: pd.DataFrame, path: Path, title: str, higher_is_better: bool = True) -> Optional[Path]:
    """`grid`: rows x columns of values (NaN: no trials), index/columns named after the axes."""
    if grid.empty or grid.notna().sum().sum() == 0:
        return None
    values = grid.to_numpy(dtype=float)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = _figure(max(5.5, 1.3 * grid.shape[1] + 3), max(4.0, 0.8 * grid.shape[0] + 2))
        ax = fig.subplots()
        cmap = matplotlib.colormaps["viridis" if higher_is_better else "viridis_r"].with_extremes(bad="#eeeeee")
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.85)
        ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(r) for r in grid.index])
        ax.set_xlabel(str(grid.columns.name or ""))
        ax.set_ylabel(str(grid.index.name or ""))
        finite = values[np.isfinite(values)]
        middle = (finite.min() + finite.max()) / 2
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                light = (v < middle) == higher_is_better
                ax.text(j, i, f"{v:.3f}" if abs(v) < 10 else f"{v:.4g}", ha="center", va="center", fontsize=10, fontweight="bold",
                        color="white" if light else "black")
        ax.set_title(title)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
        return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# Bars with intervals


def plot_intervals(frame: pd.DataFrame, path: Path, title: str, xlabel: str,
                   highlight: Optional[list[bool]] = None) -> Optional[Path]:
    """Dot-and-whisker: `mean` per `label` with its 95% CI (`ci_low`, `ci_high`), first on top, value annotated."""
    frame = frame[frame["mean"].notna()].head(MAX_BARS)
    if frame.empty:
        return None
    labels = [_short(str(x), 72) for x in frame["label"]]
    means = frame["mean"].to_numpy(dtype=float)
    lo = np.where(frame["ci_low"].isna(), means, frame["ci_low"].to_numpy(dtype=float))
    hi = np.where(frame["ci_high"].isna(), means, frame["ci_high"].to_numpy(dtype=float))
    colors = [ACCENT if h else TRAIN for h in (highlight or [False] * len(frame))][: len(frame)]
    counts = frame["n"] if "n" in frame else [None] * len(frame)
    with matplotlib.rc_context(STYLE):
        fig = _figure(9, max(MIN_HEIGHT, 0.42 * len(frame) + 1.6))
        ax = fig.subplots()
        y = np.arange(len(frame))
        for yi, m, l, h, color, n in zip(y, means, lo, hi, colors, counts):
            ax.errorbar([m], [yi], xerr=[[m - l], [h - m]], fmt="o", color=color, ecolor=color, capsize=4,
                        markersize=7, linewidth=1.8)
            text = f"{m:.4f}" + (f"  (n={int(n)})" if n is not None and not pd.isna(n) else "")
            ax.annotate(text, (h, yi), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(y, labels)
        ax.set_ylim(len(frame) - 0.5, -0.5)
        span = (hi.max() - lo.min()) or abs(means[0]) * 0.1 or 1.0
        ax.set_xlim(lo.min() - 0.08 * span, hi.max() + 0.3 * span)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# Per-class results of one trial


def plot_confusion(confusion: pd.DataFrame, class_names: list[str], path: Path, title: str) -> Optional[Path]:
    """`confusion`: rows of (true, pred, count); drawn normalized per true class (recall on the diagonal)."""
    if confusion.empty:
        return None
    k = int(max(confusion["true"].max(), confusion["pred"].max(), len(class_names) - 1)) + 1
    counts = np.zeros((k, k))
    for t, p, c in zip(confusion["true"], confusion["pred"], confusion["count"]):
        counts[int(t), int(p)] += c
    totals = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    names = [str(class_names[i]) if i < len(class_names) else str(i) for i in range(k)]
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        size = max(5.5, 0.55 * k + 2.5)
        fig = _figure(size + 1, size)
        ax = fig.subplots()
        image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class")
        ax.set_xticks(range(k), names, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if k <= 20:
            for (i, j), v in np.ndenumerate(norm):
                if counts[i, j]:
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=8 if k > 10 else 9,
                            color="white" if v > 0.5 else "black")
        ax.set_title(title + " (% of true class)")
        return _save(fig, path)


def plot_class_f1(classes: pd.DataFrame, path: Path, title: str) -> Optional[Path]:
    """Per-class F1 (rows with class_index, class_name, f1), worst class in red."""
    if classes.empty or "f1" not in classes:
        return None
    frame = classes.sort_values("class_index") if "class_index" in classes else classes
    names = [str(n) for n in frame.get("class_name", frame.get("class_index"))]
    f1 = pd.to_numeric(frame["f1"], errors="coerce").to_numpy(dtype=float)
    worst = int(np.nanargmin(f1)) if np.isfinite(f1).any() else -1
    with matplotlib.rc_context(STYLE):
        fig = _figure(9, max(MIN_HEIGHT, 0.32 * len(f1) + 1.6))
        ax = fig.subplots()
        y = np.arange(len(f1))
        ax.barh(y, np.nan_to_num(f1), color=[ACCENT if i == worst else TRAIN for i in y], alpha=0.85)
        for yi, v in zip(y, f1):
            ax.annotate(f"{v:.3f}", (0 if np.isnan(v) else v, yi), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=8)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.1)
        ax.set_xlabel("F1 (test)")
        ax.axvline(np.nanmean(f1), color=MUTED, linestyle="--", linewidth=1)
        ax.set_title(f"{title}\nmacro F1 {np.nanmean(f1):.3f} (dashed)")
        ax.grid(axis="y", visible=False)
        return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# Throughput and comparison


def plot_throughput(frame: pd.DataFrame, path: Path) -> Optional[Path]:
    frame = frame[pd.to_numeric(frame["images_per_sec"], errors="coerce") > 0]
    if frame.empty:
        return None
    labels = [f"{a} · {p} · bs {b}" + (f" · {d}" if isinstance(d, str) and d else "")
              for a, p, b, d in zip(frame["arch"], frame["precision"], frame["batch_size"], frame["device"])]
    ips = frame["images_per_sec"].to_numpy(dtype=float)
    with matplotlib.rc_context(STYLE):
        fig = _figure(10, max(MIN_HEIGHT, 0.5 * len(frame) + 1.8))
        ax = fig.subplots()
        y = np.arange(len(frame))
        ax.barh(y, ips, height=0.6, color=TRAIN, alpha=0.85)
        for yi, v, tf, pct in zip(y, ips, frame["achieved_tflops"], frame["pct_of_peak"]):
            text = f"{v:,.0f} img/s"
            if not pd.isna(tf):
                text += f" · {fmt_si(tf * 1e12, 'FLOP/s')}"
            if not pd.isna(pct):
                text += f" · {pct:.3g}% of peak"
            ax.annotate(text, (v, yi), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(y, [_short(s, 60) for s in labels])
        ax.invert_yaxis()
        ax.set_xlim(0, ips.max() * 1.6)
        ax.set_xlabel("training images / s")
        ax.set_title("Throughput")
        ax.grid(axis="y", visible=False)
        return _save(fig, path)


def plot_compare(frame: pd.DataFrame, name_a: str, name_b: str, path: Path, metric: str) -> Optional[Path]:
    frame = frame[frame["mean_a"].notna() | frame["mean_b"].notna()].head(MAX_BARS)
    if frame.empty:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(9, max(MIN_HEIGHT, 0.6 * len(frame) + 1.8))
        ax = fig.subplots()
        y = np.arange(len(frame))
        for offset, side, name, color in ((-0.2, "a", name_a, TRAIN), (0.2, "b", name_b, VAL)):
            mean = frame[f"mean_{side}"].to_numpy(dtype=float)
            lo = np.where(frame[f"ci_low_{side}"].isna(), mean, frame[f"ci_low_{side}"].to_numpy(dtype=float))
            hi = np.where(frame[f"ci_high_{side}"].isna(), mean, frame[f"ci_high_{side}"].to_numpy(dtype=float))
            ax.barh(y + offset, np.nan_to_num(mean), height=0.4, color=color, alpha=0.85, label=name)
            ax.errorbar(mean, y + offset, xerr=[mean - lo, hi - mean], fmt="none", ecolor="black", capsize=2,
                        linewidth=1)
        ax.set_yticks(y, [_short(str(s), 56) for s in frame["label"]])
        ax.invert_yaxis()
        finite = frame[["mean_a", "mean_b", "ci_low_a", "ci_low_b"]].to_numpy(dtype=float)
        low = np.nanmin(finite)
        ax.set_xlim(max(0.0, low - 0.1 * abs(low)) if low >= 0 else low * 1.1, None)
        ax.set_xlabel(metric)
        ax.set_title(f"{name_a} vs {name_b}")
        fig.legend(loc="outside lower center", ncols=2)
        ax.grid(axis="y", visible=False)
        return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# Budget curves and performance profiles (harness.report.budget, harness.report.workloads)


def plot_budget(curves: pd.DataFrame, axis: str, metric: str, path: Path) -> Optional[Path]:
    """Expected best `metric` vs number of trials n (log2 axis), one line per value of `axis` with a +-1 std
    band (`curves`: value, n, expected, std, as harness.report.budget.budget_curves returns)."""
    from matplotlib.ticker import FuncFormatter

    if curves.empty:
        return None
    colors = matplotlib.colormaps["tab10"].colors
    with matplotlib.rc_context(STYLE):
        fig = _figure(8, 4.8)
        ax = fig.subplots()
        for i, (value, part) in enumerate(curves.groupby("value", sort=False)):
            n = part["n"].to_numpy(dtype=float)
            mean = part["expected"].to_numpy(dtype=float)
            std = part["std"].to_numpy(dtype=float)
            color = colors[i % len(colors)]
            ax.plot(n, mean, "-", color=color, marker="o" if curves["n"].max() <= 16 else None, markersize=3,
                    label=_short(f"{value} ({len(n)} trials)", 40))
            low, high = metric_range(metric)  # the band stays in the metric's range (an accuracy never passes 1)
            ax.fill_between(n, np.clip(mean - std, low, high), np.clip(mean + std, low, high), color=color,
                            alpha=0.15, linewidth=0)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_xlabel("number of trials n (drawn with replacement)")
        ax.set_ylabel(f"expected best {metric}")
        ax.set_title(f"{metric}: expected best of n trials, by {axis}")
        ax.legend(loc="best", title=axis, fontsize=8)
        return _save(fig, path)


def plot_performance_profile(profile: pd.DataFrame, metric: str, path: Path) -> Optional[Path]:
    """Fraction of runs with normalized score >= tau, one step curve per method (`profile`: method, tau,
    fraction, as harness.report.workloads.performance_profile returns); at most MAX_BARS methods."""
    if profile.empty:
        return None
    methods = list(dict.fromkeys(profile["method"]))[:MAX_BARS]
    colors = matplotlib.colormaps["tab20" if len(methods) > 10 else "tab10"].colors
    with matplotlib.rc_context(STYLE):
        fig = _figure(8 + (2.5 if len(methods) > 6 else 0), 4.8)
        ax = fig.subplots()
        for i, method in enumerate(methods):
            part = profile[profile["method"] == method].sort_values("tau")
            ax.step(part["tau"].to_numpy(dtype=float), part["fraction"].to_numpy(dtype=float), where="post",
                    color=colors[i % len(colors)], linewidth=1.6, label=_short(str(method), 48))
        ax.axvline(1.0, color=MUTED, linestyle=":", linewidth=1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"normalized {metric} τ (1 = the workload's best method mean)")
        ax.set_ylabel("fraction of runs ≥ τ")
        ax.set_title(f"Performance profile: normalized {metric}")
        if len(methods) > 6:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        else:
            ax.legend(loc="lower left", fontsize=8)
        return _save(fig, path)
