"""The fio workload of a variant, or of variants whose guests are up
together: each target's set-up and prefill (a testcase of their own when
they go wrong), then the points measured in interleaved rounds (every
point once per round, each variant beside the others, each target beside
its control), each point checked and recorded when the rounds end."""

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
from . import boot as boot_stage
from .stages import storage

if TYPE_CHECKING:
    from .variant import VariantRun

log = logging.getLogger(__name__)


class FioWorkload:
    def names(self, config: Config) -> list[str]:
        return [f"fio/{t}/{fio.point_name(config.fio, n)}"
                for t in config.fio.targets for n in config.fio.numjobs]

    def run(self, v: "VariantRun") -> None:
        run_fio([v])

    def run_together(self, vs: list["VariantRun"]) -> None:
        """The variants' guests are up at once: their runs alternate."""
        run_fio(vs)


@dataclasses.dataclass
class Point:
    """One point of one target while the rounds run: its testcase, its
    runs so far (and the boot of each), and the witnesses' figures summed
    over them."""

    target: Any
    directory: str  # in the guest, where the target's data file is
    numjobs: int
    stage: StageResult
    runs: list = dataclasses.field(default_factory=list)
    boots: list = dataclasses.field(default_factory=list)  # the guest of each run: 1, 2, ...
    rounds: list = dataclasses.field(default_factory=list)  # the round of each run, over the guests
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


def run_fio(vs: list["VariantRun"]) -> None:
    """The fio points of the variants *vs*, whose guests are up together
    (one variant: its own guest alone).  In each of ``boots`` guests a
    variant has (its own, then new ones): every target is set up and
    prefilled first; then the points are measured in ``repeat`` rounds,
    and in each round every numjobs runs once on every target of every
    variant, the variants one beside the other and in turn first (A B, B
    A, ...), each variant's targets beside each other: a burst or a drift
    of the host hits the variants compared, and a target and its control
    (raw XFS), alike.  The points are recorded when the last guest is
    done."""
    cfg = vs[0].config.fio
    points: dict = {v: {} for v in vs}
    ended: set = set()  # variants whose guests are done with (gone, or a reboot failed)
    for boot in range(1, cfg.boots + 1):
        targets: dict = {v: [] for v in vs}
        try:
            for v in vs:
                if v in ended or v.gone or (boot > 1 and not (points[v] and reboot(v, boot))):
                    ended.add(v)
                    continue
                for name in cfg.targets:
                    if v.gone:
                        break
                    set_up(v, name, boot, points[v], targets[v])
            going = {v: still_going(points[v]) for v in vs if v not in ended and not v.gone}
            going = {v: g for v, g in going.items() if g}
            if going:
                measure_rounds(going, boot)
                for v, g in going.items():
                    if boot == 1 and cfg.contention and not v.gone:  # while the targets are still mounted
                        trace_contention(v, g)
        finally:
            for v in vs:
                stop_targets(v, targets[v])
    together = ",".join(v.variant.name for v in vs) if len(vs) > 1 else ""
    for v in vs:
        for p in points[v].values():
            finish_point(v, p, together)


def still_going(points: dict) -> dict:
    """The points of a variant still measured (none failed its set-up)."""
    return {k: p for k, p in points.items() if p.going}


