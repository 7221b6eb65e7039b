"""Known-failure lists proposed from a run of the base kernel, for a
person to review (``pipeline.py known-failures RUN``).

From one variant's xfstests testcases (the base kernel's) and the lists
in force (kvariant.config.known), one list per server and fstype that
ran:

- a listed test that failed again keeps its line and reason;
- a listed test that passed is left out, with a comment saying so
  ("fixed?"); one that did not run keeps its line;
- a test that failed and is not listed gets a line whose reason is
  ``REVIEW: <what xfstests said>``.  The list reader refuses such a
  line: a person writes why the test fails on the base kernel before the
  list can be used.

Pure: no file is read or written here."""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Mapping

from ...config.known import REVIEW, list_name
from ...model import StageResult, Status, VariantResult
from ...testcase import TestcaseId

_SERVER = re.compile(r"(?:^|,)server=([^,]+)")


@dataclasses.dataclass(frozen=True)
class Proposal:
    """One list: its file name, text, and what changed against the list
    in force."""

    name: str
    text: str
    kept: tuple[str, ...]      # listed, failed again (or did not run)
    new: tuple[str, ...]       # failed, not listed: to review
    fixed: tuple[str, ...]     # listed, passed: left out

    def line(self) -> str:
        """What the command prints of it."""
        parts = [f"{len(self.kept)} kept", f"{len(self.new)} new" + (
            f" ({', '.join(self.new)})" if self.new else ""), f"{len(self.fixed)} fixed?" + (
            f" ({', '.join(self.fixed)})" if self.fixed else "")]
        return f"{self.name}: {', '.join(parts)}"


def server_of(result: VariantResult) -> str:
    """The FUSE server that served the variant's ``fuse`` fstype."""
    m = _SERVER.search(result.info.xfstests_fuse_policy or "")
    return m.group(1) if m else "kvariant"


def xfstests_stages(result: VariantResult) -> dict[str, dict[str, StageResult]]:
    """fstype -> test -> its testcase, of the tests that ran (not the
    stage-level testcases such as a missing tree or a lost guest)."""
    out: dict[str, dict[str, StageResult]] = {}
    for s in result.stages:
        tid = TestcaseId.parse(s.name)
        if tid.fstype and "/" in tid.name:  # generic/001, not a step (list, setup)
            out.setdefault(tid.fstype, {})[tid.name] = s
    return out


def failed(stage: StageResult) -> bool:
    """Failed on the base kernel: failed or errored, or skipped as a known
    failure (a known failure that failed again)."""
    return stage.status in (Status.FAIL, Status.ERROR) or (
        stage.status == Status.SKIP and "known_failure" in stage.figures)


def passed(stage: StageResult) -> bool:
    return stage.status == Status.PASS


def propose(result: VariantResult, in_force: Callable[[str], Mapping[str, str]],
            source: str) -> list[Proposal]:
    """The proposed lists of *result*'s fstypes.  *in_force*: a list's name
    -> that list as it is (test -> reason); *source*: the run and variant,
    for the header."""
    out = []
    server = server_of(result)
    for fstype, stages in sorted(xfstests_stages(result).items()):
        name = list_name(server, fstype)
        out.append(proposal(name, stages, dict(in_force(name)), source,
                            "xfs" if fstype == "xfs" else f"{fstype}, served by {server}"))
    return out


def proposal(name: str, stages: Mapping[str, StageResult], known: dict[str, str], source: str,
             what: str) -> Proposal:
    kept = [t for t in known if t not in stages or not passed(stages[t])]
    fixed = [t for t in known if t in stages and passed(stages[t])]
    new = sorted(t for t, s in stages.items() if failed(s) and t not in known)
    lines = [f"# xfstests known to fail on the base kernel: fstype {what}.",
             f"# Proposed from {source}: {len(stages)} tests ran.",
             f"# Write why each {REVIEW} line fails (the lists refuse {REVIEW} reasons), then",
             f"# copy this file over vmconfigs/xfstests/{name}.  Format: kvariant/config/known.py."]
    lines += [f"{t}  # {known[t]}" for t in kept]
    lines += [f"{t}  # {REVIEW} {stages[t].message or stages[t].status.value}" for t in new]
    lines += [f"# fixed? {t} passed: {known[t]}" for t in fixed]
    return Proposal(name, "\n".join(lines) + "\n", tuple(kept), tuple(new), tuple(fixed))


def base_variant(results: Iterable[VariantResult]) -> VariantResult | None:
    """The first variant with no patch (the base kernel alone), if any."""
    return next((r for r in results if not r.info.patches), None)
