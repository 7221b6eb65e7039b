"""Storage in the guest: a RAM-backed null_blk device with XFS on it."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import NullBlkConfig

XFS_MOUNT = "/tmp/kvariant/xfs"


def modprobe_argv(cfg: NullBlkConfig, cpus: int, nr_devices: int = 1) -> list[str]:
    return [
        "modprobe", "null_blk", f"nr_devices={nr_devices}", f"gb={cfg.gb}", f"bs={cfg.bs}",
        "memory_backed=1", "queue_mode=2", "irqmode=0", f"submit_queues={cpus}",
        "hw_queue_depth=256",
    ]


def setup_script(cfg: NullBlkConfig, cpus: int, device: str = "nullb0",
                 mountpoint: str = XFS_MOUNT) -> str:
    """A shell script that loads null_blk, sets the scheduler to none, makes
    XFS and mounts it; each step stops the script on failure."""
    dev = f"/dev/{device}"
    steps = [
        shlex.join(modprobe_argv(cfg, cpus)),
        f"for i in $(seq 50); do [ -b {dev} ] && break; sleep 0.1; done; [ -b {dev} ]",
        f"echo none > /sys/block/{device}/queue/scheduler",
        f"mkfs.xfs -f -q {dev}",
        f"mkdir -p {mountpoint}",
        f"mount -t xfs {dev} {mountpoint}",
        f"findmnt -n -o SOURCE,FSTYPE,SIZE {mountpoint}",
        f"cat /sys/block/{device}/queue/scheduler",
    ]
    return "set -e\n" + "\n".join(steps) + "\n"
