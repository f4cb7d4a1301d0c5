"""Diagnosis: which trials overfit and when, the generalization gap per configuration, and which trials
diverged, stalled, failed or raised a health flag (with their configuration and error).

The overfit epoch is the one the monitor stored (`overfit_epoch`); gaps are read at each trial's last
epoch row: accuracy gap = train_acc - val_acc, loss gap = val_loss - train_loss.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.report.results import Results, parse_json
from harness.report.tables import Table, fmt, fmt_epoch, fmt_int, view
from harness.vocabulary import Status

PROBLEMS = (Status.DIVERGED, Status.STALLED, Status.FAILED)


def last_epochs(results: Results) -> pd.DataFrame:
    """Each trial's last epoch row, indexed by trial_id (plus its first epoch with a non-finite loss)."""
    epochs = results.epochs
    if epochs.empty:
        return pd.DataFrame(columns=["train_loss", "train_acc", "val_loss", "val_acc", "first_nonfinite_epoch"])
    epochs = epochs.sort_values(["trial_id", "epoch"])
    last = epochs.groupby("trial_id").tail(1).set_index("trial_id")
    losses = epochs[[c for c in ("train_loss", "val_loss") if c in epochs]].apply(pd.to_numeric, errors="coerce")
    bad = epochs.loc[~np.isfinite(losses).all(axis=1)]
    last["first_nonfinite_epoch"] = bad.groupby("trial_id")["epoch"].min()
    return last


def _gaps(results: Results) -> pd.DataFrame:
    last = last_epochs(results)
    trials = results.trials.set_index("trial_id")
    frame = trials[["label", "seed", "status", "config_key"]].copy()
    for col in ("train_acc", "val_acc", "train_loss", "val_loss", "first_nonfinite_epoch"):
        frame[f"final_{col}" if col != "first_nonfinite_epoch" else col] = (
            pd.to_numeric(last[col], errors="coerce").reindex(frame.index) if col in last else math.nan
        )
    frame["gap_acc"] = frame["final_train_acc"] - frame["final_val_acc"]
    frame["gap_loss"] = frame["final_val_loss"] - frame["final_train_loss"]
    for col in ("overfit_epoch", "best_epoch", "epochs_run", "best_val_acc"):
        frame[col] = pd.to_numeric(trials[col], errors="coerce") if col in trials else math.nan
    return frame


def overfitting(results: Results) -> pd.DataFrame:
    """Trials with an overfit epoch: when it started, and how far train and validation had drifted apart."""
    frame = _gaps(results)
    frame = frame[frame["overfit_epoch"].notna() & (frame["status"] != Status.FAILED)]
    frame = frame.assign(val_acc_drop=frame["best_val_acc"] - frame["final_val_acc"])
    cols = ["label", "seed", "overfit_epoch", "best_epoch", "epochs_run", "best_val_acc", "final_val_acc",
            "val_acc_drop", "final_train_acc", "gap_acc", "gap_loss", "status"]
    return frame.reset_index()[["trial_id", *cols]].sort_values(["label", "seed"], key=_str).reset_index(drop=True)


def generalization_gap(results: Results) -> pd.DataFrame:
    """Per configuration (counted trials): mean final train/val accuracy, the gaps, how many trials overfit."""
    frame = _gaps(results)
    frame = frame[~frame["status"].isin((Status.FAILED, Status.DIVERGED))]
    rows = []
    for key, group in frame.groupby("config_key", sort=False):
        overfit = group["overfit_epoch"].dropna()
        rows.append({
            "label": group["label"].iloc[0], "train_acc": group["final_train_acc"].mean(),
            "val_acc": group["final_val_acc"].mean(), "gap_acc": group["gap_acc"].mean(),
            "gap_loss": group["gap_loss"].mean(), "overfit": len(overfit), "n": len(group),
            "median_overfit_epoch": overfit.median() if len(overfit) else math.nan, "config_key": key,
        })
    out = pd.DataFrame(rows, columns=["label", "train_acc", "val_acc", "gap_acc", "gap_loss", "overfit", "n",
                                      "median_overfit_epoch", "config_key"])
    return out.sort_values(["gap_acc", "label"], ascending=[False, True], na_position="last").reset_index(drop=True)


