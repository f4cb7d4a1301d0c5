"""The leaderboard: configurations ranked by a metric, replicates (seeds, and data splits when they vary)
aggregated as mean, std, n and an interval that fits n; ties and winners decided by a paired test.

Rules (also printed under the table; harness.report.ranking holds them as code):
- Failed and diverged trials are left out of the means (and counted in `excluded`); every other
  status (completed, early_stopped, stalled) counts.
- Order: by mean, best first (harness.vocabulary.direction: higher is better unless the metric is a
  loss, an error or a time). The default metric is the task's: best_val_acc, best_val_iou.
- Interval: Student's t for 3 or more replicates, clipped to the metric's range; with 2 (or no
  spread) no interval and the range instead; with 1 the value alone (harness.report.stats).
- Rank "1=": the leader and every entry that a paired t-test over shared replicates, Holm-corrected
  for the number of comparisons with the leader, cannot separate from it. `P(beats #1)`: the share of
  shared replicates on which the entry beats the leader.
- Seeds needed: for the top two (and any pair asked for), the replicates a paired t-test would need to
  separate them at 80% power, if their observed difference and spread were the truth.
"""

from __future__ import annotations

import math
import numbers

import pandas as pd

from harness.report.ranking import Separation, is_winner, rank, ranks, separation
from harness.report.results import EXCLUDED, ReportError, Results
from harness.report.stats import ALPHA, MAX_SEEDS, RANGE_METHOD, SINGLE_METHOD, T_METHOD
from harness.report.tables import Table, fmt, fmt_int, fmt_interval, fmt_p, missing, view
from harness.tasks import TASKS
from harness.vocabulary import direction, metric_range

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


def _replicate_values(group: pd.DataFrame, metric: str) -> dict:
    """{replicate: value} of the counted trials with a value (keyed by trial_id when replicates are
    missing or repeat)."""
    kept = group[~group["status"].isin(EXCLUDED)]
    values = pd.to_numeric(kept[metric], errors="coerce")
    keys = list(kept["replicate"]) if "replicate" in kept else list(kept["seed"])
    if any(k is None or (isinstance(k, float) and math.isnan(k)) for k in keys) or len(set(keys)) < len(keys):
        keys = list(kept["trial_id"])
    return {k: v for k, v in zip(keys, values) if not math.isnan(v)}


def replicate_values(results: Results, metric: str) -> dict[str, dict]:
    """{config_key: {replicate: value}} over the counted trials, in first-seen order."""
    return {key: _replicate_values(group, metric) for key, group in results.trials.groupby("config_key", sort=False)}


def leaderboard(results: Results, metric: str | None = None) -> pd.DataFrame:
    """One row per configuration, best first: rank, label, mean, std, n, ci_low, ci_high, interval,
    min, max, p_vs_top, p_holm, p_beats_top, tied_with_top, excluded, ... `metric` None: the task's."""
    metric = metric or default_metric(results)
    values = replicate_values(results, metric)
    groups = {key: group for key, group in results.trials.groupby("config_key", sort=False)}
    labels = {key: group["label"].iloc[0] for key, group in groups.items()}
    entries = rank(values, higher_is_better(metric), metric_range(metric), labels=labels)
    rows = []
    for place, entry in zip(ranks(entries), entries):
        group, s, versus = groups[entry.key], entry.summary, entry.versus_top
        first = group.iloc[0]
        rows.append({
            "rank": place, "label": labels[entry.key], "mean": s.mean, "std": s.std, "n": s.n,
            "ci_low": s.lo, "ci_high": s.hi, "interval": s.method, "min": s.min, "max": s.max,
            "p_vs_top": versus.p if versus else math.nan, "p_holm": entry.p_holm,
            "p_beats_top": versus.p_beats if versus else math.nan, "shared": versus.shared if versus else s.n,
            "tied_with_top": entry.tied,
            "excluded": int(group["status"].isin(EXCLUDED).sum()), "trials": len(group),
            "seeds": " ".join(str(k) for k in sorted(values[entry.key], key=str)),
            **{axis: first[axis] for axis in results.axes},
            "config_key": entry.key,
        })
    board = pd.DataFrame(rows)
    board["winner"] = is_winner(entries)
    board["metric"] = metric
    return board


