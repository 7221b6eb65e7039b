"""The xfstests workload of a variant: each fstype's tests, each in the
JUnit as it ends, with the guest's console watched while they run."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import TYPE_CHECKING, Mapping

from ..config import Config, XfstestsConfig
from ..errors import RunInterrupted, StageError
from ..model import StageResult, Status
from ..paths import PROJECT
from ..workloads import xfstests

if TYPE_CHECKING:
    from .variant import VariantRun


class XfstestsWorkload:
    """Every fstype of the config, or with *only* (a shard's units: fstype
    -> its tests, None for all the config selects) those fstypes alone."""

    def __init__(self, only: Mapping[str, tuple[str, ...] | None] | None = None):
        self.only = only

    def names(self, config: Config) -> list[str]:
        return ["xfstests"] if config.xfstests is not None else []

    def run(self, v: "VariantRun") -> None:
        run_xfstests(v, self.only)


def selected(cfg: XfstestsConfig, only: Mapping[str, tuple[str, ...] | None] | None
             ) -> list[tuple[str, XfstestsConfig]]:
    """The fstypes to run, each with the config of its tests: *only*'s
    tests replace the config's selection (groups, exclusions) when given."""
    if only is None:
        return [(f, cfg) for f in cfg.fstypes]
    return [(f, cfg if only[f] is None else dataclasses.replace(
        cfg, tests=only[f], groups=(), exclude=(), exclude_file=None))
        for f in cfg.fstypes if f in only]


def run_xfstests(v: "VariantRun", only: Mapping[str, tuple[str, ...] | None] | None = None) -> None:
    cfg = v.config.xfstests
    if cfg is None:
        return
    problem = ("no xfstests.dir configured" if cfg.dir is None else xfstests.tree_problem(cfg.dir))
    if problem:
        status = Status.FAIL if cfg.required else Status.SKIP
        v.record(StageResult("xfstests", status, suite="xfstests",
                                message=f"xfstests not run: {problem}"))
        return
    fuse = v.config.fuse_for(v.variant)
    policy = {"parallel_direct_writes": fuse.parallel_direct_writes, "direct_io": fuse.direct_io}
    v.result.info.xfstests_fuse_policy = ",".join(
        ["passthrough"] + [k for k, v in policy.items() if v])
    if fuse.server != "kvariant":  # earlier summaries stay comparable
        policy["server"] = fuse.server
        v.result.info.xfstests_fuse_policy += f",server={fuse.server}"
    for fstype, fs_cfg in selected(cfg, only):
        if v.gone:
            break
        xfstests_fstype(v, fs_cfg, fstype, policy)

def xfstests_fstype(v: "VariantRun", cfg, fstype: str, policy: dict) -> None:
    """One fstype's tests, each in the JUnit as it ends.  The console is
    watched while they run: a report that ends a stage abandons the
    running test, which fails led by it; the tests after it are skipped
    and the VM is stopped."""
    v.run.ui.begin(v.variant.name, f"xfstests/{fstype}")
    recorded: list[StageResult] = []
    test_mark, test_start = v.vm.console_mark(), time.monotonic()

    def ended(stage: StageResult) -> None:  # the first result after the watch fired
        if watch.found is not None and not v.gone:
            v.vm.settle()
            stage.detail = v.hang_detail(stage.detail)
            v.judge_console(stage, test_mark, watch, test_start)
            v.gone = v.gone or f"the kernel failed during {stage.name}: {watch.found.first_line}"

    def on_result(stage: StageResult) -> None:  # each test in the JUnit as it ends
        nonlocal test_mark, test_start
        ended(stage)
        test_mark, test_start = v.vm.console_mark(), time.monotonic()
        recorded.append(stage)
        v.record(stage)

    with v.vm.watch(test_mark, v.abandon_guest) as watch:
        try:
            stages = xfstests.run_xfstests(
                v.vm.guest, cfg, fstype, policy={"passthrough": True, **policy},
                outdir=v.dir / "xfstests" / fstype, python=sys.executable,
                project_dir=str(PROJECT), timeout_per_test=cfg.test_timeout,
                log=v.dir / "xfstests.log", on_result=on_result, done=v.done)
        except StageError as e:
            stages = [StageResult(f"xfstests/{fstype}", Status.ERROR, message=e.message,
                                  detail=e.detail, reproduce=e.reproduce, suite=f"xfstests.{fstype}")]
            ended(stages[0])
        except (KeyboardInterrupt, RunInterrupted):
            v.record(StageResult(f"xfstests/{fstype}", Status.ERROR, message="interrupted",
                                    suite=f"xfstests.{fstype}"))
            raise RunInterrupted()
    for stage in stages:
        if not any(stage is r for r in recorded):  # a set-up error, returned alone
            v.record(stage)
    if v.gone:
        v.vm.stop()
