"""Statistics for seeds, built on scipy.stats: intervals that stay in a metric's range, the paired
t-test, Holm's correction, the probability of improvement, seeds needed at a given power, the test
set's binomial error, and variance split by source. Pure functions of numbers: no pandas, no files.

Intervals (`summarize`), by the number of seeds n:

    n >= 3, values not all equal   Student's t: mean ± t(0.975, n-1)·std/√n, std with ddof=1, clipped
                                   to the metric's range (accuracy, F1, IoU: [0, 1])
    n = 2, or n >= 3 all equal      no interval: too few seeds (or no spread) to trust one; the range
                                   min..max is shown instead
    n = 1                           no interval, one value

The t interval is exact for normal seed-to-seed variation and close to it for the near-symmetric
spreads of real sweeps: tests/test_report_calibration.py measures its coverage by simulation, and
its weakness: a strongly skewed spread crowding a bound (mean 0.99, seed std 0.006-0.009) covers
89-93% of the time.

    scipy.stats.t.ppf(0.975, 2) == 4.302652729...   (n=3 seeds)
    scipy.stats.t.ppf(0.975, 4) == 2.776445105...   (n=5 seeds)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8
MIN_SEEDS_FOR_INTERVAL = 3
MAX_SEEDS = 1000  # seeds_needed looks no further

T_METHOD = "t"  # Student's t interval
RANGE_METHOD = "range"  # too few seeds (or no spread): min..max shown instead
SINGLE_METHOD = "single"  # one seed
EMPTY_METHOD = "none"

METHOD_TEXT = {
    T_METHOD: "95% Student's t interval",
    RANGE_METHOD: "no interval: range of the seeds",
    SINGLE_METHOD: "no interval: one seed",
    EMPTY_METHOD: "no value",
}

UNBOUNDED = (-math.inf, math.inf)


@functools.lru_cache(maxsize=1024)
def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with `df` degrees of freedom (scipy.stats.t.ppf)."""
    return float(stats.t.ppf(q, df))


@dataclass(frozen=True)
class Summary:
    """Mean over seeds with its sample std (ddof=1), range and interval; `method` names the interval
    (T_METHOD), or why there is none (lo/hi NaN then)."""

    mean: float
    std: float
    n: int
    lo: float
    hi: float
    method: str = T_METHOD
    min: float = math.nan
    max: float = math.nan

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    @property
    def has_interval(self) -> bool:
        return self.method == T_METHOD

    def bounds(self) -> tuple[float, float]:
        """The interval, else the range of the seeds (a point for one seed)."""
        return (self.lo, self.hi) if self.has_interval else (self.min, self.max)


def finite(values: Iterable) -> list[float]:
    """The finite numbers among `values` (None and NaN dropped)."""
    out = []
    for v in values:
        if v is None:
            continue
        v = float(v)
        if math.isfinite(v):
            out.append(v)
    return out


def summarize(values: Iterable[float], bounds: tuple[float, float] = UNBOUNDED) -> Summary:
    """Mean, std (ddof=1), range and the 95% t interval of the finite values, clipped to `bounds` (the
    metric's range); see the module docstring for when there is no interval. Empty input: n=0, NaNs."""
    xs = finite(values)
    n = len(xs)
    if n == 0:
        return Summary(math.nan, math.nan, 0, math.nan, math.nan, EMPTY_METHOD)
    mean = math.fsum(xs) / n
    lo_x, hi_x = min(xs), max(xs)
    if n == 1:
        return Summary(mean, math.nan, 1, math.nan, math.nan, SINGLE_METHOD, lo_x, hi_x)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    if n < MIN_SEEDS_FOR_INTERVAL or std == 0:
        return Summary(mean, std, n, math.nan, math.nan, RANGE_METHOD, lo_x, hi_x)
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    lo, hi = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return Summary(mean, std, n, lo, hi, T_METHOD, lo_x, hi_x)


@dataclass(frozen=True)
class PairedTest:
    """Two-sided paired t-test of a - b over matched seeds: the differences' mean and std (ddof=1)."""

    mean_diff: float
    sd_diff: float
    t: float
    df: int
    p: float

    @property
    def n(self) -> int:
        return self.df + 1


