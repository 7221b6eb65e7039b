"""Calibration from runs on disk: how noisy is a kernel against itself, and
how often is a known gain shown?

Each variant's guest is one *boot* and its repeats at a fio point are the
*runs* of that boot (the two levels of :mod:`kvariant.twolevel`).  Variants
are grouped into kernels by the commit their summary records:

* one kernel (the same commit as several variants, in one run or several):
  the **A/A** case.  Every better/worse verdict between two of its boots is
  false; :func:`calibrate` counts them over all pairs of boots, within a
  run and across runs.
* two kernels (baseline and a series, in several runs): **power**.  Every
  pair of an A boot and a B boot is compared, B against A, and the rate of
  'better' and the median interval half-width are counted.

Each pair is judged twice: by today's verdict (:func:`kvariant.stats.welch`
on the runs of the two boots, as ``compare`` does) and by the verdict of
:mod:`kvariant.twolevel` (:func:`~kvariant.twolevel.ratio_of_means` and
:func:`~kvariant.twolevel.change_verdict`); with one boot a side each run is
a unit there, so that comparison is the log-scale Welch interval on runs.
Where both boots measured the point in interleaved rounds beside the
control (raw XFS), a third verdict is compare's own for such points: each
run normalised by its control neighbour
(:func:`~kvariant.paired.normalised_runs_change`), and the components are
given for the normalised runs too.
Rates carry their Clopper-Pearson 95% interval; pairs share boots, so the
interval is optimistic.

Per kernel and point it also gives the variance components (run CV with its
chi-square 95% interval, boot CV), Kalibera & Jones' optimal runs per boot
from the measured costs (a boot: the ``boot`` and ``storage`` stages; a run:
the point's stage seconds over its repeats) and the boots per variant a
change's interval of ±15% would take.  Pure: summaries in, a
:class:`Calibration` out; bad input is a ConfigError.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Sequence

from scipy import stats as _sp

from . import stats
from .calibration import Rate, rate
from .errors import ConfigError
from .comparison import CONTROL_TARGET
from .model import Status, VariantResult
from .paired import normalise, normalised_change, normalised_runs_change, paired_change
from .summary import RunSummary, describe_differences, point_runs
from .twolevel import (boots_needed, change_verdict, optimal_runs, ratio_of_means,
                       variance_components)

AA, POWER = "A/A", "power"
HALF_WIDTH = 0.15  # the change's 95% half-width boots_needed sizes for
BOOT_STAGES = ("boot", "storage")  # what one more boot costs apart from its runs
CALLS = (stats.BETTER, stats.WORSE)
NO_PAIR = "no fio point was measured by two boots to compare (see the runs' fio stages)"


@dataclasses.dataclass(frozen=True)
class Boot:
    """One guest's runs at one point."""

    run_id: str
    variant: str
    kernel: str
    runs: tuple[float, ...]
    run_seconds: float | None  # the point's stage seconds / its repeats
    boot_seconds: float | None  # the boot and storage stages
    # the control's runs beside these (interleaved rounds; compare._attach_controls)
    control: tuple[float, ...] | None = None
    # guests up together: "RUNID:variants" and the round of each run (compare pairs by round)
    cohort: str | None = None
    rounds: tuple[int, ...] | None = None
    p99: tuple[float, ...] | None = None  # each run's 99th percentile completion latency (us)
    steal: tuple[float, ...] | None = None  # the host's CPU steal time during each run (%)

    def pairs_with(self, other: "Boot") -> bool:
        """Whether this boot's runs and *other*'s were taken round by round
        beside each other (guests up together)."""
        return self.cohort is not None and self.cohort == other.cohort and self.rounds == other.rounds

    @property
    def label(self) -> str:
        return f"{self.run_id}:{self.variant}"

    def normalised(self) -> "Boot":
        """This boot with each run divided by the control run beside it."""
        return dataclasses.replace(self, runs=normalise(self.runs, self.control), control=None)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """Variants that ran one commit: ``label`` is the first one's name."""

    label: str
    commit: str
    variants: tuple[str, ...]  # RUNID:variant


