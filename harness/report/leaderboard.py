"""The leaderboard: configurations ranked by a metric, seeds aggregated as mean, std, n and a 95% CI.

Rules (also printed under the table):
- Failed and diverged trials are left out of the means (and counted in `excluded`); every other
  status (completed, early_stopped, stalled) counts.
- Order: by mean, best first (harness.vocabulary.direction: higher is better unless the metric is a
  loss, an error or a time). The default metric is the task's: best_val_acc, best_val_iou.
- Rank: the position in that order, except that the leader and every entry whose 95% interval
  overlaps the leader's share rank "1=" (statistically tied with the best). An entry with one seed
  has no interval; its mean stands in as a point. Entries with no usable value rank "–".
- `p_vs_top`: a two-sided paired t-test of the entry against the leader over the seeds both have
  (shown when they share at least two seeds); informative, it does not change the rank.
"""

from __future__ import annotations

import math
import numbers

import pandas as pd

from harness.report.results import EXCLUDED, ReportError, Results
from harness.report.stats import Summary, paired_t, summarize
from harness.report.tables import Table, fmt_int, fmt_interval, fmt_p, view
from harness.tasks import TASKS
from harness.vocabulary import direction

# Metrics every trial row may carry (harness.store.TRIAL_COLUMNS); other numeric columns work too.
METRICS = ["best_val_acc", "best_val_loss", "test_acc", "test_loss", "test_macro_f1", "test_micro_f1",
           "train_images_per_sec", "total_seconds",
           "best_val_iou", "best_val_dice", "test_iou", "test_dice"]  # the last four: segmentation trials


def higher_is_better(metric: str) -> bool:
    return direction(metric) == "max"


def task_of(results: Results) -> str:
    """The sweep's task (a sweep has one; rows without a `task` column are classification)."""
    tasks = results.trials["task"].dropna().unique() if "task" in results.trials else []
    return str(tasks[0]) if len(tasks) else "classification"


def task_metric(results: Results) -> str:
    """The per-epoch score of the sweep's task: val_acc, val_iou (time-to-target reads it)."""
    return TASKS.get(task_of(results)).metric


def default_metric(results: Results) -> str:
    """What the leaderboard ranks by unless told: the best validation score of the sweep's task."""
    return f"best_{task_metric(results)}"


def _numeric(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col):
        return False
    values = col.dropna()
    if pd.api.types.is_numeric_dtype(col):
        return len(values) > 0
    return len(values) > 0 and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


def metric_columns(trials: pd.DataFrame) -> list[str]:
    """Numeric per-trial columns that can rank configurations (not config keys, not bookkeeping)."""
    skip = {"seed", "params", "num_classes", "epochs_run", "best_epoch", "overfit_epoch", "world_size"}
    return [c for c in trials.columns if c not in skip and "." not in c and _numeric(trials[c])]


def check_metric(results: Results, metric: str) -> None:
    """Accept a stored metric (even if no trial has a value: all failed) or any numeric trials column."""
    trials = results.trials
    if metric in METRICS and metric not in trials:
        trials[metric] = math.nan
    if metric in METRICS or metric in metric_columns(trials):
        return
    allowed = ", ".join(dict.fromkeys([*METRICS, *metric_columns(trials)]))
    raise ReportError(f"{results.path}: metric '{metric}' is not a numeric trials column; allowed: {allowed}")


def _seed_values(group: pd.DataFrame, metric: str) -> dict:
    """{seed: value} of the counted trials with a value (keyed by trial_id when seeds are missing or repeat)."""
    kept = group[~group["status"].isin(EXCLUDED)]
    values = pd.to_numeric(kept[metric], errors="coerce")
    seeds = list(kept["seed"])
    if any(s is None or (isinstance(s, float) and math.isnan(s)) for s in seeds) or len(set(seeds)) < len(seeds):
        seeds = list(kept["trial_id"])
    return {s: v for s, v in zip(seeds, values) if not math.isnan(v)}


def _order(s, label: str, sign: int) -> tuple:
    """Best mean first; configurations without a usable value last; ties in mean by label."""
    return (s.n == 0, -sign * s.mean if s.n else 0.0, label)


