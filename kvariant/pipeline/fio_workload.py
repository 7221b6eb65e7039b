"""The fio workload of a variant: each target's set-up and prefill (a
testcase of their own when they go wrong) and its points, each measured,
checked and recorded as it ends."""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from typing import TYPE_CHECKING

from ..config import Config
from .. import hoststate
from ..errors import StageError
from ..hoststate import HostState, Sample
from ..model import StageResult, Status
from ..paths import locked
from ..workloads import contention, fio
from ..workloads.targets import make_target

if TYPE_CHECKING:
    from .variant import VariantRun

log = logging.getLogger(__name__)


class FioWorkload:
    def names(self, config: Config) -> list[str]:
        return [f"fio/{t}/{fio.point_name(config.fio, n)}"
                for t in config.fio.targets for n in config.fio.numjobs]

    def run(self, v: "VariantRun") -> None:
        run_fio(v)


def run_fio(v: "VariantRun") -> None:
    cfg = v.config.fio
    for name in cfg.targets:
        if v.gone:
            return
        target = make_target(name, v.config.fuse_for(v.variant))
        points = [f"fio/{name}/{fio.point_name(cfg, n)}" for n in cfg.numjobs]
        if all(p in v.done for p in points):
            for p in points:
                v.record(v.done[p])
            continue
        try:
            directory = prepare(v, target, points)
            for n, point in zip(cfg.numjobs, points):
                if directory is None or v.gone:
                    break
                if point in v.done:
                    v.record(v.done[point])
                    continue
                fio_point(v, target, point, directory, n)
        finally:
            if not v.gone and v.vm.guest is not None:
                try:
                    target.stop(v.vm.guest, v.dir / "fio" / name, v.dir / "guest.log")
                except StageError as e:  # the guest is gone: the points say so already
                    log.warning("stopping target %s: %s", name, e.message)

def prepare(v: "VariantRun", target, points: list[str]) -> str | None:
    """A target's set-up and its prefill, each a testcase of its own
    (fio/<target>/setup, fio/<target>/prefill) when it fails or the
    kernel reports during it.  The target's directory, or None when a
    step did not finish: the target's points are skipped then."""
    directory = None
    prefilled = False
    suite, guest_log = f"fio.{target.name}", v.dir / "guest.log"
    with v.measuring(StageResult(f"fio/{target.name}/setup", Status.PASS, suite=suite,
                                    log="guest.log"), keep_pass=False):
        directory = target.start(v.vm.guest, guest_log)
    if directory is not None and not v.gone:
        with v.measuring(StageResult(f"fio/{target.name}/prefill", Status.PASS, suite=suite,
                                        log="guest.log"), keep_pass=False):
            fio.prefill(v.vm.guest, directory, v.config.fio, timeout=v.config.timeouts.prefill)
            prefilled = True
    if prefilled and not v.gone:
        return directory
    if not v.gone:  # (a lost guest: every remaining testcase is skipped with the reason)
        why = f"fio/{target.name}/{'prefill' if directory is not None else 'setup'} failed"
        for point in points:
            v.record(v.done.get(point) or StageResult(point, Status.SKIP, message=f"skipped: {why}",
                                                            suite=suite))
    return None

def fio_point(v: "VariantRun", target, name: str, directory: str, numjobs: int) -> None:
    cfg, t = v.config.fio, v.config.timeouts
    timeout = t.fio or cfg.runtime + cfg.ramp_time + 120
    stage = StageResult(name, Status.PASS, suite=f"fio.{target.name}", log=f"fio/{target.name}/")
    runs, counters, host = [], {}, []
    with v.measuring(stage), measuring_alone(stage):
        try:
            before = target.counters(v.vm.guest)
            ours = hoststate.our_guest(v.vm.name)  # its qemu stays the same over the point
            for rep in range(1, cfg.repeat + 1):
                start = Sample.take()
                runs.append(fio.run_point(v.vm.guest, directory, cfg, numjobs, rep,
                                          v.dir / "fio" / target.name, timeout))
                host.append(HostState.between(start, Sample.take(), ours=ours))
            counters, why = target.check(before, target.counters(v.vm.guest))
            if why:
                stage.status, stage.message = Status.FAIL, why
            if cfg.contention:  # after the measured runs: tracing costs IOPS
                counters.update(contention.traced_run(
                    v.vm.guest, directory, cfg, numjobs, v.dir / "fio" / target.name,
                    timeout, f"{target.name}-nj{numjobs}"))
        finally:  # the figures of the runs that finished, whatever happened next
            if runs:
                stage.figures = {**stage.figures, **summarize_runs(runs), **counters, **hoststate.figures(host),
                                 **{f"policy_{k}": on for k, on in target.policy().items()}}
                if numjobs > v.config.vm.cpus:
                    stage.figures["note"] = f"numjobs {numjobs} > {v.config.vm.cpus} vCPUs"
                if stage.status == Status.PASS:
                    stage.message = f"{stage.figures['iops']:.0f} IOPS"


@contextlib.contextmanager
def measuring_alone(stage: StageResult):
    """One run measures on a host at a time (another may apply, build or
    run xfstests meanwhile): a point waits for the host's measure lock,
    and says how long it waited when it did."""
    start = time.monotonic()
    with locked("measure"):
        waited = time.monotonic() - start
        if waited >= 1:
            stage.figures["measure_wait_s"] = round(waited, 1)
        yield


def summarize_runs(runs: list) -> dict:
    """Figures of a point over its repeats: the median and the spread."""
    iops = [r.iops for r in runs]
    first = runs[0].to_properties()
    figures = {
        "iops": round(statistics.median(iops), 1),
        "iops_min": round(min(iops), 1),
        "iops_max": round(max(iops), 1),
        "repeats": len(runs),
        "iops_runs": [round(v) for v in iops],
        "bw_kib": round(statistics.median(r.bw_kib for r in runs), 1),
        "clat_p99_us": round(statistics.median(r.p99_us for r in runs), 1),
        "numjobs": first["numjobs"],
        "fio_version": first["fio_version"],
    }
    return figures