@dataclasses.dataclass(frozen=True)
class Noise:
    """One kernel at one point: its variance components and what they cost."""

    kernel: str
    boots: int
    runs: int
    mean: float
    run_cv: float | None
    run_cv_ci: tuple[float, float] | None  # chi-square 95% interval of the run CV
    boot_cv: float | None
    spread: float  # (max - min) / median over all runs
    boot_seconds: float | None
    run_seconds: float | None
    optimal_runs: int | None
    optimal_note: str
    boots_needed_now: int | None  # at the runs per boot measured
    boots_needed_optimal: int | None  # at the optimal runs per boot


@dataclasses.dataclass(frozen=True)
class Calls:
    """The verdicts of one method over the pairs: ``better`` and ``worse``
    rates, ``called`` the rate of either, ``median_half_width_pct`` over the
    pairs that had an interval."""

    method: str
    better: Rate
    worse: Rate
    called: Rate
    median_half_width_pct: float | None


@dataclasses.dataclass(frozen=True)
class PointCalibration:
    target: str
    name: str
    numjobs: int
    noise: tuple[Noise, ...]
    pairs: int
    today: Calls
    twolevel: Calls
    normalised: Calls | None = None  # pairs of boots that both have control runs
    noise_normalised: tuple[Noise, ...] = ()  # the components of the normalised runs
    paired: Calls | None = None  # pairs of boots up together, paired by round
    paired_normalised: Calls | None = None  # the same, normalised by the control
    paired_p99: Calls | None = None  # the same pairs judged on p99 latency (a second signal)
    paired_quiet: Calls | None = None  # the same pairs without the rounds measured in a burst

    @property
    def label(self) -> str:
        return f"{self.target} nj{self.numjobs}"


@dataclasses.dataclass(frozen=True)
class Calibration:
    mode: str  # AA or POWER
    threshold: float
    run_ids: tuple[str, ...]
    kernels: tuple[Kernel, ...]
    points: tuple[PointCalibration, ...]
    today: Calls | None  # over every point's pairs
    twolevel: Calls | None
    notes: tuple[str, ...]
    setup_differences: tuple[str, ...]
    forced: bool
    normalised: Calls | None = None
    paired: Calls | None = None
    paired_normalised: Calls | None = None
    paired_p99: Calls | None = None
    paired_quiet: Calls | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- the kernels and their boots -------------------------------------------

def _commit(v: VariantResult) -> str:
    return str(v.info.commit or "")


def kernels_of(runs: Sequence[RunSummary]) -> tuple[list[Kernel], list[str]]:
    """The kernels of *runs* by recorded commit, in order of first
    appearance, and notes on variants that recorded none (each is then its
    own kernel, by name) or measured no fio point (left out: a variant that
    failed to apply, build or boot)."""
    found: dict[str, list[str]] = {}
    notes = []
    for run in runs:
        for v in run.variants:
            if not any(s.id.point and s.figures.get("iops") is not None for s in v.stages):
                notes.append(f"{run.run_id}:{v.name} measured no fio point ({v.status.value}): "
                             "left out")
                continue
            key = _commit(v) or f"variant {v.name}"
            if not _commit(v):
                notes.append(f"{run.run_id}:{v.name} records no commit: it is taken as a kernel "
                             "of its own name")
            found.setdefault(key, []).append(f"{run.run_id}:{v.name}")
    kernels: list[Kernel] = []
    for key, labels in found.items():
        commit = "" if key.startswith("variant ") else key
        label = labels[0].split(":", 1)[1]
        if any(k.label == label for k in kernels):  # one name, another commit in another run
            label = f"{label}@{commit[:12]}"
        kernels.append(Kernel(label, commit, tuple(labels)))
    return kernels, notes


def _stage_seconds(v: VariantResult, names: Sequence[str]) -> float | None:
    found = [s.seconds for s in v.stages if s.name in names]
    return math.fsum(found) if len(found) == len(names) else None