def set_up(v: "VariantRun", name: str, boot: int, points: dict, targets: list) -> None:
    """Target *name* in this guest (added to *targets*, to be stopped), set
    up and prefilled, its points made (first guest) or pointed at it."""
    cfg = v.config.fio
    names = [f"fio/{name}/{fio.point_name(cfg, n)}" for n in cfg.numjobs]
    if boot == 1 and all(p in v.done for p in names):
        for p in names:
            v.record(v.done[p])
        return
    if boot > 1 and not any(p.going and p.target.name == name for p in points.values()):
        return
    target = make_target(name, v.config.fuse_for(v.variant))
    targets.append(target)
    directory = prepare(v, target)
    for n, point in zip(cfg.numjobs, names):
        p = points.get((name, n))
        if boot == 1 and point in v.done:
            v.record(v.done[point])
        elif boot == 1 and directory is not None:
            points[(name, n)] = Point(target, directory, n, StageResult(
                point, Status.PASS, suite=f"fio.{name}", log=f"fio/{name}/"))
        elif boot == 1 and not v.gone:
            why = f"fio/{name}/{'prefill' if target.started else 'setup'} failed"
            v.record(StageResult(point, Status.SKIP, message=f"skipped: {why}", suite=f"fio.{name}"))
        elif p is not None and p.going and directory is not None:
            p.target, p.directory = target, directory
        elif p is not None and p.going and not v.gone:
            p.stage.status = Status.ERROR
            p.stage.message = f"fio/{name}/{'prefill' if target.started else 'setup'} failed in guest {boot}"


def reboot(v: "VariantRun", boot: int) -> bool:
    """Guest *boot* of the fio workload: the last one stopped (its console
    kept as console-boot<N>.log), a new one booted with its storage.  A
    failure is the testcase fio/guest/boot-<N>, and the variant's guest is
    gone; the points keep the guests they had."""
    v.vm.stop()
    console = v.dir / "console.log"
    if console.exists():
        console.rename(v.dir / f"console-boot{boot - 1}.log")
    v.vm = None
    stage = StageResult(f"fio/guest/boot-{boot}", Status.PASS, suite="fio.guest", log="console.log")
    with v.measuring(stage, keep_pass=False):
        boot_stage.boot(v)
        storage(v)
    if stage.status != Status.PASS:
        v.gone = v.gone or f"guest {boot} of {v.config.fio.boots} did not come up: {stage.message}"
        return False
    return True


def variant_order(vs: list, rnd: int) -> list:
    """The variants in round *rnd* (1-based): as configured in odd rounds,
    reversed in even ones, so that none is always measured first."""
    return list(vs) if rnd % 2 else list(reversed(vs))


def measure_rounds(going: dict, boot: int = 1) -> None:
    """The rounds of guest *boot* over *going* (variant -> its points
    still measured): in each round, each numjobs, each variant in turn,
    each of its targets."""
    vs = list(going)
    cfg = vs[0].config.fio
    with measuring_alone(*(p.stage for g in going.values() for p in g.values())):
        ours = frozenset().union(*(hoststate.our_guest(v.vm.name) for v in vs))  # the cohort's qemus
        for rnd in range(1, cfg.repeat + 1):
            for n in cfg.numjobs:
                for v in variant_order(vs, rnd):
                    names = list(dict.fromkeys(t for t, _ in going[v]))
                    for name in round_order(names, rnd):
                        p = going[v].get((name, n))
                        if v.gone:
                            break
                        if p is not None and p.going:
                            measure_run(v, p, rnd, ours, boot)


def measure_run(v: "VariantRun", p: Point, rnd: int, ours, boot: int = 1) -> None:
    """One fio run of a point, with its witnesses read around it."""
    cfg, t = v.config.fio, v.config.timeouts
    timeout = t.fio or cfg.runtime + cfg.ramp_time + 120
    label = f"round {rnd} of {cfg.repeat}" + (f", guest {boot} of {cfg.boots}" if cfg.boots > 1 else "")
    with v.measuring(p.stage, record=False, label=label):
        before = p.target.counters(v.vm.guest)
        start = Sample.take()
        p.runs.append(fio.run_point(v.vm.guest, p.directory, cfg, p.numjobs,
                                    (boot - 1) * cfg.repeat + rnd, v.dir / "fio" / p.target.name, timeout))
        p.boots.append(boot)
        p.rounds.append((boot - 1) * cfg.repeat + rnd)
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


