"""What a night would take on N runners, before buying them: the plan the
shards make (kvariant.shard.plan, from the config alone, as ``run
--kernels`` makes it) with each unit's time taken from earlier runs.

A unit's seconds are those of its testcases on every variant (as in the
plan).  Each testcase and variant is *measured* when an earlier run
recorded it for that variant (the mean over the runs given); else it is
*projected*: the mean of the variants that ran it, else a stated default
(an xfstests test: DEFAULT_TEST_SECONDS; a fio point: the job's estimate,
repeat x (runtime + ramp + POINT_OVERHEAD)).  A shard's fixed cost is the
boot and storage set-up of each variant it needs (every variant, when it
has a unit; none when it has none), measured the same way, booted one
after another; copying the kernel store to the runner is left out.  The
wall time of a night on N runners is its longest shard, units plus boots:
always a projection, even from measured figures alone."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..config import Config
from ..summary import RunSummary, setup_differences, setup_record
from .plan import DEFAULT_TEST_SECONDS, POINT_OVERHEAD, Plan, Unit, known_times

DEFAULT_BOOT_SECONDS = 60.0  # boot + storage of a variant no run measured
FIXED_STAGES = ("boot", "storage")


@dataclasses.dataclass(frozen=True)
class Timings:
    """Earlier runs' seconds: per workload testcase and variant, and per
    variant its boot + storage (each the mean over the runs that have it)."""

    tests: Mapping[str, Mapping[str, float]]
    boots: Mapping[str, float]
    runs: tuple[str, ...] = ()
    setups: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)  # run -> setup


@dataclasses.dataclass(frozen=True)
class Seconds:
    """A figure split into what was measured and what was projected."""

    measured: float = 0.0
    projected: float = 0.0

    @property
    def total(self) -> float:
        return self.measured + self.projected

    def __add__(self, other: "Seconds") -> "Seconds":
        return Seconds(self.measured + other.measured, self.projected + other.projected)


@dataclasses.dataclass(frozen=True)
class UnitTime:
    """A unit's seconds and how its unmeasured part was taken: "" (all
    measured), "other variants" or "default"."""

    name: str
    seconds: Seconds
    fallback: str = ""


@dataclasses.dataclass(frozen=True)
class ShardTime:
    k: int
    units: tuple[UnitTime, ...]
    boots: Seconds

    @property
    def load(self) -> Seconds:
        return sum((u.seconds for u in self.units), Seconds())

    @property
    def wall(self) -> float:
        return self.load.total + self.boots.total


@dataclasses.dataclass(frozen=True)
class Projection:
    """The night on *n* runners: each shard's units and boots."""

    n: int
    shards: tuple[ShardTime, ...]

    @property
    def wall(self) -> float:
        return max(s.wall for s in self.shards)

    @property
    def longest(self) -> ShardTime:
        return max(self.shards, key=lambda s: (s.wall, -s.k))

    @property
    def balance(self) -> float:
        """The longest shard's unit load over the mean shard's (1.0: even)."""
        loads = [s.load.total for s in self.shards]
        mean = statistics.fmean(loads)
        return max(loads) / mean if mean else 1.0


def read_timings(run_dirs: Iterable[Path]) -> Timings:
    """The timings of the runs in *run_dirs* (ConfigError, naming the file,
    for a directory without a readable summary.json)."""
    tests: dict[str, dict[str, list[float]]] = {}
    boots: dict[str, list[float]] = {}
    runs, setups = [], {}
    for d in run_dirs:
        summary = RunSummary.load(d)
        runs.append(f"{summary.run_id} ({Path(d)})")
        setups[runs[-1]] = summary.setup
        for name, by in known_times(summary.variants).items():
            for v, s in by.items():
                tests.setdefault(name, {}).setdefault(v, []).append(s)
        for r in summary.variants:
            fixed = [s for s in r.stages if s.name in FIXED_STAGES and s.status.value == "pass"]
            if len(fixed) == len(FIXED_STAGES):
                boots.setdefault(r.name, []).append(sum(float(s.seconds) for s in fixed))
    return Timings({t: {v: statistics.fmean(s) for v, s in by.items()} for t, by in tests.items()},
                   {v: statistics.fmean(s) for v, s in boots.items()}, tuple(runs), setups)


def unit_defaults(config: Config) -> dict[str, float]:
    """Seconds of a testcase on one variant when no run measured it, by
    kind of unit."""
    return {"fio": fio_point_default(config), "xfstests": DEFAULT_TEST_SECONDS}