def _epoch_ranges(epochs: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3,5'."""
    runs: list[list[int]] = []
    for e in sorted(set(epochs)):
        if runs and e == runs[-1][1] + 1:
            runs[-1][1] = e
        else:
            runs.append([e, e])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _flags(value) -> str:
    """A trial's health flags, each name once with its epochs: 'at_chance@1-2,4; collapsed@1-2'."""
    flags = parse_json(value) if isinstance(value, str) and value[:1] in "[{" else value
    if isinstance(flags, dict):
        flags = [k for k, v in flags.items() if v]
    if isinstance(flags, (list, tuple)):
        epochs: dict[str, list[int]] = {}
        for flag in map(str, flags):
            name, _, epoch = flag.partition("@")
            epochs.setdefault(name if epoch.isdigit() else flag, []).extend([int(epoch)] if epoch.isdigit() else [])
        return "; ".join(f"{name}@{_epoch_ranges(e)}" if e else name for name, e in epochs.items())
    return "" if flags is None or (isinstance(flags, float) and math.isnan(flags)) else str(flags)


def _first_line(text, limit: int = 160) -> str:
    if not isinstance(text, str) or not text.strip():
        return ""
    line = text.strip().splitlines()[-1] if "Traceback" in text else text.strip().splitlines()[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def health(results: Results) -> pd.DataFrame:
    """Trials that diverged, stalled or failed, or carry a health flag, with their configuration."""
    frame = _gaps(results)
    trials = results.trials.set_index("trial_id")
    frame["health"] = [_flags(v) for v in trials["health"]] if "health" in trials else ""
    frame["error"] = [_first_line(v) for v in trials["error"]] if "error" in trials else ""
    frame = frame[frame["status"].isin(PROBLEMS) | (frame["health"] != "")]
    order = {s: i for i, s in enumerate(PROBLEMS)}
    frame = frame.assign(_o=frame["status"].map(order).fillna(len(order)))
    cols = ["status", "label", "seed", "epochs_run", "first_nonfinite_epoch", "final_train_loss", "final_val_acc",
            "health", "error"]
    frame = frame.reset_index().sort_values(["_o", "label", "seed"], key=_str)
    return frame[["trial_id", *cols]].reset_index(drop=True)


def _loss(value, epochs_run) -> str:
    """A last loss: 'NaN' when the trial ran epochs but its loss was not finite."""
    if pd.isna(value) and not pd.isna(epochs_run) and epochs_run > 0:
        return "NaN"
    return fmt(value)


def _str(col: pd.Series) -> pd.Series:
    return col if pd.api.types.is_numeric_dtype(col) else col.astype(str)


def diagnosis_tables(results: Results) -> list[Table]:
    ints = {c: fmt_int for c in ("seed", "overfit_epoch", "best_epoch", "epochs_run", "first_nonfinite_epoch",
                                 "overfit", "n")}
    ints["median_overfit_epoch"] = fmt_epoch

    over = overfitting(results)
    over_view = view(over, {
        "label": "configuration", "seed": "seed", "overfit_epoch": "overfit epoch", "best_epoch": "best epoch",
        "epochs_run": "epochs run", "best_val_acc": "best val acc", "final_val_acc": "final val acc",
        "val_acc_drop": "val acc drop", "final_train_acc": "final train acc", "gap_acc": "acc gap",
        "gap_loss": "loss gap"}, ints)

    gap = generalization_gap(results)
    gap_view = view(gap, {
        "label": "configuration", "train_acc": "final train acc", "val_acc": "final val acc", "gap_acc": "acc gap",
        "gap_loss": "loss gap", "overfit": "overfit trials", "n": "n", "median_overfit_epoch": "median overfit epoch",
    }, ints)

    sick = health(results)
    sick_view = view(sick, {
        "status": "status", "label": "configuration", "seed": "seed", "epochs_run": "epochs run",
        "first_nonfinite_epoch": "first NaN/inf epoch", "final_train_loss": "last train loss",
        "final_val_acc": "last val acc", "health": "health flags", "error": "error"}, ints)
    sick_view["last train loss"] = [_loss(v, e) for v, e in zip(sick["final_train_loss"], sick["epochs_run"])]

    return [
        Table("overfitting", "Overfitting trials", over, over_view,
              "The overfit epoch is where the monitor saw validation loss start rising; gaps are at the last epoch "
              "(acc gap = train − val accuracy, loss gap = val − train loss)."),
        Table("generalization_gap", "Generalization gap per configuration", gap, gap_view,
              "Means over counted trials (not failed, not diverged) at each trial's last epoch; largest gap first."),
        Table("health", "Diverged, stalled, failed and flagged trials", sick, sick_view,
              "Failed and diverged trials are left out of every mean; stalled ones (stuck near chance) are counted. "
              "Flags (name@epochs): at_chance (the task's validation score, accuracy or IoU, near what a constant "
              "prediction scores), collapsed (predictions on a few classes while val acc is near chance), stalled (still at chance after health.stall_epochs), vanishing_grad, "
              "exploding_grad."),
    ]
