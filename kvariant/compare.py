"""Comparing variants: of one run, or of several (yesterday's v1 against
today's v2).  Runs are loaded from their ``summary.json`` (:func:`load_run`)
and compared with confidence intervals (:func:`compare_runs`, statistics in
:mod:`kvariant.stats`): the fio points, the xfstests differences, the
patches that changed between revisions, the stage statuses, and
:func:`regressions`.  The reports are written by
:func:`kvariant.render.write_reports`, at the end of every run and by
``./pipeline.py compare``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import NamedTuple

from . import stats, summary
from .summary import RunSummary, repeat_iops
from .workloads.xfstests import tally
from .errors import ConfigError
from .model import Status, VariantResult

POINT = re.compile(r"^fio/(?P<target>[^/]+)/(?P<name>.+)-nj(?P<nj>\d+)$")


def fmt_iops(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}K"
    return f"{v:.0f}"


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


# The comparison, as data

STAGE_NAMES = ("apply", "build", "boot", "storage")
REFERENCE, IN_RUN, SAME_NAME = "reference", "in-run", "same-name"


@dataclasses.dataclass
class Patch:
    subject: str
    patch_id: str = ""
    commit: str = ""
    source: str = ""

    @property
    def short_id(self) -> str:
        return self.patch_id[:12] if self.patch_id else "-"

    to_dict = dataclasses.asdict

    @classmethod
    def from_dict(cls, d: dict) -> "Patch":
        return cls(**{k: str(d.get(k) or "") for k in ("subject", "patch_id", "commit", "source")})


@dataclasses.dataclass
class FailedCase:
    """A testcase that failed or errored, with its message."""

    name: str
    status: str
    message: str

    to_dict = dataclasses.asdict

    @classmethod
    def from_dict(cls, d: dict) -> "FailedCase":
        return cls(**d)


@dataclasses.dataclass
class Variant:
    label: str  # "baseline", or "RUNID:baseline" when several runs are compared
    run_id: str
    name: str
    status: str
    base: str
    commit: str
    accel: str
    stages: dict[str, str]  # apply/build/boot/storage -> pass/fail/error/skip, "-" when absent
    failed: list[FailedCase]
    patches: list[Patch]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["failed"] = [f.to_dict() for f in self.failed]
        d["patches"] = [p.to_dict() for p in self.patches]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Variant":
        return cls(**{**d, "failed": [FailedCase.from_dict(f) for f in d["failed"]],
                      "patches": [Patch.from_dict(p) for p in d["patches"]]})


@dataclasses.dataclass
class Pair:
    """B compared against A: ``reference`` (B against the reference),
    ``in-run`` (B against the first variant of its run, when that is not the
    reference) or ``same-name`` (B against the same variant name in an
    earlier run)."""

    a: str
    b: str
    kind: str

    to_dict = dataclasses.asdict

    @classmethod
    def from_dict(cls, d: dict) -> "Pair":
        return cls(**d)


@dataclasses.dataclass
class PointDelta:
    a: str
    b: str
    kind: str
    difference: stats.Difference
    verdict: str
    reason: str

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "kind": self.kind, **self.difference.to_dict(),
                "verdict": self.verdict, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> "PointDelta":
        fields = {f.name for f in dataclasses.fields(stats.Difference)}
        return cls(a=d["a"], b=d["b"], kind=d["kind"],
                   difference=stats.Difference.from_dict({k: d[k] for k in fields}),
                   verdict=d["verdict"], reason=d["reason"])


@dataclasses.dataclass
class FioPoint:
    """One fio point (target, job, numjobs) across the variants."""

    target: str
    job: str  # "randwrite-4k"
    numjobs: int
    samples: dict[str, stats.Sample]  # label -> IOPS over the repeats
    status: dict[str, str]  # label -> the point's testcase status
    notes: list[str]
    deltas: list[PointDelta]

    @property
    def testcase(self) -> str:
        return f"fio/{self.target}/{self.job}-nj{self.numjobs}"

    def delta(self, a: str, b: str) -> PointDelta | None:
        return next((d for d in self.deltas if d.a == a and d.b == b), None)

    def to_dict(self) -> dict:
        return {"target": self.target, "job": self.job, "numjobs": self.numjobs,
                "testcase": self.testcase,
                "samples": {k: s.to_dict() for k, s in self.samples.items()},
                "status": dict(self.status), "notes": list(self.notes),
                "deltas": [d.to_dict() for d in self.deltas]}

    @classmethod
    def from_dict(cls, d: dict) -> "FioPoint":
        return cls(target=d["target"], job=d["job"], numjobs=d["numjobs"],
                   samples={k: stats.Sample.from_dict(s) for k, s in d["samples"].items()},
                   status=dict(d["status"]), notes=list(d["notes"]),
                   deltas=[PointDelta.from_dict(x) for x in d["deltas"]])


@dataclasses.dataclass
class StatusChange:
    """An xfstests test whose status differs: A's and B's status (pass,
    fail, error, skip, or missing when the variant has no such testcase) and
    the message of the side that did not pass."""

    test: str  # "generic/001"
    a: str
    b: str
    message: str = ""

    to_dict = dataclasses.asdict

    @classmethod
    def from_dict(cls, d: dict) -> "StatusChange":
        return cls(**d)


XFSTESTS_KINDS = tally.CHANGES


@dataclasses.dataclass
class XfstestsDelta:
    """One fstype, B against A.  ``new_failures``: fail/error in B, not in A
    (A may have passed, skipped or not had the test); ``fixed``: A failed, B
    passes; ``now_run``: A skipped or lacked it, B passes; ``no_longer_run``:
    A ran it, B skipped or lacks it; ``other``: fail <-> error."""

    fstype: str
    a: str
    b: str
    kind: str
    new_failures: list[StatusChange] = dataclasses.field(default_factory=list)
    fixed: list[StatusChange] = dataclasses.field(default_factory=list)
    now_run: list[StatusChange] = dataclasses.field(default_factory=list)
    no_longer_run: list[StatusChange] = dataclasses.field(default_factory=list)
    other: list[StatusChange] = dataclasses.field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, k) for k in XFSTESTS_KINDS)

    def to_dict(self) -> dict:
        d = {"fstype": self.fstype, "a": self.a, "b": self.b, "kind": self.kind}
        d.update({k: [t.to_dict() for t in getattr(self, k)] for k in XFSTESTS_KINDS})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "XfstestsDelta":
        return cls(fstype=d["fstype"], a=d["a"], b=d["b"], kind=d["kind"],
                   **{k: [StatusChange.from_dict(t) for t in d[k]] for k in XFSTESTS_KINDS})


@dataclasses.dataclass
class Revised:
    """A patch with the same subject and another patch-id (``changed``), or
    the same patch-id under another subject (``reworded``)."""

    subject: str  # B's subject
    old_subject: str
    old_patch_id: str
    patch_id: str

    to_dict = dataclasses.asdict

    @classmethod
    def from_dict(cls, d: dict) -> "Revised":
        return cls(**d)


@dataclasses.dataclass
class PatchChange:
    """The patches of B against A.  Patches are matched by subject: same
    subject and patch-id is unchanged, same subject and another patch-id is
    changed.  Of the rest, a removed and an added patch with the same
    patch-id are one reworded patch; the others are added or removed."""

    a: str
    b: str
    unchanged: list[Patch] = dataclasses.field(default_factory=list)
    changed: list[Revised] = dataclasses.field(default_factory=list)
    reworded: list[Revised] = dataclasses.field(default_factory=list)
    added: list[Patch] = dataclasses.field(default_factory=list)
    removed: list[Patch] = dataclasses.field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.changed or self.reworded or self.added or self.removed)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b,
                "unchanged": [p.to_dict() for p in self.unchanged],
                "changed": [r.to_dict() for r in self.changed],
                "reworded": [r.to_dict() for r in self.reworded],
                "added": [p.to_dict() for p in self.added],
                "removed": [p.to_dict() for p in self.removed]}

    @classmethod
    def from_dict(cls, d: dict) -> "PatchChange":
        return cls(a=d["a"], b=d["b"], unchanged=[Patch.from_dict(p) for p in d["unchanged"]],
                   changed=[Revised.from_dict(r) for r in d["changed"]],
                   reworded=[Revised.from_dict(r) for r in d["reworded"]],
                   added=[Patch.from_dict(p) for p in d["added"]],
                   removed=[Patch.from_dict(p) for p in d["removed"]])


@dataclasses.dataclass
class RunInfo:
    run_id: str
    path: str
    accel: str  # kvm | tcg | ?
    accel_reason: str
    started: str
    finished: bool
    interrupted: bool
    setup: str = ""

    to_dict = dataclasses.asdict

    @classmethod
    def from_dict(cls, d: dict) -> "RunInfo":
        return cls(**d)


@dataclasses.dataclass
class Comparison:
    """Everything a report shows; :meth:`to_dict` is report.json (its keys
    are documented in :func:`kvariant.render.json.comparison_json`)."""

    threshold: float
    confidence: float
    reference: str
    runs: list[RunInfo]
    variants: list[Variant]
    pairs: list[Pair]
    points: list[FioPoint]
    xfstests_counts: dict[str, dict[str, dict[str, int]]]  # fstype -> label -> counts
    xfstests: list[XfstestsDelta]
    patch_changes: list[PatchChange]
    notes: list[str]
    setup_differences: list[str] = dataclasses.field(default_factory=list)  # "fio.bs: 4k in A, 64k in B"
    forced: bool = False  # --force: verdicts across different setups all the same

    def variant(self, label: str) -> Variant:
        return next(v for v in self.variants if v.label == label)

    @property
    def labels(self) -> list[str]:
        return [v.label for v in self.variants]

    def to_dict(self) -> dict:
        return {
            "schema": "kvariant-compare/1",
            "threshold": self.threshold,
            "confidence": self.confidence,
            "change_of": "mean",
            "reference": self.reference,
            "runs": [r.to_dict() for r in self.runs],
            "variants": [v.to_dict() for v in self.variants],
            "pairs": [p.to_dict() for p in self.pairs],
            "fio": [p.to_dict() for p in self.points],
            "xfstests": {"counts": self.xfstests_counts,
                         "deltas": [x.to_dict() for x in self.xfstests]},
            "patch_changes": [c.to_dict() for c in self.patch_changes],
            "regressions": [r._asdict() for r in regressions(self)],
            "notes": list(self.notes),
            "setup_differences": list(self.setup_differences),
            "forced": self.forced,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Comparison":
        return cls(threshold=d["threshold"], confidence=d["confidence"], reference=d["reference"],
                   runs=[RunInfo.from_dict(r) for r in d["runs"]],
                   variants=[Variant.from_dict(v) for v in d["variants"]],
                   pairs=[Pair.from_dict(p) for p in d["pairs"]],
                   points=[FioPoint.from_dict(p) for p in d["fio"]],
                   xfstests_counts=d["xfstests"]["counts"],
                   xfstests=[XfstestsDelta.from_dict(x) for x in d["xfstests"]["deltas"]],
                   patch_changes=[PatchChange.from_dict(c) for c in d["patch_changes"]],
                   notes=list(d["notes"]), setup_differences=list(d.get("setup_differences", [])),
                   forced=bool(d.get("forced", False)))


# Building it


def _variant(label: str, run: RunSummary, r: VariantResult) -> Variant:
    stages = {}
    for name in STAGE_NAMES:
        s = r.stage(name)
        stages[name] = s.status.value if s else "-"
    failed = [FailedCase(s.name, s.status.value, s.message) for s in r.stages
              if s.status in (Status.FAIL, Status.ERROR)]
    patches = [Patch.from_dict(p) for p in r.info.get("patches") or [] if isinstance(p, dict)]
    return Variant(label=label, run_id=run.run_id, name=r.name, status=r.status.value,
                   base=str(r.info.get("base", "")), commit=str(r.info.get("commit", "")),
                   accel=str(r.info.get("accel") or run.accel.name), stages=stages, failed=failed,
                   patches=patches)


def _runs_of(figures: dict) -> list[float]:
    """The per-repeat IOPS of a point: ``iops_runs`` ("25240,15800,21382"),
    else the one figure ``iops``."""
    runs = figures.get("iops_runs")
    if (isinstance(runs, str) and runs.strip()) or (isinstance(runs, list) and runs):
        return repeat_iops(runs)
    return [float(figures["iops"])]


def _points(labelled: list[tuple[str, VariantResult]]) -> list[FioPoint]:
    found: dict[tuple[str, str, int], FioPoint] = {}
    for label, r in labelled:
        for s in r.stages:
            m = POINT.match(s.name)
            if not m or s.figures.get("iops") is None:
                continue
            key = (m.group("target"), m.group("name"), int(m.group("nj")))
            p = found.setdefault(key, FioPoint(*key, samples={}, status={}, notes=[], deltas=[]))
            p.samples[label] = stats.sample(_runs_of(s.figures))
            p.status[label] = s.status.value
            note = s.figures.get("note")
            if note and note not in p.notes:
                p.notes.append(str(note))
    targets = list(dict.fromkeys(k[0] for k in found))
    return [found[k] for k in sorted(found, key=lambda k: (targets.index(k[0]), k[1], k[2]))]


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
    c = PatchChange(a, b)
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
        need = []
        for p, d in ref_deltas:
            a, b = p.samples[d.a], p.samples[d.b]
            if a.sd is not None and b.sd is not None and a.mean:
                n = stats.repeats_needed(a.sd / a.mean, b.sd / a.mean, threshold)
                need.append(n if n is not None else 10 ** 9)
        need.sort()
        n_mid = need[len(need) // 2]
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
                 reference: str | None = None, force: bool = False) -> Comparison:
    """Compare the variants of *runs*: each against the reference (the first
    variant of the first run unless *reference* names one, as ``variant`` or
    ``RUNID:variant``), each against the first variant of its run, and each
    against the same variant name in an earlier run (see :func:`_pairs`).
    With several runs, variants are labelled ``RUNID:variant``.  Bad input
    (no run, a threshold outside (0, 1), an unknown or ambiguous reference,
    a run given twice) raises ConfigError.  Variants of runs whose setups
    differ (see :func:`kvariant.summary.setup_record`) get no better/worse
    verdict ("not compared") unless *force*."""
    if not runs:
        raise ConfigError("compare", "", "expected at least one run")
    if not 0 < threshold < 1:
        raise ConfigError("--threshold", "", f"expected a fraction between 0 and 1 (0.05 = 5%), "
                          f"got {threshold!r}")
    ids = [r.run_id for r in runs]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise ConfigError(dup, "", "the same run is given twice")
    several = len(runs) > 1
    labelled: list[tuple[str, VariantResult]] = []
    variants: list[Variant] = []
    for run in runs:
        for r in run.variants:
            label = f"{run.run_id}:{r.name}" if several else r.name
            labelled.append((label, r))
            variants.append(_variant(label, run, r))
    if not variants:
        raise ConfigError(runs[0].path / "summary.json", "variants", "the run holds no variant")
    ref = _reference(reference, variants)
    pairs = _pairs(ref, variants)

    points = _points(labelled)
    settings = {r.run_id: r.setup for r in runs}
    run_of = {v.label: v.run_id for v in variants}
    for p in points:
        for pair in pairs:
            a, b = p.samples.get(pair.a), p.samples.get(pair.b)
            if a is None or b is None:
                continue
            diff = stats.welch(a, b)
            word, why = _setup_verdict(stats.verdict(diff, threshold), force, summary.setup_differences(
                settings[run_of[pair.a]], settings[run_of[pair.b]]))
            p.deltas.append(PointDelta(pair.a, pair.b, pair.kind, diff, word, why))

    xfs = {label: _xfstests_of(r) for label, r in labelled}
    fstypes = list(dict.fromkeys(f for x in xfs.values() for f in x))
    counts = {f: {label: tally.counts(st for st, _ in by_f[f].values())
                  for label, by_f in xfs.items() if f in by_f} for f in fstypes}
    # a variant without results on an fstype (no xfstests in that run, or
    # a failed boot) is not compared on it: all its tests would look new
    deltas = [xfstests_delta(f, p.a, p.b, p.kind, xfs[p.a][f], xfs[p.b][f])
              for f in fstypes for p in pairs if f in xfs[p.a] and f in xfs[p.b]]

    by_label = {v.label: v for v in variants}
    changes = [patch_change(a, b, by_label[a].patches, by_label[b].patches)
               for a, b in _patch_pairs(variants, pairs)]

    notes = []
    differences = summary.describe_differences(settings) if several else []
    if several:
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

    infos = [RunInfo(r.run_id, str(r.path), r.accel.name, r.accel.reason, r.started,
                     r.finished is not False, r.interrupted, r.fio_setup) for r in runs]
    return Comparison(threshold=threshold, confidence=stats.CONFIDENCE, reference=ref, runs=infos,
                      variants=variants, pairs=pairs, points=points, xfstests_counts=counts,
                      xfstests=deltas, patch_changes=changes, notes=notes,
                      setup_differences=differences, forced=force)


def _setup_verdict(verdict: tuple[str, str], force: bool, differing: list[str]) -> tuple[str, str]:
    """A verdict across runs whose setups differ on *differing* keys: none
    ("not compared"), or with --force the verdict with that said."""
    word, why = verdict
    if not differing:
        return word, why
    if force:
        return word, f"{why}; the setups differ ({', '.join(differing)}), judged with --force"
    return stats.NOT_COMPARED, f"the runs' setups differ ({', '.join(differing)}); --force judges anyway"


class Regression(NamedTuple):
    variant: str  # the label of B
    testcase: str  # fio/<target>/<job>-nj<N> or xfstests/<fstype>/<test>
    message: str


def regressions_since(comparison: Comparison, old_run: str, new_run: str) -> list[Regression]:
    """``run --against OLD``: what got worse in each variant of *new_run*
    against the variant of the same name in *old_run*."""
    def same_variant(a: str, b: str) -> bool:
        va, vb = comparison.variant(a), comparison.variant(b)
        return va.run_id == old_run and vb.run_id == new_run and va.name == vb.name
    return regressions(comparison, kinds=(REFERENCE, IN_RUN, SAME_NAME), where=same_variant)


def regressions(comparison: Comparison, *, run_id: str | None = None,
                kinds: tuple[str, ...] = (REFERENCE, IN_RUN, SAME_NAME),
                where=None) -> list[Regression]:
    """(variant, testcase, message) for every ``worse`` fio point and every
    new xfstests failure of B against A, over the pairs of the given *kinds*
    (against the reference, against the first variant of the run, against
    the same name in an earlier run), restricted to the B variants of *run_id* when given.

    For ``run --against OLD``: ``regressions(compare_runs([old, new]),
    run_id=new.run_id, kinds=("same-name",))`` lists what got worse since OLD.
    """
    out: list[Regression] = []

    def wanted(a: str, b: str, kind: str) -> bool:
        return (kind in kinds and (run_id is None or comparison.variant(b).run_id == run_id)
                and (where is None or where(a, b)))

    for p in comparison.points:
        for d in p.deltas:
            if d.verdict == stats.WORSE and wanted(d.a, d.b, d.kind):
                x = d.difference
                out.append(Regression(d.b, p.testcase, (
                    f"IOPS {x.change_pct:+.1f}% (95% CI {x.ci_low_pct:+.1f}% to {x.ci_high_pct:+.1f}%) "
                    f"against {d.a}: mean {fmt_iops(p.samples[d.a].mean)} -> "
                    f"{fmt_iops(p.samples[d.b].mean)}")))
    for x in comparison.xfstests:
        if not wanted(x.a, x.b, x.kind):
            continue
        for t in x.new_failures:
            out.append(Regression(x.b, f"xfstests/{x.fstype}/{t.test}",
                                  f"{t.b} ({x.a}: {t.a})" + (f": {t.message}" if t.message else "")))
    return out
