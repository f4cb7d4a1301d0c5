"""Hyperparameter importance: permutation importance of each varying grid axis on a scikit-learn random forest.

A RandomForestRegressor (fixed random_state, so the report is reproducible) is fit to the counted trials
(not failed, not diverged) with a finite metric value, one feature per varying grid axis: each axis is
ordinal-encoded (numbers in numeric order, names in sorted order; trees only use the order, so one column
per axis is enough and its importance is the axis's). An axis's importance is the mean drop in the forest's
R^2 when that axis's column is shuffled among the trials (`sklearn.inspection.permutation_importance`),
± its std over the shuffles. It is measured on the trials the forest was fit on: it says how much the
forest's fit relies on the axis, not a causal effect, and seeds' noise it cannot fit lowers every value.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.config import format_value
from harness.report.results import Results
from harness.report.tables import Table, fmt, fmt_int

MIN_TRIALS = 8
MIN_AXES = 2
TREES = 100  # small: the report is written during and after every sweep; the tests rank the same as with more
REPEATS = 10
RANDOM_STATE = 0


def _missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _encode(values: pd.Series) -> np.ndarray:
    """Ordinal codes of one axis: numeric values in numeric order, others as text in sorted order; -1 for missing."""
    known = [v for v in values if not _missing(v)]
    numeric = bool(known) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                                  for v in known)
    keys = [None if _missing(v) else (float(v) if numeric else format_value(v)) for v in values]
    order = {k: i for i, k in enumerate(sorted({k for k in keys if k is not None}))}
    return np.array([-1 if k is None else order[k] for k in keys], dtype=float)


def importance(results: Results, metric: str) -> tuple[pd.DataFrame | None, str]:
    """(axis, importance, std, values) per varying axis, most important first, and the forest's R^2 in
    `frame.attrs["r2"]`; or (None, why it was skipped)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    counted = results.included()
    y = pd.to_numeric(counted[metric], errors="coerce") if metric in counted else pd.Series(dtype=float)
    keep = y.notna() & y.abs().ne(math.inf)
    counted, y = counted[keep], y[keep]
    if len(counted) < MIN_TRIALS:
        return None, (f"Hyperparameter importance needs at least {MIN_TRIALS} counted trials with a `{metric}` "
                      f"value; this sweep has {len(counted)}.")
    axes = [a for a in results.axes if counted[a].map(format_value).nunique() >= 2]
    if len(axes) < MIN_AXES:
        return None, (f"Hyperparameter importance needs at least {MIN_AXES} grid axes that vary among the counted "
                      f"trials; this sweep has {len(axes)}.")
    x = np.column_stack([_encode(counted[a]) for a in axes])
    target = y.to_numpy(dtype=float)
    forest = RandomForestRegressor(n_estimators=TREES, random_state=RANDOM_STATE, n_jobs=1).fit(x, target)
    scores = permutation_importance(forest, x, target, n_repeats=REPEATS, random_state=RANDOM_STATE, n_jobs=1)
    frame = pd.DataFrame({
        "axis": axes, "importance": scores.importances_mean, "std": scores.importances_std,
        "values": [counted[a].map(format_value).nunique() for a in axes],
    }).sort_values(["importance", "axis"], ascending=[False, True]).reset_index(drop=True)
    frame.attrs["r2"] = float(forest.score(x, target))
    frame.attrs["trials"] = len(counted)
    return frame, ""


def importance_table(results: Results, metric: str) -> tuple[Table | None, str]:
    """The importance Table (axis, mean drop in R^2 ± std, values), or (None, why it was skipped)."""
    frame, reason = importance(results, metric)
    if frame is None:
        return None, reason
    shown = pd.DataFrame({
        "axis": frame["axis"],
        "importance (mean drop in R²)": [f"{fmt(m)} ± {fmt(s)}" for m, s in zip(frame["importance"], frame["std"])],
        "values": [fmt_int(v) for v in frame["values"]],
    })
    note = (f"Method: permutation importance on a scikit-learn RandomForestRegressor ({TREES} trees, "
            f"random_state={RANDOM_STATE}) fit to the {frame.attrs['trials']} counted trials' `{metric}` with each "
            f"varying axis ordinal-encoded: an axis's importance is the mean drop in the forest's R² over "
            f"{REPEATS} shuffles of that axis (± std), measured on the trials it was fit on (forest R² "
            f"{fmt(frame.attrs['r2'])}), so it says what the fit relies on, not a causal effect.")
    return Table("importance", f"Hyperparameter importance: {metric}", frame, shown, note), ""
