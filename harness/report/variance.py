"""Where the uncertainty comes from: the test set's own sampling error next to the seed spread, and,
when a sweep varies `dataset.split_seed` as well as `seed`, the variance split by source.

- Test-set error: an accuracy measured on N test examples has a binomial standard error
  √(p(1-p)/N) about the accuracy on the whole population. Every seed of a sweep is scored on the
  same test set, so this error is not in the spread over seeds: it is the extra uncertainty of the
  claim "the model is this good", shared by all configurations (it cancels in paired comparisons
  on the same test set only as far as the configurations err on the same examples).
- Sources: a one-way random-effects ANOVA per configuration (harness.report.stats.variance_by_source)
  splits the variance over replicates into the data split (between split seeds) and initialization
  and data order (between seeds within a split), pooled as the mean over configurations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.report.results import EXCLUDED, Results
from harness.report.stats import binomial_se, finite, variance_by_source
from harness.report.tables import Table, fmt, fmt_int, view

ACCURACIES = ("test_acc",)  # test metrics that are a share of independent examples (binomial)


def examples_per_trial(results: Results) -> pd.Series:
    """Test examples per trial (trial_id -> N), from the classes table's per-class support."""
    classes = results.classes
    if classes.empty or "support" not in classes:
        return pd.Series(dtype=float)
    return classes.groupby("trial_id")["support"].sum()


def sampling_error(results: Results, board: pd.DataFrame, top: int = 5, metric: str = "test_acc") -> pd.DataFrame:
    """For the leaderboard's first `top` configurations: mean test accuracy, its std over seeds and the
    binomial standard error from the test size."""
    columns = ["label", "mean", "seed_std", "n", "test_size", "binomial_se", "ratio"]
    if metric not in results.trials or results.trials[metric].notna().sum() == 0:
        return pd.DataFrame(columns=columns)
    sizes = examples_per_trial(results)
    trials = results.trials[~results.trials["status"].isin(EXCLUDED)]
    rows = []
    for key, label in zip(board["config_key"].head(top), board["label"].head(top)):
        group = trials[trials["config_key"] == key]
        values = finite(pd.to_numeric(group[metric], errors="coerce"))
        if not values:
            continue
        n_test = sizes.reindex(group["trial_id"]).dropna()
        size = int(n_test.median()) if len(n_test) else None
        mean = float(np.mean(values))
        seed_std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        se = binomial_se(mean, size)
        rows.append({"label": label, "mean": mean, "seed_std": seed_std, "n": len(values), "test_size": size,
                     "binomial_se": se, "ratio": seed_std / se if se and se > 0 else math.nan})
    return pd.DataFrame(rows, columns=columns)


def sampling_error_table(frame: pd.DataFrame) -> Table:
    shown = view(frame, {"label": "configuration", "mean": "mean test_acc", "seed_std": "std over seeds",
                         "n": "seeds", "test_size": "test examples", "binomial_se": "test-set SE (binomial)",
                         "ratio": "seed std / test SE"},
                 {"n": fmt_int, "test_size": fmt_int})
    note = (
        "Two sources of uncertainty in a test accuracy: the spread over seeds (training randomness) and the "
        "test set's own sampling error, √(p(1−p)/N) for N independent test examples (binomial). All seeds "
        "share one test set, so the second is not in the first: a 95% statement about the population "
        "accuracy needs both (√(std²/n + SE²) for the mean over n seeds)."
    )
    return Table("test_error", "Test-set sampling error vs seed spread", frame, shown, note)


def split_varies(results: Results) -> bool:
    splits = results.trials.get("split_seed", pd.Series(dtype=object)).dropna()
    return splits.astype(str).nunique() > 1


def variance_sources(results: Results, metric: str, board: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per configuration (in `board`'s order when given) with at least 2 split seeds of at least 2 seeds
    each: the std between data splits, the std between seeds within a split, and the split's share of
    the variance; then a last row, the median over configurations. Empty when the sweep does not vary
    dataset.split_seed."""
    columns = ["label", "split_std", "seed_std", "split_share", "splits", "seeds"]
    if not split_varies(results) or metric not in results.trials:
        return pd.DataFrame(columns=columns)
    trials = results.trials[~results.trials["status"].isin(EXCLUDED)]
    order = list(board["config_key"]) if board is not None else list(dict.fromkeys(trials["config_key"]))
    rows = []
    for key in order:
        group = trials[trials["config_key"] == key]
        if group.empty:
            continue
        values = pd.to_numeric(group[metric], errors="coerce")
        by_split = [list(values[group["split_seed"] == s]) for s in group["split_seed"].dropna().unique()]
        found = variance_by_source(by_split)
        if found is None:
            continue
        rows.append({"label": group["label"].iloc[0], "split_std": math.sqrt(found.split),
                     "seed_std": math.sqrt(found.seed),
                     "split_share": found.split / found.total if found.total > 0 else math.nan,
                     "splits": found.splits, "seeds": found.seeds})
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows, columns=columns)
    median = {"label": f"median over {len(frame)} configurations", "split_std": frame["split_std"].median(),
              "seed_std": frame["seed_std"].median(), "split_share": frame["split_share"].median(),
              "splits": None, "seeds": None}
    return pd.concat([frame, pd.DataFrame([median], columns=columns)], ignore_index=True)


def variance_table(frame: pd.DataFrame, metric: str) -> Table:
    shown = view(frame, {"label": "configuration", "split_std": "std between data splits",
                         "seed_std": "std between seeds (within a split)", "split_share": "data split's share",
                         "splits": "splits", "seeds": "seeds per split"},
                 {"split_share": lambda v: "–" if pd.isna(v) else f"{v:.0%}", "splits": fmt_int, "seeds": fmt_int,
                  "split_std": fmt, "seed_std": fmt})
    note = (
        f"Variance of {metric} over replicates split by source: a one-way random-effects ANOVA (method of moments) "
        "per configuration, data splits (`dataset.split_seed`) as groups and seeds (initialization and data order) "
        "within them; the between-split part is floored at 0 and rests on (splits − 1) degrees of freedom, so two "
        "splits give a rough estimate. A large data-split share means a result on one split "
        "does not carry over to another (Bouthillier et al. 2021: randomize every source of variation)."
    )
    return Table(f"variance_{metric}", f"Variance by source: {metric}", frame, shown, note)


def variance_note(results: Results) -> str:
    """Why there is no variance-by-source table (the sweep holds the data split fixed)."""
    splits = results.trials.get("split_seed", pd.Series(dtype=object)).dropna().unique()
    fixed = f" (every trial uses split seed {splits[0]})" if len(splits) == 1 else ""
    return ("The sweep holds the data split fixed" + fixed + ", so the spread above is initialization and data "
            "order only; add `dataset.split_seed: [...]` to the grid to measure the data split's share.")
