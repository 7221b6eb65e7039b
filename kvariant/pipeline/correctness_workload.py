"""The correctness workload of a variant (``[correctness] endwrite``): one
testcase, ``correctness/fuse-passthrough/endwrite``, that checks rather
than measures (kvariant.workloads.endwrite).  It mounts the configured
FUSE server with passthrough, runs the check in the guest with the
console watched, and fails on a mismatch of size or data, on a kernel
report, or when data reached the server (the passthrough witnesses)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..config import Config
from ..errors import GuestGone, StageError
from ..model import StageResult, Status
from ..testcase import TestcaseId
from ..workloads import endwrite
from ..workloads.targets import make_target

if TYPE_CHECKING:
    from .variant import VariantRun


class CorrectnessWorkload:
    def names(self, config: Config) -> list[str]:
        return [endwrite.NAME] if config.correctness.endwrite else []

    def run(self, v: "VariantRun") -> None:
        if not v.config.correctness.endwrite:
            return
        if endwrite.NAME in v.done:  # --resume: it ended before the interrupt
            v.record(v.done[endwrite.NAME])
            return
        stage = StageResult(endwrite.NAME, Status.PASS, suite=TestcaseId.parse(endwrite.NAME).suite,
                            log="correctness/endwrite.json")
        target = make_target(endwrite.TARGET, v.config.fuse_for(v.variant))
        with v.measuring(stage):
            try:
                check_endwrite(v, stage, target)
            finally:
                if not v.gone and v.vm is not None and v.vm.guest is not None:
                    stop(v, target)


def check_endwrite(v: "VariantRun", stage: StageResult, target) -> None:
    """Mount, run the check between two reads of the witnesses, judge."""
    guest, cfg = v.vm.guest, v.config.correctness
    guest_log = v.dir / "guest.log"
    directory = target.start(guest, guest_log)
    before = target.counters(guest)
    cmd = endwrite.command(sys.executable, directory, target.source, cfg)
    res = guest.run(cmd, timeout=endwrite.timeout(cfg), log=guest_log)
    if res.timed_out:
        raise GuestGone(f"the end_write check did not end within {endwrite.timeout(cfg):.0f} s",
                        detail=res.tail, reproduce=cmd)
    out = v.dir / "correctness" / "endwrite.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(res.stdout)
    try:
        found = endwrite.verdict(res.stdout)
    except (ValueError, KeyError) as e:
        raise StageError(f"the end_write check did not report (exit {res.returncode}): {e}",
                         detail=res.tail, reproduce=cmd) from None
    counters, broken = target.check(before, target.counters(guest))
    stage.figures = {**found.figures, **counters,
                     **{f"policy_{k}": on for k, on in target.policy().items()}}
    stage.message, stage.reproduce = found.message, cmd
    if found.problems:
        stage.status = Status.FAIL
        stage.detail = "\n".join(found.problems)
    elif broken:
        stage.status, stage.message = Status.FAIL, broken


def stop(v: "VariantRun", target) -> None:
    try:
        target.stop(v.vm.guest, v.dir / "correctness", v.dir / "guest.log")
    except StageError:  # the guest is gone: the testcase says so already
        pass
