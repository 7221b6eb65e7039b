"""Who waited on which sleeping lock during a traced run, from the kernel's
``lock:contention_begin`` / ``lock:contention_end`` tracepoints (no lockdep
needed).

The motivating series is about one lock: without it, passthrough O_DIRECT
writers serialise on the FUSE inode's i_rwsem, taken for write in
``fuse_passthrough_write_iter``.  IOPS under TCG are noisy; whether writers
wait on that lock is not.  A tracefs instance of our own records every
sleeping-lock contention (spinning waits are filtered out) with a kernel
stack (the ``stacktrace`` trigger), and the end of each wait; the trace is
read back as text and parsed here: each wait is attributed to the first
function of its stack that is not lock machinery (its *site*), with its mode
(``write``, ``read``, ``mutex``) and its duration.  Tracing has a cost, so
it runs on a separate, short fio run of its own, never on a measured one.

In a guest the events are enabled at boot (``boot_arg``, a ``trace_instance=``
kernel argument, with the instance's tracing off): enabling them on a running
guest would patch kernel text, which under TCG now and then ends in an int3
Oops.  A traced run then only sets the filter and the stack trigger, and
turns the instance's tracing on and off, none of which patches text.
Between traced runs the probes stay attached but record nothing; they are
reached only on a lock's slow path, where the task is about to wait anyway.
(The tests on a host make such an instance by hand, as the kernel would.)

The shell snippets run in the guest; the parsing is pure.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from . import fio
from .fusetrace import TRACEFS, instance_dir, instance_name, not_armed

log = logging.getLogger(__name__)

BEGIN = "events/lock/contention_begin"
END = "events/lock/contention_end"
BUFFER_KB = 8192  # per CPU; an overrun is reported, never hidden
LCB_F_SPIN = 1

# Frames that belong to the lock itself or the scheduler, not to its user.
_MACHINERY = re.compile(
    r"^(trace_event_raw_event_\w+|__traceiter_\w+|\w*rwsem\w*|\w*down_(read|write)\w*|"
    r"down(_\w+)?|\w*mutex_lock\w*|__mutex_\w+|\w*schedule\w*|\w*percpu_down\w*|"
    r"inode_lock\w*|inode_dio_wait\w*|\w*lock_slowpath\w*)(\.\w+)*$")

_EVENT = re.compile(r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[\d+\]\s+\S+\s+(?P<ts>\d+\.\d+):\s+"
                    r"(?P<event>contention_begin|contention_end|<stack trace>):?\s*(?P<rest>.*)$")
_FRAME = re.compile(r"^\s*=>\s*(?P<fn>[\w.]+)")


TAG = "contention"  # the instance a guest makes at boot (boot_arg)
_NOT_SPIN = f"!(flags & {LCB_F_SPIN})"


def boot_arg(tag: str = TAG) -> str:
    """The kernel argument that makes the instance at boot with both events
    on and the instance's tracing off."""
    return f"trace_instance={instance_name(tag)}^traceoff,lock:contention_begin,lock:contention_end"


def start_script(tag: str = TAG) -> str:
    """Start recording in the instance armed at boot (boot_arg), emptied.
    Fails (exit != 0) when the kernel has no contention tracepoints or the
    instance was not armed at boot."""
    d = shlex.quote(instance_dir(tag))
    return "\n".join([
        "set -e",
        f"mountpoint -q {TRACEFS} || mount -t tracefs nodev {TRACEFS}",
        f"[ -d {TRACEFS}/{BEGIN} ] || {{ echo 'no lock:contention_begin tracepoint' >&2; exit 1; }}",
        not_armed(d, BEGIN, tag, boot_arg(tag)),
        not_armed(d, END, tag, boot_arg(tag)),
        f"echo 0 > {d}/tracing_on",
        f"echo '!stacktrace if {_NOT_SPIN}' > {d}/{BEGIN}/trigger 2>/dev/null || true",  # a run cut short
        f"echo {BUFFER_KB} > {d}/buffer_size_kb",
        f"echo > {d}/trace",  # empty, its statistics reset
        f"echo '{_NOT_SPIN}' > {d}/{BEGIN}/filter",
        # A trigger ignores the event's filter: give it the same condition.
        f"echo 'stacktrace if {_NOT_SPIN}' > {d}/{BEGIN}/trigger",
        f"echo 1 > {d}/tracing_on",
    ])


def read_script(tag: str = TAG) -> str:
    """Stop recording, then print the trace and the buffer statistics."""
    d = shlex.quote(instance_dir(tag))
    return (f"echo 0 > {d}/tracing_on; cat {d}/trace; "
            f"echo '# kvariant stats'; cat {d}/per_cpu/cpu*/stats")


def stop_script(tag: str = TAG) -> str:
    """Stop recording; the instance loses its trigger, filter and trace but
    keeps its events on (turning them off would patch kernel text)."""
    d = shlex.quote(instance_dir(tag))
    return (f"[ ! -d {d} ] || {{ echo 0 > {d}/tracing_on; "
            f"echo '!stacktrace if {_NOT_SPIN}' > {d}/{BEGIN}/trigger 2>/dev/null; "
            f"echo 0 > {d}/{BEGIN}/filter; echo > {d}/trace; }}")


@dataclass
class Site:
    """The waits of one (site, mode)."""
    waits: int = 0
    wait_us: float = 0.0
    unfinished: int = 0  # a begin whose end the trace did not hold


