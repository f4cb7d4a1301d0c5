"""Segmentation sweeps in the report: the default metric (best_val_iou) and the prediction snapshots
(latest PNG of the best trial of each top configuration, from results/<sweep>/snapshots/)."""

from __future__ import annotations

import pandas as pd

from harness.report.html import Figure
from harness.report.results import Results
from harness.segmentation.snapshots import latest_snapshot
from harness.vocabulary import lower_is_better


def is_segmentation(results: Results) -> bool:
    return "task" in results.trials and bool((results.trials["task"] == "segmentation").any())


def default_metric(results: Results) -> str:
    return "best_val_iou" if is_segmentation(results) else "best_val_acc"


def snapshot_figures(results: Results, board: pd.DataFrame, metric: str, top: int) -> list[Figure]:
    """For each of the `top` best configurations: the latest snapshot of its best trial that has one."""
    figures = []
    members = results.included()
    ranked = board[board["n"] > 0].head(top)
    for rank, key, label in zip(ranked["rank"], ranked["config_key"], ranked["label"]):
        group = members[members["config_key"] == key]
        values = pd.to_numeric(group[metric], errors="coerce") if metric in group else pd.Series(dtype=float)
        order = values.sort_values(ascending=lower_is_better(metric), na_position="last").index
        for tid in group.loc[order, "trial_id"]:
            found = latest_snapshot(results.path, str(tid))
            if found is not None:
                epoch, path = found
                figures.append(Figure(f"#{rank} `{label}`: trial `{tid}`, epoch {epoch} "
                                      "(validation images: image | true mask | predicted mask)", path))
                break
    return figures
