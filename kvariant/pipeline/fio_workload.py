"""The fio workload of a variant: each target's set-up and prefill (a
testcase of their own when they go wrong), then its points measured in
interleaved rounds (every point once per round, each target beside the
others), each point checked and recorded when the rounds end."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import statistics
import time
from typing import TYPE_CHECKING, Any

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


@dataclasses.dataclass
class Point:
    """One point of one target while the rounds run: its testcase, its
    runs so far, and the witnesses' figures summed over them."""

    target: Any
    directory: str  # in the guest, where the target's data file is
    numjobs: int
    stage: StageResult
    runs: list = dataclasses.field(default_factory=list)
    host: list = dataclasses.field(default_factory=list)
    counters: dict = dataclasses.field(default_factory=dict)

    @property
    def going(self) -> bool:
        return self.stage.status == Status.PASS


def round_order(names: list, rnd: int) -> list:
    """The targets in round *rnd* (1-based): as configured in odd rounds,
    reversed in even ones (A B, B A, A B, ...), so that each target's run
    has a run of every other target beside it and neither always goes
    first."""
    return list(names) if rnd % 2 else list(reversed(names))


def run_fio(v: "VariantRun") -> None:
    """Every target is set up and prefilled first; then the points are
    measured in ``repeat`` rounds, and in each round every numjobs runs
    once on every target, one target beside the other: a burst of the host
    hits a target and its control (raw XFS) alike."""
    cfg = v.config.fio
    targets, points = [], {}
    try:
        for name in cfg.targets:
            if v.gone:
                return
            names = [f"fio/{name}/{fio.point_name(cfg, n)}" for n in cfg.numjobs]
            if all(p in v.done for p in names):
                for p in names:
                    v.record(v.done[p])
                continue
            target = make_target(name, v.config.fuse_for(v.variant))
            targets.append(target)
            directory = prepare(v, target, names)
            if directory is None:
                continue
            for n, point in zip(cfg.numjobs, names):
                if point in v.done:
                    v.record(v.done[point])
                else:
                    points[(name, n)] = Point(target, directory, n, StageResult(
                        point, Status.PASS, suite=f"fio.{name}", log=f"fio/{name}/"))
        if points:
            measure_rounds(v, points)
    finally:
        stop_targets(v, targets)


def measure_rounds(v: "VariantRun", points: dict) -> None:
    cfg = v.config.fio
    names = list(dict.fromkeys(t for t, _ in points))
    with measuring_alone(*(p.stage for p in points.values())):
        ours = hoststate.our_guest(v.vm.name)  # its qemu stays the same over the rounds
        for rnd in range(1, cfg.repeat + 1):
            for n in cfg.numjobs:
                for name in round_order(names, rnd):
                    p = points.get((name, n))
                    if v.gone:
                        break
                    if p is not None and p.going:
                        measure_run(v, p, rnd, ours)
    for p in points.values():
        finish_point(v, p)


def measure_run(v: "VariantRun", p: Point, rnd: int, ours) -> None:
    """One fio run of a point, with its witnesses read around it."""
    cfg, t = v.config.fio, v.config.timeouts
    timeout = t.fio or cfg.runtime + cfg.ramp_time + 120
    with v.measuring(p.stage, record=False, label=f"round {rnd} of {cfg.repeat}"):
        before = p.target.counters(v.vm.guest)
        start = Sample.take()
        p.runs.append(fio.run_point(v.vm.guest, p.directory, cfg, p.numjobs, rnd,
                                    v.dir / "fio" / p.target.name, timeout))
        p.host.append(HostState.between(start, Sample.take(), ours=ours))
        counters, why = p.target.check(before, p.target.counters(v.vm.guest))
        p.counters = add_counters(p.counters, counters)
        if why:
            p.stage.status, p.stage.message = Status.FAIL, why


def add_counters(total: dict, more: dict) -> dict:
    """The witnesses' figures over two spans: counts add up, the rest
    (protocol, what was negotiated) is the latest."""
    out = dict(total)
    for k, x in more.items():
        countable = isinstance(x, int) and not isinstance(x, bool)
        out[k] = out.get(k, 0) + x if countable else x
    return out


def finish_point(v: "VariantRun", p: Point) -> None:
    """A point's figures over the runs it had, and its record.  A point
    the guest's end cut short is kept as skipped, with the runs it had."""
    cfg = v.config.fio
    if p.going and v.gone:
        if not p.runs:
            return  # skipped with the others (skip_missing), naming the reason
        p.stage.status = Status.SKIP
        p.stage.message = f"skipped after {len(p.runs)} of {cfg.repeat} runs: {v.gone}"
    if p.going and cfg.contention:  # after the measured runs: tracing costs IOPS
        with v.measuring(p.stage, record=False, label="traced run"):
            p.counters.update(contention.traced_run(
                v.vm.guest, p.directory, cfg, p.numjobs,
                v.dir / "fio" / p.target.name, v.config.timeouts.fio or cfg.runtime + cfg.ramp_time + 120,
                f"{p.target.name}-nj{p.numjobs}"))
    if p.runs:
        p.stage.figures = {**p.stage.figures, **summarize_runs(p.runs), **p.counters,
                           **hoststate.figures(p.host), "interleaved": True,
                           **{f"policy_{k}": on for k, on in p.target.policy().items()}}
        if p.numjobs > v.config.vm.cpus:
            p.stage.figures["note"] = f"numjobs {p.numjobs} > {v.config.vm.cpus} vCPUs"
        if p.stage.status == Status.PASS:
            p.stage.message = f"{p.stage.figures['iops']:.0f} IOPS"
    v.record(p.stage)


def stop_targets(v: "VariantRun", targets: list) -> None:
    for target in targets:
        if v.gone or v.vm is None or v.vm.guest is None:
            return
        try:
            target.stop(v.vm.guest, v.dir / "fio" / target.name, v.dir / "guest.log")
        except StageError as e:  # the guest is gone: the points say so already
            log.warning("stopping target %s: %s", target.name, e.message)


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


@contextlib.contextmanager
def measuring_alone(*stages: StageResult):
    """One run measures on a host at a time (another may apply, build or
    run xfstests meanwhile): the rounds wait for the host's measure lock,
    and each of their points says how long it waited when it did."""
    start = time.monotonic()
    with locked("measure"):
        waited = time.monotonic() - start
        for stage in stages:
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
