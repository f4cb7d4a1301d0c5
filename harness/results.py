"""Results from Python: one sweep's tables as pandas, its leaderboard and its best trial.

    from harness.results import load
    r = load("results/quickstart")
    r.trials                      # one row per trial (pandas), with config_key, label, seed, replicate, axes
    r.epochs                      # one row per trial x epoch
    r.leaderboard()               # configurations best first: rank, mean, std, n, interval, p (Holm) vs #1, ...
    r.leaderboard("test_acc")     # by another trials column
    r.best()                      # the leader's best trial (a pandas Series), None without values
    r.separation("relu 0.1 sgd", "tanh 0.01 adam")   # paired comparison and seeds needed (a dict)

The same code as `python -m harness.report` (harness.report): the numbers agree with the report's.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Optional

import pandas as pd

from harness.report.leaderboard import (
    best_trial,
    check_metric,
    default_metric,
    find_configuration,
    leaderboard,
    replicate_values,
    separations,
)
from harness.report.results import ReportError, Results, load_results

__all__ = ["load", "SweepResults", "ReportError"]


class SweepResults(Results):
    """A results directory loaded (path, name, trials, epochs, classes, confusion, axes: harness.report's
    Results) with the report's statistics as methods."""

    def _metric(self, metric: Optional[str]) -> str:
        metric = metric or default_metric(self)
        check_metric(self, metric)
        return metric

    def leaderboard(self, metric: Optional[str] = None) -> pd.DataFrame:
        """Configurations best first, as in report/leaderboard.csv (default metric: the task's best_val_*)."""
        return leaderboard(self, self._metric(metric))

    def best(self, metric: Optional[str] = None) -> Optional[pd.Series]:
        """The leading configuration's best trial (its best seed), or None when nothing has a value."""
        metric = self._metric(metric)
        return best_trial(self, self.leaderboard(metric), metric)

    def separation(self, a: str, b: str, metric: Optional[str] = None) -> dict:
        """Configurations a and b (labels or words, as `--compare A B`) compared over their shared seeds:
        shared, mean_diff, sd_diff, p (paired t-test), p_a_beats_b, seeds_needed, verdict."""
        metric = self._metric(metric)
        pair = (find_configuration(self, a), find_configuration(self, b))
        frame = separations(self, self.leaderboard(metric), metric, [pair])
        return frame[frame["asked"]].iloc[0].drop("asked").to_dict()

    def values(self, metric: Optional[str] = None) -> dict[str, dict]:
        """{config label: {replicate: value}} of the counted trials."""
        metric = self._metric(metric)
        labels = dict(zip(self.trials["config_key"], self.trials["label"]))
        return {labels[k]: v for k, v in replicate_values(self, metric).items()}


def load(results_dir: str | Path) -> SweepResults:
    """Load a sweep's results directory (raises ReportError, a one-line message, when it has none)."""
    loaded = load_results(results_dir)
    return SweepResults(**{f.name: getattr(loaded, f.name) for f in fields(Results)})
