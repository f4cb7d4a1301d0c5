"""Student's t quantiles, mean +- CI over seeds, the paired t-test (harness.report.stats)."""

import math

import pytest

from harness.report.stats import paired_t, summarize, t_abs_cdf, t_quantile

# t_{0.975, df} to 9 decimals (standard tables / scipy.stats.t.ppf)
T975 = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836, 10: 2.228138852,
        11: 2.200985160, 30: 2.042272456, 100: 1.983971519}


@pytest.mark.parametrize("df,expected", sorted(T975.items()))
def test_t_quantile_matches_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-9)


def test_t_cdf_closed_forms():
    # df=1 is Cauchy: P(|T| <= t) = 2/pi atan(t); df=2: t / sqrt(t^2 + 2)
    assert t_abs_cdf(1.7, 1) == pytest.approx(2 / math.pi * math.atan(1.7))
    assert t_abs_cdf(1.7, 2) == pytest.approx(1.7 / math.sqrt(1.7**2 + 2))
    assert t_abs_cdf(0.0, 7) == 0.0
    assert t_abs_cdf(math.inf, 3) == 1.0


def test_summarize_three_seeds():
    s = summarize([0.94, 0.95, 0.96])
    half = 4.302652730 * 0.01 / math.sqrt(3)
    assert (s.mean, s.std, s.n) == (pytest.approx(0.95), pytest.approx(0.01), 3)
    assert (s.lo, s.hi) == (pytest.approx(0.95 - half), pytest.approx(0.95 + half))


def test_summarize_five_and_two_seeds():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    s = summarize(values)
    std = math.sqrt(2.5)
    assert s.std == pytest.approx(std)
    assert s.half_width == pytest.approx(2.776445105 * std / math.sqrt(5))
    two = summarize([0.84, 0.87])
    assert two.half_width == pytest.approx(12.706204736 * (0.03 / math.sqrt(2)) / math.sqrt(2))


def test_summarize_one_seed_has_no_interval_and_nans_are_dropped():
    s = summarize([0.9, math.nan, None])
    assert s.n == 1 and s.mean == 0.9
    assert math.isnan(s.std) and math.isnan(s.lo) and math.isnan(s.hi) and not s.has_interval
    assert s.bounds() == (0.9, 0.9)
    empty = summarize([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_overlap_uses_point_for_one_seed():
    wide = summarize([0.8, 0.9, 1.0])
    assert wide.overlaps(summarize([0.85]))
    assert not summarize([0.5]).overlaps(wide)


def test_paired_t():
    test = paired_t([1.0, 2.0, 3.5], [0.5, 2.1, 2.9])
    diffs = [0.5, -0.1, 0.6]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    t = mean / (sd / math.sqrt(3))
    assert test.t == pytest.approx(t) and test.df == 2
    assert test.p == pytest.approx(1 - t / math.sqrt(t**2 + 2))  # df=2 closed form
    assert paired_t([1.0], [2.0]) is None
    assert paired_t([1.0, 2.0], [1.0, 2.0]).p == 1.0
    assert paired_t([2.0, 3.0], [1.0, 2.0]).p == 0.0