@dataclass
class Contention:
    sites: dict[tuple[str, str], Site] = field(default_factory=dict)
    lost: int = 0  # events overwritten in the ring buffer

    def site(self, function: str, mode: str) -> Site:
        return self.sites.get((function, mode), Site())

    def figures(self, seconds: float) -> dict[str, float]:
        """Flat figures for JUnit properties and summaries: per site and
        mode, waits per second and the mean wait."""
        out: dict[str, float] = {}
        for (fn, mode), s in sorted(self.sites.items()):
            out[f"contention.{fn}.{mode}_waits_per_s"] = round(s.waits / seconds, 1) if seconds > 0 else 0.0
            out[f"contention.{fn}.{mode}_wait_us_mean"] = round(s.wait_us / s.waits, 1) if s.waits else 0.0
        out["contention_lost_events"] = self.lost
        return out


def _mode(rest: str) -> str | None:
    m = re.search(r"flags=([A-Z|]+)", rest)
    flags = set(m.group(1).split("|")) if m else set()
    if "SPIN" in flags:
        return None
    if "MUTEX" in flags:
        return "mutex"
    if "WRITE" in flags:
        return "write"
    if "READ" in flags:
        return "read"
    return "other"


def site_of(frames: list[str]) -> str:
    """The first frame that is not lock or scheduler machinery."""
    for fn in frames:
        if not _MACHINERY.match(fn):
            return fn
    return frames[-1] if frames else "?"


def parse_trace(text: str) -> Contention:
    """Waits from the text of a tracefs ``trace`` file written by
    start_script's instance (begin, its stack, then its end, per task)."""
    result = Contention()
    open_waits: dict[str, tuple[float, str]] = {}  # pid -> (begin ts, mode)
    stacks: dict[str, list[str]] = {}  # pid -> frames of its latest stack
    pending: dict[str, str] = {}  # pid whose stack is being read -> mode
    current = None
    body, _, stats = text.partition("# kvariant stats")
    for line in body.splitlines():
        frame = _FRAME.match(line)
        if frame and current is not None:
            stacks.setdefault(current, []).append(frame.group("fn"))
            continue
        current = None
        m = _EVENT.match(line)
        if not m:
            continue
        pid, ts, event = m.group("pid"), float(m.group("ts")), m.group("event")
        if event == "contention_begin":
            mode = _mode(m.group("rest"))
            if mode is not None:
                open_waits[pid] = (ts, mode)
                stacks[pid] = []
        elif event == "<stack trace>":
            if pid in open_waits:
                current = pid
                stacks[pid] = []
        elif pid in open_waits:  # contention_end
            begin, mode = open_waits.pop(pid)
            site = result.sites.setdefault((site_of(stacks.pop(pid, [])), mode), Site())
            site.waits += 1
            site.wait_us += (ts - begin) * 1e6
    for pid, (_, mode) in open_waits.items():
        result.sites.setdefault((site_of(stacks.get(pid, [])), mode), Site()).unfinished += 1
    result.lost = sum(int(v) for v in re.findall(r"^overrun:\s*(\d+)", stats, re.M))
    return result


# One traced run of a fio point

TRACED_RUNTIME = 4.0  # seconds: contention is a rate, a short run shows it
TRACED_RAMP = 1.0


def fuse_figures(c: Contention, seconds: float) -> dict[str, float]:
    """The figures a report shows beside IOPS: waits per second on locks
    taken in fs/fuse (the FUSE inode's i_rwsem, by site) and in the backing
    XFS, per mode, and the mean wait."""
    out: dict[str, float] = {}
    for prefix, name in (("fuse_", "fuse"), ("xfs_", "xfs")):
        for mode in ("write", "read"):
            waits = [s for (fn, m), s in c.sites.items() if fn.startswith(prefix) and m == mode]
            n = sum(s.waits for s in waits)
            out[f"contention_{name}_{mode}_waits_per_s"] = round(n / seconds, 1) if seconds > 0 else 0.0
            if n:
                out[f"contention_{name}_{mode}_wait_us_mean"] = round(sum(s.wait_us for s in waits) / n, 1)
    return out


def traced_run(guest, directory: str, cfg, numjobs: int, outdir: Path, timeout: float,
               tag: str = TAG) -> dict[str, float]:
    """A short fio run of the point with contention tracing on, after the
    measured runs (tracing costs IOPS: it never touches a measured run).
    Keeps the compressed trace under *outdir* and returns the figures
    (fuse_figures, then every site's), or {} (and a warning saying why)
    when the kernel has no contention tracepoints or the guest was booted
    without boot_arg."""
    short = dataclasses.replace(cfg, runtime=min(cfg.runtime, TRACED_RUNTIME),
                                ramp_time=min(cfg.ramp_time, TRACED_RAMP), repeat=1)
    started = guest.run(start_script(tag), timeout=60)
    if not started.ok:
        log.warning("no lock contention traced: %s", started.tail.strip())
        return {}
    name = f"{fio.point_name(cfg, numjobs)}-contention"
    remote = f"/tmp/kvariant/{name}.txt.gz"
    try:
        fio.run_point(guest, directory, short, numjobs, 1, outdir / "traced", timeout)
        guest.run(f"{{ {read_script(tag)}; }} | gzip -1 > {remote}", timeout=120).check("reading the trace")
    finally:
        guest.run(stop_script(tag), timeout=60)
    local = outdir / f"{name}.txt.gz"
    if not guest.get(remote, local, missing_ok=True):
        return {}
    with gzip.open(local, "rt", errors="replace") as f:
        c = parse_trace(f.read())
    seconds = short.runtime + short.ramp_time
    return {**fuse_figures(c, seconds), **c.figures(seconds)}
