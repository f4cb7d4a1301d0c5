"""Time to target (as in AlgoPerf): the first epoch, and the training seconds until then, at which a
trial's validation score reaches a target. The score is the task's (val_acc; val_iou for
segmentation) unless told otherwise.

Per trial: `epoch` is the first epoch row with the score >= target, `seconds` the sum of epoch_seconds
up to and including it; both are NaN when the target is never reached. Failed trials (crashes) are
left out; diverged and stalled trials count as runs that did not reach the target.
Per configuration: `reached` of `n` trials, and the median epoch / seconds over all n trials with
"not reached" counted as infinity (so a configuration whose trials mostly miss the target has an
infinite median, AlgoPerf's rule), plus the mean seconds of the trials that reached it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.report.leaderboard import task_metric
from harness.report.results import Results
from harness.report.tables import Table, fmt, fmt_epoch, view
from harness.vocabulary import Status


def trial_times(results: Results, target: float, metric: str | None = None) -> pd.DataFrame:
    """One row per (non-failed) trial: trial_id, label, seed, epoch, seconds (NaN if never reached).
    `metric` None: the task's score (`task_metric`)."""
    metric = metric or task_metric(results)
    trials = results.trials[results.trials["status"] != Status.FAILED]
    epochs = results.epochs
    by_trial = {tid: part.sort_values("epoch") for tid, part in epochs.groupby("trial_id")} if not epochs.empty else {}
    rows = []
    for trial in trials.itertuples(index=False):
        part = by_trial.get(trial.trial_id)
        epoch = seconds = math.nan
        if part is not None and metric in part:
            hit = pd.to_numeric(part[metric], errors="coerce") >= target
            if hit.any():
                first = int(np.argmax(hit.to_numpy()))
                epoch = float(part["epoch"].iloc[first])
                if "epoch_seconds" in part:
                    spent = pd.to_numeric(part["epoch_seconds"], errors="coerce").iloc[: first + 1]
                    seconds = float(spent.sum(min_count=first + 1))  # NaN if any epoch's time is missing
        rows.append({"trial_id": trial.trial_id, "label": trial.label, "config_key": trial.config_key,
                     "seed": trial.seed, "status": trial.status, "epoch": epoch, "seconds": seconds})
    return pd.DataFrame(rows, columns=["trial_id", "label", "config_key", "seed", "status", "epoch", "seconds"])


def _median_inf(values: pd.Series, reached: pd.Series) -> float:
    """Median with unreached trials as infinity; NaN when a trial reached it but the value is unknown."""
    if not len(values) or (values.isna() & reached).any():
        return math.nan
    return float(np.median(values.where(reached, math.inf).to_numpy()))


def time_to_target(results: Results, target: float, metric: str | None = None) -> pd.DataFrame:
    """One row per configuration, fastest first: label, target, metric, reached, n, median_epoch,
    median_seconds, mean_seconds. `metric` None: the task's score (`task_metric`)."""
    metric = metric or task_metric(results)
    times = trial_times(results, target, metric)
    rows = []
    for key, group in times.groupby("config_key", sort=False):
        reached = group["epoch"].notna()
        rows.append({
            "label": group["label"].iloc[0], "target": target, "metric": metric, "reached": int(reached.sum()), "n": len(group),
            "median_epoch": _median_inf(group["epoch"], reached),
            "median_seconds": _median_inf(group["seconds"], reached),
            "mean_seconds": group.loc[reached, "seconds"].mean() if reached.any() else math.nan, "config_key": key,
        })
    frame = pd.DataFrame(rows, columns=["label", "target", "metric", "reached", "n", "median_epoch", "median_seconds",
                                        "mean_seconds", "config_key"])
    return frame.sort_values(["median_seconds", "median_epoch", "reached", "label"],
                             ascending=[True, True, False, True]).reset_index(drop=True)


def _or_not_reached(x, formatter=fmt) -> str:
    return "not reached" if isinstance(x, float) and math.isinf(x) else formatter(x)


def time_to_target_table(frame: pd.DataFrame, target: float, metric: str | None = None) -> Table:
    """The table of `time_to_target`'s frame; `metric` None: the one the frame was made for."""
    metric = metric or (frame["metric"].iloc[0] if len(frame) else "val_acc")
    shown = view(frame, {"label": "configuration"})
    shown["reached"] = [f"{r}/{n}" for r, n in zip(frame["reached"], frame["n"])]
    shown["median epoch"] = [_or_not_reached(x, fmt_epoch) for x in frame["median_epoch"]]
    shown["median seconds"] = [_or_not_reached(x, lambda v: fmt(v, 1)) for x in frame["median_seconds"]]
    shown["mean seconds (reached)"] = [fmt(x, 1) for x in frame["mean_seconds"]]
    note = (
        f"First epoch whose {metric} ≥ {target:g}; seconds = summed epoch_seconds through that epoch. Medians "
        "count trials that never reached the target as ∞ (AlgoPerf), so 'not reached' means fewer than half did. "
        "Failed trials are left out; diverged and stalled ones count as not reaching it."
    )
    return Table("time_to_target", f"Time to {metric} ≥ {target:g}", frame, shown, note)
