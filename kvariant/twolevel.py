"""Statistics of a two-level design: boots of a kernel, runs within a boot.

A variant's runs come in groups, one group per boot (guest); groups may differ
in size.  The model is the one-way random-effects model of Kalibera & Jones,
"Rigorous benchmarking in reasonable time" (ISMM 2013; libkalibera):

    x_ij = mu + b_i + e_ij,   Var(b_i) = boot variance, Var(e_ij) = run variance

* :func:`variance_components` estimates both variances by the ANOVA (method
  of moments) estimators; on a balanced design they are exactly Kalibera &
  Jones' T_1^2 = S_1^2 and T_2^2 = S_2^2 - S_1^2 / r_1.
* :func:`optimal_runs` is their optimal number of runs per boot given the
  costs of a boot and of a run; :func:`boots_needed` sizes the number of boots
  for a target interval.
* Intervals come from the level that varies, the boot: :func:`variant_mean`
  is a t interval on boot means with (boots - 1) degrees of freedom, and
  :func:`ratio_of_means` is the change B / A with an interval by the delta
  method on the log of the means of boot means, with Welch-Satterthwaite
  degrees of freedom over boots.
* :func:`change_verdict` turns a :class:`Change` into one word by the rules of
  :func:`kvariant.stats.verdict_pct`.

Every function is pure and refuses NaN, infinities and empty groups with a
ValueError naming what is wrong.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence

from . import stats

Groups = Sequence[Sequence[float]]  # runs of one variant, one sequence per boot
Estimator = Callable[[Sequence[float]], float]  # runs of one boot -> one figure


def check_groups(groups: Groups, *, positive: bool = False) -> tuple[tuple[float, ...], ...]:
    """*groups* as tuples of floats; ValueError on no boot, an empty boot,
    a value that is not finite, or (with *positive*) a value <= 0."""
    out = tuple(tuple(float(x) for x in g) for g in groups)
    if not out:
        raise ValueError("no boot: at least one group of runs is needed")
    for i, g in enumerate(out):
        if not g:
            raise ValueError(f"boot {i} has no runs")
        bad = [x for x in g if not math.isfinite(x) or (positive and x <= 0)]
        if bad:
            want = "positive finite numbers" if positive else "finite numbers"
            raise ValueError(f"boot {i} has {bad[0]!r}: runs must be {want}")
    return out


# -- variance components ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Components:
    """Variance components of one variant at one point.

    ``run_var`` is the within-boot (run-to-run) variance, the ANOVA mean
    square within (None with one run per boot: not estimable).  ``boot_var``
    is the between-boot component (MS_between - MS_within) / n0, clamped at 0
    (``boot_var_raw`` keeps the unclamped estimate); None with one boot or
    with one run per boot.  ``boot_means_var`` is the sample variance of the
    boot means, the variance the intervals of this module use.  CVs are the
    square roots relative to ``mean``, the mean over all runs."""

    boots: int
    runs: int
    mean: float
    n0: float | None  # effective runs per boot (the runs per boot when balanced)
    run_var: float | None
    boot_var: float | None
    boot_var_raw: float | None
    boot_means_var: float | None

    @property
    def run_cv(self) -> float | None:
        return _cv(self.run_var, self.mean)

    @property
    def boot_cv(self) -> float | None:
        return _cv(self.boot_var, self.mean)

    def to_dict(self) -> dict:
        """The fields and both CVs, for a report."""
        return {**dataclasses.asdict(self), "run_cv": self.run_cv, "boot_cv": self.boot_cv}


def _cv(var: float | None, mean: float) -> float | None:
    return None if var is None or mean == 0 else math.sqrt(var) / abs(mean)


def variance_components(groups: Groups) -> Components:
    """Run and boot variance components of an (un)balanced two-level design.

    One-way random-effects ANOVA, method of moments (Searle, Casella &
    McCulloch, *Variance Components*, 1992, section 3.5): with a boots of n_i
    runs, N runs in all, boot means m_i and grand mean m,

        MSW = sum_ij (x_ij - m_i)^2 / (N - a)
        MSB = sum_i n_i (m_i - m)^2 / (a - 1)
        n0  = (N - sum_i n_i^2 / N) / (a - 1)
        run variance  = MSW
        boot variance = max(0, (MSB - MSW) / n0)

    On a balanced design (n_i = r) these are Kalibera & Jones' estimators
    T_1^2 = S_1^2 and T_2^2 = S_2^2 - S_1^2 / r (the corrected form used by
    libkalibera; the ISMM paper printed T_{i-1} where S_{i-1} is meant).
    """
    gs = check_groups(groups)
    a, sizes = len(gs), [len(g) for g in gs]
    n = sum(sizes)
    means = [statistics.fmean(g) for g in gs]
    grand = math.fsum(x for g in gs for x in g) / n
    ssw = math.fsum((x - m) ** 2 for g, m in zip(gs, means) for x in g)
    msw = ssw / (n - a) if n > a else None
    if a < 2:
        return Components(a, n, grand, None, msw, None, None, None)
    msb = math.fsum(k * (m - grand) ** 2 for k, m in zip(sizes, means)) / (a - 1)
    n0 = (n - sum(k * k for k in sizes) / n) / (a - 1)
    raw = None if msw is None else (msb - msw) / n0
    boot = None if raw is None else max(0.0, raw)
    return Components(a, n, grand, n0, msw, boot, raw, statistics.variance(means))


@dataclasses.dataclass(frozen=True)
class Repetitions:
    """Kalibera & Jones' optimal runs per boot: ``runs`` (rounded up, at
    least 1, at most the cap), ``exact`` the unrounded value (None when the
    boot variance is 0), ``capped`` True when the cap was applied, and a
    ``note`` saying why when it was."""

    runs: int
    exact: float | None
    capped: bool
    note: str


def optimal_runs(c: Components, boot_cost: float, run_cost: float, cap: int = 50) -> Repetitions:
    """The number of runs per boot that gives the narrowest interval for a
    given time (Kalibera & Jones, ISMM 2013, section 4; libkalibera
    ``Data.optimalreps``):

        r = ceil(sqrt((boot_cost / run_cost) * (run_var / boot_var)))

    *boot_cost* is the time one more boot adds apart from its runs (boot,
    setup, warm-up); *run_cost* the time of one run.  When the boot variance
    is 0 (or tiny) the formula diverges: every run may as well come from one
    boot.  The answer is then *cap*, with ``capped`` set and the reason in
    ``note``.  ValueError when a component cannot be estimated (one boot, or
    one run per boot) or a cost is not positive.
    """
    if c.run_var is None or c.boot_var is None:
        raise ValueError("the components need at least 2 boots and a boot with 2 runs")
    if not (boot_cost > 0 and run_cost > 0):
        raise ValueError(f"costs must be positive, got boot {boot_cost!r} and run {run_cost!r}")
    if c.run_var == 0:
        return Repetitions(1, 0.0, False, "no run-to-run variance: one run per boot is enough")
    if c.boot_var <= 1e-12 * c.run_var:
        return Repetitions(cap, None, True,
                           f"no boot-to-boot variance measured: capped at {cap} runs per boot")
    exact = math.sqrt(boot_cost / run_cost * c.run_var / c.boot_var)
    runs = max(1, math.ceil(exact))
    if runs > cap:
        return Repetitions(cap, exact, True, f"{exact:.1f} runs per boot, capped at {cap}")
    return Repetitions(runs, exact, False, f"{exact:.2f} rounded up")


def boots_needed(c: Components, runs_per_boot: int, half_width: float, *,
                 compare: bool = True, limit: int = 200) -> int | None:
    """The least number of boots (per variant) whose 95% interval has a
    relative half-width <= *half_width* (a fraction: 0.15 for ±15%), with
    *runs_per_boot* runs in each boot and the measured components taken as
    the truth.  A boot mean then has variance V = boot_var + run_var / r.

    With *compare* (the default) the interval is that of the change between
    two variants with these components, as :func:`ratio_of_means` computes
    it: t(2b - 2) * sqrt(2 V / b) / mean; otherwise that of one variant's mean,
    t(b - 1) * sqrt(V / b) / mean.  None when more than *limit* boots, or when
    the components cannot be estimated, or the mean is 0.
    """
    if c.run_var is None or c.boot_var is None or c.mean == 0 or runs_per_boot < 1:
        return None
    rel_var = (c.boot_var + c.run_var / runs_per_boot) / c.mean ** 2
    for b in range(2, limit + 1):
        df, v = (2 * b - 2, 2 * rel_var / b) if compare else (b - 1, rel_var / b)
        if stats.t_quantile(df) * math.sqrt(v) <= half_width:
            return b
    return None


# -- intervals from boots --------------------------------------------------

def boot_figures(groups: Groups, estimator: Estimator = statistics.fmean, *,
                 positive: bool = False) -> tuple[float, ...]:
    """One figure per boot: *estimator* (the mean by default) of its runs."""
    return tuple(float(estimator(g)) for g in check_groups(groups, positive=positive))


def variant_mean(groups: Groups, estimator: Estimator = statistics.fmean) -> stats.Sample:
    """A variant's figure from its boots: the mean of the boot figures with a
    Student t interval on (boots - 1) degrees of freedom, the level that
    varies (Kalibera & Jones, section 3; libkalibera ``confidence95``).  No
    interval with one boot."""
    return stats.sample(boot_figures(groups, estimator))


@dataclasses.dataclass(frozen=True)
class Change:
    """B against A as a ratio: ``ratio`` = B / A with its 95% interval
    [``ci_low``, ``ci_high``] (None when there is none: fewer than 2 ``units``
    on a side).  ``level`` names the units the interval comes from ("boots",
    "blocks" or "pairs"), ``n`` how many (the smaller side), ``df`` the
    degrees of freedom and ``method`` how it was computed."""

    ratio: float
    ci_low: float | None
    ci_high: float | None
    df: float | None
    n: int
    level: str
    method: str

    @property
    def change_pct(self) -> float:
        return (self.ratio - 1) * 100

    @property
    def ci_low_pct(self) -> float | None:
        return None if self.ci_low is None else (self.ci_low - 1) * 100

    @property
    def ci_high_pct(self) -> float | None:
        return None if self.ci_high is None else (self.ci_high - 1) * 100

    @property
    def half_width_pct(self) -> float | None:
        """Half the interval's width in percent of A (it is not symmetric)."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2 * 100

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Change":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def log_interval(log_ratio: float, se: float, df: float | None, n: int, level: str,
                 method: str) -> Change:
    """A :class:`Change` from a log ratio and its standard error: the t
    interval on the log scale, exponentiated (no interval when *df* is None)."""
    if df is None:
        return Change(math.exp(log_ratio), None, None, None, n, level, method)
    hw = stats.t_quantile(df) * se
    return Change(math.exp(log_ratio), math.exp(log_ratio - hw), math.exp(log_ratio + hw),
                  df, n, level, method)