def boots_of(runs: Sequence[RunSummary], kernel_of: dict[str, str]) -> dict[tuple[str, str, int], list[Boot]]:
    """(target, job name, numjobs) -> the boots that measured that point."""
    points: dict[tuple[str, str, int], list[Boot]] = {}
    for run in runs:
        for v in run.variants:
            if f"{run.run_id}:{v.name}" not in kernel_of:
                continue
            boot_s = _stage_seconds(v, BOOT_STAGES)
            measured = {(s.id.target, *s.id.point): s for s in v.stages
                        if s.id.point is not None and s.figures.get("iops") is not None}
            for key, s in measured.items():
                xs = tuple(point_runs(s.figures))
                label = f"{run.run_id}:{v.name}"
                boot = Boot(run.run_id, v.name, kernel_of[label], xs,
                            s.seconds / len(xs) if s.seconds > 0 else None, boot_s,
                            _control(key, s, measured), *_rounds(run.run_id, s, len(xs)),
                            _per_run(s, "clat_p99_us_runs", len(xs)),
                            _per_run(s, "host_steal_pct_runs", len(xs), low=0))
                points.setdefault(key, []).extend(_guests(boot, s.figures.get("iops_boots")))
    return points


def _rounds(run_id: str, s, n: int) -> tuple[str | None, tuple[int, ...] | None]:
    """The cohort and the rounds of a point measured by guests up together."""
    rounds = s.figures.get("iops_rounds")
    if not s.figures.get("together") or not isinstance(rounds, list) or len(rounds) != n:
        return None, None
    return f"{run_id}:{s.figures['together']}", tuple(int(x) for x in rounds)


def _per_run(s, figure: str, n: int, low: float = 1e-9) -> tuple[float, ...] | None:
    """A figure with one number per run (each at least *low*), or None."""
    xs = s.figures.get(figure)
    ok = isinstance(xs, list) and len(xs) == n and all(isinstance(x, (int, float)) and x >= low for x in xs)
    return tuple(float(x) for x in xs) if ok else None


def _guests(boot: Boot, guests) -> list[Boot]:
    """A variant's runs at a point, one Boot per guest that measured them
    ([fio] boots > 1: figure ``iops_boots``, the guest of each run)."""
    if not isinstance(guests, list) or len(guests) != len(boot.runs) or len(set(guests)) < 2:
        return [boot]
    out = []
    for g in dict.fromkeys(guests):
        keep = [i for i, x in enumerate(guests) if x == g]
        out.append(dataclasses.replace(
            boot, variant=f"{boot.variant}#{int(g)}", runs=tuple(boot.runs[i] for i in keep),
            control=None if boot.control is None else tuple(boot.control[i] for i in keep),
            cohort=None if boot.cohort is None else f"{boot.cohort}#{int(g)}",
            rounds=None if boot.rounds is None else tuple(boot.rounds[i] for i in keep),
            p99=None if boot.p99 is None else tuple(boot.p99[i] for i in keep),
            steal=None if boot.steal is None else tuple(boot.steal[i] for i in keep)))
    return out


def _control(key: tuple[str, str, int], s, measured: dict) -> tuple[float, ...] | None:
    """The control's runs beside the point's, as compare takes them: both
    measured in interleaved rounds, passed, with as many runs."""
    c = measured.get((CONTROL_TARGET, *key[1:]))
    if key[0] == CONTROL_TARGET or c is None:
        return None
    ok = all(x.figures.get("interleaved") and x.status == Status.PASS for x in (s, c))
    runs = tuple(point_runs(c.figures))
    return runs if ok and len(runs) == len(point_runs(s.figures)) else None


# -- noise -----------------------------------------------------------------

def run_cv_interval(run_var: float, df: int, mean: float) -> tuple[float, float] | None:
    """The 95% interval of the run CV from the chi-square interval of the
    within-boot variance on *df* = runs - boots degrees of freedom:
    [df s^2 / chi2(0.975, df), df s^2 / chi2(0.025, df)], square-rooted
    over the mean (exact for normal runs)."""
    if df < 1 or mean == 0:
        return None
    hi_q, lo_q = _sp.chi2.ppf(0.975, df), _sp.chi2.ppf(0.025, df)
    return (math.sqrt(df * run_var / hi_q) / abs(mean), math.sqrt(df * run_var / lo_q) / abs(mean))