def fio_point_default(config: Config) -> float:
    """A fio point's seconds on one variant when no run measured it."""
    f = config.fio
    return f.repeat * (f.runtime + f.ramp_time + POINT_OVERHEAD)


def measured_on(timings: Timings, name: str) -> dict[str, float]:
    """Variant -> measured seconds of testcase *name*; a whole fstype
    (xfstests/<fstype>) is the sum of its tests."""
    if name.count("/") == 1 and name.startswith("xfstests/"):
        out: dict[str, float] = {}
        for t, by in timings.tests.items():
            if t.startswith(name + "/"):
                for v, s in by.items():
                    out[v] = out.get(v, 0.0) + s
        return out
    return dict(timings.tests.get(name, {}))


def unit_time(unit: Unit, variants: tuple[str, ...], timings: Timings, defaults: Mapping[str, float]) -> UnitTime:
    """*unit*'s seconds over *variants*: measured where a run has them on
    that variant, else the mean of the variants that ran it, else the
    default of its kind."""
    seconds, fallback = Seconds(), ""
    for name in unit.testcases:
        by = measured_on(timings, name)
        for v in variants:
            others = [s for o, s in by.items() if o != v]
            if v in by:
                seconds += Seconds(measured=by[v])
            elif others:
                seconds += Seconds(projected=statistics.fmean(others))
                fallback = fallback or "other variants"
            else:
                seconds += Seconds(projected=defaults[unit.kind])
                fallback = "default"
    return UnitTime(unit.name, seconds, fallback)


def boot_seconds(variants: tuple[str, ...], timings: Timings) -> Seconds:
    """Boot + storage of every variant: measured, else the mean of the
    variants measured, else DEFAULT_BOOT_SECONDS."""
    instead = boot_default(timings)
    return sum((Seconds(measured=timings.boots[v]) if v in timings.boots else Seconds(projected=instead)
                for v in variants), Seconds())


def boot_default(timings: Timings) -> float:
    """A variant's boot + storage when no run measured it."""
    return statistics.fmean(timings.boots.values()) if timings.boots else DEFAULT_BOOT_SECONDS


def project(plan: Plan, config: Config, timings: Timings) -> Projection:
    """The night of *plan* on plan.n runners, from *timings*."""
    defaults = unit_defaults(config)
    times = {u.name: unit_time(u, plan.variants, timings, defaults) for u in plan.units}
    boots = boot_seconds(plan.variants, timings)
    shards = []
    for k in range(1, plan.n + 1):
        units = tuple(times[u.name] for u in plan.units_of(k))
        shards.append(ShardTime(k, units, boots if units else Seconds()))
    return Projection(plan.n, tuple(shards))


def seconds_dict(s: Seconds) -> dict[str, float]:
    return {"seconds": round(s.total, 3), "measured": round(s.measured, 3), "projected": round(s.projected, 3)}


def projection_dict(p: Projection) -> dict[str, Any]:
    """*p* as JSON: every figure with its measured and projected parts."""
    longest = p.longest
    return {"n": p.n, "wall_seconds": round(p.wall, 3), "wall_is": "projected",
            "longest_shard": longest.k, "balance": round(p.balance, 3),
            "shards": [{"k": s.k, "units": [u.name for u in s.units], "load": seconds_dict(s.load),
                        "boots": seconds_dict(s.boots), "wall_seconds": round(s.wall, 3)}
                       for s in p.shards]}


# -- what the plan command prints ------------------------------------------

SHOWN = 10  # names of projected units shown on a line (--json has them all)


def duration(seconds: float) -> str:
    """1234.5 -> "1234.5 s (20 min 35 s)"."""
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    clock = f"{h} h {m} min" if h else f"{m} min {s} s"
    return f"{seconds:.1f} s ({clock})"


def split(s: Seconds) -> str:
    """A figure and its parts: "310.2 s (all measured)", "60.0 s (all
    projected)" or "310.2 s (251.0 measured + 59.2 projected)"."""
    if not s.projected:
        return f"{s.total:.1f} s (all measured)"
    if not s.measured:
        return f"{s.total:.1f} s (all projected)"
    return f"{s.total:.1f} s ({s.measured:.1f} measured + {s.projected:.1f} projected)"


def count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def names(units: list[str]) -> str:
    shown = ", ".join(units[:SHOWN])
    return shown + (f" and {len(units) - SHOWN} more (--json lists them all)" if len(units) > SHOWN else "")