def fmt_range_or_interval(row) -> str:
    """The interval, or why there is none: 'range 0.84–0.87 (n=2)', 'one seed', '–'."""
    if row["interval"] == T_METHOD:
        return fmt_interval(row["ci_low"], row["ci_high"])
    if row["interval"] == RANGE_METHOD:
        return f"range {fmt(row['min'])}–{fmt(row['max'])}"
    return "one seed" if row["interval"] == SINGLE_METHOD else "–"


def fmt_beats(p: float) -> str:
    return "–" if missing(p) else f"{p:.2f}"


INTERVAL_NOTE = (
    "Interval: 95% Student's t interval of the mean over replicates (mean ± t(0.975, n−1)·std/√n, std "
    "ddof=1), clipped to the metric's range, from 3 replicates on; with 2, or no spread, no interval is "
    "trustworthy and the range is shown instead."
)
TIES_NOTE = (
    "Rank `1=`: the leader and every configuration that a two-sided paired t-test against it over shared "
    "replicates, Holm-corrected for the number of comparisons, cannot separate (corrected p ≥ 0.05): "
    "statistically tied. `p (Holm)`: that corrected p-value; `P(beats #1)`: the share of shared replicates "
    "on which the configuration beats the leader (probability of improvement, Bouthillier et al. 2021)."
)


def leaderboard_table(board: pd.DataFrame, metric: str) -> Table:
    better = "higher" if higher_is_better(metric) else "lower"
    shown = view(
        board,
        {"rank": "rank", "label": "configuration", "mean": f"mean {metric}", "std": "std", "n": "n",
         "p_holm": "p (Holm) vs #1", "p_beats_top": "P(beats #1)", "excluded": "excluded"},
        {"n": fmt_int, "excluded": fmt_int, "p_holm": fmt_p, "p_beats_top": fmt_beats},
    )
    shown.insert(5, "95% interval", [fmt_range_or_interval(r) for _, r in board.iterrows()])
    note = (
        f"{better.capitalize()} is better; mean over replicates (seeds, and data splits when the sweep varies "
        f"`dataset.split_seed`). {INTERVAL_NOTE} {TIES_NOTE} `excluded`: failed or diverged trials, left out "
        "of the mean (see diagnosis.md)."
    )
    return Table("leaderboard", f"Ranking by {metric}", board, shown, note)


def verdict(board: pd.DataFrame, metric: str) -> str:
    """One sentence on the leader: the winner, or what it cannot be separated from."""
    if board.empty or board["n"].iloc[0] == 0:
        return f"No configuration has a value for `{metric}`."
    top = board.iloc[0]
    if len(board) == 1:
        return f"One configuration: **{top['label']}**."
    if bool(top["winner"]):
        return (f"**{top['label']}** wins: a paired t-test separates it from every other configuration "
                "(Holm-corrected p < 0.05).")
    tied = int(board["tied_with_top"].iloc[1:].sum())
    untested = int(((board["shared"] < 2) & (board.index > 0) & (board["n"] > 0)).sum())
    parts = []
    if tied:
        parts.append(f"cannot be separated from {tied} other configuration{'s' if tied > 1 else ''} "
                     "(Holm-corrected paired t-test)")
    if untested:
        parts.append(f"{untested} share fewer than 2 seeds with it and were not tested")
    return f"No winner: **{top['label']}** leads but " + "; ".join(parts) + "."


def _word_matches(word: str, tokens: list[str]) -> bool:
    """'lr=0.1', 'optimizer.lr=0.1' (the dotted key) or a bare value '0.1' against a label's key=value tokens."""
    for token in tokens:
        key, _, value = token.partition("=")
        w_key, eq, w_value = word.partition("=")
        if word == token or (not eq and word == value) or (eq and w_value == value and key in w_key.split(".")):
            return True
    return False