def tie_ranks(ordered: list[Summary]) -> tuple[list[str], list[bool]]:
    """Ranks of summaries sorted best first: position, or "1=" for the leader and every entry whose interval
    overlaps the leader's; "–" without a value. Also whether each entry is tied with the leader."""
    top = ordered[0] if ordered else None
    tied = [i > 0 and s.n > 0 and top.n > 0 and s.overlaps(top) for i, s in enumerate(ordered)]
    if tied:
        tied[0] = any(tied)
    ranks = ["–" if s.n == 0 else "1=" if tied[i] else str(i + 1) for i, s in enumerate(ordered)]
    return ranks, tied


def leaderboard(results: Results, metric: str | None = None) -> pd.DataFrame:
    """One row per configuration, best first: rank, label, mean, std, n, ci_low, ci_high, p_vs_top, ...
    `metric` None: the task's (`default_metric`)."""
    metric = metric or default_metric(results)
    trials = results.trials
    rows = []
    for key, group in trials.groupby("config_key", sort=False):
        by_seed = _seed_values(group, metric)
        s = summarize(by_seed.values())
        first = group.iloc[0]
        rows.append({
            "label": first["label"], "mean": s.mean, "std": s.std, "n": s.n, "ci_low": s.lo, "ci_high": s.hi,
            "excluded": int(group["status"].isin(EXCLUDED).sum()), "trials": len(group),
            "seeds": " ".join(str(k) for k in sorted(by_seed, key=str)),
            **{axis: first[axis] for axis in results.axes},
            "config_key": key, "_summary": s, "_by_seed": by_seed,
        })
    board = pd.DataFrame(rows)
    sign = 1 if higher_is_better(metric) else -1
    order = sorted(range(len(board)), key=lambda i: _order(board["_summary"][i], board["label"][i], sign))
    board = board.iloc[order].reset_index(drop=True)

    ranks, tied = tie_ranks(list(board["_summary"]))
    board.insert(0, "rank", ranks)
    board["tied_with_top"] = tied
    top_seeds = board["_by_seed"][0]
    p_values = []
    for i, by_seed in enumerate(board["_by_seed"]):
        shared = sorted(set(by_seed) & set(top_seeds), key=str)
        test = paired_t([by_seed[k] for k in shared], [top_seeds[k] for k in shared]) if i > 0 else None
        p_values.append(test.p if test else math.nan)
    board["p_vs_top"] = p_values
    board["metric"] = metric
    return board.drop(columns=["_summary", "_by_seed"])


def leaderboard_table(board: pd.DataFrame, metric: str) -> Table:
    better = "higher" if higher_is_better(metric) else "lower"
    shown = view(
        board,
        {"rank": "rank", "label": "configuration", "mean": f"mean {metric}", "std": "std", "n": "n",
         "p_vs_top": "p vs #1 (paired)", "excluded": "excluded"},
        {"n": fmt_int, "excluded": fmt_int, "p_vs_top": fmt_p},
    )
    intervals = [fmt_interval(lo, hi, n) for lo, hi, n in zip(board["ci_low"], board["ci_high"], board["n"])]
    shown.insert(5, "95% CI", intervals)
    note = (
        f"{better.capitalize()} is better. Mean over seeds, std with ddof=1, 95% CI = mean ± t(0.975, n-1)·std/√n "
        "(one seed: no interval). Rank `1=`: the leader and every entry whose interval overlaps the leader's "
        "(a one-seed entry counts as a point) are statistically tied. `p vs #1`: two-sided paired t-test against "
        "the leader over shared seeds (≥ 2), for information. `excluded`: failed or diverged trials, left out of "
        "the mean (see diagnosis.md)."
    )
    return Table("leaderboard", f"Ranking by {metric}", board, shown, note)


def best_trial(results: Results, board: pd.DataFrame, metric: str) -> pd.Series | None:
    """The leader's best counted trial (its best seed), or None when no configuration has a value."""
    if board.empty or board["n"].iloc[0] == 0:
        return None
    members = results.included()
    members = members[members["config_key"] == board["config_key"].iloc[0]]
    values = pd.to_numeric(members[metric], errors="coerce")
    if values.notna().sum() == 0:
        return None
    return members.loc[values.idxmax() if higher_is_better(metric) else values.idxmin()]
