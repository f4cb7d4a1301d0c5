"""Small-sample statistics for seeds: Student's t (exact, integer degrees of freedom), mean +- CI, paired t-test.

No scipy: with integer degrees of freedom the t distribution's CDF is a short closed-form series
(Abramowitz & Stegun 26.7.3-4), and its quantile is found by bisection on that CDF, so

    t_quantile(0.975, 2) == 4.302652729...   (n=3 seeds)
    t_quantile(0.975, 4) == 2.776445105...   (n=5 seeds)

The 95% interval of a mean over n seeds is mean +- t_{0.975, n-1} * std / sqrt(n), std with ddof=1.
One seed has no interval (lo = hi = NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

CONFIDENCE = 0.95


def t_abs_cdf(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with an integer number of degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    t = abs(t)
    if math.isinf(t):
        return 1.0
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:  # 2/pi * (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), df - 3 terms
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(2, df - 1, 2):
            term *= k / (k + 1) * c2
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    term, total = 1.0, 1.0  # sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), df - 2 terms
    for k in range(1, df - 2, 2):
        term *= k / (k + 1) * c2
        total += term
    return math.sin(theta) * total


def t_quantile(q: float, df: int) -> float:
    """The q-quantile (q > 0.5) of Student's t with integer df, by bisection on the exact CDF."""
    if not 0.5 < q < 1:
        raise ValueError(f"q must be in (0.5, 1), got {q}")
    target = 2 * q - 1  # P(|T| <= x) = 2q - 1
    lo, hi = 0.0, 1.0
    while t_abs_cdf(hi, df) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_abs_cdf(mid, df) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * hi:
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class Summary:
    """Mean over seeds with its sample std (ddof=1) and 95% interval; lo/hi are NaN for n < 2."""

    mean: float
    std: float
    n: int
    lo: float
    hi: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    @property
    def has_interval(self) -> bool:
        return self.n >= 2

    def bounds(self) -> tuple[float, float]:
        """The interval, or the mean as a point when there is none (one seed)."""
        return (self.lo, self.hi) if self.has_interval else (self.mean, self.mean)

    def overlaps(self, other: "Summary") -> bool:
        a_lo, a_hi = self.bounds()
        b_lo, b_hi = other.bounds()
        return a_lo <= b_hi and b_lo <= a_hi


def summarize(values: Iterable[float]) -> Summary:
    """Mean, std (ddof=1) and the 95% t interval of the finite values; an empty input gives n=0, NaNs."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Summary(math.nan, math.nan, 0, math.nan, math.nan)
    mean = math.fsum(xs) / n
    if n == 1:
        return Summary(mean, math.nan, 1, math.nan, math.nan)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return Summary(mean, std, n, mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    """Two-sided paired t-test of a - b over matched seeds."""

    mean_diff: float
    t: float
    df: int
    p: float


def paired_t(a: Sequence[float], b: Sequence[float]) -> PairedTest | None:
    """Paired t-test on equal-length sequences (None with fewer than 2 pairs)."""
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(diffs)
    if n < 2:
        return None
    mean = math.fsum(diffs) / n
    std = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    if std == 0:
        return PairedTest(mean, 0.0 if mean == 0 else math.copysign(math.inf, mean), n - 1, 1.0 if mean == 0 else 0.0)
    t = mean / (std / math.sqrt(n))
    return PairedTest(mean, t, n - 1, max(0.0, 1.0 - t_abs_cdf(t, n - 1)))