def timing_lines(config: Config, plan: Plan, timings: Timings) -> list[str]:
    """Which unit times and boots are measured, which projected and how."""
    defaults = unit_defaults(config)
    times = [unit_time(u, plan.variants, timings, defaults) for u in plan.units]
    runs = ", ".join(timings.runs) or "none (no --times: every figure projected)"
    out = [f"{config.path}: {count(len(plan.units), 'unit')} on {count(len(plan.variants), 'variant')} "
           f"({', '.join(plan.variants)}); times from runs: {runs}",
           f"measured: {sum(not t.fallback for t in times)} of {count(len(times), 'unit')} with every "
           f"testcase measured on every variant"]
    others = [t.name for t in times if t.fallback == "other variants"]
    if others:
        out.append(f"projected: {count(len(others), 'unit')} with variants no run measured, taken as "
                   f"the mean of the variants measured: {names(others)}")
    default = [t for t in times if t.fallback == "default"]
    if default:
        kinds = sorted({t.name.split("/", 1)[0] for t in default})
        taken = ", ".join(f"{defaults[k]:g} s per {KIND_DEFAULT[k]}" for k in kinds)
        out.append(f"projected: {count(len(default), 'unit')} without a measured time, taken as {taken}: "
                   f"{names([t.name for t in default])}")
    out += setup_lines(config, timings)
    measured = [v for v in plan.variants if v in timings.boots]
    if measured:
        out.append("measured: boot + storage of " +
                   ", ".join(f"{v} {timings.boots[v]:.1f} s" for v in measured))
    missing = [v for v in plan.variants if v not in timings.boots]
    if missing:
        how = "the mean of the variants measured" if timings.boots else "a default"
        out.append(f"projected: boot + storage of {', '.join(missing)}, not measured, taken as "
                   f"{boot_default(timings):.1f} s each ({how}); the kernel store's copy is left out")
    return out


def setup_lines(config: Config, timings: Timings) -> list[str]:
    """A run measured under another setup than the config's (the accelerator,
    the fio job, the guest): its times are taken as they are, and said so."""
    out = []
    for run, setup in timings.setups.items():
        mine = setup_record(config, setup.get("accel") == "kvm")
        keys = [k for k in setup_differences(mine, setup) if k != "accel"]
        differs = "; ".join(f"{k} {shown(setup[k])} there, {shown(mine[k])} in the config" for k in keys)
        accel = str(setup["accel"]).upper() if "accel" in setup else "an unrecorded accelerator"
        out.append(f"measured: run {run} under {accel}" + (
            f", with another setup ({differs}): its times are taken as they are" if keys else ""))
    return out


def shown(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(value) or "none"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


KIND_DEFAULT = {"fio": f"fio point and variant (the job's repeat x (runtime + ramp + {POINT_OVERHEAD:g} s))",
                "xfstests": "xfstests test and variant"}


def projection_lines(p: Projection) -> list[str]:
    """One line for the night on p.n runners, one per shard."""
    longest = p.longest
    out = [f"N={p.n}: wall {duration(p.wall)} projected, the longest shard ({longest.k}/{p.n}) "
           f"from {split(longest.load + longest.boots)}; balance {p.balance:.2f} (longest / mean "
           f"shard load)"]
    for s in p.shards:
        if not s.units:
            out.append(f"  shard {s.k}/{p.n}: no unit, boots nothing: 0.0 s")
            continue
        out.append(f"  shard {s.k}/{p.n}: {count(len(s.units), 'unit')}, load {split(s.load)}, boots "
                   f"{split(s.boots)}: {s.wall:.1f} s projected")
    return out


def document(config: Config, timings: Timings, projections: list[tuple[Plan, Projection]]) -> dict[str, Any]:
    """What the plan command prints, as JSON: per unit its seconds and how
    its unmeasured part was taken, per variant its boot, per N the shards."""
    defaults = unit_defaults(config)
    plan = projections[0][0]
    units = {}
    for u in plan.units:
        t = unit_time(u, plan.variants, timings, defaults)
        units[u.name] = {**seconds_dict(t.seconds), "fallback": t.fallback or None}
    boots = {v: {"seconds": round(timings.boots.get(v, boot_default(timings)), 3),
                 "measured": v in timings.boots} for v in plan.variants}
    return {"config": str(config.path), "runs": list(timings.runs), "setups": setup_lines(config, timings),
            "variants": list(plan.variants),
            "defaults": {"fio_point": defaults["fio"], "xfstests_test": defaults["xfstests"],
                         "boot_storage": round(boot_default(timings), 3), "store_copy": 0.0},
            "units": units, "boots": boots,
            "projections": [projection_dict(p) for _, p in projections]}
