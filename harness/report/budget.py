"""Budget-aware comparison: the expected best validation score as a function of the number of trials.

Dodge et al. 2019 ("Show Your Work"): given N observed trials with scores sorted ascending
v_(1) <= ... <= v_(N), the best of n trials drawn *with replacement* from them is v_(i) with
probability p_i = (i/N)^n - ((i-1)/N)^n, so

    E[max of n]   = sum_i p_i v_(i)
    Var[max of n] = sum_i p_i (v_(i) - E[max of n])^2

For a lower-is-better metric (a loss) the same estimator gives the expected *minimum*. At n = 1 the
curve is the mean of the trials; as n grows it rises to the best observed trial.

`budget_curves` draws one curve per value of a grid axis (e.g. per optimizer, over its learning-rate
grid and seeds): each counted trial (not failed, not diverged) with that value is one draw, a
(configuration x seed) pair, as Dodge et al. count hyperparameter assignments x random restarts. Where
two curves cross, the one on top at n is the better choice for a budget of n trials: "optimizer A wins
if you can afford B trials". `budget_table` tabulates the curves at n = 1, 2, 4, ... and names the
budgets from which each value's curve is the best.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from harness.config import format_value
from harness.report.results import Results, varying_axes
from harness.report.tables import DASH, Table, fmt, fmt_int
from harness.vocabulary import direction

REPLICATE_AXES = ("seed", "dataset.split_seed")  # axes that repeat a configuration rather than change it
MAX_BUDGET_AXES = 3
CURVE_COLUMNS = ["axis", "value", "pool", "n", "expected", "std"]
NOTE = "Expected best of n trials drawn with replacement from the observed trials (Dodge et al. 2019)"


def expected_max(values: Iterable[float], n_max: Optional[int] = None, higher_is_better: bool = True) -> pd.DataFrame:
    """Expected best of n draws with replacement from `values`, n = 1..n_max (default: the number of
    finite values): columns n, expected, std. The expected minimum when not `higher_is_better`.
    Non-finite values are dropped; no values give an empty frame."""
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[np.isfinite(v)]
    size = len(v)
    n_max = size if n_max is None else int(n_max)
    if size == 0 or n_max < 1:
        return pd.DataFrame({"n": pd.Series(dtype=int), "expected": pd.Series(dtype=float),
                             "std": pd.Series(dtype=float)})
    v = np.sort(v) if higher_is_better else -np.sort(-v)  # the best value last
    n = np.arange(1, n_max + 1)
    cdf = (np.arange(0, size + 1) / size)[None, :] ** n[:, None]  # P(best index <= i), i = 0..N
    p = np.diff(cdf, axis=1)  # (n_max, N): P(best of n draws is v_(i))
    expected = p @ v
    var = (p * (v[None, :] - expected[:, None]) ** 2).sum(axis=1)
    return pd.DataFrame({"n": n, "expected": expected, "std": np.sqrt(np.maximum(var, 0.0))})


def _grid_order(values: list[str]) -> list[str]:
    """Numbers in numeric order, names as they first appear."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return values


def budget_axes(results: Results) -> list[str]:
    """The varying grid axes worth a budget curve (replicate axes such as seeds left out), at most three,
    in grid order."""
    return [a for a in varying_axes(results) if a not in REPLICATE_AXES][:MAX_BUDGET_AXES]


def budget_curves(results: Results, metric: str, axis: str) -> pd.DataFrame:
    """One expected-best curve per value of `axis` (columns axis, value, pool, n, expected, std), values in
    grid order, n = 1..pool. The pool of a value is its counted trials (not failed, not diverged) with a
    finite metric, whatever their other axes: every trial (configuration x seed) is one draw."""
    counted = results.included()
    if axis not in counted or metric not in counted:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    scores = pd.to_numeric(counted[metric], errors="coerce")
    keys = counted[axis].map(format_value)
    higher = direction(metric) == "max"
    frames = []
    for value in _grid_order(list(dict.fromkeys(keys))):
        pool = scores[keys == value]
        pool = pool[np.isfinite(pool)]
        if pool.empty:
            continue
        curve = expected_max(pool, higher_is_better=higher)
        curve.insert(0, "pool", len(pool))
        curve.insert(0, "value", value)
        curve.insert(0, "axis", axis)
        frames.append(curve)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)


