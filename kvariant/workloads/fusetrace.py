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


def instance_dir(tag: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", tag):
        raise ValueError(f"not a tracefs instance tag: {tag!r}")
    return f"{TRACEFS}/instances/kvariant-{tag}"


def connection_of(maj_min: str) -> int:
    """The ``connection`` field of the tracepoint (the kernel's dev_t of the
    FUSE super block) from findmnt's MAJ:MIN."""
    m = re.fullmatch(r"\s*(\d+):(\d+)\s*", maj_min)
    if not m:
        raise ValueError(f"not a MAJ:MIN device number: {maj_min!r}")
    return (int(m.group(1)) << 20) | int(m.group(2))


def start_script(tag: str, mountpoint: str) -> str:
    """Make the instance for the FUSE mount at *mountpoint* and enable the
    filtered event.  Prints the connection number.  Fails (exit != 0) when
    the kernel has no such tracepoint or the path is not a FUSE mount."""
    d = shlex.quote(instance_dir(tag))
    mnt = shlex.quote(mountpoint)
    return "\n".join([
        "set -e",
        f"mountpoint -q {TRACEFS} || mount -t tracefs nodev {TRACEFS}",
        f"[ -d {TRACEFS}/{EVENT} ] || {{ echo 'no fuse:fuse_request_send tracepoint' >&2; exit 1; }}",
        f"mm=$(findmnt -n -o MAJ:MIN,FSTYPE --mountpoint {mnt} | awk '$2 ~ /^fuse/ {{print $1}}')",
        f"[ -n \"$mm\" ] || {{ echo 'not a FUSE mount: '{mnt} >&2; exit 1; }}",
        "conn=$(( (${mm%%:*} << 20) | ${mm#*:} ))",
        f"[ -d {d} ] && rmdir {d}",
        f"mkdir {d}",
        f"echo {BUFFER_KB} > {d}/buffer_size_kb",
        f"echo \"connection == $conn && (opcode == {FUSE_READ} || opcode == {FUSE_WRITE})\" > {d}/{EVENT}/filter",
        f"echo 1 > {d}/{EVENT}/enable",
        "echo $conn",
    ])


def read_script(tag: str) -> str:
    """Print every CPU's ring-buffer statistics of the instance."""
    d = shlex.quote(instance_dir(tag))
    return f"cat {d}/per_cpu/cpu*/stats"


def stop_script(tag: str) -> str:
    d = shlex.quote(instance_dir(tag))
    return f"[ ! -d {d} ] || {{ echo 0 > {d}/{EVENT}/enable; rmdir {d}; }}"


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
