"""Two-level statistics (boots x runs) against values computed another way:
by hand, by libkalibera's own formulas written out here, or with scipy's
ANOVA and t tests."""
import math
import statistics

import numpy as np
import pytest
from scipy import stats as sp

from kvariant import stats, twolevel
from kvariant.twolevel import (Change, boots_needed, change_verdict, optimal_runs, ratio_of_means,
                               variance_components, variant_mean)


def kalibera_si2(groups, i):
    """libkalibera's biased S_i^2 for a balanced two-level design (level 1:
    runs, level 2: boots), written from its definition."""
    a, r = len(groups), len(groups[0])
    means = [sum(g) / r for g in groups]
    grand = sum(means) / a
    if i == 1:
        return sum((x - m) ** 2 for g, m in zip(groups, means) for x in g) / (a * (r - 1))
    return sum((m - grand) ** 2 for m in means) / (a - 1)


def test_components_by_hand():
    c = variance_components([[1, 2, 3], [4, 5, 6]])
    # boot means 2 and 5, grand mean 3.5; SSW = 2 + 2 over 4 df -> MSW = 1;
    # MSB = 3 * (1.5^2 + 1.5^2) / 1 = 13.5; n0 = 3; boot = (13.5 - 1) / 3
    assert (c.boots, c.runs, c.mean, c.n0) == (2, 6, 3.5, 3)
    assert c.run_var == pytest.approx(1.0)
    assert c.boot_var == pytest.approx(12.5 / 3)
    assert c.boot_means_var == pytest.approx(4.5)
    assert c.run_cv == pytest.approx(1 / 3.5)
    assert c.boot_cv == pytest.approx(math.sqrt(12.5 / 3) / 3.5)
    d = c.to_dict()
    assert (d["boots"], d["run_cv"], d["boot_cv"]) == (2, c.run_cv, c.boot_cv)


def test_balanced_components_are_kalibera_jones_t1_t2():
    rng = np.random.default_rng(7)
    groups = (100 + rng.normal(0, 10, (5, 1)) + rng.normal(0, 20, (5, 4))).tolist()
    c = variance_components(groups)
    s1, s2 = kalibera_si2(groups, 1), kalibera_si2(groups, 2)
    assert c.run_var == pytest.approx(s1)               # T_1^2 = S_1^2
    assert c.boot_var_raw == pytest.approx(s2 - s1 / 4)  # T_2^2 = S_2^2 - S_1^2 / r_1
    assert c.boot_means_var == pytest.approx(s2)


def test_unbalanced_components_by_hand_and_against_scipy_anova():
    groups = [[1, 3], [4, 5, 6], [10]]
    c = variance_components(groups)
    # grand mean 29/6; SSW = 2 + 2 + 0 over 3 df; SSB = 2(2 - 29/6)^2 + 3(5 - 29/6)^2
    # + (10 - 29/6)^2 = 42.8333 over 2 df; n0 = (6 - 14/6) / 2 = 11/6
    msw, msb, n0 = 4 / 3, 42.833333 / 2, 11 / 6
    assert (c.run_var, c.n0) == (pytest.approx(msw), pytest.approx(n0))
    assert c.boot_var == pytest.approx((msb - msw) / n0, rel=1e-6)  # 10.9545
    assert c.boot_var == pytest.approx(10.9545, abs=1e-4)
    rng = np.random.default_rng(3)
    groups = [list(50 + rng.normal(0, 5) + rng.normal(0, 8, k)) for k in (2, 5, 3, 7)]
    c = variance_components(groups)
    f = sp.f_oneway(*groups).statistic  # MSB / MSW
    pooled = sum(np.var(g, ddof=1) * (len(g) - 1) for g in groups) / (17 - 4)
    assert c.run_var == pytest.approx(pooled)
    assert (c.boot_var_raw * c.n0 + c.run_var) / c.run_var == pytest.approx(f)


def test_component_edge_cases():
    one_boot = variance_components([[10, 12, 14]])
    assert (one_boot.boots, one_boot.run_var, one_boot.boot_var, one_boot.boot_means_var) == (
        1, pytest.approx(4.0), None, None)
    one_run_each = variance_components([[10], [12], [14]])
    assert (one_run_each.run_var, one_run_each.boot_var, one_run_each.boot_means_var) == (
        None, None, pytest.approx(4.0))
    flat = variance_components([[5, 5], [5, 5, 5]])
    assert (flat.run_var, flat.boot_var, flat.run_cv, flat.boot_cv) == (0, 0, 0, 0)
    clamped = variance_components([[1, 5], [1, 5], [1, 5]])  # boot means equal: MSB = 0, MSW = 8
    assert (clamped.boot_var, clamped.boot_var_raw) == (0.0, pytest.approx(-4.0))
    assert variance_components([[0, 0], [0, 0]]).run_cv is None  # mean 0: no CV