def _mean_or_none(xs: Sequence[float | None]) -> float | None:
    known = [x for x in xs if x is not None]
    return statistics.fmean(known) if known else None


def noise(kernel: str, boots: Sequence[Boot], half_width: float = HALF_WIDTH) -> Noise:
    """The components, costs and repetitions of one kernel's *boots*."""
    c = variance_components([b.runs for b in boots])
    all_runs = [x for b in boots for x in b.runs]
    median = statistics.median(all_runs)
    spread = (max(all_runs) - min(all_runs)) / median if median else math.inf
    boot_s = _mean_or_none([b.boot_seconds for b in boots])
    run_s = _mean_or_none([b.run_seconds for b in boots])
    best, note = None, ""
    try:
        rep = optimal_runs(c, boot_s or 0.0, run_s or 0.0)
        best, note = rep.runs, rep.note
    except ValueError as e:
        note = str(e)
    r_now = round(statistics.median(len(b.runs) for b in boots))
    ci = None if c.run_var is None else run_cv_interval(c.run_var, c.runs - c.boots, c.mean)
    return Noise(kernel, c.boots, c.runs, c.mean, c.run_cv, ci, c.boot_cv, spread, boot_s, run_s,
                 best, note, boots_needed(c, r_now, half_width),
                 None if best is None else boots_needed(c, best, half_width))


# -- verdicts over pairs of boots ------------------------------------------

def pair_verdicts(a: Boot, b: Boot, threshold: float) -> tuple[tuple[str, float | None],
                                                               tuple[str, float | None]]:
    """B against A, (word, half-width in percent of A) by today's Welch
    verdict on runs and by the two-level verdict (each run a unit)."""
    d = stats.welch(stats.sample(a.runs), stats.sample(b.runs))
    today = stats.verdict(d, threshold)[0]
    hw_today = None if d.ci_low_pct is None else (d.ci_high_pct - d.ci_low_pct) / 2
    if min(a.runs + b.runs) <= 0:
        return (today, hw_today), (stats.INCONCLUSIVE, None)
    c = ratio_of_means([[x] for x in a.runs], [[x] for x in b.runs])
    return (today, hw_today), (change_verdict(c, threshold)[0], c.half_width_pct)


def pairs_of(boots: Sequence[Boot], kernels: Sequence[Kernel], mode: str) -> list[tuple[Boot, Boot]]:
    """A/A: every unordered pair of boots.  Power: every (A boot, B boot),
    A the first kernel."""
    if mode == AA:
        return list(itertools.combinations(boots, 2))
    a = [b for b in boots if b.kernel == kernels[0].label]
    b = [x for x in boots if x.kernel == kernels[1].label]
    return list(itertools.product(a, b))


def calls(method: str, judged: Sequence[tuple[str, float | None]]) -> Calls | None:
    """The rates of *judged* (word, half-width) pairs; None when empty."""
    if not judged:
        return None
    words = [w for w, _ in judged]
    widths = [h for _, h in judged if h is not None]
    n = len(words)
    return Calls(method, rate(words.count(stats.BETTER), n), rate(words.count(stats.WORSE), n),
                 rate(sum(w in CALLS for w in words), n), statistics.median(widths) if widths else None)


TODAY = "Welch on raw runs"
TWOLEVEL = "ratio of means, twolevel (each run a unit)"
NORMALISED = "normalised by the control beside each run (compare's, interleaved rounds)"
PAIRED = "paired by round, guests up together (compare's default)"
PAIRED_NORMALISED = "paired by round and normalised by the control (guests up together)"
PAIRED_P99 = "p99 latency, paired by round (guests up together; better: lower)"
QUIET_STEAL_PCT = 10.0  # a run during which the host's steal time was above this was in a burst
PAIRED_QUIET = f"paired by round, rounds with a run at > {QUIET_STEAL_PCT:g}% host steal left out"


