"""Comparing variants: of one run, or of several (yesterday's v1 against
today's v2).  Runs are loaded from their ``summary.json`` (:func:`load_run`)
and compared with confidence intervals (:func:`compare_runs`, statistics in
:mod:`kvariant.stats`): the fio points, the xfstests differences, the
patches that changed between revisions, the stage statuses: a
:class:`kvariant.comparison.Comparison`.  The reports are written by
:func:`kvariant.render.write_reports`, at the end of every run and by
``./pipeline.py compare``.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from . import stats, summary
from .comparison import (BOOTS, CONTROL_TARGET, IN_RUN, NORMALISED, NORMALISED_BOOTS, PAIRED,
                         PAIRED_NORMALISED, REFERENCE, SAME_NAME, WELCH,
                         Comparison, FailedCase, FioPoint, Pair, Patch, PatchChange, PointDelta,
                         Revised, RunInfo, StatusChange, Variant, XfstestsDelta)
from .paired import (group_by, log_ratios, normalise, normalised_boots_change, normalised_change,
                     normalised_runs_change, paired_change)
from .twolevel import ratio_of_means
from .summary import RunSummary, point_runs
from . import tally
from .errors import ConfigError
from .model import Status, VariantResult
from .testcase import STAGES

CONTENTION = re.compile(r"^contention_(fuse|xfs)_(write|read)_waits_per_s$")  # contention.fuse_figures


# Runs on disk


def load_run(run_dir: Path) -> RunSummary:
    """RUN_DIR's summary, checked (:meth:`kvariant.summary.RunSummary.load`)."""
    return RunSummary.load(run_dir)


def resolve_run_dir(arg: str | Path, results_root: Path) -> Path:
    """A run given as a directory, or as a run id under *results_root*."""
    p = Path(arg).expanduser()
    if p.is_dir():
        return p
    under = results_root / str(arg)
    if under.is_dir():
        return under
    raise ConfigError(arg, "", f"no such run directory, nor a run id under {results_root}")


# Building it


def _variant(label: str, run: RunSummary, r: VariantResult) -> Variant:
    stages = {}
    for name in STAGES:
        s = r.stage(name)
        stages[name] = s.status.value if s else "-"
    failed = [FailedCase(s.name, s.status.value, s.message) for s in r.stages
              if s.status in (Status.FAIL, Status.ERROR)]
    patches = [Patch.from_dict(p) for p in r.info.patches or [] if isinstance(p, dict)]
    return Variant(label=label, run_id=run.run_id, name=r.name, status=r.status.value,
                   base=_text(r.info.base), commit=_text(r.info.commit),
                   accel=str(r.info.boot.accel or run.accel.name), stages=stages, failed=failed,
                   patches=patches)


def _text(value: object) -> str:
    """A recorded value as text; "" when it was not recorded."""
    return "" if value is None else str(value)


def _points(labelled: list[tuple[str, VariantResult]], normalise: bool = False,
            run_of: dict[str, str] | None = None, paired: bool = False) -> list[FioPoint]:
    """The fio points of the variants; a FUSE point gets its control's runs
    (to be judged normalised) where both were measured in rounds and the
    run asked for it (``[fio] normalise``) or *normalise*; with *paired*, a
    point measured by guests up together gets its rounds, to be judged pair
    by pair (*run_of*: label -> run id).  Pairing is not the default: at 3
    rounds it was no better calibrated than Welch's t on the runs and had
    less power (docs/measurements.md, "Guests up together")."""
    found: dict[tuple[str, str, int], FioPoint] = {}
    interleaved: set[tuple[str, str, str, int]] = set()  # (label, target, job, numjobs)
    for label, r in labelled:
        for s in r.stages:
            point = s.id.point
            if point is None or s.figures.get("iops") is None:
                continue
            key = (s.id.target, *point)
            p = found.setdefault(key, FioPoint(*key, samples={}, status={}, notes=[], deltas=[]))
            p.samples[label] = stats.sample(point_runs(s.figures))
            if (s.figures.get("interleaved") and s.status == Status.PASS
                    and (normalise or s.figures.get("normalise"))):
                interleaved.add((label, *key))
            guests = s.figures.get("iops_boots")
            if isinstance(guests, list) and len(guests) == p.samples[label].n and len(set(guests)) > 1:
                p.boots[label] = tuple(int(g) for g in guests)
            rounds = s.figures.get("iops_rounds")
            if (paired and s.figures.get("together") and isinstance(rounds, list)
                    and len(rounds) == p.samples[label].n):
                cohort = f"{(run_of or {}).get(label, '')}:{s.figures['together']}"
                p.rounds[label] = (cohort, tuple(int(x) for x in rounds))
            p.status[label] = s.status.value
            waits = {k: float(v) for k, v in s.figures.items() if CONTENTION.match(k)}
            if waits:
                p.contention[label] = waits
            host = {k: v for k, v in s.figures.items() if k.startswith("host_") or k == "measure_wait_s"}
            if host:
                p.host[label] = host
            note = s.figures.get("note")
            if note and note not in p.notes:
                p.notes.append(str(note))
    _attach_controls(found, interleaved)
    targets = list(dict.fromkeys(k[0] for k in found))
    return [found[k] for k in sorted(found, key=lambda k: (targets.index(k[0]), k[1], k[2]))]


