"""The statistics behind a comparison of fio figures, as pure functions.

Each fio point is measured ``repeat`` times.  A variant's figure at a point
is the *mean* of its repeats with a 95% confidence interval from Student's t
on n-1 degrees of freedom (no interval with a single run).  Variant B is
compared with a reference A by the difference of the means, B - A, with a
95% confidence interval from Welch's t (unequal variances, Welch-Satterthwaite
degrees of freedom), and both are expressed in percent of A's mean.  The
interval in percent treats A's mean as a fixed scale: it is the interval of
the difference, divided by A's mean.

:func:`verdict` turns such an interval into one word; the rules are in the
docstring of :func:`verdict_pct` and nowhere else; the intervals of
:mod:`kvariant.twolevel` (boots x runs) and :mod:`kvariant.paired` (runs in
pairs) use the same rules.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

from scipy import stats as _sp

CONFIDENCE = 0.95
DEFAULT_THRESHOLD = 0.05  # a change smaller than 5% is not a change

BETTER, WORSE, NO_CHANGE, NOT_SIGNIFICANT, INCONCLUSIVE = (
    "better", "worse", "no change", "not significant", "inconclusive")
NOT_COMPARED = "not compared"  # runs with different setups (compare_runs), unless --force
VERDICTS = (BETTER, WORSE, NO_CHANGE, NOT_SIGNIFICANT, INCONCLUSIVE, NOT_COMPARED)


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student t quantile: t such that P(|T| <= t) = confidence."""
    return float(_sp.t.ppf(0.5 + confidence / 2, df))