def _point(key: tuple[str, str, int], boots: list[Boot], kernels: Sequence[Kernel], mode: str,
           threshold: float) -> tuple[PointCalibration | None, dict[str, list]]:
    """One point's calibration and the verdicts of each method over its
    pairs of boots (method -> [(word, half-width)])."""
    pairs = pairs_of(boots, kernels, mode)
    judged = [pair_verdicts(a, b, threshold) for a, b in pairs]
    together = [(a, b) for a, b in pairs if a.pairs_with(b)]
    verdicts = {
        TODAY: [j[0] for j in judged], TWOLEVEL: [j[1] for j in judged],
        NORMALISED: [normalised_verdict(a, b, threshold) for a, b in pairs
                     if a.control is not None and b.control is not None],
        PAIRED: [paired_verdict(a, b, threshold, False) for a, b in together],
        PAIRED_NORMALISED: [paired_verdict(a, b, threshold, True) for a, b in together
                            if a.control is not None and b.control is not None],
        PAIRED_P99: [latency_verdict(a, b, threshold) for a, b in together
                     if a.p99 is not None and b.p99 is not None],
        PAIRED_QUIET: [v for a, b in together if a.steal is not None and b.steal is not None
                       for v in [quiet_verdict(a, b, threshold)] if v is not None]}
    if not judged:
        return None, verdicts
    with_control = [b.normalised() for b in boots if b.control is not None]
    v = {m: calls(m, j) for m, j in verdicts.items()}
    return PointCalibration(*key, _noise_by_kernel(boots, kernels), len(judged), v[TODAY], v[TWOLEVEL],
                            v[NORMALISED], _noise_by_kernel(with_control, kernels), v[PAIRED],
                            v[PAIRED_NORMALISED], v[PAIRED_P99], v[PAIRED_QUIET]), verdicts


def _noise_by_kernel(boots: Sequence[Boot], kernels: Sequence[Kernel]) -> tuple[Noise, ...]:
    return tuple(noise(k.label, [b for b in boots if b.kernel == k.label]) for k in kernels
                 if any(b.kernel == k.label for b in boots))


def normalised_verdict(a: Boot, b: Boot, threshold: float) -> tuple[str, float | None]:
    """B against A as compare judges points measured in interleaved rounds:
    each run normalised by its control neighbour (paired.normalised_runs_change)."""
    c = normalised_runs_change(a.runs, a.control, b.runs, b.control)
    return change_verdict(c, threshold)[0], c.half_width_pct


def paired_verdict(a: Boot, b: Boot, threshold: float, normalised: bool) -> tuple[str, float | None]:
    """B against A as compare judges guests up together: pair by round
    (paired.paired_change), *normalised* by the control runs beside them
    (paired.normalised_change)."""
    c = (normalised_change(a.runs, a.control, b.runs, b.control) if normalised
         else paired_change(a.runs, b.runs))
    return change_verdict(c, threshold)[0], c.half_width_pct


def latency_verdict(a: Boot, b: Boot, threshold: float) -> tuple[str, float | None]:
    """B against A on the runs' p99 completion latency, paired by round:
    the change of 1 / p99, so that better means lower latency, as for IOPS."""
    c = paired_change([1 / x for x in a.p99], [1 / x for x in b.p99])
    return change_verdict(c, threshold)[0], c.half_width_pct


def quiet_verdict(a: Boot, b: Boot, threshold: float) -> tuple[str, float | None] | None:
    """B against A paired by round, leaving out each round in which either
    run saw the host's steal time above QUIET_STEAL_PCT; None when fewer
    than 2 rounds are left."""
    keep = [i for i in range(len(a.runs)) if max(a.steal[i], b.steal[i]) <= QUIET_STEAL_PCT]
    if len(keep) < 2:
        return None
    c = paired_change([a.runs[i] for i in keep], [b.runs[i] for i in keep])
    return change_verdict(c, threshold)[0], c.half_width_pct