def _attach_controls(found: dict[tuple[str, str, int], FioPoint],
                     interleaved: set[tuple[str, str, str, int]]) -> None:
    """Each point of a target other than the control gets, per variant,
    the control's runs of the same job and numjobs when both were measured
    in the same interleaved rounds (run i of each beside the other) and
    passed with as many runs."""
    for (target, job, numjobs), p in found.items():
        control = found.get((CONTROL_TARGET, job, numjobs))
        if target == CONTROL_TARGET or control is None:
            continue
        for label, sample in p.samples.items():
            c = control.samples.get(label)
            if (c is not None and c.n == sample.n and (label, target, job, numjobs) in interleaved
                    and (label, CONTROL_TARGET, job, numjobs) in interleaved):
                p.control_runs[label] = c.runs


def _xfstests_of(r: VariantResult) -> dict[str, dict[str, tuple[str, str]]]:
    """fstype -> test -> (status, message), for testcases xfstests/<fstype>/<dir>/<test>."""
    return {f: {test: (s.status.value, s.message) for test, s in tests.items()}
            for f, tests in tally.by_fstype(r.stages, tests_only=True).items()}


def xfstests_delta(fstype: str, a: str, b: str, kind: str, ta: dict[str, tuple[str, str]],
                   tb: dict[str, tuple[str, str]]) -> XfstestsDelta:
    d = XfstestsDelta(fstype, a, b, kind)
    for test in sorted(set(ta) | set(tb)):
        sa, ma = ta.get(test, ("missing", ""))
        sb, mb = tb.get(test, ("missing", ""))
        moved = tally.change(sa, sb)
        if moved is not None:  # the message of the side that did not pass
            message = ma if moved in ("fixed", "now_run") else mb
            getattr(d, moved).append(StatusChange(test, sa, sb, message))
    return d


def patch_change(a: str, b: str, pa: list[Patch], pb: list[Patch]) -> PatchChange:
    """B's patches against A's (see :class:`PatchChange`)."""
    c = PatchChange(a, b, unchanged=[], changed=[], reworded=[], added=[], removed=[])
    left = list(pa)
    unmatched = []
    for p in pb:
        old = next((q for q in left if q.subject == p.subject), None)
        if old is None:
            unmatched.append(p)
            continue
        left.remove(old)
        if old.patch_id == p.patch_id:
            c.unchanged.append(p)
        else:
            c.changed.append(Revised(p.subject, old.subject, old.patch_id, p.patch_id))
    for p in unmatched:
        old = next((q for q in left if p.patch_id and q.patch_id == p.patch_id), None)
        if old is None:
            c.added.append(p)
        else:
            left.remove(old)
            c.reworded.append(Revised(p.subject, old.subject, old.patch_id, p.patch_id))
    c.removed = left
    return c


def _reference(ref: str | None, variants: list[Variant]) -> str:
    if ref is None:
        return variants[0].label
    if any(v.label == ref for v in variants):
        return ref
    named = [v.label for v in variants if v.name == ref]
    if len(named) == 1:
        return named[0]
    if named:
        raise ConfigError("--reference", "", f"{ref!r} is in several runs ({', '.join(named)}); "
                          f"name one as RUNID:{ref}")
    raise ConfigError("--reference", "", f"no variant {ref!r}; the runs hold: "
                      + ", ".join(v.label for v in variants))


