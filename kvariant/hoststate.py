"""The host's state while a fio run measures: how busy its CPUs were, how
much time the hypervisor under it took away (steal: this machine may
itself be a guest), its load, the other guests running beside ours, and
what our own process spent meanwhile.  Recorded with each fio point, so
a run measured during a burst can be seen as such."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from .vm import qemu_pids


@dataclasses.dataclass(frozen=True)
class CpuTimes:
    """The first line of /proc/stat, in clock ticks."""

    total: int
    idle: int  # idle + iowait
    steal: int

    @classmethod
    def parse(cls, stat: str) -> "CpuTimes":
        """``cpu  user nice system idle iowait irq softirq steal guest guest_nice``;
        guest time is already counted in user, so it is left out of the total."""
        line = next(x for x in stat.splitlines() if x.startswith("cpu "))
        v = [int(x) for x in line.split()[1:]] + [0] * 10
        return cls(total=sum(v[:8]), idle=v[3] + v[4], steal=v[7])


@dataclasses.dataclass(frozen=True)
class Sample:
    cpu: CpuTimes
    at: float  # time.monotonic()
    own_cpu_s: float  # this process's user + system seconds, its children's included
    load1: float
    qemus: frozenset[int]

    @classmethod
    def take(cls, proc: Path = Path("/proc")) -> "Sample":
        t = os.times()
        return cls(cpu=CpuTimes.parse((proc / "stat").read_text()), at=time.monotonic(),
                   own_cpu_s=t.user + t.system + t.children_user + t.children_system,
                   load1=float((proc / "loadavg").read_text().split()[0]), qemus=frozenset(qemu_pids("")))


@dataclasses.dataclass(frozen=True)
class HostState:
    """Between two samples: percentages of all CPUs' time."""

    busy_pct: float
    steal_pct: float
    load1: float  # the higher of the two samples
    other_qemus: int  # guests other than ours running at the end
    own_cpu_pct: float  # our process (and its children) against one CPU's time

    @classmethod
    def between(cls, a: Sample, b: Sample, ours: frozenset[int] = frozenset()) -> "HostState":
        total = max(b.cpu.total - a.cpu.total, 1)
        wall = max(b.at - a.at, 1e-6)
        return cls(busy_pct=round(100 * (total - (b.cpu.idle - a.cpu.idle)) / total, 1),
                   steal_pct=round(100 * (b.cpu.steal - a.cpu.steal) / total, 1),
                   load1=max(a.load1, b.load1),
                   other_qemus=len(b.qemus - ours),
                   own_cpu_pct=round(100 * (b.own_cpu_s - a.own_cpu_s) / wall, 1))


def our_guest(name: str) -> frozenset[int]:
    """The qemu processes of our guest *name*."""
    return frozenset(qemu_pids(name))


def figures(states: list[HostState]) -> dict:
    """A fio point's host figures over its runs: each run's steal and busy
    share as lists, the worst load and the most other guests."""
    if not states:
        return {}
    return {"host_steal_pct_runs": [s.steal_pct for s in states],
            "host_busy_pct_runs": [s.busy_pct for s in states],
            "host_load1_max": max(s.load1 for s in states),
            "host_other_qemus_max": max(s.other_qemus for s in states),
            "host_own_cpu_pct_max": max(s.own_cpu_pct for s in states)}