# -- the whole -------------------------------------------------------------

def check_runs(runs: Sequence[RunSummary], threshold: float, force: bool) -> list[str]:
    """ConfigError on no run, a run given twice, a run with fewer than two
    variants, a threshold outside (0, 1), or setups that differ without
    *force*; the setup differences otherwise."""
    if not runs:
        raise ConfigError("calibrate", "", "expected at least one run")
    if not 0 < threshold < 1:
        raise ConfigError("--threshold", "", f"expected a fraction between 0 and 1, got {threshold!r}")
    ids = [r.run_id for r in runs]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise ConfigError(dup, "", "the same run is given twice")
    for r in runs:
        if len(r.variants) < 2:
            raise ConfigError(r.path / "summary.json", "variants", "expected at least two variants "
                              "(guests to set against each other), got "
                              + (", ".join(v.name for v in r.variants) or "none"))
    diffs = describe_differences({r.run_id: r.setup for r in runs}) if len(runs) > 1 else []
    if diffs and not force:
        raise ConfigError("calibrate", "", "the runs' setups differ (" + "; ".join(diffs)
                          + "); --force calibrates across them anyway")
    return diffs


def only_variants(runs: Sequence[RunSummary], names: Sequence[str] | None) -> list[RunSummary]:
    """*runs* with only the variants *names* (all of them when None); a
    ConfigError names one that no run has."""
    if not names:
        return list(runs)
    missing = [n for n in names if not any(v.name == n for r in runs for v in r.variants)]
    if missing:
        raise ConfigError("--variants", "", f"expected variants of the runs ("
                          + ", ".join(sorted({v.name for r in runs for v in r.variants}))
                          + f"), got {', '.join(missing)}")
    return [dataclasses.replace(r, variants=[v for v in r.variants if v.name in names]) for r in runs]


def calibrate(runs: Sequence[RunSummary], threshold: float = stats.DEFAULT_THRESHOLD,
              force: bool = False) -> Calibration:
    """A/A calibration (one kernel) or power (two kernels) of *runs*; see
    the module.  ConfigError on bad input (see :func:`check_runs`), more
    than two kernels, or no fio point with a pair of boots."""
    diffs = check_runs(runs, threshold, force)
    kernels, notes = kernels_of(runs)
    if not kernels:
        raise ConfigError("calibrate", "", NO_PAIR)
    if len(kernels) > 2:
        raise ConfigError("calibrate", "", "expected one kernel (A/A) or two (power), got "
                          f"{len(kernels)}: " + ", ".join(f"{k.label} ({k.commit[:12] or 'no commit'})"
                                                          for k in kernels))
    mode = AA if len(kernels) == 1 else POWER
    if mode == POWER:
        notes.append(f"Two kernels: {kernels[1].label} ({kernels[1].commit[:12]}) against "
                     f"{kernels[0].label} ({kernels[0].commit[:12]}); their commits differ, so this "
                     "is a power calibration, not A/A.")
    kernel_of = {label: k.label for k in kernels for label in k.variants}
    points, judged = [], {}
    for key, boots in boots_of(runs, kernel_of).items():
        p, verdicts = _point(key, boots, kernels, mode, threshold)
        for method, words in verdicts.items():
            judged.setdefault(method, []).extend(words)
        if p is not None:
            points.append(p)
    if not points:
        raise ConfigError("calibrate", "", NO_PAIR)
    if diffs:
        notes.append("The runs' setups differ; calibrated across them with --force.")
    return Calibration(mode, threshold, tuple(r.run_id for r in runs), tuple(kernels), tuple(points),
                       *(calls(m, judged.get(m, [])) for m in (TODAY, TWOLEVEL)), tuple(notes),
                       tuple(diffs), bool(diffs),
                       *(calls(m, judged.get(m, [])) for m in (NORMALISED, PAIRED, PAIRED_NORMALISED,
                                                               PAIRED_P99, PAIRED_QUIET)))