def paired_t(a: Sequence[float], b: Sequence[float]) -> PairedTest | None:
    """Paired t-test on equal-length sequences (what scipy.stats.ttest_rel computes, with the p-value from
    scipy.stats.t; its input checks cost more than the test at this size); None with fewer than 2 pairs.
    Differences that are all equal: p = 1 when they are 0, else 0 (no spread: the sign is certain)."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(diffs)
    if n < 2:
        return None
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    if sd == 0:
        return PairedTest(mean, 0.0, 0.0 if mean == 0 else math.copysign(math.inf, mean), n - 1,
                          1.0 if mean == 0 else 0.0)
    t = mean / (sd / math.sqrt(n))
    return PairedTest(mean, sd, t, n - 1, float(2 * stats.t.sf(abs(t), n - 1)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone, capped at 1); NaN (no test) stays NaN and does not
    count among the comparisons. By hand: scipy.stats offers only Benjamini-Hochberg/Yekutieli
    (false_discovery_control), and statsmodels is a large dependency for these few lines."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None and not math.isnan(p))
    m = len(tested)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def prob_of_improvement(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> float:
    """P(a beats b) estimated over matched seeds: the share of pairs where a is better, ties counting
    half (Bouthillier et al. 2021's probability of improvement, paired form). NaN without pairs."""
    if len(a) == 0:
        return math.nan
    sign = 1 if higher_is_better else -1
    wins = sum(1.0 if sign * (x - y) > 0 else 0.5 if x == y else 0.0 for x, y in zip(a, b))
    return wins / len(a)


def paired_power(effect: float, n: np.ndarray | int, alpha: float = ALPHA) -> np.ndarray:
    """Power of the two-sided paired t-test at level `alpha` with n pairs when the true mean difference
    is `effect` standard deviations of the differences (noncentral t, scipy.stats.nct)."""
    n = np.asarray(n, dtype=float)
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) * np.sqrt(n)
    power = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    return np.where(np.isnan(power) & (nc > 10), 1.0, power)  # scipy's nct gives NaN where power is 1


def seeds_needed(mean_diff: float, sd_diff: float, power: float = POWER, alpha: float = ALPHA,
                 max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds (pairs) at which a two-sided paired t-test at `alpha` separates two
    configurations with probability `power`, if their difference is `mean_diff` with per-seed spread
    `sd_diff` (the observed ones). 2 when there is no spread but a difference; None when there is no
    difference at all or more than `max_seeds` would be needed."""
    if not (math.isfinite(mean_diff) and math.isfinite(sd_diff)):
        return None
    if sd_diff == 0:
        return None if mean_diff == 0 else 2
    effect = abs(mean_diff) / sd_diff
    if effect == 0:
        return None
    # The normal approximation ((z_a/2 + z_b) / effect)^2 lands within a few seeds of the answer: look there
    # first (one vectorized call), and bisect only when it misses.
    guess = math.ceil(((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / effect) ** 2)
    near = np.arange(max(2, guess - 2), min(max_seeds, guess + 6) + 1)
    if len(near):
        reached = np.nonzero(paired_power(effect, near, alpha) >= power)[0]
        if len(reached) and (reached[0] > 0 or near[0] == 2):
            return int(near[reached[0]])
    if paired_power(effect, max_seeds, alpha) < power:
        return None
    lo, hi = 1, max_seeds  # power grows with n: bisect for the first n that reaches it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if paired_power(effect, mid, alpha) >= power else (mid, hi)
    return hi


def binomial_se(p: float, n: int) -> float:
    """The standard error of an accuracy p measured on n independent test examples: √(p(1-p)/n)."""
    if n is None or not n or not math.isfinite(p):
        return math.nan
    return math.sqrt(p * (1 - p) / n)


@dataclass(frozen=True)
class VarianceSplit:
    """Variance of a metric split into between-split (data) and within-split (init and order) parts."""

    split: float  # between dataset splits (dataset.split_seed)
    seed: float  # within a split: initialization and data order (seed)
    splits: int
    seeds: int  # seeds per split (the smallest group)

    @property
    def total(self) -> float:
        return self.split + self.seed


def variance_by_source(groups: Sequence[Sequence[float]]) -> VarianceSplit | None:
    """One-way random-effects ANOVA (method of moments) over splits: `groups` holds each data split's
    values over seeds. Within = the mean within-split variance; between = (MS_between - MS_within) / k,
    floored at 0, with k the seeds per split (unbalanced groups are cut to the smallest). None with fewer than 2 splits or 2 seeds per split. By hand: scipy.stats
    has the F test (f_oneway) but not the variance components."""
    groups = [finite(g) for g in groups]
    groups = [g for g in groups if g]
    if len(groups) < 2:
        return None
    k = min(len(g) for g in groups)
    if k < 2:
        return None
    data = np.array([g[:k] for g in groups])
    ms_within = float(data.var(axis=1, ddof=1).mean())
    ms_between = float(k * data.mean(axis=1).var(ddof=1))
    return VarianceSplit(max(0.0, (ms_between - ms_within) / k), ms_within, len(groups), k)
