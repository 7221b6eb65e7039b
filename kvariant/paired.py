"""Paired comparisons: runs of A and B taken next to each other in time.

When A's and B's runs alternate within one time block (A, B, B, A, ...),
drift and bursts of the host hit both members of a pair, and the ratio of a
pair cancels them.  The change is then the geometric mean of the per-pair
ratios B_i / A_i, with a Student t interval on the log ratios (the paired t
interval on log figures; e.g. Jain, *The Art of Computer Systems Performance
Analysis*, 1991, section 13.4.1, on the log scale for ratios as in Fleming &
Wallace, "How not to lie with statistics", CACM 1986).

Pairs that share a boot (the guests of A and B booted together as one block)
also share that boot pair's effect, so they are not independent: with block
labels, the interval comes from the block means of the log ratios with
(blocks - 1) degrees of freedom, the level that varies (Kalibera & Jones,
ISMM 2013).  Without labels, or with a single block, it comes from the pairs
and says so: it then leaves the boot-to-boot variance out.

:func:`normalised_change` first divides each run of the target by its
neighbouring control run in the same guest (raw XFS, which the patches under
test do not touch), then compares the normalised figures pair by pair.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Sequence

from .twolevel import Change, log_interval


def _positive(name: str, xs: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(x) for x in xs)
    for i, x in enumerate(out):
        if not (math.isfinite(x) and x > 0):
            raise ValueError(f"{name} run {i} is {x!r}: runs must be positive finite numbers")
    return out


def _same_length(**seqs: Sequence) -> None:
    lengths = {k: len(v) for k, v in seqs.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("paired runs must have equal lengths, got "
                         + ", ".join(f"{k} {n}" for k, n in lengths.items()))
    if not next(iter(lengths.values())):
        raise ValueError("no pairs: at least one pair of runs is needed")


def log_ratios(a: Sequence[float], b: Sequence[float]) -> tuple[float, ...]:
    """log(b_i / a_i) for each pair; ValueError on unequal lengths, no pair,
    or a run that is not a positive finite number."""
    _same_length(a=a, b=b)
    return tuple(math.log(y / x) for x, y in zip(_positive("A", a), _positive("B", b)))


def group_by(values: Sequence[float], labels: Sequence[Hashable]) -> tuple[tuple[float, ...], ...]:
    """*values* grouped by *labels*, groups in order of first appearance."""
    _same_length(values=values, labels=labels)
    groups: dict[Hashable, list[float]] = {}
    for v, k in zip(values, labels):
        groups.setdefault(k, []).append(float(v))
    return tuple(tuple(g) for g in groups.values())


def paired_change(a: Sequence[float], b: Sequence[float],
                  blocks: Sequence[Hashable] | None = None) -> Change:
    """The change B / A from pairs (a_i, b_i) taken next to each other: the
    geometric mean of b_i / a_i, with a 95% t interval on the log ratios.

    With *blocks* (one label per pair: the boot pair or time block it was
    measured in) and at least 2 blocks, the interval is a t interval on the
    block means of the log ratios, (blocks - 1) degrees of freedom, and the
    ratio is exp of their mean (each block weighs the same).  Otherwise it is
    on the pairs, (pairs - 1) degrees of freedom.  No interval from a single
    unit; a zero-width interval when every unit has the same log ratio.
    """
    d = log_ratios(a, b)
    units, level = (d, "pairs")
    if blocks is not None:
        groups = group_by(d, blocks)
        if len(groups) >= 2:
            units, level = tuple(statistics.fmean(g) for g in groups), "blocks"
    method = f"t on log ratios over {level}"
    if blocks is not None and level == "pairs":
        method += " (one block: boot-to-boot variance not in the interval)"
    n = len(units)
    mean = statistics.fmean(units)
    if n < 2:
        return log_interval(mean, 0.0, None, n, level, method)
    se = statistics.stdev(units) / math.sqrt(n)
    return log_interval(mean, se, float(n - 1), n, level, method)


def normalise(target: Sequence[float], control: Sequence[float]) -> tuple[float, ...]:
    """Each target run divided by its neighbouring control run: target_i /
    control_i (both from the same guest, taken next to each other)."""
    _same_length(target=target, control=control)
    return tuple(t / c for t, c in zip(_positive("target", target), _positive("control", control)))


def normalised_change(a_target: Sequence[float], a_control: Sequence[float],
                      b_target: Sequence[float], b_control: Sequence[float],
                      blocks: Sequence[Hashable] | None = None) -> Change:
    """The paired change of the target normalised by its control: pair i
    compares (b_target_i / b_control_i) with (a_target_i / a_control_i),
    as :func:`paired_change` does."""
    c = paired_change(normalise(a_target, a_control), normalise(b_target, b_control), blocks)
    return Change(c.ratio, c.ci_low, c.ci_high, c.df, c.n, c.level,
                  "normalised by the control run, " + c.method)


def normalised_runs_change(a_target: Sequence[float], a_control: Sequence[float],
                           b_target: Sequence[float], b_control: Sequence[float]) -> Change:
    """The change B / A of a target normalised by its control, when A's and
    B's runs come from different guests (one after the other): each side's
    runs are target_i / control_i (the control run beside it in the same
    guest), and the change is the ratio of the geometric means of the two
    sides, with Welch's t interval on the log normalised runs
    (Welch-Satterthwaite degrees of freedom; Fleming & Wallace's log scale
    for ratios).  What moves the whole guest (its boot, a burst that hits
    both neighbours) divides out; what moves the control alone is the
    control's own verdict.  No interval with fewer than 2 runs on a side;
    a zero-width interval when no run differs."""
    la = [math.log(x) for x in normalise(a_target, a_control)]
    lb = [math.log(x) for x in normalise(b_target, b_control)]
    return _welch_on_logs(la, lb, "runs",
                          "normalised by the control run beside each run, Welch t on log ratios over runs")


def _welch_on_logs(la: Sequence[float], lb: Sequence[float], level: str, method: str) -> Change:
    """exp(mean(lb) - mean(la)) with Welch's t interval (Welch-Satterthwaite
    df) on the two sides' log values; no interval with fewer than 2 a side."""
    d = statistics.fmean(lb) - statistics.fmean(la)
    n = min(len(la), len(lb))
    if n < 2:
        return log_interval(d, 0.0, None, n, level, method)
    va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    se2 = va + vb
    df = (se2 * se2 / (va * va / (len(la) - 1) + vb * vb / (len(lb) - 1)) if se2 > 0
          else float(len(la) + len(lb) - 2))
    return log_interval(d, math.sqrt(se2), df, n, level, method)


def normalised_boots_change(a_target: Sequence[float], a_control: Sequence[float],
                            a_boots: Sequence[Hashable],
                            b_target: Sequence[float], b_control: Sequence[float],
                            b_boots: Sequence[Hashable]) -> Change:
    """As :func:`normalised_runs_change` when each side measured in several
    guests (*a_boots*, *b_boots*: the guest of each run): each guest's
    figure is the mean of its log normalised runs, and the interval is
    Welch's t on those guest figures, the level that varies (Kalibera &
    Jones, ISMM 2013): a guest whose target alone runs fast or slow is
    then in the interval.  No interval with fewer than 2 guests a side."""
    def guests(target, control, boots) -> list[float]:
        logs = [math.log(x) for x in normalise(target, control)]
        return [statistics.fmean(g) for g in group_by(logs, boots)]

    return _welch_on_logs(guests(a_target, a_control, a_boots), guests(b_target, b_control, b_boots),
                          "boots", "normalised by the control run beside each run, Welch t on the "
                          "guests' mean log ratios")
