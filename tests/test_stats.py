"""The statistics of a comparison, against values computed another way:
by hand, from a printed t table, or with a t quantile found by integrating
Student's density numerically (no scipy)."""
import math

import pytest

from kvariant import stats
from kvariant.stats import Difference, sample, verdict, welch


def t_density(x: float, df: float) -> float:
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    return c * (1 + x * x / df) ** (-(df + 1) / 2)


def t_quantile_by_integration(df: float, p: float = 0.975) -> float:
    """x with P(T <= x) = p, by Simpson's rule on [0, x] and bisection."""
    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        s = t_density(0, df) + t_density(x, df)
        s += sum((4 if i % 2 else 2) * t_density(i * h, df) for i in range(1, steps))
        return 0.5 + s * h / 3
    lo, hi = 0.0, 50.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def test_t_quantiles_match_the_printed_table():
    # two-sided 95%: the t table's 0.975 column
    for df, table in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)):
        assert stats.t_quantile(df) == pytest.approx(table, abs=1e-3)
    assert stats.t_quantile(2.9412) == pytest.approx(t_quantile_by_integration(2.9412), abs=1e-6)


def test_sample_by_hand():
    s = sample([10, 12, 14])
    # mean 12, deviations -2, 0, 2: sd = sqrt(8 / 2) = 2; se = 2 / sqrt(3)
    assert (s.n, s.mean, s.median, s.sd) == (3, 12, 12, pytest.approx(2.0))
    assert s.half_width == pytest.approx(4.303 * 2 / math.sqrt(3), abs=1e-3)  # 4.968
    assert (s.ci_low, s.ci_high) == (pytest.approx(12 - 4.9679, abs=1e-3),
                                     pytest.approx(12 + 4.9679, abs=1e-3))
    assert sample([25240, 15800, 21382]).median == 21382  # the summary's "iops" is the median


def test_single_run_has_no_interval():
    s = sample([5000])
    assert (s.n, s.mean, s.median, s.sd, s.half_width, s.ci_low) == (1, 5000, 5000, None, None, None)
    d = welch(s, sample([6000, 6100, 5900]))
    assert d.change_pct == pytest.approx(20.0) and d.ci_low_pct is None
    assert verdict(d) == (stats.INCONCLUSIVE, "fewer than 2 repeats on a side")
    with pytest.raises(ValueError):
        sample([])


def test_welch_by_hand():
    a, b = sample([100, 102, 98]), sample([110, 114, 106])  # means 100 and 110, sd 2 and 4
    d = welch(a, b)
    va, vb = 4 / 3, 16 / 3  # sd^2 / n
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)  # Welch-Satterthwaite
    assert df == pytest.approx(2.941176, abs=1e-5)
    hw = t_quantile_by_integration(df) * math.sqrt(va + vb)
    assert d.diff == pytest.approx(10) and d.df == pytest.approx(df)
    assert d.half_width == pytest.approx(hw, abs=1e-4)
    # A's mean is 100, so percent = IOPS here
    assert (d.change_pct, d.ci_low_pct, d.ci_high_pct) == (
        pytest.approx(10), pytest.approx(10 - hw, abs=1e-4), pytest.approx(10 + hw, abs=1e-4))
    assert hw == pytest.approx(8.31, abs=0.01)  # t(2.94) = 3.22 times se 2.582
    assert verdict(d)[0] == stats.BETTER  # [+1.7%, +18.3%] excludes 0 and 10% > 5%
    assert verdict(welch(sample([100, 110, 90]), sample([110, 120, 100])))[0] == stats.INCONCLUSIVE


def test_welch_without_spread():
    d = welch(sample([100, 100]), sample([120, 120, 120]))
    assert (d.half_width, d.ci_low_pct, d.ci_high_pct) == (0.0, pytest.approx(20), pytest.approx(20))
    assert verdict(d)[0] == stats.BETTER
    zero = welch(sample([0, 0]), sample([1, 2]))
    assert zero.change_pct is None and verdict(zero) == (stats.INCONCLUSIVE, "A's mean is 0")