def _pairs(ref: str, variants: list[Variant]) -> list[Pair]:
    """Each variant against the reference; within each run, each variant
    against the run's first one; each variant against its name's first
    occurrence in an earlier run.  A pair is listed once (in either order)."""
    pairs = [Pair(ref, v.label, REFERENCE) for v in variants if v.label != ref]

    def add(a: str, b: str, kind: str) -> None:
        if not any({p.a, p.b} == {a, b} for p in pairs):
            pairs.append(Pair(a, b, kind))

    runs = list(dict.fromkeys(v.run_id for v in variants))
    for run in runs:
        in_run = [v for v in variants if v.run_id == run]
        for v in in_run[1:]:
            add(in_run[0].label, v.label, IN_RUN)
    first: dict[str, str] = {}
    for v in variants:
        if v.name not in first:
            first[v.name] = v.label
        else:
            add(first[v.name], v.label, SAME_NAME)
    return pairs


def _patch_pairs(variants: list[Variant], pairs: list[Pair]) -> list[tuple[str, str]]:
    """Consecutive variants of a run, then the compared pairs whose A has
    patches (that B adds all of its patches to none is in the list of
    patches already)."""
    out: list[tuple[str, str]] = []
    for x, y in zip(variants, variants[1:]):
        if x.run_id == y.run_id and (x.patches or y.patches):
            out.append((x.label, y.label))
    by_label = {v.label: v for v in variants}
    for p in pairs:
        if (p.a, p.b) not in out and by_label[p.a].patches:
            out.append((p.a, p.b))
    return out


def _repeats_needed(p: FioPoint, d: PointDelta, threshold: float) -> int | None:
    """The rounds (paired) or repeats a side that would narrow *d*'s
    interval to ±threshold, from its spread; 0 when there is none to tell."""
    a, b = p.samples[d.a], p.samples[d.b]
    if d.method in (PAIRED, PAIRED_NORMALISED) and a.n >= 2:
        ra, rb = list(a.runs), list(b.runs)
        if d.method == PAIRED_NORMALISED:
            ra, rb = normalise(ra, p.control_runs[d.a]), normalise(rb, p.control_runs[d.b])
        return stats.pairs_needed(statistics.stdev(log_ratios(ra, rb)), threshold)
    if a.sd is not None and b.sd is not None and a.mean:
        return stats.repeats_needed(a.sd / a.mean, b.sd / a.mean, threshold)
    return 0


