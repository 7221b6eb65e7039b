"""Paired comparisons against scipy's paired and one-sample t intervals and
numbers worked by hand."""
import math

import numpy as np
import pytest
from scipy import stats as sp

from kvariant import stats
from kvariant.paired import (group_by, log_ratios, normalise, normalised_change,
                             normalised_runs_change, paired_change)
from kvariant.twolevel import change_verdict

A = [10000, 12000, 9000, 15000, 11000, 13000]
B = [11500, 13000, 10200, 16000, 12800, 14100]


def test_pairs_are_scipys_paired_t_on_logs():
    c = paired_change(A, B)
    ci = sp.ttest_rel(np.log(B), np.log(A)).confidence_interval()
    gm = math.prod(b / a for a, b in zip(A, B)) ** (1 / 6)  # geometric mean of the ratios
    assert c.ratio == pytest.approx(gm)
    assert (c.ci_low, c.ci_high) == (pytest.approx(math.exp(ci.low)), pytest.approx(math.exp(ci.high)))
    assert (c.df, c.n, c.level) == (5.0, 6, "pairs")
    assert change_verdict(c)[0] == stats.BETTER  # every pair gains 6-16%


def test_blocks_take_the_interval_from_block_means():
    blocks = ["g1", "g1", "g2", "g2", "g3", "g3"]
    c = paired_change(A, B, blocks)
    d = np.log(np.array(B) / np.array(A))
    means = [d[0:2].mean(), d[2:4].mean(), d[4:6].mean()]
    ci = sp.ttest_1samp(means, 0).confidence_interval()
    assert c.ratio == pytest.approx(math.exp(np.mean(means)))
    assert (c.ci_low, c.ci_high) == (pytest.approx(math.exp(ci.low)), pytest.approx(math.exp(ci.high)))
    assert (c.df, c.n, c.level) == (2.0, 3, "blocks")
    # a single block falls back to the pairs and says what that leaves out
    one = paired_change(A, B, ["g1"] * 6)
    assert one.level == "pairs" and "boot-to-boot variance not in the interval" in one.method
    assert one.ci_low == pytest.approx(paired_change(A, B).ci_low)


def test_unbalanced_blocks_weigh_each_block_once():
    # block x: ratios 2, 2 (log 2); block y: ratio 1 (log 0): exp(mean(log 2, 0)) = sqrt(2)
    c = paired_change([1, 1, 1], [2, 2, 1], ["x", "x", "y"])
    assert c.ratio == pytest.approx(math.sqrt(2)) and c.n == 2
    assert group_by([1, 2, 3, 4], ["b", "a", "b", "c"]) == ((1, 3), (2,), (4,))


def test_paired_edges():
    one = paired_change([100], [120])
    assert (one.ratio, one.ci_low, one.df) == (pytest.approx(1.2), None, None)
    assert change_verdict(one) == (stats.INCONCLUSIVE, "fewer than 2 pairs on a side")
    same = paired_change([100, 200, 50], [110, 220, 55])  # every ratio 1.1
    assert (same.ci_low, same.ci_high) == (pytest.approx(1.1), pytest.approx(1.1))
    with pytest.raises(ValueError, match="equal lengths, got a 2, b 3"):
        log_ratios([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="no pairs"):
        paired_change([], [])
    with pytest.raises(ValueError, match="B run 1 is nan"):
        paired_change([1, 2], [1, float("nan")])
    with pytest.raises(ValueError, match="A run 0 is 0.0"):
        paired_change([0, 2], [1, 2])


def test_normalised_change_by_hand():
    # target / control per run: A 0.5, 0.6, 0.55; B 0.6, 0.72, 0.66 -> every pair 1.2
    c = normalised_change([50, 60, 55], [100, 100, 100], [120, 144, 132], [200, 200, 200])
    assert (c.ratio, c.ci_low, c.ci_high) == (pytest.approx(1.2), pytest.approx(1.2),
                                              pytest.approx(1.2))
    assert c.method.startswith("normalised by the control run")
    assert normalise([10, 30], [20, 10]) == (0.5, 3.0)
    with pytest.raises(ValueError, match="control run 1 is -1.0"):
        normalise([1, 2], [1, -1])
    # a burst that hits the target and its control alike cancels out
    burst = normalised_change([100, 50, 100], [200, 100, 200], [110, 55, 110], [200, 100, 200])
    assert burst.ci_high - burst.ci_low == pytest.approx(0, abs=1e-12)


def test_normalised_runs_are_scipys_welch_on_log_ratios():
    """Two guests' runs, each divided by its control neighbour: the same
    interval as scipy's Welch t test on the log ratios (computed
    independently: its confidence_interval, exponentiated)."""
    a_t, a_c = [10_000, 14_000, 9_000, 12_500], [20_000, 26_000, 19_000, 24_000]
    b_t, b_c = [15_000, 11_000, 17_500], [21_000, 16_000, 24_500]
    c = normalised_runs_change(a_t, a_c, b_t, b_c)
    la = np.log(np.array(a_t) / np.array(a_c))
    lb = np.log(np.array(b_t) / np.array(b_c))
    res = sp.ttest_ind(lb, la, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert c.ratio == pytest.approx(math.exp(lb.mean() - la.mean()))
    assert (c.ci_low, c.ci_high) == (pytest.approx(math.exp(ci.low)), pytest.approx(math.exp(ci.high)))
    assert c.df == pytest.approx(res.df) and c.level == "runs" and c.n == 3
    assert "normalised" in c.method


def test_normalised_runs_cancel_what_moves_the_whole_guest():
    """A guest twice as fast on both target and control is no change; a
    target 50% faster beside the same control is +50%, with no interval
    from one run a side."""
    same = normalised_runs_change([1, 2, 3], [2, 4, 6], [2, 4, 6], [4, 8, 12])
    assert same.ratio == pytest.approx(1.0) and same.ci_low == pytest.approx(1.0)
    one = normalised_runs_change([10], [20], [15], [20])
    assert one.ratio == pytest.approx(1.5) and one.ci_low is None
    with pytest.raises(ValueError, match="equal lengths"):
        normalised_runs_change([1, 2], [1], [1], [1])


def test_normalised_boots_are_welch_on_the_guests_mean_log_ratios():
    """Two guests a side: each guest's figure is the mean of its log
    normalised runs; the interval is scipy's Welch on those figures."""
    a_t, a_c, a_g = [10, 12, 11, 15, 16, 14], [20, 22, 21, 20, 21, 19], [1, 1, 1, 2, 2, 2]
    b_t, b_c, b_g = [16, 15, 17, 18, 19, 17], [20, 21, 22, 20, 19, 21], [1, 1, 1, 2, 2, 2]
    from kvariant.paired import normalised_boots_change
    c = normalised_boots_change(a_t, a_c, a_g, b_t, b_c, b_g)
    la = np.log(np.array(a_t) / np.array(a_c))
    lb = np.log(np.array(b_t) / np.array(b_c))
    ga, gb = [la[:3].mean(), la[3:].mean()], [lb[:3].mean(), lb[3:].mean()]
    res = sp.ttest_ind(gb, ga, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert c.ratio == pytest.approx(math.exp(np.mean(gb) - np.mean(ga)))
    assert (c.ci_low, c.ci_high) == (pytest.approx(math.exp(ci.low)), pytest.approx(math.exp(ci.high)))
    assert c.level == "boots" and c.n == 2 and c.df == pytest.approx(res.df)
    one = normalised_boots_change(a_t, a_c, [1] * 6, b_t, b_c, b_g)
    assert one.ci_low is None and one.n == 1
