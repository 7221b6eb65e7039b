"""Robust estimators, binomial rates and A/A calibration: hand-worked
numbers, closed forms, and seeded simulations of two-level data."""
import math

import numpy as np
import pytest

from kvariant import calibration, stats
from kvariant.calibration import (calibrate_estimators, false_call_rate, median_of_means, power,
                                  rate, trimmed_mean)
from kvariant.paired import paired_change
from kvariant.twolevel import change_verdict, ratio_of_means


def lognormal(rng, cv, size=None):
    """Multiplicative noise with mean 1 and coefficient of variation *cv*."""
    s = math.sqrt(math.log(1 + cv * cv))
    return rng.lognormal(-s * s / 2, s, size)


def two_level(rng, boots, runs, gain=1.0, boot_cv=0.10, run_cv=0.25, mean=15000.0):
    """Runs of one variant: a boot effect per guest, run noise within."""
    return [list(mean * gain * lognormal(rng, boot_cv) * lognormal(rng, run_cv, runs))
            for _ in range(boots)]


def test_trimmed_mean_by_hand():
    assert trimmed_mean([1, 2, 3, 4, 100]) == 3  # one cut at each end: mean(2, 3, 4)
    assert trimmed_mean([3, 1, 2]) == 2  # floor(0.6) = 0 cut: the mean
    assert trimmed_mean(list(range(10)) + [1000], 0.1) == pytest.approx(sum(range(1, 10)) / 9)
    with pytest.raises(ValueError, match="proportion"):
        trimmed_mean([1, 2], 0.5)
    with pytest.raises(ValueError, match="finite"):
        trimmed_mean([1, float("nan")])
    with pytest.raises(ValueError, match="no runs"):
        trimmed_mean([])


def test_median_of_means_by_hand():
    assert median_of_means([1, 2, 3, 4, 5, 100]) == 3.5  # blocks (1,2) (3,4) (5,100)
    assert median_of_means([1, 2, 3, 10, 20, 30, 31], 3) == 15.0  # means 2, 15, 30.5
    assert median_of_means([7, 1], 3) == 4.0  # fewer runs than blocks: the median
    assert median_of_means([5], 1) == 5
    with pytest.raises(ValueError, match="groups"):
        median_of_means([1, 2], 0)
    with pytest.raises(ValueError, match="finite"):
        median_of_means([1, float("inf")])


def test_clopper_pearson_and_wilson_by_hand():
    none = rate(0, 36)
    assert (none.rate, none.ci_low) == (0, 0)
    assert none.ci_high == pytest.approx(1 - 0.025 ** (1 / 36))  # 0.0974
    every = rate(36, 36)
    assert every.ci_low == pytest.approx(0.025 ** (1 / 36)) and every.ci_high == 1
    w = rate(2, 36, "wilson")
    p, n, z = 2 / 36, 36, 1.959964
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(
        p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (w.ci_low, w.ci_high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert w.method == "Wilson" and rate(1, 2).method == "Clopper-Pearson"
    assert calibration.needed_for_shown(0.05) == 72
    assert rate(0, 72).ci_high <= 0.05 < rate(0, 71).ci_high
    with pytest.raises(ValueError, match="k=3, n=2"):
        rate(3, 2)
    with pytest.raises(ValueError, match="method"):
        rate(1, 2, "normal")


def test_aa_false_call_rate_of_the_boot_level_interval_is_at_most_5_percent():
    """Run CV 25%, boot CV 10%, 3 boots of 5 runs a side, 1000 A/A comparisons."""
    rng = np.random.default_rng(20261130)
    changes = [ratio_of_means(two_level(rng, 3, 5), two_level(rng, 3, 5)) for _ in range(1000)]
    r = false_call_rate(changes)
    assert r.n == 1000 and r.rate <= 0.05 and r.ci_low <= 0.05
    # runs pooled as if they were independent (one boot a side, the old way):
    # the boot variance is ignored and the verdict cries wolf far more often
    pooled = [ratio_of_means([[x] for g in c for x in g], [[x] for g in d for x in g])
              for c, d in ((two_level(rng, 3, 5), two_level(rng, 3, 5)) for _ in range(400))]
    assert false_call_rate(pooled).ci_low > 0.05


def paired_blocks(rng, blocks, pairs, gain=1.0, boot_cv=0.10, run_cv=0.25, burst_cv=0.25):
    """A and B guests booted together per block; each pair shares a burst."""
    a, b, labels = [], [], []
    for k in range(blocks):
        ga, gb = lognormal(rng, boot_cv), lognormal(rng, boot_cv)
        for _ in range(pairs):
            shared = lognormal(rng, burst_cv)
            a.append(1e4 * ga * shared * lognormal(rng, run_cv))
            b.append(1e4 * gain * gb * shared * lognormal(rng, run_cv))
            labels.append(k)
    return a, b, labels


def test_aa_false_call_rate_of_paired_blocks_is_at_most_5_percent():
    rng = np.random.default_rng(12)
    runs = [paired_blocks(rng, 3, 5) for _ in range(1000)]
    r = false_call_rate(paired_change(a, b, blocks) for a, b, blocks in runs)
    assert r.rate <= 0.05 and r.ci_low <= 0.05
    # the same pairs without their blocks leave the boot variance out
    unlabelled = false_call_rate(paired_change(a, b) for a, b, _ in runs)
    assert unlabelled.ci_low > 0.05


def test_power_and_half_width():
    rng = np.random.default_rng(5)
    changes = [ratio_of_means(two_level(rng, 5, 6), two_level(rng, 5, 6, gain=1.3))
               for _ in range(200)]
    p = power(changes)
    words = [change_verdict(c)[0] for c in changes]
    assert p.better.k == words.count(stats.BETTER) and p.better.n == 200
    assert p.worse.k == 0 and 0.5 < p.better.rate < 1
    widths = sorted((c.ci_high - c.ci_low) * 50 for c in changes)
    assert p.median_half_width_pct == pytest.approx((widths[99] + widths[100]) / 2)
    none = power([ratio_of_means([[1, 2]], [[2, 3]])])
    assert none.median_half_width_pct is None and none.better.k == 0


def test_calibrate_estimators_on_bursty_aa_data():
    rng = np.random.default_rng(99)

    def bursty(boots, runs):
        groups = two_level(rng, boots, runs)
        for g in groups:  # now and then a run in a burst at a third of the speed
            for i in range(len(g)):
                g[i] *= 1 / 3 if rng.random() < 0.1 else 1
        return groups

    aa = [(bursty(3, 6), bursty(3, 6)) for _ in range(300)]
    cal = calibrate_estimators(aa)
    assert set(cal) == {"mean", "median", "trimmed mean 20%", "median of 3 means"}
    direct = false_call_rate(ratio_of_means(a, b) for a, b in aa)
    assert cal["mean"].rate == direct
    for c in cal.values():
        assert c.calibrated == (c.rate.rate <= 0.05) and c.shown == (c.rate.ci_high <= 0.05)
        assert c.rate.n == 300
    with pytest.raises(ValueError, match="no comparisons"):
        calibrate_estimators([])