@pytest.mark.parametrize("bad, what", [
    ([], "no boot"), ([[1, 2], []], "boot 1 has no runs"),
    ([[1, float("nan")]], "boot 0 has nan"), ([[1], [float("inf")]], "boot 1 has inf"),
])
def test_bad_groups_are_refused(bad, what):
    with pytest.raises(ValueError, match=what):
        variance_components(bad)


def test_ratio_needs_positive_runs():
    with pytest.raises(ValueError, match="boot 1 has 0.0: runs must be positive"):
        ratio_of_means([[1, 2], [0, 1]], [[1], [2]])
    with pytest.raises(ValueError, match="nan"):
        ratio_of_means([[1, 2]], [[float("nan")]])


def test_optimal_runs():
    # the A/A xfs nj1 point: run CV 25.6%, boot CV 8.1%; a boot costs 60 s, a run 8 s:
    # sqrt(60 / 8 * 0.256^2 / 0.081^2) = 8.655 -> 9 runs per boot
    c = twolevel.Components(3, 9, 1.0, 3, 0.256 ** 2, 0.081 ** 2, 0.081 ** 2, None)
    r = optimal_runs(c, boot_cost=60, run_cost=8)
    assert (r.runs, r.exact, r.capped) == (9, pytest.approx(8.655, abs=1e-3), False)
    # libkalibera: optimalreps(1, costs) = sqrt(costs[0] / costs[1] * T1 / T2)
    groups = [[10, 12, 15], [20, 19, 25], [14, 16, 12]]
    k = variance_components(groups)
    t1, t2 = kalibera_si2(groups, 1), kalibera_si2(groups, 2) - kalibera_si2(groups, 1) / 3
    assert optimal_runs(k, 30, 5).exact == pytest.approx(math.sqrt(30 / 5 * t1 / t2))
    assert optimal_runs(c, 60, 8, cap=5).runs == 5 and optimal_runs(c, 60, 8, cap=5).capped


def test_optimal_runs_without_boot_variance_is_capped_and_says_so():
    c = variance_components([[1, 5], [1, 5], [1, 5]])
    r = optimal_runs(c, 60, 8, cap=40)
    assert (r.runs, r.exact, r.capped) == (40, None, True)
    assert "no boot-to-boot variance" in r.note
    assert optimal_runs(variance_components([[5, 5], [6, 6]]), 60, 8).runs == 1  # no run variance
    with pytest.raises(ValueError, match="at least 2 boots"):
        optimal_runs(variance_components([[1, 2, 3]]), 60, 8)
    with pytest.raises(ValueError, match="costs must be positive"):
        optimal_runs(variance_components([[1, 2], [3, 5]]), 0, 8)


def test_boots_needed():
    # run CV 25%, boot CV 10%, 6 runs per boot: a boot mean has relative variance
    # 0.01 + 0.0625 / 6 = 0.0204; a change needs t(2b - 2) sqrt(2 * 0.0204 / b) <= 0.15
    c = twolevel.Components(3, 18, 1.0, 6, 0.25 ** 2, 0.1 ** 2, 0.1 ** 2, None)
    v = 0.01 + 0.0625 / 6
    b = boots_needed(c, 6, 0.15)
    ok = lambda k: sp.t.ppf(0.975, 2 * k - 2) * math.sqrt(2 * v / k) <= 0.15  # noqa: E731
    assert ok(b) and not ok(b - 1) and b == 9
    one = boots_needed(c, 6, 0.15, compare=False)
    assert sp.t.ppf(0.975, one - 1) * math.sqrt(v / one) <= 0.15
    assert sp.t.ppf(0.975, one - 2) * math.sqrt(v / (one - 1)) > 0.15
    assert boots_needed(c, 6, 0.001, limit=50) is None
    assert boots_needed(variance_components([[1], [2]]), 6, 0.15) is None


