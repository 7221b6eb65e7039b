"""Testcase identities: what a testcase is (a pipeline stage, a patch of a
series, a fio point, an xfstests test, the kernel's log), as a type.

Names such as ``fio/fuse-passthrough/randwrite-4k-nj2`` or
``xfstests/fuse/generic/001`` are the edge form (JUnit, summary.json,
report.json): :meth:`TestcaseId.parse` reads one, ``str()`` writes it, and
every module that needs a name's target, fstype, point or JUnit suite asks
the id instead of splitting the name itself.
"""

from __future__ import annotations

import dataclasses
import enum
import re

STAGES = ("apply", "build", "boot", "storage")  # the pipeline's stages before the workloads
POINT = re.compile(r"(?P<job>.+)-nj(?P<numjobs>\d+)")  # a fio point: randwrite-4k-nj2


class Kind(str, enum.Enum):
    STAGE = "stage"  # apply, build, boot, storage, and any name of no other kind
    SERIES = "series"  # series/01-<subject>: one patch of a bisected series builds
    FIO = "fio"  # fio/<target>/<point>, fio/<target>/setup, fio/<target>/prefill
    XFSTESTS = "xfstests"  # xfstests, xfstests/<fstype>, xfstests/<fstype>/<test or step>
    KERNEL = "kernel"  # dmesg: the kernel's splats over the guest's life
    CORRECTNESS = "correctness"  # correctness/<target>/<check>: a workload that checks, not measures


PREFIXED = {Kind.SERIES: "series", Kind.FIO: "fio", Kind.XFSTESTS: "xfstests",
            Kind.CORRECTNESS: "correctness"}
KERNEL_NAMES = ("dmesg",)


@dataclasses.dataclass(frozen=True)
class TestcaseId:
    """One testcase: its *kind*, its *scope* (the fio target or the
    xfstests fstype, "" for the others) and its *name* within them
    (``randwrite-4k-nj2``, ``generic/001``, ``01-fuse-...``, ``build``)."""

    __test__ = False  # not a pytest class

    kind: Kind
    scope: str = ""
    name: str = ""

    def __str__(self) -> str:
        parts = [PREFIXED.get(self.kind, ""), self.scope, self.name]
        return "/".join(p for p in parts if p)

    @classmethod
    def parse(cls, text: str) -> "TestcaseId":
        """The id of testcase name *text*; a name of no known form is a
        stage of that name, so ``str(parse(x)) == x`` for every *x*."""
        head, _, rest = text.partition("/")
        if head == "series" and rest:
            found = cls(Kind.SERIES, "", rest)
        elif head == "fio":
            scope, _, name = rest.partition("/")
            found = cls(Kind.FIO, scope, name)
        elif head == "xfstests":
            scope, _, name = rest.partition("/")
            found = cls(Kind.XFSTESTS, scope, name)
        elif head == "correctness":
            scope, _, name = rest.partition("/")
            found = cls(Kind.CORRECTNESS, scope, name)
        elif text in KERNEL_NAMES:
            found = cls(Kind.KERNEL, "", text)
        else:
            found = cls(Kind.STAGE, "", text)
        if str(found) != text or (found.kind in (Kind.FIO, Kind.CORRECTNESS)
                                  and not (found.scope and found.name)):
            return cls(Kind.STAGE, "", text)
        return found

    @classmethod
    def fio_point(cls, target: str, job: str, numjobs: int) -> "TestcaseId":
        """fio/<target>/<job>-nj<numjobs>"""
        return cls(Kind.FIO, target, f"{job}-nj{numjobs}")

    @classmethod
    def xfstests(cls, fstype: str = "", test: str = "") -> "TestcaseId":
        """xfstests/<fstype>/<test> (or a step: ``list``, ``setup``)"""
        return cls(Kind.XFSTESTS, fstype, test)

    @property
    def suite(self) -> str:
        """The JUnit testsuite the testcase belongs to: ``stages``,
        ``series``, ``kernel``, ``fio.<target>``, ``xfstests.<fstype>``,
        ``correctness.<target>``, or ``xfstests`` for the placeholder of a
        run that has none yet."""
        if self.kind in (Kind.FIO, Kind.XFSTESTS, Kind.CORRECTNESS):
            return f"{self.kind.value}.{self.scope}" if self.scope else self.kind.value
        return {Kind.SERIES: "series", Kind.KERNEL: "kernel"}.get(self.kind, "stages")

    @property
    def target(self) -> str:
        """The fio target, "" for a testcase of another kind."""
        return self.scope if self.kind == Kind.FIO else ""

    @property
    def fstype(self) -> str:
        """The xfstests fstype, "" for a testcase of another kind."""
        return self.scope if self.kind == Kind.XFSTESTS else ""

    @property
    def point(self) -> tuple[str, int] | None:
        """(job, numjobs) of a fio point (``randwrite-4k``, 2); None for a
        target's set-up or prefill and for other kinds."""
        m = POINT.fullmatch(self.name) if self.kind == Kind.FIO else None
        return (m.group("job"), int(m.group("numjobs"))) if m else None

    @property
    def test(self) -> str:
        """The xfstests test (``generic/001``); "" for a step around the
        tests (``list``, ``setup``) and for other kinds."""
        return self.name if self.kind == Kind.XFSTESTS and "/" in self.name else ""

    @property
    def leaf(self) -> str:
        """The name's last part, which prefixes its figures among the JUnit
        suite's properties (``randwrite-4k-nj2.iops``)."""
        return str(self).rsplit("/", 1)[-1]