def _budgets(largest: int) -> list[int]:
    """1, 2, 4, ... up to `largest`, and `largest` itself."""
    budgets = [2 ** k for k in range(int(math.log2(largest)) + 1)] if largest >= 1 else []
    return budgets + ([largest] if budgets and budgets[-1] != largest else [])


def _runs(ns: list[int], last: int) -> str:
    """'≥ 3' for budgets from 3 to the end of the compared range, '1 only', '1–2 only'; 'never'."""
    if not ns:
        return "never"
    runs, start = [], ns[0]
    for prev, cur in zip(ns, ns[1:] + [None]):
        if cur != prev + 1:
            runs.append((start, prev))
            start = cur

    def name(a: int, b: int) -> str:
        if b == last:
            return "all" if a == 1 else f"≥ {a}"
        return f"{a} only" if a == b else f"{a}–{b} only"

    return ", ".join(name(a, b) for a, b in runs)


def wins(curves: pd.DataFrame, metric: str) -> tuple[dict[str, str], int]:
    """For each value, the budgets n at which its curve is the best (ties count for each), compared over
    n = 1..the smallest pool (where every curve draws within its own observed trials); and that n."""
    if curves.empty:
        return {}, 0
    common = int(curves.groupby("value", sort=False)["pool"].first().min())
    part = curves[curves["n"] <= common]
    table = part.pivot(index="n", columns="value", values="expected")
    best = table.max(axis=1) if direction(metric) == "max" else table.min(axis=1)
    tol = 1e-12 * np.maximum(1.0, best.abs())
    on_top = table.sub(best, axis=0).abs().le(tol, axis=0)
    return {value: _runs([int(n) for n in on_top.index[on_top[value]]], common) for value in table.columns}, common


def budget_table(curves: pd.DataFrame, metric: str, axis: str) -> Table:
    """Rows: each value of `axis` with its pool size, the expected best at n = 1, 2, 4, ... (up to the
    largest pool; '–' beyond a value's own pool) and `wins from n`, the budgets at which its curve is the
    best ('≥ 4': from 4 trials on, 'all': at every budget, '1–2 only', 'never')."""
    values = list(dict.fromkeys(curves["value"])) if not curves.empty else []
    pools = curves.groupby("value", sort=False)["pool"].first() if values else pd.Series(dtype=int)
    budgets = _budgets(int(pools.max())) if values else []
    won, common = wins(curves, metric)
    rows = []
    for value in values:
        curve = curves[curves["value"] == value].set_index("n")["expected"]
        row = {"value": value, "trials": int(pools[value])}
        row.update({f"n={n}": curve.get(n, float("nan")) for n in budgets})
        row["wins_from"] = won.get(value, "never")
        rows.append(row)
    data = pd.DataFrame(rows, columns=["value", "trials", *(f"n={n}" for n in budgets), "wins_from"])
    shown = pd.DataFrame({axis: data["value"].astype(str), "n trials": [fmt_int(x) for x in data["trials"]]})
    for n in budgets:
        shown[f"best of {n}"] = [DASH if pd.isna(x) else fmt(x) for x in data[f"n={n}"]]
    shown["wins from n"] = data["wins_from"].tolist()
    best = "best" if direction(metric) == "max" else "lowest"
    note = (f"{NOTE}; `wins from n` names the budgets at which a value's curve is the {best}, compared up to "
            f"n = {common} (the smallest pool).") if values else f"{NOTE}."
    return Table(f"budget_{axis}", f"{metric}: expected {best} of n trials, by {axis}",
                 data, shown.reset_index(drop=True), note)