def test_variant_mean_is_t_on_boot_means():
    groups = [[10, 12, 14], [20, 22], [15]]
    s = variant_mean(groups)
    means = [12, 21, 15]
    lo, hi = sp.t.interval(0.95, 2, loc=16, scale=np.std(means, ddof=1) / math.sqrt(3))
    assert (s.n, s.mean) == (3, 16)
    assert (s.ci_low, s.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert variant_mean([[1, 2, 3]]).half_width is None  # one boot: no interval


def fieller(fa, fb, t):
    """Fieller's interval for mean(fb) / mean(fa), independent sides."""
    ma, mb = np.mean(fa), np.mean(fb)
    va, vb = np.var(fa, ddof=1) / len(fa), np.var(fb, ddof=1) / len(fb)
    qa, qb, qc = ma * ma - t * t * va, -2 * ma * mb, mb * mb - t * t * vb
    d = math.sqrt(qb * qb - 4 * qa * qc)
    return (-qb - d) / (2 * qa), (-qb + d) / (2 * qa)


def test_ratio_of_means_is_welch_on_scaled_boot_means_on_the_log_scale():
    a = [[10000, 11000, 12000], [9000, 9500], [13000, 12500, 12000, 11000]]
    b = [[12500, 13000], [11000, 14000, 12000], [13500, 14500, 15000], [12000]]
    fa = [statistics.fmean(g) for g in a]
    fb = [statistics.fmean(g) for g in b]
    ma, mb = np.mean(fa), np.mean(fb)
    ci = sp.ttest_ind(np.array(fb) / mb, np.array(fa) / ma, equal_var=False).confidence_interval()
    c = ratio_of_means(a, b)
    assert c.ratio == pytest.approx(mb / ma)
    assert c.ci_low == pytest.approx(mb / ma * math.exp(ci.low))
    assert c.ci_high == pytest.approx(mb / ma * math.exp(ci.high))
    assert (c.n, c.level) == (3, "boots")
    assert Change.from_dict(c.to_dict()) == c
    # Fieller's interval with the same t (3.14): [0.921, 1.611] against [0.905, 1.567]
    lo, hi = fieller(fa, fb, stats.t_quantile(c.df))
    assert c.ci_low == pytest.approx(lo, abs=0.02) and c.ci_high == pytest.approx(hi, abs=0.05)
    # with more boots and less spread the two meet
    a10 = [[100 + 3 * math.sin(i)] for i in range(10)]
    b10 = [[110 + 3 * math.cos(i)] for i in range(10)]
    c10 = ratio_of_means(a10, b10)
    lo, hi = fieller([g[0] for g in a10], [g[0] for g in b10], stats.t_quantile(c10.df))
    assert c10.ci_low == pytest.approx(lo, abs=5e-4) and c10.ci_high == pytest.approx(hi, abs=5e-4)
    swapped = ratio_of_means(b, a)
    assert (swapped.ci_low, swapped.ci_high) == (pytest.approx(1 / c.ci_high),
                                                 pytest.approx(1 / c.ci_low))


def test_ratio_of_means_edges():
    c = ratio_of_means([[100, 110, 90]], [[120], [130]])  # one boot of A
    assert (c.ratio, c.ci_low, c.df, c.n) == (pytest.approx(1.25), None, None, 1)
    assert change_verdict(c) == (stats.INCONCLUSIVE, "fewer than 2 boots on a side")
    flat = ratio_of_means([[100, 100], [100]], [[120], [120, 120]])
    assert (flat.ci_low, flat.ci_high, flat.df) == (pytest.approx(1.2), pytest.approx(1.2), 2.0)
    assert change_verdict(flat)[0] == stats.BETTER
    # a robust estimator applies per boot before the interval
    med = ratio_of_means([[1, 2, 100], [2, 3, 4]], [[2, 3, 4], [1, 2, 3]], statistics.median)
    assert med.ratio == pytest.approx(5 / 5)


@pytest.mark.parametrize("lo, hi, word", [
    (1.02, 1.20, "better"), (0.80, 0.98, "worse"), (0.97, 1.04, "no change"),
    (0.70, 1.40, "inconclusive"), (0.99, 1.20, "not significant"),
])
def test_change_verdict_uses_the_stats_rules(lo, hi, word):
    c = Change(math.sqrt(lo * hi), lo, hi, 4.0, 3, "boots", "test")
    assert change_verdict(c)[0] == word
    assert change_verdict(c) == stats.verdict_pct(c.change_pct, c.ci_low_pct, c.ci_high_pct)
    assert c.half_width_pct == pytest.approx((hi - lo) * 50)