def _noise_note(points: list[FioPoint], runs: list[RunSummary], threshold: float) -> list[str]:
    ref_deltas = [(p, d) for p in points for d in p.deltas if d.kind == REFERENCE]
    wide = [(p, d) for p, d in ref_deltas
            if d.verdict == stats.INCONCLUSIVE and d.difference.ci_low_pct is not None]
    single = [(p, d) for p, d in ref_deltas
              if d.verdict == stats.INCONCLUSIVE and d.difference.ci_low_pct is None]
    notes = []
    if wide:
        hw = sorted((d.difference.ci_high_pct - d.difference.ci_low_pct) / 2 for _, d in ref_deltas
                    if d.difference.ci_low_pct is not None)
        need = [n if n is not None else 10 ** 9 for n in (_repeats_needed(p, d, threshold)
                                                             for p, d in ref_deltas) if n != 0]
        need.sort()
        n_mid = need[len(need) // 2] if need else 10 ** 9
        if 20 < n_mid < 10 ** 9:
            n_mid = int(round(n_mid, -1))
        n_now = sorted(s.n for p in points for s in p.samples.values())[0]
        tcg = any(r.accel.name == "tcg" for r in runs)
        t = f"±{threshold * 100:g}%"
        text = (f"The spread is too large to conclude at {len(wide)} of {len(ref_deltas)} "
                f"comparisons" + (" (the guest ran under TCG, whose timing is noisy)" if tcg else "")
                + f": with {n_now} repeats the 95% CI of a change spans "
                f"±{hw[len(hw) // 2]:.0f}% (median), so only a larger change can show. ")
        if n_mid < 10 ** 9:
            text += f"About {n_mid} repeats per point (fio.repeat) would narrow it to {t}"
        else:
            text += f"No practical number of repeats would narrow it to {t}"
        text += "; a KVM guest is far less noisy." if tcg else "."
        notes.append(text)
    if single:
        notes.append(f"{len(single)} comparison(s) rest on a single run per point: no interval, "
                     "no verdict (set fio.repeat to 3 or more).")
    return notes


def compare_runs(runs: list[RunSummary], threshold: float = stats.DEFAULT_THRESHOLD,
                 reference: str | None = None, force: bool = False,
                 normalise: bool = False, paired: bool = False) -> Comparison:
    """Compare the variants of *runs*: each against the reference (the first
    variant of the first run unless *reference* names one, as ``variant`` or
    ``RUNID:variant``), each against the first variant of its run, and each
    against the same variant name in an earlier run (see :func:`_pairs`).
    With several runs, variants are labelled ``RUNID:variant``.  Bad input
    (no run, a threshold outside (0, 1), an unknown or ambiguous reference,
    a run given twice) raises ConfigError.  Variants of runs whose setups
    differ (see :func:`kvariant.summary.setup_record`) get no better/worse
    verdict ("not compared") unless *force*.  FUSE points are judged on
    runs normalised by their control where the run asked for it or
    *normalise*, and pair by pair (by round) with *paired* where the
    variants' guests were up together (see :func:`_points`)."""
    _check_runs(runs, threshold)
    labelled = [(f"{run.run_id}:{r.name}" if len(runs) > 1 else r.name, run, r)
                for run in runs for r in run.variants]
    variants = [_variant(label, run, r) for label, run, r in labelled]
    if not variants:
        raise ConfigError(runs[0].path / "summary.json", "variants", "the run holds no variant")
    ref = _reference(reference, variants)
    pairs = _pairs(ref, variants)
    results = [(label, r) for label, _, r in labelled]
    points = _points(results, normalise, {label: run.run_id for label, run, _ in labelled}, paired)
    settings = {r.run_id: r.setup for r in runs}
    _judge(points, pairs, threshold, force, {v.label: settings[v.run_id] for v in variants})
    counts, deltas = _xfstests_compared(results, pairs)
    by_label = {v.label: v for v in variants}
    changes = [patch_change(a, b, by_label[a].patches, by_label[b].patches)
               for a, b in _patch_pairs(variants, pairs)]
    infos = [RunInfo(r.run_id, str(r.path), r.accel.name, r.accel.reason, r.started,
                     r.finished is not False, r.interrupted, r.fio_setup) for r in runs]
    return Comparison(threshold=threshold, confidence=stats.CONFIDENCE, reference=ref, runs=infos,
                      variants=variants, pairs=pairs, points=points, xfstests_counts=counts,
                      xfstests=deltas, patch_changes=changes,
                      notes=_notes(runs, points, ref, threshold),
                      setup_differences=summary.describe_differences(settings) if len(runs) > 1 else [],
                      forced=force)


def _check_runs(runs: list[RunSummary], threshold: float) -> None:
    if not runs:
        raise ConfigError("compare", "", "expected at least one run")
    if not 0 < threshold < 1:
        raise ConfigError("--threshold", "", f"expected a fraction between 0 and 1 (0.05 = 5%), "
                          f"got {threshold!r}")
    ids = [r.run_id for r in runs]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise ConfigError(dup, "", "the same run is given twice")


def _judge(points: list[FioPoint], pairs: list[Pair], threshold: float, force: bool,
           setup_of: dict[str, dict]) -> None:
    """Each point's deltas, one per pair that both sides measured;
    *setup_of*: label -> the setup record of its run."""
    for p in points:
        for pair in pairs:
            a, b = p.samples.get(pair.a), p.samples.get(pair.b)
            if a is None or b is None:
                continue
            diff, method = _difference(p, pair.a, pair.b)
            word, why = _setup_verdict(stats.verdict(diff, threshold), force, summary.setup_differences(
                setup_of[pair.a], setup_of[pair.b]))
            p.deltas.append(PointDelta(pair.a, pair.b, pair.kind, diff, word, why, method))


def _difference(p: FioPoint, a: str, b: str) -> tuple[stats.Difference, str]:
    """B against A at point *p*.  Runs of guests up together are paired by
    round (normalised by the control's runs beside them where both sides
    have them); else, normalised with the guests or runs as units, the
    guests' means, or Welch's t on the raw runs."""
    sa, sb = p.samples[a], p.samples[b]
    ca, cb = p.control_runs.get(a), p.control_runs.get(b)
    ga, gb = p.boots.get(a), p.boots.get(b)
    blocks = ga if ga and ga == gb else None  # guest k of A was up beside guest k of B
    if p.paired(a, b) and ca is not None and cb is not None:
        c, method = normalised_change(sa.runs, ca, sb.runs, cb, blocks), PAIRED_NORMALISED
    elif p.paired(a, b):
        c, method = paired_change(sa.runs, sb.runs, blocks), PAIRED
    elif ca is not None and cb is not None and ga and gb:
        c, method = normalised_boots_change(sa.runs, ca, ga, sb.runs, cb, gb), NORMALISED_BOOTS
    elif ca is not None and cb is not None:
        c, method = normalised_runs_change(sa.runs, ca, sb.runs, cb), NORMALISED
    elif ga and gb:
        c = ratio_of_means(group_by(sa.runs, ga), group_by(sb.runs, gb))
        method = BOOTS
    else:
        return stats.welch(sa, sb), WELCH
    return stats.difference_of_ratio(sa.mean, c.ratio, c.ci_low, c.ci_high, c.df), method


def _xfstests_compared(labelled: list[tuple[str, VariantResult]], pairs: list[Pair]
                       ) -> tuple[dict[str, dict[str, dict[str, int]]], list[XfstestsDelta]]:
    """The counts (fstype -> label -> counts) and each pair's differences."""
    xfs = {label: _xfstests_of(r) for label, r in labelled}
    fstypes = list(dict.fromkeys(f for x in xfs.values() for f in x))
    counts = {f: {label: tally.counts(st for st, _ in by_f[f].values())
                  for label, by_f in xfs.items() if f in by_f} for f in fstypes}
    # a variant without results on an fstype (no xfstests in that run, or
    # a failed boot) is not compared on it: all its tests would look new
    deltas = [xfstests_delta(f, p.a, p.b, p.kind, xfs[p.a][f], xfs[p.b][f])
              for f in fstypes for p in pairs if f in xfs[p.a] and f in xfs[p.b]]
    return counts, deltas


def _notes(runs: list[RunSummary], points: list[FioPoint], ref: str, threshold: float) -> list[str]:
    notes = []
    if len(runs) > 1:
        notes += [f"Run {r.run_id} does not record its setup (an older summary): of it only the "
                  "accelerator is checked." for r in runs if not r.records_setup]
    for r in runs:
        if r.interrupted or r.finished is False:
            notes.append(f"Run {r.run_id} was {'interrupted' if r.interrupted else 'not finished'}: "
                         "it holds only what finished.")
    if points and not any(ref in p.samples for p in points):
        notes.append(f"The reference {ref} has no fio figures (see its stages): no change is computed "
                     "against it; choose another reference.")
    notes += _noise_note(points, runs, threshold)
    moved = sorted({f"{d.b} at numjobs {p.numjobs}: {d.verdict}" for p in points if p.target == "xfs"
                    for d in p.deltas if d.kind == REFERENCE and d.verdict in (stats.BETTER, stats.WORSE)})
    if moved:
        notes.append("The xfs target runs without FUSE, as a control: a change there ("
                     + ", ".join(moved) + ") that the patches cannot cause means the variants' "
                     "guests ran at different speeds, and the other targets' changes carry that too.")
    return notes


def _setup_verdict(verdict: tuple[str, str], force: bool, differing: list[str]) -> tuple[str, str]:
    """A verdict across runs whose setups differ on *differing* keys: none
    ("not compared"), or with --force the verdict with that said."""
    word, why = verdict
    if not differing:
        return word, why
    if force:
        return word, f"{why}; the setups differ ({', '.join(differing)}), judged with --force"
    return stats.NOT_COMPARED, f"the runs' setups differ ({', '.join(differing)}); --force judges anyway"
