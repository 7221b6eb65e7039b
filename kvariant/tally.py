"""xfstests results counted and set side by side: per fstype, the tests'
statuses per variant, their counts, and what changed between two variants
(a new failure, a fix...).  The run's summary (:func:`summarize`) and the
comparison reports (:mod:`kvariant.compare`) both count and classify here."""

from __future__ import annotations

from typing import Any, Iterable

from .model import StageResult, Status

BAD = ("fail", "error")
NOT_RUN = ("skip", "missing")  # missing: the variant has no such testcase
COUNTED = {"pass": "passed", "fail": "failed", "skip": "skipped", "error": "errors"}
CHANGES = ("new_failures", "fixed", "now_run", "no_longer_run", "other")


def by_fstype(stages: Iterable[StageResult], tests_only: bool = False) -> dict[str, dict[str, StageResult]]:
    """fstype -> test -> its testcase, of the testcases xfstests/<fstype>/<test>;
    *tests_only*: only the tests themselves (``generic/001``), not the
    steps around them (``list``, ``setup``)."""
    out: dict[str, dict[str, StageResult]] = {}
    for s in stages:
        tid = s.id
        if tid.fstype and tid.name and (not tests_only or tid.test):
            out.setdefault(tid.fstype, {})[tid.name] = s
    return out


def counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many passed, failed, skipped and errored."""
    n = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    for st in statuses:
        n[COUNTED[st]] += 1
    return n


def change(a: str, b: str) -> str | None:
    """What a test's status from A (pass, fail, error, skip, missing) to B
    is, one of :data:`CHANGES`, None when it is the same: ``new_failures``
    (fail/error in B, not in A), ``fixed`` (A failed, B passes), ``now_run``
    (A skipped or lacked it, B passes), ``no_longer_run`` (A ran it, B
    skipped or lacks it), ``other`` (fail <-> error)."""
    if a == b:
        return None
    if b in BAD and a not in BAD:
        return "new_failures"
    if a in BAD and b == "pass":
        return "fixed"
    if a in NOT_RUN and b == "pass":
        return "now_run"
    if a not in NOT_RUN and b in NOT_RUN:
        return "no_longer_run"
    return "other"


def summarize(results_by_variant: dict[str, list[StageResult]]) -> dict:
    """Per fstype: passed/failed/skipped/errors/flaky per variant (and of
    those skipped, the known failures; of those passed, the known failures
    that passed), and the
    tests whose status differs between variants, new failures against the
    first variant first, then fixes, then the rest."""
    table: dict[str, dict[str, dict[str, StageResult]]] = {}  # fstype -> test -> variant -> testcase
    for variant, stages in results_by_variant.items():
        for fstype, tests in by_fstype(stages).items():
            for test, s in tests.items():
                table.setdefault(fstype, {}).setdefault(test, {})[variant] = s
    variants = list(results_by_variant)
    out: dict[str, Any] = {}
    for fstype, tests in table.items():
        mine = {v: [by_v[v] for by_v in tests.values() if v in by_v] for v in variants}
        n = {v: {**counts(s.status.value for s in mine[v]),
                 "flaky": sum(bool(s.figures.get("flaky")) for s in mine[v]),
                 "known_failures": sum(s.status == Status.SKIP and "known_failure" in s.figures
                                       for s in mine[v]),
                 "known_passed": sum(bool(s.figures.get("fixed")) for s in mine[v])} for v in variants}
        diffs = []
        for test, by_v in sorted(tests.items()):
            row = {v: by_v[v].status.value if v in by_v else "missing" for v in variants}
            if len(set(row.values())) < 2:
                continue
            moved = {v: change(row[variants[0]], row[v]) for v in variants[1:]}
            diffs.append({"test": test, "statuses": row,
                          "new_failures": [v for v, c in moved.items() if c == "new_failures"],
                          "fixed": [v for v, c in moved.items() if c == "fixed"]})
        diffs.sort(key=lambda d: (not d["new_failures"], not d["fixed"], d["test"]))
        out[fstype] = {"variants": n, "differences": diffs}
    return out
