"""Robust estimators and calibration: is a verdict right as often as it says?

* :func:`trimmed_mean` and :func:`median_of_means` summarise the runs of one
  boot so that a burst (a run or two far off) weighs less than in the mean.
* :func:`rate` is a proportion with its binomial interval (Clopper-Pearson
  by default, Wilson on request).
* :func:`false_call_rate` counts the better/worse verdicts among A/A
  comparisons (a kernel against itself: every such call is false);
  :func:`power` counts 'better' among A/B comparisons of a known gain and
  gives the median interval half-width.
* :func:`calibrate_estimators` replays an A/A data set with each estimator
  and says which keeps its false-call rate at or under the target.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as _sp

from . import stats
from .twolevel import Change, Estimator, Groups, change_verdict, ratio_of_means

MAX_FALSE_CALL_RATE = 0.05


def _finite(xs: Sequence[float]) -> np.ndarray:
    arr = np.asarray([float(x) for x in xs])
    if arr.size == 0:
        raise ValueError("no runs: at least one is needed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"runs must be finite numbers, got {list(arr)!r}")
    return arr


def trimmed_mean(xs: Sequence[float], proportion: float = 0.2) -> float:
    """The mean after cutting floor(proportion * n) runs from each end
    (scipy.stats.trim_mean; the LKP practice of trimming each side's
    extremes).  With 3 runs and 0.2, nothing is cut: it is the mean."""
    if not 0 <= proportion < 0.5:
        raise ValueError(f"proportion must be in [0, 0.5), got {proportion!r}")
    return float(_sp.trim_mean(_finite(xs), proportion))


def median_of_means(xs: Sequence[float], groups: int = 3) -> float:
    """The median of the means of *groups* consecutive blocks of the runs,
    in the order they were taken (numpy.array_split: sizes differ by at most
    one); a burst spoils at most the blocks it falls in (Nemirovsky & Yudin,
    1983; Lugosi & Mendelson, "Mean estimation and regression under
    heavy-tailed distributions", 2019).  With fewer runs than groups, each
    run is its own block (the median)."""
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups!r}")
    arr = _finite(xs)
    blocks = np.array_split(arr, min(groups, arr.size))
    return float(np.median([b.mean() for b in blocks]))


ESTIMATORS: Mapping[str, Estimator] = {
    "mean": statistics.fmean,
    "median": statistics.median,
    "trimmed mean 20%": trimmed_mean,
    "median of 3 means": median_of_means,
}


@dataclasses.dataclass(frozen=True)
class Rate:
    """``k`` events out of ``n``: ``rate`` = k / n with its 95% interval
    [``ci_low``, ``ci_high``] by ``method``."""

    k: int
    n: int
    rate: float
    ci_low: float
    ci_high: float
    method: str


def rate(k: int, n: int, method: str = "exact") -> Rate:
    """k out of n with a 95% binomial interval: Clopper-Pearson ("exact")
    or Wilson's score interval ("wilson"), by scipy.stats.binomtest."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"a rate needs 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}")
    if method not in ("exact", "wilson"):
        raise ValueError(f"method must be 'exact' or 'wilson', got {method!r}")
    ci = _sp.binomtest(k, n).proportion_ci(stats.CONFIDENCE, method=method)
    name = "Clopper-Pearson" if method == "exact" else "Wilson"
    return Rate(k, n, k / n, float(ci.low), float(ci.high), name)


def _words(changes: Iterable[Change], threshold: float) -> list[str]:
    return [change_verdict(c, threshold)[0] for c in changes]


def false_call_rate(changes: Iterable[Change], threshold: float = stats.DEFAULT_THRESHOLD,
                    method: str = "exact") -> Rate:
    """Among A/A comparisons (the same kernel on both sides), the share
    called better or worse: each such call is false."""
    words = _words(changes, threshold)
    return rate(sum(w in (stats.BETTER, stats.WORSE) for w in words), len(words), method)


@dataclasses.dataclass(frozen=True)
class Power:
    """Among A/B comparisons of a real gain: ``better`` is the rate of
    'better' verdicts, ``worse`` of 'worse' (a wrong sign), and
    ``median_half_width_pct`` the median interval half-width in percent of
    A (None when no comparison had an interval)."""

    better: Rate
    worse: Rate
    median_half_width_pct: float | None


def power(changes: Sequence[Change], threshold: float = stats.DEFAULT_THRESHOLD,
          method: str = "exact") -> Power:
    """How often comparisons of B (known better) against A call it better,
    and how wide their intervals are."""
    words = _words(changes, threshold)
    widths = [c.half_width_pct for c in changes if c.half_width_pct is not None]
    return Power(rate(words.count(stats.BETTER), len(words), method),
                 rate(words.count(stats.WORSE), len(words), method),
                 statistics.median(widths) if widths else None)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """One estimator on an A/A data set: its false-call ``rate``;
    ``calibrated`` when the observed rate is at most ``max_rate``, and
    ``shown`` when the whole 95% interval of the rate is (which takes at
    least 72 comparisons without a false call, with Clopper-Pearson: see
    :func:`needed_for_shown`)."""

    estimator: str
    rate: Rate
    max_rate: float
    calibrated: bool
    shown: bool


def calibrate_estimators(
        comparisons: Sequence[tuple[Groups, Groups]],
        estimators: Mapping[str, Estimator] = ESTIMATORS,
        threshold: float = stats.DEFAULT_THRESHOLD, max_rate: float = MAX_FALSE_CALL_RATE,
        compare: Callable[[Groups, Groups, Estimator], Change] = ratio_of_means,
) -> dict[str, Calibration]:
    """For each estimator, replay the A/A *comparisons* (pairs of A's and
    B's runs grouped by boot, the same kernel on both sides): summarise each
    boot with the estimator, compare by *compare* (:func:`ratio_of_means`),
    judge at *threshold*, and count the better/worse calls."""
    if not comparisons:
        raise ValueError("no comparisons: calibration needs at least one A/A comparison")
    out = {}
    for name, est in estimators.items():
        r = false_call_rate((compare(a, b, est) for a, b in comparisons), threshold)
        out[name] = Calibration(name, r, max_rate, r.rate <= max_rate, r.ci_high <= max_rate)
    return out


def needed_for_shown(max_rate: float = MAX_FALSE_CALL_RATE) -> int:
    """The least number of A/A comparisons, all without a false call, whose
    Clopper-Pearson upper bound is at most *max_rate*: 1 - 0.025^(1/n) <= max."""
    return math.ceil(math.log(0.025) / math.log(1 - max_rate))
