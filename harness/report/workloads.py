"""Comparing methods across workloads: normalized scores, IQM with stratified-bootstrap intervals, and
performance profiles (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice", rliable).

A *workload* is a value of the workload axes, `dataset.name` and/or `model.arch`, those that vary
among the counted trials (not failed, not diverged). A *method* is a configuration with the workload
axes (and replicate axes such as seeds) removed: `optimizer=adam lr=0.001` run on every dataset is one
method. A *run* is one counted trial.

Scores of different workloads are not comparable as they stand (80% on CIFAR-10 is not 80% on MNIST),
so each run's score is normalized by its workload's best method mean: score / best for a
higher-is-better metric, best / score for a lower-is-better one. Either way 1 is the workload's best
method mean and higher is better. Runs whose normalized score is not finite (a zero or negative best,
a zero loss) are left out.

    iqm_table            per method: IQM (25% trimmed mean) of its normalized runs over all workloads,
                         a 95% stratified-bootstrap percentile interval, the plain mean, the number of runs
    performance_profile  per method and threshold tau: the fraction of its runs with normalized score >= tau

Both need at least two workloads (None / an empty frame otherwise); `workloads_note` then says why the
section is absent and what to vary.
"""

from __future__ import annotations

import zlib
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy.stats import trim_mean

from harness.config import format_value
from harness.report.budget import REPLICATE_AXES
from harness.report.results import Results, config_label
from harness.report.tables import Table, fmt, fmt_int, fmt_interval
from harness.vocabulary import direction

WORKLOAD_AXES = ("dataset.name", "model.arch")
TRIM = 0.25  # IQM: the mean of the middle 50%
CONFIDENCE = 0.95
NORMALIZED_COLUMNS = ["workload", "method", "seed", "score", "normalized"]
PROFILE_COLUMNS = ["method", "tau", "fraction"]


def workload_axes(results: Results) -> list[str]:
    """`dataset.name` and/or `model.arch`, those with at least two values among the counted trials."""
    counted = results.included()
    return [a for a in WORKLOAD_AXES if a in counted and counted[a].dropna().map(format_value).nunique() >= 2]


def workloads(results: Results) -> list[str]:
    """The workload labels (e.g. 'arch=mlp dataset=mnist'), in order of first appearance; [] without workload axes."""
    axes = workload_axes(results)
    if not axes:
        return []
    counted = results.included()
    return list(dict.fromkeys(config_label({a: v for a, v in zip(axes, row)}, "")
                              for row in counted[axes].itertuples(index=False)))