@dataclasses.dataclass(frozen=True)
class Sample:
    """The repeats of one variant at one point.  ``ci_low``/``ci_high`` and
    ``half_width`` are the 95% interval of the mean; None with one run."""

    runs: tuple[float, ...]
    n: int
    mean: float
    median: float
    sd: float | None  # sample standard deviation (n-1); None with one run
    half_width: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["runs"] = list(self.runs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Sample":
        return cls(**{**d, "runs": tuple(d["runs"])})


def sample(runs) -> Sample:
    """Mean, median and the t interval of the mean of *runs* (at least one value)."""
    xs = tuple(float(x) for x in runs)
    if not xs:
        raise ValueError("a sample needs at least one run")
    n = len(xs)
    mean = statistics.fmean(xs)
    median = statistics.median(xs)
    if n < 2:
        return Sample(xs, n, mean, median, None, None, None, None)
    sd = statistics.stdev(xs)
    hw = t_quantile(n - 1) * sd / math.sqrt(n)
    return Sample(xs, n, mean, median, sd, hw, mean - hw, mean + hw)


@dataclasses.dataclass(frozen=True)
class Difference:
    """B against A: ``diff`` = mean(B) - mean(A) with its Welch interval;
    the ``*_pct`` fields are the same in percent of mean(A).  Fields are None
    when they cannot be computed (a side with one run, or mean(A) == 0)."""

    diff: float
    change_pct: float | None
    df: float | None
    half_width: float | None
    ci_low: float | None
    ci_high: float | None
    ci_low_pct: float | None
    ci_high_pct: float | None

    to_dict = dataclasses.asdict

    @classmethod
    def from_dict(cls, d: dict) -> "Difference":
        return cls(**d)


def welch(a: Sample, b: Sample) -> Difference:
    """The difference of the means B - A and its 95% interval by Welch's t."""
    diff = b.mean - a.mean
    pct = (lambda x: x / a.mean * 100) if a.mean else (lambda x: None)
    change = pct(diff)
    if a.n < 2 or b.n < 2:
        return Difference(diff, change, None, None, None, None, None, None)
    va, vb = a.sd ** 2 / a.n, b.sd ** 2 / b.n
    se2 = va + vb
    if se2 == 0:  # both sides without any spread: the interval is the point
        df, hw = float(a.n + b.n - 2), 0.0
    else:
        df = se2 ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
        hw = t_quantile(df) * math.sqrt(se2)
    lo, hi = diff - hw, diff + hw
    return Difference(diff, change, df, hw, lo, hi, pct(lo), pct(hi))


def difference_of_ratio(mean_a: float, ratio: float, ci_low: float | None,
                        ci_high: float | None, df: float | None) -> Difference:
    """A change found as a ratio B / A with its interval (kvariant.paired),
    as a :class:`Difference` in A's units: A's mean times (ratio - 1)."""
    def scaled(r):
        return None if r is None else mean_a * (r - 1)

    def pct(r):
        return None if r is None else (r - 1) * 100

    hw = None if ci_low is None or ci_high is None else mean_a * (ci_high - ci_low) / 2
    return Difference(mean_a * (ratio - 1), pct(ratio), df, hw, scaled(ci_low), scaled(ci_high),
                      pct(ci_low), pct(ci_high))


def verdict(d: Difference, threshold: float = DEFAULT_THRESHOLD) -> tuple[str, str]:
    """(word, reason) for a difference; *threshold* is a fraction (0.05 = 5%).

    ``inconclusive`` when a side has fewer than 2 repeats (no interval) or A's
    mean is 0; otherwise the rules of :func:`verdict_pct`.
    """
    if d.ci_low_pct is None or d.ci_high_pct is None or d.change_pct is None:
        why = "A's mean is 0" if d.change_pct is None else "fewer than 2 repeats on a side"
        return INCONCLUSIVE, why
    return verdict_pct(d.change_pct, d.ci_low_pct, d.ci_high_pct, threshold)


def verdict_pct(c: float, lo: float, hi: float,
                threshold: float = DEFAULT_THRESHOLD) -> tuple[str, str]:
    """(word, reason) for a change *c* with its 95% interval [*lo*, *hi*],
    all three in percent of A's figure; *threshold* is a fraction.

    With T the threshold in percent:

    1. ``no change``: the whole interval lies within ±T (-T <= lo and hi <= T);
    2. ``better`` / ``worse``: the interval excludes 0 (lo > 0 or hi < 0) and
       |c| > T;
    3. ``inconclusive``: the interval includes 0 and reaches beyond both -T
       and +T: the spread is too large to tell a gain, a loss or nothing;
    4. ``not significant``: everything else.  Either the interval includes 0
       and reaches beyond ±T on one side only (no change is shown, and a
       change beyond T is possible in one direction), or it excludes 0 but
       |c| <= T while reaching beyond ±T (a small change, not shown to be
       larger than T nor to be within it).

    Only rule 2 ever calls a change better or worse: a change that is not
    significant is never shown as a win.  (Without an interval at all the
    word is ``inconclusive``: see :func:`verdict`.)
    """
    t = threshold * 100
    ci = f"95% CI {lo:+.1f}% to {hi:+.1f}%"
    if -t <= lo and hi <= t:
        return NO_CHANGE, f"{ci} lies within ±{t:g}%"
    if (lo > 0 or hi < 0) and abs(c) > t:
        return (BETTER if c > 0 else WORSE), f"{ci} excludes 0 and |{c:+.1f}%| > {t:g}%"
    if lo <= 0 <= hi and lo < -t and hi > t:
        return INCONCLUSIVE, f"{ci} includes 0 and reaches beyond ±{t:g}% on both sides"
    if lo <= 0 <= hi:
        return NOT_SIGNIFICANT, f"{ci} includes 0"
    return NOT_SIGNIFICANT, f"{ci} excludes 0 but the change {c:+.1f}% is within ±{t:g}%"


def pairs_needed(sd_log: float, threshold: float = DEFAULT_THRESHOLD, limit: int = 200) -> int | None:
    """About how many pairs make the 95% paired t interval of a change no
    wider than ±threshold, for log ratios of standard deviation *sd_log*:
    the smallest n with t(n - 1) * sd_log / sqrt(n) <= log(1 + threshold);
    None when more than *limit*."""
    for n in range(2, limit + 1):
        if t_quantile(n - 1) * sd_log / math.sqrt(n) <= math.log1p(threshold):
            return n
    return None


def repeats_needed(rel_sd_a: float, rel_sd_b: float, threshold: float = DEFAULT_THRESHOLD,
                   limit: int = 200) -> int | None:
    """About how many repeats per side make the 95% interval of the
    difference no wider than ±threshold, for the given relative standard
    deviations (sd / A's mean); None when more than *limit*."""
    for n in range(2, limit + 1):
        va, vb = rel_sd_a ** 2 / n, rel_sd_b ** 2 / n
        se2 = va + vb
        if se2 == 0:
            return n
        df = se2 ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (n - 1))
        if t_quantile(df) * math.sqrt(se2) <= threshold:
            return n
    return None