def find_configuration(results: Results, text: str) -> str:
    """The config_key a user names on the command line: its label ("activation=relu lr=0.1 optimizer=adam"),
    or words that only it matches: key=value ("lr=0.1 optimizer=adam"), dotted keys ("optimizer.lr=0.1")
    or bare values ("relu 0.1 sgd"). ReportError otherwise."""
    labels = results.trials.drop_duplicates("config_key").set_index("config_key")["label"]
    words = text.replace(",", " ").split()
    exact = [k for k, label in labels.items() if label == text.strip()]
    found = exact or [k for k, label in labels.items() if all(_word_matches(w, label.split()) for w in words)]
    if len(found) == 1:
        return found[0]
    candidates = list(labels[found]) if found else list(labels)
    shown = "; ".join(candidates[:8]) + (" ..." if len(candidates) > 8 else "")
    problem = "matches no configuration" if not found else f"matches {len(found)} configurations"
    raise ReportError(f"--compare '{text}' {problem}: {shown}")


def needs_text(sep: Separation, alpha: float = ALPHA) -> str:
    """'needs about 9 seeds', or why no number can be given."""
    if sep.test is None:
        return "needs at least 2 shared seeds to estimate"
    n = sep.seeds_needed
    if n is None:
        return "no difference observed" if sep.test.mean_diff == 0 else f"more than {MAX_SEEDS} seeds"
    now = " (separated now)" if sep.p < alpha else ""
    return f"needs about {n} seeds{now}"


def separations(results: Results, board: pd.DataFrame, metric: str,
                pairs: list[tuple[str, str]] = ()) -> pd.DataFrame:
    """The top two and each asked-for pair (config keys): shared replicates, mean difference a - b, its
    spread, the paired test (uncorrected: one planned comparison), P(a beats b) and seeds needed."""
    values = replicate_values(results, metric)
    labels = dict(zip(board["config_key"], board["label"]))
    ranked = [k for k, n in zip(board["config_key"], board["n"]) if n > 0]
    wanted = ([tuple(ranked[:2])] if len(ranked) >= 2 else []) + [tuple(p) for p in pairs]
    rows = []
    for a, b in dict.fromkeys(wanted):
        sep = separation(values[a], values[b], higher_is_better(metric))
        rows.append({
            "a": labels[a], "b": labels[b], "shared": sep.shared,
            "mean_diff": sep.test.mean_diff if sep.test else math.nan,
            "sd_diff": sep.test.sd_diff if sep.test else math.nan, "p": sep.p, "p_a_beats_b": sep.p_beats,
            "seeds_needed": sep.seeds_needed, "verdict": needs_text(sep), "asked": (a, b) in pairs,
        })
    return pd.DataFrame(rows, columns=["a", "b", "shared", "mean_diff", "sd_diff", "p", "p_a_beats_b",
                                       "seeds_needed", "verdict", "asked"])


def separations_table(frame: pd.DataFrame, metric: str) -> Table:
    shown = view(frame, {"a": "A", "b": "B", "shared": "shared seeds", "mean_diff": f"mean Δ {metric} (A − B)",
                         "sd_diff": "std of Δ", "p": "p (paired)", "p_a_beats_b": "P(A beats B)",
                         "verdict": "seeds to separate at 80% power"},
                 {"shared": fmt_int, "p": fmt_p, "p_a_beats_b": fmt_beats})
    note = (
        "Seeds needed: the fewest shared seeds at which a two-sided paired t-test at 0.05 separates A from B "
        "with 80% power (noncentral t, scipy.stats.nct), taking the observed mean difference and its spread "
        "as the truth. The first row is the top two; a difference picked as the largest is optimistic, so "
        "read the number as a lower bound. Pairs asked for with `--compare A B` follow."
    )
    return Table("separation", "Seeds needed to separate", frame, shown, note)


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