def diff(c, lo, hi):
    return Difference(diff=c, change_pct=c, df=4.0, half_width=(hi - lo) / 2, ci_low=lo, ci_high=hi,
                      ci_low_pct=lo, ci_high_pct=hi)


@pytest.mark.parametrize("c, lo, hi, word", [
    (11, 2, 20, "better"),             # excludes 0, beyond the threshold
    (6, 0.5, 11.5, "better"),          # excludes 0 and |c| > 5, though lo < 5
    (-11, -20, -2, "worse"),
    (0.5, -3, 4, "no change"),         # all within ±5
    (0, -5, 5, "no change"),           # the bounds count as within
    (4.5, 4, 5, "no change"),          # excludes 0 but lies within ±5: a tiny change is no change
    (8.5, -3, 20, "not significant"),  # includes 0, beyond +5 on one side only
    (5, -1, 11, "not significant"),
    (4, 1, 9, "not significant"),      # excludes 0 but |c| <= 5 and reaches beyond 5
    (5, -30, 40, "inconclusive"),      # includes 0, beyond both -5 and +5
    (-1, -6, 6, "inconclusive"),
])
def test_verdict_rules(c, lo, hi, word):
    assert verdict(diff(c, lo, hi), 0.05)[0] == word


def test_verdict_threshold_is_configurable():
    d = diff(8, 3, 13)
    assert verdict(d, 0.05)[0] == "better"
    assert verdict(d, 0.10)[0] == "not significant"  # |8| <= 10
    assert verdict(d, 0.15)[0] == "no change"  # [3, 13] within ±15
    word, why = verdict(diff(-11, -20, -2))
    assert why == "95% CI -20.0% to -2.0% excludes 0 and |-11.0%| > 5%"


def test_a_change_that_is_not_significant_is_never_better():
    for c, lo, hi in ((50, -1, 101), (30, -0.1, 60), (4, 1, 9)):
        assert verdict(diff(c, lo, hi))[0] not in ("better", "worse")


def test_real_point_fuse_passthrough_nj4():
    """baseline against parallel-dio from run 20261121-220102, computed here
    without scipy."""
    a_runs, b_runs = [10529, 15077, 26200], [34653, 41935, 41245]
    ma, mb = sum(a_runs) / 3, sum(b_runs) / 3
    va = sum((x - ma) ** 2 for x in a_runs) / 2 / 3
    vb = sum((x - mb) ** 2 for x in b_runs) / 2 / 3
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    hw = t_quantile_by_integration(df) * math.sqrt(va + vb)
    d = welch(sample(a_runs), sample(b_runs))
    assert d.change_pct == pytest.approx((mb - ma) / ma * 100)  # +127.45%
    assert d.ci_low_pct == pytest.approx((mb - ma - hw) / ma * 100, abs=1e-3)
    assert d.ci_high_pct == pytest.approx((mb - ma + hw) / ma * 100, abs=1e-3)
    assert round(d.change_pct) == 127 and round(d.ci_low_pct) == 30 and round(d.ci_high_pct) == 224
    assert verdict(d)[0] == "better"


def test_repeats_needed():
    # relative sd 0.1 both sides: the least n with t(2n - 2) * sqrt(2 * 0.01 / n) <= 0.05,
    # about 8 t^2 = 33
    n = stats.repeats_needed(0.1, 0.1, 0.05)
    ok = lambda k: t_quantile_by_integration(2 * k - 2) * math.sqrt(0.02 / k) <= 0.05  # noqa: E731
    assert ok(n) and not ok(n - 1) and 30 <= n <= 36
    assert stats.repeats_needed(10, 10, 0.01, limit=50) is None


def test_pairs_needed_solves_the_paired_t_half_width():
    from kvariant.stats import pairs_needed, t_quantile
    n = pairs_needed(0.10, 0.05)
    # the smallest n whose t(n-1) * 0.10 / sqrt(n) is within log(1.05)
    assert t_quantile(n - 1) * 0.10 / math.sqrt(n) <= math.log(1.05) < t_quantile(n - 2) * 0.10 / math.sqrt(n - 1)
    assert n == 19
    assert pairs_needed(0.0) == 2 and pairs_needed(10.0) is None
