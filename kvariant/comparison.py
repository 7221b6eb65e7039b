"""A comparison of variants as data: what every report shows
(:class:`Comparison`, built by :func:`kvariant.compare.compare_runs`), its
dict form, which is report.json, and what got worse in it
(:func:`regressions`)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from . import stats
from . import tally
from .testcase import TestcaseId


def fmt_iops(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}K"
    return f"{v:.0f}"


class _Record:
    """A dataclass whose dict form is its fields, as they are."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**d)


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
class FailedCase(_Record):
    """A testcase that failed or errored, with its message."""

    name: str
    status: str
    message: str


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
class Pair(_Record):
    """B compared against A: ``reference`` (B against the reference),
    ``in-run`` (B against the first variant of its run, when that is not the
    reference) or ``same-name`` (B against the same variant name in an
    earlier run)."""

    a: str
    b: str
    kind: str


CONTROL_TARGET = "xfs"  # raw XFS (workloads.targets.XfsTarget): FUSE patches do not touch it
WELCH = "Welch t on runs"
NORMALISED = "normalised by the control run beside each run"
NORMALISED_BOOTS = "normalised by the control run beside each run, guests as the units"
BOOTS = "ratio of the guests' means, guests as the units"
PAIRED = "paired by round (guests up together), t on log ratios"
PAIRED_NORMALISED = "normalised by the control run, paired by round (guests up together), t on log ratios"


@dataclasses.dataclass
class PointDelta:
    a: str
    b: str
    kind: str
    difference: stats.Difference
    verdict: str
    reason: str
    method: str = WELCH  # how the interval was computed

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "kind": self.kind, **self.difference.to_dict(),
                "verdict": self.verdict, "reason": self.reason, "method": self.method}

    @classmethod
    def from_dict(cls, d: dict) -> "PointDelta":
        fields = {f.name for f in dataclasses.fields(stats.Difference)}
        return cls(a=d["a"], b=d["b"], kind=d["kind"],
                   difference=stats.Difference.from_dict({k: d[k] for k in fields}),
                   verdict=d["verdict"], reason=d["reason"], method=d.get("method", WELCH))


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
    # label -> the traced run's waits per second on the FUSE and XFS locks
    contention: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    # label -> the host while the point measured (hoststate.figures: steal, busy, other guests...)
    host: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # label -> the control's runs, each beside the run of the same index (interleaved rounds)
    control_runs: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    # label -> the guest of each run (1, 2, ...), when a variant measured in several ([fio] boots)
    boots: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    # label -> (the guests measured together, in which run; the round of each run)
    rounds: dict[str, tuple[str, tuple[int, ...]]] = dataclasses.field(default_factory=dict)

    def paired(self, a: str, b: str) -> bool:
        """Whether A's and B's runs were taken beside each other, round by
        round, by guests up together (the same cohort, the same rounds)."""
        ra, rb = self.rounds.get(a), self.rounds.get(b)
        return ra is not None and ra == rb

    @property
    def testcase(self) -> str:
        return str(TestcaseId.fio_point(self.target, self.job, self.numjobs))

    def delta(self, a: str, b: str) -> PointDelta | None:
        return next((d for d in self.deltas if d.a == a and d.b == b), None)

    def to_dict(self) -> dict:
        return {"target": self.target, "job": self.job, "numjobs": self.numjobs,
                "testcase": self.testcase,
                "samples": {k: s.to_dict() for k, s in self.samples.items()},
                "status": dict(self.status), "notes": list(self.notes),
                "deltas": [d.to_dict() for d in self.deltas],
                "contention": {k: dict(v) for k, v in self.contention.items()},
                "host": {k: dict(v) for k, v in self.host.items()},
                "control_runs": {k: list(v) for k, v in self.control_runs.items()},
                "boots": {k: list(v) for k, v in self.boots.items()},
                "rounds": {k: [c, list(r)] for k, (c, r) in self.rounds.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "FioPoint":
        return cls(target=d["target"], job=d["job"], numjobs=d["numjobs"],
                   samples={k: stats.Sample.from_dict(s) for k, s in d["samples"].items()},
                   status=dict(d["status"]), notes=list(d["notes"]),
                   deltas=[PointDelta.from_dict(x) for x in d["deltas"]],
                   contention={k: dict(v) for k, v in d.get("contention", {}).items()},
                   host={k: dict(v) for k, v in d.get("host", {}).items()},
                   control_runs={k: tuple(v) for k, v in d.get("control_runs", {}).items()},
                   boots={k: tuple(v) for k, v in d.get("boots", {}).items()},
                   rounds={k: (str(v[0]), tuple(v[1])) for k, v in d.get("rounds", {}).items()})


@dataclasses.dataclass
class StatusChange(_Record):
    """An xfstests test whose status differs: A's and B's status (pass,
    fail, error, skip, or missing when the variant has no such testcase) and
    the message of the side that did not pass."""

    test: str  # "generic/001"
    a: str
    b: str
    message: str = ""


XFSTESTS_KINDS = tally.CHANGES


@dataclasses.dataclass
class XfstestsDelta(_Record):
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

    @classmethod
    def from_dict(cls, d: dict) -> "XfstestsDelta":
        return cls(fstype=d["fstype"], a=d["a"], b=d["b"], kind=d["kind"],
                   **{k: [StatusChange.from_dict(t) for t in d[k]] for k in XFSTESTS_KINDS})


@dataclasses.dataclass
class Revised(_Record):
    """A patch with the same subject and another patch-id (``changed``), or
    the same patch-id under another subject (``reworded``)."""

    subject: str  # B's subject
    old_subject: str
    old_patch_id: str
    patch_id: str


@dataclasses.dataclass
class PatchChange(_Record):
    """The patches of B against A.  Patches are matched by subject: same
    subject and patch-id is unchanged, same subject and another patch-id is
    changed.  Of the rest, a removed and an added patch with the same
    patch-id are one reworded patch; the others are added or removed."""

    a: str
    b: str
    unchanged: list[Patch]
    changed: list[Revised]
    reworded: list[Revised]
    added: list[Patch]
    removed: list[Patch]

    @property
    def same(self) -> bool:
        return not (self.changed or self.reworded or self.added or self.removed)

    @classmethod
    def from_dict(cls, d: dict) -> "PatchChange":
        return cls(a=d["a"], b=d["b"], unchanged=[Patch.from_dict(p) for p in d["unchanged"]],
                   changed=[Revised.from_dict(r) for r in d["changed"]],
                   reworded=[Revised.from_dict(r) for r in d["reworded"]],
                   added=[Patch.from_dict(p) for p in d["added"]],
                   removed=[Patch.from_dict(p) for p in d["removed"]])


@dataclasses.dataclass
class RunInfo(_Record):
    run_id: str
    path: str
    accel: str  # kvm | tcg | ?
    accel_reason: str
    started: str
    finished: bool
    interrupted: bool
    setup: str = ""


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


# What got worse


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
            out.append(Regression(x.b, str(TestcaseId.xfstests(x.fstype, t.test)),
                                  f"{t.b} ({x.a}: {t.a})" + (f": {t.message}" if t.message else "")))
    return out