def finish_point(v: "VariantRun", p: Point, together: str = "") -> None:
    """A point's figures over the runs it had, and its record.  A point
    the guest's end cut short is kept as skipped, with the runs it had.
    *together*: the variants whose guests measured beside this one, in
    the same rounds (figure ``together``, with ``iops_rounds``, the round
    of each run: compare pairs the runs of two variants by round)."""
    cfg = v.config.fio
    guests = len(set(p.boots))
    if p.going and v.gone and not p.runs:
        return  # skipped with the others (skip_missing), naming the reason
    if p.going and v.gone and len(p.runs) != guests * cfg.repeat:
        p.stage.status = Status.SKIP
        p.stage.message = f"skipped after {len(p.runs)} of {cfg.repeat * cfg.boots} runs: {v.gone}"
    if p.runs:
        p.stage.figures = {**p.stage.figures, **summarize_runs(p.runs), **p.counters,
                           **hoststate.figures(p.host), "interleaved": True,
                           **({"normalise": True} if cfg.normalise else {}),
                           **{f"policy_{k}": on for k, on in p.target.policy().items()}}
        if p.numjobs > v.config.vm.cpus:
            p.stage.figures["note"] = f"numjobs {p.numjobs} > {v.config.vm.cpus} vCPUs"
        if cfg.boots > 1:
            p.stage.figures["iops_boots"] = list(p.boots)
        if together:
            p.stage.figures["together"] = together
            p.stage.figures["iops_rounds"] = list(p.rounds)
        if p.stage.status == Status.PASS:
            p.stage.message = f"{p.stage.figures['iops']:.0f} IOPS" + (
                f" ({guests} guests)" if guests > 1 else "") + (
                f"; {cfg.boots - guests} of {cfg.boots} guests did not come up" if guests < cfg.boots else "")
    v.record(p.stage)


def trace_contention(v: "VariantRun", points: dict) -> None:
    """One traced run of each point after the measured runs (tracing
    costs IOPS), on its target still mounted."""
    cfg = v.config.fio
    for p in points.values():
        if p.going and not v.gone:
            with v.measuring(p.stage, record=False, label="traced run"):
                p.counters.update(contention.traced_run(
                    v.vm.guest, p.directory, cfg, p.numjobs, v.dir / "fio" / p.target.name,
                    v.config.timeouts.fio or cfg.runtime + cfg.ramp_time + 120))


def stop_targets(v: "VariantRun", targets: list) -> None:
    for target in targets:
        if v.gone or v.vm is None or v.vm.guest is None:
            return
        try:
            target.stop(v.vm.guest, v.dir / "fio" / target.name, v.dir / "guest.log")
        except StageError as e:  # the guest is gone: the points say so already
            log.warning("stopping target %s: %s", target.name, e.message)


def prepare(v: "VariantRun", target) -> str | None:
    """A target's set-up and its prefill, each a testcase of its own
    (fio/<target>/setup, fio/<target>/prefill) when it fails or the
    kernel reports during it.  The target's directory, or None when a
    step did not finish (``target.started`` says whether the set-up did)."""
    directory = None
    prefilled = False
    target.started = False
    suite, guest_log = f"fio.{target.name}", v.dir / "guest.log"
    with v.measuring(StageResult(f"fio/{target.name}/setup", Status.PASS, suite=suite,
                                    log="guest.log"), keep_pass=False):
        directory = target.start(v.vm.guest, guest_log)
        target.started = True
    if directory is not None and not v.gone:
        with v.measuring(StageResult(f"fio/{target.name}/prefill", Status.PASS, suite=suite,
                                        log="guest.log"), keep_pass=False):
            fio.prefill(v.vm.guest, directory, v.config.fio, timeout=v.config.timeouts.prefill)
            prefilled = True
    return directory if prefilled and not v.gone else None


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
        "clat_p99_us_runs": [round(r.p99_us, 1) for r in runs],
        "numjobs": first["numjobs"],
        "fio_version": first["fio_version"],
    }
    return figures