def normalized_scores(results: Results, metric: str) -> Optional[pd.DataFrame]:
    """One row per counted run with a finite metric: workload, method, seed, score, normalized (by the
    workload's best method mean, see the module docstring). None with fewer than two workloads."""
    axes = workload_axes(results)
    counted = results.included()
    if not axes or metric not in counted:
        return None
    method_axes = [a for a in results.axes if a not in axes and a not in REPLICATE_AXES and a in counted]
    frame = pd.DataFrame({
        "workload": [config_label(dict(zip(axes, row)), "") for row in counted[axes].itertuples(index=False)],
        "method": [config_label(dict(zip(method_axes, row)), results.name)
                   for row in counted[method_axes].itertuples(index=False)] if method_axes else results.name,
        "seed": counted["seed"].to_numpy() if "seed" in counted else None,
        "score": pd.to_numeric(counted[metric], errors="coerce").to_numpy(dtype=float),
    })
    frame = frame[np.isfinite(frame["score"])].reset_index(drop=True)
    if frame["workload"].nunique() < 2 or frame["method"].nunique() < 2:
        return None  # one workload, or nothing but the workloads varies: the leaderboard compares them directly
    means = frame.groupby(["workload", "method"], sort=False)["score"].mean()
    higher = direction(metric) == "max"
    best = (means.groupby(level="workload").max() if higher else means.groupby(level="workload").min())
    b = frame["workload"].map(best).to_numpy(dtype=float)
    s = frame["score"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalized = np.where(b > 0, s / b, np.nan) if higher else np.where(s > 0, b / s, np.nan)
    frame["normalized"] = normalized
    frame = frame[np.isfinite(frame["normalized"])].reset_index(drop=True)
    return frame[NORMALIZED_COLUMNS] if frame["workload"].nunique() >= 2 else None


def iqm(values: Sequence[float] | np.ndarray, axis: Optional[int] = None) -> float | np.ndarray:
    """Interquartile mean: the 25% trimmed mean (scipy.stats.trim_mean), as rliable computes it."""
    return trim_mean(np.asarray(values, dtype=float), TRIM, axis=axis)


def stratified_resample(groups: Sequence[np.ndarray], reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, total) bootstrap samples: each group (the runs of one workload) resampled with replacement
    within itself, its size kept; columns in group order."""
    parts = []
    for group in groups:
        group = np.asarray(group, dtype=float)
        parts.append(group[rng.integers(0, len(group), size=(reps, len(group)))])
    return np.concatenate(parts, axis=1) if parts else np.empty((reps, 0))


def _rng(seed: int, method: str) -> np.random.Generator:
    """A generator per method, fixed by the seed and the method's label (not by which other methods exist)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(method.encode())]))


def iqm_frame(scores: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per method (best IQM first): method, iqm, ci_low, ci_high, mean, runs, workloads."""
    rows = []
    alpha = (1 - CONFIDENCE) / 2
    for method, part in scores.groupby("method", sort=False):
        groups = [g["normalized"].to_numpy(dtype=float) for _, g in part.groupby("workload", sort=False)]
        values = np.concatenate(groups)
        boot = iqm(stratified_resample(groups, reps, _rng(seed, str(method))), axis=1) if reps > 0 else np.array([])
        lo, hi = (np.quantile(boot, [alpha, 1 - alpha]) if len(boot) else (np.nan, np.nan))
        rows.append({"method": method, "iqm": float(iqm(values)), "ci_low": float(lo), "ci_high": float(hi),
                     "mean": float(values.mean()), "runs": len(values), "workloads": len(groups)})
    frame = pd.DataFrame(rows, columns=["method", "iqm", "ci_low", "ci_high", "mean", "runs", "workloads"])
    return frame.sort_values(["iqm", "method"], ascending=[False, True], kind="stable").reset_index(drop=True)


def iqm_table(results: Results, metric: str, reps: int = 2000, seed: int = 0) -> Optional[Table]:
    """Methods ranked by the IQM of their normalized runs over all workloads, with a 95% stratified-bootstrap
    percentile interval (runs resampled within each workload, `reps` resamples, reproducible from `seed`),
    the plain mean and the run count. None with fewer than two workloads."""
    scores = normalized_scores(results, metric)
    if scores is None:
        return None
    data = iqm_frame(scores, reps, seed)
    total = scores["workload"].nunique()
    shown = pd.DataFrame({
        "method": data["method"].astype(str),
        f"IQM normalized {metric}": [fmt(x) for x in data["iqm"]],
        "95% CI": [fmt_interval(lo, hi) for lo, hi in zip(data["ci_low"], data["ci_high"])],
        "mean": [fmt(x) for x in data["mean"]],
        "n runs": [fmt_int(x) for x in data["runs"]],
        "workloads": [f"{w}/{total}" for w in data["workloads"]],
    })
    ratio = "score / best" if direction(metric) == "max" else "best / score (lower is better)"
    note = (f"Each run's {metric} is normalized by its workload's best method mean ({ratio}; 1 = the workload's "
            f"best mean, higher is better) over {total} workloads ({', '.join(f'`{w}`' for w in workloads(results))}); "
            "IQM is the interquartile mean (25% trimmed mean) of a method's normalized runs across workloads, with a "
            f"95% stratified-bootstrap percentile interval (runs resampled within each workload, {reps} resamples, "
            f"seed {seed}) (Agarwal et al. 2021).")
    return Table("iqm", f"IQM of normalized {metric} across workloads", data, shown, note)


def performance_profile(results: Results, metric: str, taus: Optional[Sequence[float]] = None) -> pd.DataFrame:
    """Per method and threshold tau: the fraction of its runs (all workloads pooled) whose normalized score
    is >= tau (columns method, tau, fraction). Default taus: 101 points spanning the normalized scores.
    Empty (same columns) with fewer than two workloads."""
    scores = normalized_scores(results, metric)
    if scores is None:
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    if taus is None:
        lo, hi = float(scores["normalized"].min()), float(scores["normalized"].max())
        taus = np.linspace(lo, hi, 101) if hi > lo else np.array([lo])
    taus = np.asarray(taus, dtype=float)
    frames = []
    for method, part in scores.groupby("method", sort=False):
        values = part["normalized"].to_numpy(dtype=float)
        fraction = (values[None, :] >= taus[:, None]).mean(axis=1)
        frames.append(pd.DataFrame({"method": method, "tau": taus, "fraction": fraction}))
    return pd.concat(frames, ignore_index=True)


def _any_metric(results: Results) -> str:
    """A score column every classification or segmentation trial has, for the note's check."""
    for metric in ("best_val_acc", "best_val_iou", "best_val_loss"):
        if metric in results.trials and results.trials[metric].notna().any():
            return metric
    return "best_val_acc"


def workloads_note(results: Results) -> str:
    """A sentence for the report: which workloads and methods are compared, or why the comparison is absent
    and what to vary."""
    names = workloads(results)
    if len(names) >= 2 and normalized_scores(results, _any_metric(results)) is None:
        return (f"The configurations differ only in {' x '.join(f'`{a}`' for a in workload_axes(results))}: the "
                "leaderboard compares them directly. IQM and performance profiles compare methods (other grid axes) "
                "across several workloads.")
    if len(names) >= 2:
        return (f"Workloads: the {len(names)} values of {' x '.join(f'`{a}`' for a in workload_axes(results))}; "
                "methods: the configurations with those axes removed, compared on scores normalized per workload.")
    counted = results.included()
    present = [f"`{a}={format_value(counted[a].dropna().iloc[0])}`" for a in WORKLOAD_AXES
               if a in counted and counted[a].notna().any()]
    which = f" (this sweep has one: {', '.join(present)})" if present else " (this sweep has one)"
    return (f"IQM and performance profiles compare methods across workloads and need at least two{which}; "
            "add a second value of `dataset.name` or `model.arch` to the grid to get them.")

