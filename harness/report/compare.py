"""Two results directories side by side: each configuration's mean and interval in A and in B and
the delta A - B, matched on the configuration (grid point without seed).

A is the directory being reported on, B the one given with --compare. `p` is a two-sided paired
t-test of A against B over the replicates (seeds) a configuration has in both, `p_holm` the same
Holm-corrected over the configurations compared; `differs` is true when p_holm < 0.05 (None when
fewer than 2 replicates are shared). Overlapping intervals are not a test, so they decide nothing
here. Configurations found in only one directory are listed with the other side empty.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.report.ranking import separation
from harness.report.stats import ALPHA, holm
from harness.report.tables import Table, fmt, fmt_interval, fmt_p, view

KEEP = ["config_key", "label", "rank", "mean", "n", "ci_low", "ci_high"]


def compare(board_a: pd.DataFrame, board_b: pd.DataFrame, values_a: dict, values_b: dict) -> pd.DataFrame:
    """Rows in A's order, then B-only configurations: label, rank/mean/n/ci of each side, delta, p, p_holm,
    differs. `values_a`, `values_b`: {config_key: {replicate: value}} (leaderboard.replicate_values)."""
    a = board_a[KEEP].add_suffix("_a").rename(columns={"config_key_a": "config_key", "label_a": "label"})
    b = board_b[KEEP].add_suffix("_b").rename(columns={"config_key_b": "config_key", "label_b": "label_b"})
    merged = a.merge(b, on="config_key", how="outer", sort=False)
    merged["label"] = merged["label"].fillna(merged["label_b"])
    merged["delta"] = merged["mean_a"] - merged["mean_b"]

    p_values = []
    for key in merged["config_key"]:
        a_seeds, b_seeds = values_a.get(key, {}), values_b.get(key, {})
        p_values.append(separation(a_seeds, b_seeds).p if a_seeds and b_seeds else math.nan)
    merged["p"] = p_values
    merged["p_holm"] = holm(p_values)
    merged["differs"] = [None if math.isnan(p) else bool(p < ALPHA) for p in merged["p_holm"]]
    order = {k: i for i, k in enumerate(dict.fromkeys([*board_a["config_key"], *board_b["config_key"]]))}
    merged["_o"] = merged["config_key"].map(order)
    merged = merged.sort_values("_o").drop(columns=["_o", "label_b"]).reset_index(drop=True)
    return merged[["label", "rank_a", "mean_a", "n_a", "ci_low_a", "ci_high_a", "rank_b", "mean_b", "n_b",
                   "ci_low_b", "ci_high_b", "delta", "p", "p_holm", "differs", "config_key"]]


def compare_table(frame: pd.DataFrame, name_a: str, name_b: str, metric: str) -> Table:
    shown = view(frame, {"label": "configuration", "rank_a": "rank A", "mean_a": "A"})
    shown["CI A"] = [fmt_interval(lo, hi, n) for lo, hi, n in zip(frame["ci_low_a"], frame["ci_high_a"], frame["n_a"])]
    shown["rank B"] = [fmt(r) for r in frame["rank_b"]]
    shown["B"] = [fmt(m) for m in frame["mean_b"]]
    shown["CI B"] = [fmt_interval(lo, hi, n) for lo, hi, n in zip(frame["ci_low_b"], frame["ci_high_b"], frame["n_b"])]
    shown["Δ (A − B)"] = [("+" if d > 0 else "") + fmt(d) if not pd.isna(d) else "–" for d in frame["delta"]]
    shown["p (Holm)"] = [fmt_p(p) for p in frame["p_holm"]]
    shown["differs"] = [fmt(d) for d in frame["differs"]]
    note = (
        f"Mean {metric} per configuration: A = `{name_a}`, B = `{name_b}`. `p (Holm)`: two-sided paired t-test of A "
        "against B over the seeds both ran, Holm-corrected over the configurations compared; `differs`: p (Holm) "
        "< 0.05 (– with fewer than 2 shared seeds)."
    )
    return Table("compare", f"Compare {name_a} (A) vs {name_b} (B)", frame, shown, note)
