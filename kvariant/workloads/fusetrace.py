"""The kernel's own count of the data requests a FUSE mount sends its server.

Under passthrough, reads and writes go from the FUSE file straight to the
backing file: no FUSE_READ or FUSE_WRITE request may reach the server.  Our
server counts what it receives, but another server (libfuse's passthrough_hp)
does not, and a witness inside the server is a weak one.  The kernel's
``fuse:fuse_request_send`` tracepoint fires for every request it queues, so
a tracefs instance of our own, filtered to one connection and to the two
opcodes, counts them for any server.  Hist triggers would do it too, but
virtme-ng's minimal config lacks CONFIG_HIST_TRIGGERS; the ring buffer's own
statistics (``entries`` plus ``overrun`` per CPU) count every event recorded
since the instance was made, so two readings give the requests of a point.

Enabling a tracepoint patches kernel text, and under TCG a patch on a running
guest now and then ends in an int3 Oops.  In a guest the instance is
therefore made, with its event on and its tracing off, by the kernel command
line (``boot_arg``: ``trace_instance=``, handled in start_kernel() while one
CPU runs); the scripts then only set the filter and turn the instance's
tracing on and off, which patches nothing.  (The tests on a host make such
an instance by hand, as the kernel would at boot.)

The shell snippets run in the guest (or on any host with the tracepoint);
the parsing is pure.
"""

from __future__ import annotations

import re
import shlex

TRACEFS = "/sys/kernel/tracing"
EVENT = "events/fuse/fuse_request_send"
FUSE_READ = 15
FUSE_WRITE = 16
BUFFER_KB = 64  # per CPU: the events are only counted, never read


def instance_name(tag: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", tag):
        raise ValueError(f"not a tracefs instance tag: {tag!r}")
    return f"kvariant-{tag}"


def instance_dir(tag: str) -> str:
    return f"{TRACEFS}/instances/{instance_name(tag)}"


def boot_arg(tag: str) -> str:
    """The kernel argument that makes the instance of *tag* at boot with
    fuse:fuse_request_send on and the instance's tracing off."""
    return f"trace_instance={instance_name(tag)}^traceoff,fuse:fuse_request_send"


def not_armed(d: str, event: str, tag: str, arg: str) -> str:
    """A shell line that fails, naming the kernel argument, when the
    instance *d* has no *event* enabled."""
    why = shlex.quote(f"tracefs instance {instance_name(tag)} was not armed at boot (kernel argument {arg})")
    return f"[ \"$(cat {d}/{event}/enable 2>/dev/null)\" = 1 ] || {{ echo {why} >&2; exit 1; }}"


def connection_of(maj_min: str) -> int:
    """The ``connection`` field of the tracepoint (the kernel's dev_t of the
    FUSE super block) from findmnt's MAJ:MIN."""
    m = re.fullmatch(r"\s*(\d+):(\d+)\s*", maj_min)
    if not m:
        raise ValueError(f"not a MAJ:MIN device number: {maj_min!r}")
    return (int(m.group(1)) << 20) | int(m.group(2))


def start_script(tag: str, mountpoint: str) -> str:
    """Count the data requests of the FUSE mount at *mountpoint* in the
    instance of *tag* armed at boot (boot_arg).  Prints the connection
    number.  Fails (exit != 0) when the kernel has no such tracepoint, the
    instance was not armed at boot, or the path is not a FUSE mount."""
    d = shlex.quote(instance_dir(tag))
    mnt = shlex.quote(mountpoint)
    return "\n".join([
        "set -e",
        f"mountpoint -q {TRACEFS} || mount -t tracefs nodev {TRACEFS}",
        f"[ -d {TRACEFS}/{EVENT} ] || {{ echo 'no fuse:fuse_request_send tracepoint' >&2; exit 1; }}",
        not_armed(d, EVENT, tag, boot_arg(tag)),
        f"mm=$(findmnt -n -o MAJ:MIN,FSTYPE --mountpoint {mnt} | awk '$2 ~ /^fuse/ {{print $1}}')",
        f"[ -n \"$mm\" ] || {{ echo 'not a FUSE mount: '{mnt} >&2; exit 1; }}",
        "conn=$(( (${mm%%:*} << 20) | ${mm#*:} ))",
        f"echo {BUFFER_KB} > {d}/buffer_size_kb",
        f"echo \"connection == $conn && (opcode == {FUSE_READ} || opcode == {FUSE_WRITE})\" > {d}/{EVENT}/filter",
        f"echo 1 > {d}/tracing_on",
        "echo $conn",
    ])


def read_script(tag: str) -> str:
    """Print every CPU's ring-buffer statistics of the instance."""
    d = shlex.quote(instance_dir(tag))
    return f"cat {d}/per_cpu/cpu*/stats"


def stop_script(tag: str) -> str:
    """Stop counting.  The instance keeps its event on: turning it off
    would patch kernel text."""
    d = shlex.quote(instance_dir(tag))
    return f"[ ! -d {d} ] || {{ echo 0 > {d}/tracing_on; echo 0 > {d}/{EVENT}/filter; }}"


def parse_stats(text: str) -> int:
    """Events recorded since the instance was made: the sum over CPUs of
    ``entries`` (in the buffer) and ``overrun`` (overwritten).  Raises
    ValueError on text that holds no statistics."""
    total = 0
    seen = False
    for key, value in re.findall(r"^(entries|overrun):\s*(\d+)\s*$", text, re.M):
        total += int(value)
        seen = True
    if not seen:
        raise ValueError("no ring-buffer statistics in the text")
    return total
