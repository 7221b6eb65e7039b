"""The workloads of a variant as testcases: each fio target's set-up,
prefill and points, and each xfstests test.  A mixin of VariantRun
(runner.py), which measures, records and judges each of them."""

from __future__ import annotations

import logging
import statistics
import sys
import time

from .errors import RunInterrupted, StageError
from .model import StageResult, Status
from .workloads import contention, fio, xfstests
from .paths import PROJECT
from .workloads.targets import make_target

log = logging.getLogger(__name__)


class WorkloadStages:
    """fio and xfstests for VariantRun: uses its config, vm, dir, done,
    gone, measuring(), record(), hang_detail(), judge_console() and
    abandon_guest()."""

    def run_fio(self) -> None:
        cfg = self.config.fio
        for name in cfg.targets:
            if self.gone:
                return
            target = make_target(name, self.config.fuse_for(self.variant))
            points = [f"fio/{name}/{fio.point_name(cfg, n)}" for n in cfg.numjobs]
            if all(p in self.done for p in points):
                for p in points:
                    self.record(self.done[p])
                continue
            try:
                directory = self.prepare(target, points)
                for n, point in zip(cfg.numjobs, points):
                    if directory is None or self.gone:
                        break
                    if point in self.done:
                        self.record(self.done[point])
                        continue
                    self.fio_point(target, point, directory, n)
            finally:
                if not self.gone and self.vm.guest is not None:
                    try:
                        target.stop(self.vm.guest, self.dir / "fio" / name, self.dir / "guest.log")
                    except StageError as e:  # the guest is gone: the points say so already
                        log.warning("stopping target %s: %s", name, e.message)

    def prepare(self, target, points: list[str]) -> str | None:
        """A target's set-up and its prefill, each a testcase of its own
        (fio/<target>/setup, fio/<target>/prefill) when it fails or the
        kernel reports during it.  The target's directory, or None when a
        step did not finish: the target's points are skipped then."""
        directory = None
        prefilled = False
        suite, guest_log = f"fio.{target.name}", self.dir / "guest.log"
        with self.measuring(StageResult(f"fio/{target.name}/setup", Status.PASS, suite=suite,
                                        log="guest.log"), keep_pass=False):
            directory = target.start(self.vm.guest, guest_log)
        if directory is not None and not self.gone:
            with self.measuring(StageResult(f"fio/{target.name}/prefill", Status.PASS, suite=suite,
                                            log="guest.log"), keep_pass=False):
                fio.prefill(self.vm.guest, directory, self.config.fio, timeout=self.config.timeouts.prefill)
                prefilled = True
        if prefilled and not self.gone:
            return directory
        if not self.gone:  # (a lost guest: every remaining testcase is skipped with the reason)
            why = f"fio/{target.name}/{'prefill' if directory is not None else 'setup'} failed"
            for point in points:
                self.record(self.done.get(point) or StageResult(point, Status.SKIP, message=f"skipped: {why}",
                                                                suite=suite))
        return None

    def fio_point(self, target, name: str, directory: str, numjobs: int) -> None:
        cfg, t = self.config.fio, self.config.timeouts
        timeout = t.fio or cfg.runtime + cfg.ramp_time + 120
        stage = StageResult(name, Status.PASS, suite=f"fio.{target.name}", log=f"fio/{target.name}/")
        runs, counters = [], {}
        with self.measuring(stage):
            try:
                before = target.counters(self.vm.guest)
                for rep in range(1, cfg.repeat + 1):
                    runs.append(fio.run_point(self.vm.guest, directory, cfg, numjobs, rep,
                                              self.dir / "fio" / target.name, timeout))
                counters, why = target.check(before, target.counters(self.vm.guest))
                if why:
                    stage.status, stage.message = Status.FAIL, why
                if cfg.contention:  # after the measured runs: tracing costs IOPS
                    counters.update(contention.traced_run(
                        self.vm.guest, directory, cfg, numjobs, self.dir / "fio" / target.name,
                        timeout, f"{target.name}-nj{numjobs}"))
            finally:  # the figures of the runs that finished, whatever happened next
                if runs:
                    stage.figures = {**summarize_runs(runs), **counters,
                                     **{f"policy_{k}": v for k, v in target.policy().items()}}
                    if numjobs > self.config.vm.cpus:
                        stage.figures["note"] = f"numjobs {numjobs} > {self.config.vm.cpus} vCPUs"
                    if stage.status == Status.PASS:
                        stage.message = f"{stage.figures['iops']:.0f} IOPS"

    def run_xfstests(self) -> None:
        cfg = self.config.xfstests
        if cfg is None:
            return
        problem = ("no xfstests.dir configured" if cfg.dir is None else xfstests.tree_problem(cfg.dir))
        if problem:
            status = Status.FAIL if cfg.required else Status.SKIP
            self.record(StageResult("xfstests", status, suite="xfstests",
                                    message=f"xfstests not run: {problem}"))
            return
        fuse = self.config.fuse_for(self.variant)
        policy = {"parallel_direct_writes": fuse.parallel_direct_writes, "direct_io": fuse.direct_io}
        self.result.info["xfstests_fuse_policy"] = ",".join(
            ["passthrough"] + [k for k, v in policy.items() if v])
        if fuse.server != "kvariant":  # earlier summaries stay comparable
            policy["server"] = fuse.server
            self.result.info["xfstests_fuse_policy"] += f",server={fuse.server}"
        for fstype in cfg.fstypes:
            if self.gone:
                break
            self.xfstests_fstype(cfg, fstype, policy)

    def xfstests_fstype(self, cfg, fstype: str, policy: dict) -> None:
        """One fstype's tests, each in the JUnit as it ends.  The console is
        watched while they run: a report that ends a stage abandons the
        running test, which fails led by it; the tests after it are skipped
        and the VM is stopped."""
        self.run.ui.begin(self.variant.name, f"xfstests/{fstype}")
        recorded: list[StageResult] = []
        test_mark, test_start = self.vm.console_mark(), time.monotonic()

        def ended(stage: StageResult) -> None:  # the first result after the watch fired
            if watch.found is not None and not self.gone:
                self.vm.settle()
                stage.detail = self.hang_detail(stage.detail)
                self.judge_console(stage, test_mark, watch, test_start)
                self.gone = self.gone or f"the kernel failed during {stage.name}: {watch.found.first_line}"

        def on_result(stage: StageResult) -> None:  # each test in the JUnit as it ends
            nonlocal test_mark, test_start
            ended(stage)
            test_mark, test_start = self.vm.console_mark(), time.monotonic()
            recorded.append(stage)
            self.record(stage)

        with self.vm.watch(test_mark, self.abandon_guest) as watch:
            try:
                stages = xfstests.run_xfstests(
                    self.vm.guest, cfg, fstype, policy={"passthrough": True, **policy},
                    outdir=self.dir / "xfstests" / fstype, python=sys.executable,
                    project_dir=str(PROJECT), timeout_per_test=cfg.test_timeout,
                    log=self.dir / "xfstests.log", on_result=on_result, done=self.done)
            except StageError as e:
                stages = [StageResult(f"xfstests/{fstype}", Status.ERROR, message=e.message,
                                      detail=e.detail, reproduce=e.reproduce, suite=f"xfstests.{fstype}")]
                ended(stages[0])
            except (KeyboardInterrupt, RunInterrupted):
                self.record(StageResult(f"xfstests/{fstype}", Status.ERROR, message="interrupted",
                                        suite=f"xfstests.{fstype}"))
                raise RunInterrupted()
        for stage in stages:
            if not any(stage is r for r in recorded):  # a set-up error, returned alone
                self.record(stage)
        if self.gone:
            self.vm.stop()


def summarize_runs(runs: list) -> dict:
    """Figures of a point over its repeats: the median and the spread."""
    iops = [r.iops for r in runs]
    first = runs[0].to_properties()
    figures = {
        "iops": round(statistics.median(iops), 1),
        "iops_min": round(min(iops), 1),
        "iops_max": round(max(iops), 1),
        "repeats": len(runs),
        "iops_runs": ",".join(f"{v:.0f}" for v in iops),
        "bw_kib": round(statistics.median(r.bw_kib for r in runs), 1),
        "clat_p99_us": round(statistics.median(r.p99_us for r in runs), 1),
        "numjobs": first["numjobs"],
        "fio_version": first["fio_version"],
    }
    return figures