def ratio_of_means(a: Groups, b: Groups, estimator: Estimator = statistics.fmean) -> Change:
    """The change B / A of the means of boot figures, with a 95% interval by
    the delta method on log means (Casella & Berger, *Statistical
    Inference*, 2nd ed., section 5.5.4):

        log(mB / mA) ± t(df) * sqrt(sA^2 / (nA mA^2) + sB^2 / (nB mB^2))

    where m, s^2 and n are the mean, sample variance and number of the boot
    figures of a side, and df is Welch-Satterthwaite's over the two terms.
    It is Welch's interval on the boot figures each divided by its side's
    mean, taken on the log scale: it stays positive, and swapping A and B
    inverts it exactly.  Kalibera & Jones' report "Quantifying performance
    changes with effect size confidence intervals" (2012) uses Fieller's
    interval instead; the two meet as boots grow and spread shrinks, and with
    3 or 4 boots a side Fieller's is shifted up by a few points of A.  Runs must be positive.  No interval with fewer than
    2 boots on a side; a zero-width interval when no boot figure differs.
    """
    fa = boot_figures(a, estimator, positive=True)
    fb = boot_figures(b, estimator, positive=True)
    ma, mb = statistics.fmean(fa), statistics.fmean(fb)
    method = "delta method on log means of boot figures, Welch df"
    n = min(len(fa), len(fb))
    if n < 2:
        return log_interval(math.log(mb / ma), 0.0, None, n, "boots", method)
    va = statistics.variance(fa) / (len(fa) * ma * ma)
    vb = statistics.variance(fb) / (len(fb) * mb * mb)
    se2 = va + vb
    df = (se2 * se2 / (va * va / (len(fa) - 1) + vb * vb / (len(fb) - 1)) if se2 > 0
          else float(len(fa) + len(fb) - 2))
    return log_interval(math.log(mb / ma), math.sqrt(se2), df, n, "boots", method)


def change_verdict(c: Change, threshold: float = stats.DEFAULT_THRESHOLD) -> tuple[str, str]:
    """(word, reason) for a :class:`Change`: ``inconclusive`` without an
    interval, else the rules of :func:`kvariant.stats.verdict_pct` on the
    change and its interval in percent of A."""
    if c.ci_low_pct is None or c.ci_high_pct is None:
        return stats.INCONCLUSIVE, f"fewer than 2 {c.level} on a side"
    return stats.verdict_pct(c.change_pct, c.ci_low_pct, c.ci_high_pct, threshold)
