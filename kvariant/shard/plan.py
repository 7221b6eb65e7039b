"""The plan of a sharded run: its units of work and the shard of each, a
pure function of the config, the selected xfstests tests and the known
times of an earlier run.  Every shard computes the same plan, whatever the
host, the order of dicts and sets, or the order of the variants in the
file (they are sorted by name here; the config's order stays that of
presentation).

Units:

- ``fio``: the fio measurement round, every variant's points.  One unit,
  never split: the host is a blocking factor of the comparison.
- ``xfstests/<fstype>/<test>``: one test, run on every variant (so that
  the variants' results of a test come from one host).  Without a list of
  tests (a group selection whose tree the planning host lacks), the whole
  fstype is one unit, ``xfstests/<fstype>``.

Units go to shards by longest processing time first (greedy): the
longest unit to the least loaded shard, ties to the lower shard.  A unit's
time is what an earlier run measured of it (the sum over the variants;
a variant that run did not have counts as the mean of those it had, as a
new patch revision does); an xfstests test never measured counts as the
mean of the measured ones, so that with no times at all the tests are
spread by count.  The times every shard plans on travel in the kernel
store (``build --plan-times RUN``), so that the shards agree on them.
Shards are numbered 1..N, like CI_NODE_INDEX.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
from typing import Any, Iterable, Mapping

from ..config import Config
from ..model import VariantResult
from ..testcase import TestcaseId

MAX_SHARDS = 64
DEFAULT_TEST_SECONDS = 60.0  # an xfstests test when no test has a known time
POINT_OVERHEAD = 5.0  # s per fio run besides runtime and ramp (start, JSON, sync)
TARGET_OVERHEAD = 30.0  # s per fio target and variant (set-up, prefill)

# testcase name -> variant name -> seconds, from an earlier run
Times = Mapping[str, Mapping[str, float]]


@dataclasses.dataclass(frozen=True)
class Unit:
    """One unit of work: its testcases (the same for every variant) and the
    seconds it is expected to take over all variants."""

    name: str
    testcases: tuple[str, ...]
    seconds: float

    @property
    def kind(self) -> str:
        return self.name.split("/", 1)[0]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Units (sorted by name), the shard (1..n) of each, and the variants
    (sorted by name) every unit runs on."""

    n: int
    variants: tuple[str, ...]
    units: tuple[Unit, ...]
    shards: tuple[int, ...]  # shards[i] is the shard of units[i]

    def shard_of(self, unit: str) -> int:
        return self.shards[[u.name for u in self.units].index(unit)]

    def units_of(self, k: int) -> list[Unit]:
        return [u for u, s in zip(self.units, self.shards) if s == k]

    def loads(self) -> list[float]:
        """Expected seconds of each shard, 1..n."""
        out = [0.0] * self.n
        for u, s in zip(self.units, self.shards):
            out[s - 1] += u.seconds
        return out

    def testcases(self) -> dict[str, int]:
        """Every planned testcase (of each variant) -> the shard that runs it."""
        return {t: s for u, s in zip(self.units, self.shards) for t in u.testcases}

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "variants": list(self.variants),
                "units": [{"name": u.name, "shard": s, "seconds": round(u.seconds, 3),
                           "testcases": list(u.testcases)} for u, s in zip(self.units, self.shards)]}

    @property
    def digest(self) -> str:
        """SHA-256 of the plan's canonical JSON: shards of one plan agree."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        """The plan written by to_dict (KeyError, TypeError, ValueError when
        it is not one)."""
        units = [Unit(str(u["name"]), tuple(str(t) for t in u["testcases"]), float(u["seconds"]))
                 for u in data["units"]]
        shards = tuple(int(u["shard"]) for u in data["units"])
        n = int(data["n"])
        if not 1 <= n <= MAX_SHARDS or any(not 1 <= s <= n for s in shards):
            raise ValueError(f"shards outside 1..{n}")
        return cls(n, tuple(str(v) for v in data["variants"]), tuple(units), shards)


def make_plan(config: Config, n: int, tests: Mapping[str, Iterable[str]] | None = None,
              times: Times | None = None) -> Plan:
    """The plan of *config* over *n* shards.  *tests*: fstype -> the selected
    xfstests tests (see the module; default: the config's own ``tests``
    when it selects no group); *times*: an earlier run's (known_times)."""
    if not 1 <= n <= MAX_SHARDS:
        raise ValueError(f"expected a number of shards in 1..{MAX_SHARDS}, got {n}")
    variants = tuple(sorted(v.name for v in config.variants))
    units = sorted(fio_units(config, variants, times or {}) +
                   xfstests_units(config, variants, tests, times or {}), key=lambda u: u.name)
    return Plan(n, variants, tuple(units), tuple(assign([u.seconds for u in units], n)))


