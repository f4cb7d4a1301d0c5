"""Intervals, the paired t-test, Holm, probability of improvement, seeds needed, binomial error and
variance components (harness.report.stats), with exact expected values. Calibration by simulation:
tests/test_report_calibration.py."""

import math

import numpy as np
import pytest
from scipy import stats

from harness.report.stats import (
    RANGE_METHOD,
    SINGLE_METHOD,
    T_METHOD,
    binomial_se,
    holm,
    paired_power,
    paired_t,
    prob_of_improvement,
    seeds_needed,
    summarize,
    t_quantile,
    variance_by_source,
)

# t_{0.975, df} to 9 decimals (standard tables)
T975 = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836, 10: 2.228138852,
        11: 2.200985160, 30: 2.042272456, 100: 1.983971519}


@pytest.mark.parametrize("df,expected", sorted(T975.items()))
def test_t_quantile_matches_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-9)


def test_three_seeds_get_a_t_interval():
    s = summarize([0.94, 0.95, 0.96])
    half = 4.302652730 * 0.01 / math.sqrt(3)
    assert (s.mean, s.std, s.n, s.method) == (pytest.approx(0.95), pytest.approx(0.01), 3, T_METHOD)
    assert (s.lo, s.hi) == (pytest.approx(0.95 - half), pytest.approx(0.95 + half))
    five = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert five.half_width == pytest.approx(2.776445105 * math.sqrt(2.5) / math.sqrt(5))


def test_intervals_stay_in_the_metric_range():
    # the quickstart's old [0.5698, 1.1123] for an accuracy: now clipped at 1
    s = summarize([0.99, 0.60, 0.93], (0.0, 1.0))
    raw = summarize([0.99, 0.60, 0.93])
    assert raw.hi > 1 and s.hi == 1.0 and s.lo == pytest.approx(raw.lo)
    assert summarize([0.01, 0.4, 0.02], (0.0, 1.0)).lo == 0.0


def test_too_few_seeds_show_the_range():
    two = summarize([0.84, 0.87])
    assert two.method == RANGE_METHOD and not two.has_interval and math.isnan(two.lo)
    assert two.bounds() == (0.84, 0.87) and two.std == pytest.approx(0.03 / math.sqrt(2))
    flat = summarize([0.9, 0.9, 0.9])
    assert flat.method == RANGE_METHOD and flat.bounds() == (0.9, 0.9)
    one = summarize([0.9, math.nan, None])
    assert one.n == 1 and one.method == SINGLE_METHOD and one.bounds() == (0.9, 0.9) and math.isnan(one.std)
    empty = summarize([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_paired_t_matches_scipy_and_the_closed_form():
    a, b = [1.0, 2.0, 3.5], [0.5, 2.1, 2.9]
    test = paired_t(a, b)
    reference = stats.ttest_rel(a, b)
    assert test.t == pytest.approx(reference.statistic) and test.p == pytest.approx(reference.pvalue)
    t = test.t
    assert test.p == pytest.approx(1 - t / math.sqrt(t**2 + 2))  # df=2: P(|T| <= t) = t / sqrt(t^2 + 2)
    assert test.df == 2 and test.n == 3
    assert test.sd_diff == pytest.approx(np.std([0.5, -0.1, 0.6], ddof=1))
    assert paired_t([1.0], [2.0]) is None
    assert paired_t([1.0, 2.0], [1.0, 2.0]).p == 1.0
    assert paired_t([2.0, 3.0], [1.0, 2.0]).p == 0.0


def test_holm_step_down():
    # p sorted 0.01, 0.02, 0.04 with m=3: 0.03, 0.04, 0.04 (monotone); NaN untouched and not counted
    assert holm([0.04, 0.01, math.nan, 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04], nan_ok=True)
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


def test_probability_of_improvement():
    assert prob_of_improvement([0.9, 0.8, 0.7], [0.8, 0.8, 0.9]) == pytest.approx(0.5)  # win, tie, loss
    assert prob_of_improvement([0.1, 0.2], [0.3, 0.1], higher_is_better=False) == 0.5
    assert math.isnan(prob_of_improvement([], []))


def test_seeds_needed_published_values():
    # G*Power, paired t-test, alpha 0.05 two-sided, power 0.8: d = 0.5 -> 34, d = 0.8 -> 15, d = 1 -> 10
    assert seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(0.8, 1.0) == 15
    assert seeds_needed(0.01, 0.01) == 10
    assert paired_power(0.5, 34) >= 0.8 > paired_power(0.5, 33)
    assert seeds_needed(0.0, 0.1) is None  # no difference: no number of seeds separates
    assert seeds_needed(0.02, 0.0) == 2  # no spread: two seeds suffice
    assert seeds_needed(1e-4, 1.0) is None  # more than MAX_SEEDS


def test_binomial_se():
    assert binomial_se(0.9, 10_000) == pytest.approx(0.003)
    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    assert math.isnan(binomial_se(0.9, 0))


def test_variance_by_source_one_way_anova():
    # two splits x three seeds: within-split variances 1e-4 each; split means 0.80 and 0.82
    groups = [[0.79, 0.80, 0.81], [0.81, 0.82, 0.83]]
    v = variance_by_source(groups)
    ms_between = 3 * np.var([0.80, 0.82], ddof=1)  # 3 * 0.0002
    assert v.seed == pytest.approx(1e-4)
    assert v.split == pytest.approx((ms_between - 1e-4) / 3)
    assert (v.splits, v.seeds) == (2, 3)
    assert variance_by_source([[0.8, 0.9], [0.85, 0.85]]).split == 0.0  # floored at 0
    assert variance_by_source([[0.8, 0.9]]) is None
    assert variance_by_source([[0.8], [0.9]]) is None
