"""Pure checks of config values: the documented range of every number,
what fio accepts for its free strings, and names the run directory keeps
for itself.  Each check returns what was expected (for the one-line
ConfigError), or None when the value is fine; the host's figures are
arguments, so every check is a pure function.

README.md lists the same ranges ("Ranges of the numbers"); a test keeps
the two in agreement.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

# key -> (lowest, highest): whole numbers, or seconds for durations.
RANGES: dict[str, tuple[int, int]] = {
    "kernel.jobs": (1, 1024),
    "vm.boot_retries": (0, 10),
    "null_blk.gb": (1, 1024),
    "fio.numjobs": (1, 256),
    "fio.iodepth": (1, 1024),
    "fio.repeat": (1, 100),
    "fio.boots": (1, 10),
    "fio.runtime": (1, 86400),
    "fio.ramp_time": (0, 3600),
    "fuse.threads": (1, 64),
    "timeouts.build": (1, 172800),
    "timeouts.boot": (1, 86400),
    "timeouts.kvm_probe": (1, 86400),
    "timeouts.command": (1, 86400),
    "timeouts.storage": (1, 86400),
    "timeouts.prefill": (1, 86400),
    "timeouts.fio": (1, 86400),  # or 0: runtime + ramp + 120 s
    "xfstests.test_timeout": (1, 86400),
    "xfstests.loop_failures": (0, 100),
    "correctness.rounds": (1, 100),
    "correctness.writers": (2, 32),
    "correctness.seconds": (2, 3600),
}
MAX_NUMJOBS_POINTS = 32  # entries of fio.numjobs
MAX_CPUS = 256  # vm.cpus where the host's count is unknown
MIN_MEMORY_MIB = 256  # vm.memory; the upper bound is the host's RAM
FIO_BS_MAX = 16 << 20  # 16 MiB
FIO_SIZE_MIN = 1 << 20  # 1 MiB
DEVICE_SHARE = 0.9  # of the null_blk device that fio's files may take (XFS needs the rest)

# fio's rw modes (fio 3.33 HOWTO) that kvariant measures: one direction,
# the one its parser reads.  The mixed and trim modes are fio's too, but
# a mixed run's IOPS would be read as one direction's, and trim needs a
# block device, not a file.
FIO_RW = ("read", "write", "randread", "randwrite")
FIO_RW_OTHERS = ("rw", "readwrite", "randrw", "trim", "randtrim", "trimwrite", "randtrimwrite")
# `fio --enghelp` (fio 3.33, the guest runs the host's fio), keeping the
# engines that do real I/O to a file: null, cpuio, net, exec, filecreate...
# would measure something else.
FIO_ENGINES = ("io_uring", "libaio", "mmap", "posixaio", "psync", "pvsync", "pvsync2", "sync",
               "vsync")
# a size in fio's syntax: a whole number of bytes, or with a unit (k, m, g,
# t: powers of 1024, either case)
FIO_SIZE = re.compile(r"^([1-9][0-9]{0,12})([kmgt]?)$", re.IGNORECASE)
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


SECONDS = ("fio.runtime", "fio.ramp_time", "xfstests.test_timeout", "correctness.seconds")  # and timeouts.*


def expected_number(key: str, zero_ok: bool = False) -> str:
    """What *key* takes: "a whole number in 1..256", "a number of seconds
    in 1..86400" (durations also take "90s", "15m", "3h")."""
    lo, hi = RANGES[key]
    if key.startswith("timeouts.") or key in SECONDS:
        text = f'a number of seconds in {lo}..{hi} or a duration like "90s", "15m", "3h"'
    else:
        text = f"a whole number in {lo}..{hi}"
    return f"0 (runtime + ramp + 120 s) or {text}" if zero_ok else text


def in_range(key: str, value: object, zero_ok: bool = False) -> bool:
    """Is *value* a number (never a bool, NaN or infinite) within the
    documented range of *key*?"""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    lo, hi = RANGES[key]
    return (zero_ok and value == 0) or lo <= value <= hi


def host_cpus() -> int | None:
    return os.cpu_count()


def host_memory_mib(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The host's RAM in MiB (MemTotal), or None when it cannot be read."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpus_problem(value: int, host: int | None) -> str | None:
    """vm.cpus: at least 1, at most the host's CPUs (a guest with more vCPUs
    than the host has measures the host's scheduler, not the kernel)."""
    top = host or MAX_CPUS
    if 1 <= value <= top:
        return None
    return f"a number of CPUs in 1..{top} (this host has {host} CPUs)" if host else \
        f"a number of CPUs in 1..{top}"


def memory_mib(text: str) -> int | None:
    m = re.fullmatch(r"([0-9]{1,9})([MG])", text)
    if not m:
        return None
    return int(m.group(1)) * (1024 if m.group(2) == "G" else 1)


def memory_problem(text: str, host_mib: int | None) -> str | None:
    """vm.memory: "4G" or "2048M", from MIN_MEMORY_MIB to the host's RAM."""
    mib = memory_mib(text)
    top = f"this host's RAM ({host_mib}M)" if host_mib else "the host's RAM"
    expected = f'a size like "4G" or "2048M" from {MIN_MEMORY_MIB}M up to {top}'
    if mib is None or mib < MIN_MEMORY_MIB or (host_mib and mib > host_mib):
        return expected
    return None


def fio_bytes(text: str) -> int | None:
    """A size in fio's syntax ("4k", "512M", "1g") in bytes, or None."""
    m = FIO_SIZE.match(text)
    return int(m.group(1)) * UNITS[m.group(2).lower()] if m else None


def fio_rw_problem(rw: str) -> str | None:
    if rw in FIO_RW:
        return None
    why = " (kvariant measures one direction: not a mixed or trim mode)" if rw in FIO_RW_OTHERS else ""
    return f"one of {', '.join(FIO_RW)}{why}"


def fio_engine_problem(engine: str) -> str | None:
    return None if engine in FIO_ENGINES else f"one of fio's file engines {', '.join(FIO_ENGINES)}"


def fio_bs_problem(bs: str, sector: int) -> str | None:
    """fio.bs: one block size with a unit, a multiple of the device's
    sector (O_DIRECT), at most FIO_BS_MAX."""
    n = fio_bytes(bs)
    expected = (f'a block size like "4k" or "1m": a multiple of null_blk.bs ({sector}) '
                f"up to {FIO_BS_MAX >> 20}m")
    if n is None or n % sector or n > FIO_BS_MAX:
        return expected
    return None


def fio_size_problem(size: str, bs: int | None, device_gb: int, files: int) -> str | None:
    """fio.size: the file every job of a point writes, one per target, all
    on the null_blk device: at least 1m and one block, and all of them in
    DEVICE_SHARE of the device."""
    n = fio_bytes(size)
    top = int(device_gb * (1 << 30) * DEVICE_SHARE / max(files, 1))
    expected = (f'a file size like "512m" or "1g", from 1m up to {top >> 20}m '
                f"({files} target(s) on the {device_gb}G null_blk device)")
    if n is None or n < max(FIO_SIZE_MIN, bs or 0) or n > top:
        return expected
    return None