def assign(seconds: list[float], n: int) -> list[int]:
    """Longest processing time first: each item, longest first (ties by
    position), to the least loaded shard (ties to the lowest).  The shard
    (1..n) of each item, in the items' order."""
    loads = [0.0] * n
    out = [0] * len(seconds)
    for i in sorted(range(len(seconds)), key=lambda i: (-seconds[i], i)):
        k = min(range(n), key=lambda k: (loads[k], k))
        loads[k] += seconds[i]
        out[i] = k + 1
    return out


def fio_testcases(config: Config) -> tuple[str, ...]:
    f = config.fio
    return tuple(f"fio/{t}/{f.rw}-{f.bs}-nj{n}" for t in f.targets for n in f.numjobs)


def fio_units(config: Config, variants: tuple[str, ...], times: Times) -> list[Unit]:
    """The fio round: measured seconds where known, else estimated from the
    job (repeats of runtime + ramp, and a target's set-up)."""
    f = config.fio
    names = fio_testcases(config)
    per_point = f.repeat * (f.runtime + f.ramp_time + POINT_OVERHEAD)
    guess = len(names) * per_point + len(f.targets) * TARGET_OVERHEAD
    per_name = guess / len(names) if names else 0.0
    total = sum(on_variant(times.get(t, {}), v, per_name) for v in variants for t in names)
    return [Unit("fio", names, total)]


def on_variant(by: Mapping[str, float], variant: str, default: float) -> float:
    """A testcase's seconds on *variant*: measured on it, else the mean of
    the variants that ran it, else *default*."""
    if variant in by:
        return by[variant]
    return statistics.fmean(by.values()) if by else default


def xfstests_units(config: Config, variants: tuple[str, ...],
                   tests: Mapping[str, Iterable[str]] | None, times: Times) -> list[Unit]:
    cfg = config.xfstests
    if cfg is None:
        return []
    known = [s for name, by in times.items() if TestcaseId.parse(name).fstype for s in by.values()]
    default = statistics.fmean(known) if known else DEFAULT_TEST_SECONDS
    out = []
    for fstype in sorted(set(cfg.fstypes)):
        selected = (tests or {}).get(fstype)
        if selected is None and explicit(cfg):
            selected = [t for t in cfg.tests if t not in set(cfg.exclude)]
        if selected is None:
            out.append(Unit(f"xfstests/{fstype}", (f"xfstests/{fstype}",), default * len(variants)))
            continue
        for test in sorted(set(selected)):
            name = f"xfstests/{fstype}/{test}"
            by = times.get(name, {})
            out.append(Unit(name, (name,), sum(on_variant(by, v, default) for v in variants)))
    return out


def explicit(cfg) -> bool:
    """The config alone names the tests: no group, no glob, no exclude file."""
    return bool(cfg.tests) and not cfg.groups and cfg.exclude_file is None and not any(
        c in t for t in cfg.tests for c in "*?[")


def known_times(results: Iterable[VariantResult]) -> dict[str, dict[str, float]]:
    """An earlier run's seconds per workload testcase and variant (tests
    that passed or failed: a skipped one took no time worth planning on)."""
    out: dict[str, dict[str, float]] = {}
    for r in results:
        for s in r.stages:
            if s.id.scope and s.status.value in ("pass", "fail"):
                out.setdefault(s.name, {})[r.name] = float(s.seconds)
    return out


def balance(plan: Plan) -> float:
    """The longest shard over the mean shard (1.0: perfectly even)."""
    loads = plan.loads()
    mean = statistics.fmean(loads)
    return max(loads) / mean if mean else 1.0


def balances(config: Config, tests: Mapping[str, Iterable[str]] | None = None,
             times: Times | None = None, ns: Iterable[int] = (2, 4, 8)) -> dict[int, float]:
    """The balance of the plan at each number of shards in *ns*."""
    return {n: round(balance(make_plan(config, n, tests, times)), 3) for n in ns}
