"""fio targets: where in the guest a workload writes.

``xfs``: the XFS on null_blk itself (the reference).  ``fuse-passthrough``
and ``fuse``: a FUSE server (``[fuse] server``: ours, kvariant.fuse, or
libfuse's passthrough_hp) mirroring a directory of that XFS, with and
without passthrough.  Around every point a FUSE target reads the kernel's
count of the READ/WRITE requests sent to the server (kvariant.workloads.
fusetrace; its tracefs instance is armed by the kernel command line,
``boot_args``) and, for our server, the server's own counters: two
witnesses of the path the data took.

TARGETS is the registry of the targets, as virtme-ng keeps its
architectures: a name (what ``[fio] targets`` takes; kvariant.config reads
the valid names from here) -> a factory of the target from the ``[fuse]``
section.  Like the FUSE servers' registry, this module sits below the
config: it takes a FuseConfig but never imports kvariant.config.
"""

from __future__ import annotations

import functools
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import StageError
from ..fuse.servers import MountSpec, get_server
from ..paths import PROJECT
from . import fusetrace
from .storage import XFS_MOUNT

if TYPE_CHECKING:
    from ..config import FuseConfig

logger = logging.getLogger(__name__)

GUEST_DIR = "/tmp/kvariant"


class XfsTarget:
    name = "xfs"
    passthrough = None

    def __init__(self):
        self.directory = f"{XFS_MOUNT}/raw"

    def start(self, guest, log: Path) -> str:
        guest.run(f"mkdir -p {self.directory}", timeout=30, log=log).check("mkdir on XFS")
        return self.directory

    def counters(self, guest) -> dict:
        return {}

    def check(self, before: dict, after: dict) -> tuple[dict, str]:
        return {}, ""

    def stop(self, guest, outdir: Path, log: Path) -> None:
        pass

    def policy(self) -> dict:
        return {}


class FuseTarget:
    """The configured server over ``XFS_MOUNT/<name>-src``, mounted at
    ``/tmp/kvariant/mnt/<name>``."""

    def __init__(self, name: str, passthrough: bool, cfg: FuseConfig):
        self.name = name
        self.passthrough = passthrough
        self.cfg = cfg
        self.server = get_server(cfg.server)
        self.source = f"{XFS_MOUNT}/{name}-src"
        self.directory = f"{GUEST_DIR}/mnt/{name}"
        self.stats = f"{GUEST_DIR}/{name}-stats.json"
        self.server_log = f"{GUEST_DIR}/{name}-server.log"
        self.traced = False  # the kernel's request count is armed

    def argv(self) -> list[str]:
        spec = MountSpec(self.source, self.directory, passthrough=self.passthrough,
                         parallel_direct_writes=self.cfg.parallel_direct_writes,
                         direct_io=self.cfg.direct_io, threads=self.cfg.threads,
                         stats=self.stats, log=self.server_log)
        return self.server.argv(spec, python=sys.executable)

    def policy(self) -> dict:
        policy = {"passthrough": self.passthrough,
                  "parallel_direct_writes": self.cfg.parallel_direct_writes,
                  "direct_io": self.cfg.direct_io}
        if self.server.name != "kvariant":  # summaries of earlier runs stay comparable
            policy["server"] = self.server.name
        return policy

    def start(self, guest, log: Path) -> str:
        cmd = (f"mkdir -p {self.source} {self.directory} && "
               f"PYTHONPATH={shlex.quote(str(PROJECT))} {shlex.join(self.argv())}")
        res = guest.run(cmd, timeout=60, log=log)
        if not res.ok:
            raise StageError(f"FUSE server {self.server.name} for {self.name} did not mount",
                             detail=res.tail, reproduce=cmd)
        if self.server.counters:
            self._check_server_started(guest, cmd)
        self._start_kernel_count(guest, log)
        return self.directory

    def _start_kernel_count(self, guest, log: Path) -> None:
        """The kernel's count of data requests, in the tracefs instance the
        guest armed at boot (boot_args): the witness for a server that keeps
        no counters, the second one for ours."""
        traced = guest.run(fusetrace.start_script(self.name, self.directory), timeout=60, log=log)
        self.traced = traced.ok
        if traced.ok:
            return
        if self.server.counters:
            logger.warning("%s: no kernel count of FUSE requests (the server's counters "
                           "remain): %s", self.name, traced.tail)
            return
        raise StageError(f"{self.name}: no witness of the data path: the kernel's "
                         "fuse:fuse_request_send count could not be started, and "
                         f"{self.server.name} keeps no counters", detail=traced.tail)

    def _check_server_started(self, guest, cmd: str) -> None:
        stats = self._server_counters(guest)
        if not stats:
            raise StageError(f"{self.name}: the server's counters could not be read ({self.stats})",
                             reproduce=cmd)
        if self.passthrough and not stats.get("passthrough_negotiated"):
            raise StageError(f"{self.name}: the kernel did not grant FUSE passthrough at INIT",
                             detail=json.dumps(stats, indent=1)[:3000], reproduce=cmd)

    def counters(self, guest) -> dict:
        """The server's counters (our server only), and the kernel's count
        of READ/WRITE requests sent to it as ``kernel_data_requests``."""
        counters = self._server_counters(guest) if self.server.counters else {}
        if self.traced:
            res = guest.run(fusetrace.read_script(self.name), timeout=60)
            try:
                counters["kernel_data_requests"] = fusetrace.parse_stats(res.stdout)
            except ValueError:
                logger.warning("%s: the kernel's FUSE request count could not be read: %s",
                            self.name, res.tail)
        return counters

    def _server_counters(self, guest) -> dict:
        """Our server's counters: SIGUSR1 makes it rewrite its stats file;
        wait (up to 10 s: TCG is slow) until the file has changed."""
        f = self.stats
        # The pid comes from the stats file: a `pkill -f` on the server's
        # command line would also match (and kill) the shell running this.
        cmd = (f"old=$(cksum < {f} 2>/dev/null); "
               f"pid=$(sed -n 's/^ *\"pid\": *\\([0-9]*\\).*/\\1/p' {f}); "
               f"[ -n \"$pid\" ] && kill -USR1 $pid; "
               f"for i in $(seq 100); do sleep 0.1; [ \"$(cksum < {f} 2>/dev/null)\" != \"$old\" ] && break; done; "
               f"cat {f}")
        res = guest.run(cmd, timeout=60)
        try:
            return json.loads(res.stdout[res.stdout.index("{"):])
        except ValueError:
            return {}

    def check(self, before: dict, after: dict) -> tuple[dict, str]:
        """Counter deltas over one point, and why the point fails (or "")."""
        def delta(key: str) -> int:
            return int(after.get(key, 0)) - int(before.get(key, 0))

        figures = {}
        if "kernel_data_requests" in before and "kernel_data_requests" in after:
            figures["kernel_data_requests"] = delta("kernel_data_requests")
        if self.server.counters:
            figures.update({
                "server_write_requests": delta("write_requests"),
                "server_read_requests": delta("read_requests"),
                "server_requests": delta("requests_total"),
                "passthrough_opens_granted": delta("passthrough_opens_granted"),
                "passthrough_opens_refused": delta("passthrough_opens_refused"),
                "fuse_protocol": after.get("protocol", ""),
                "passthrough_negotiated": bool(after.get("passthrough_negotiated")),
            })
        return figures, self._passthrough_broken(figures)

    def _passthrough_broken(self, figures: dict) -> str:
        """Why a passthrough point fails: data reached the server (either
        witness), or our server granted no passthrough open; else ""."""
        if not self.passthrough:
            return ""
        if figures.get("kernel_data_requests"):
            return (f"passthrough target, but the kernel sent {figures['kernel_data_requests']} "
                    f"READ/WRITE requests to {self.server.name}")
        if not self.server.counters:
            return ""
        data = figures["server_write_requests"] + figures["server_read_requests"]
        if data:
            return f"passthrough target, but the server saw {data} READ/WRITE requests"
        if not figures["passthrough_opens_granted"]:
            return "passthrough target, but no open was granted passthrough"
        return ""

    def stop(self, guest, outdir: Path, log: Path) -> None:
        if self.traced:
            guest.run(fusetrace.stop_script(self.name), timeout=60, log=log)
        guest.run(f"umount {self.directory} || umount -l {self.directory}", timeout=60, log=log)
        for remote in (self.stats, self.server_log):
            guest.get(remote, outdir / Path(remote).name, missing_ok=True)


FUSE_TARGETS = {"fuse-passthrough": True, "fuse": False}  # name -> passthrough

# name -> the target, made from the [fuse] section (the xfs target takes none of it)
TARGETS: dict[str, Callable[[FuseConfig], XfsTarget | FuseTarget]] = {
    "xfs": lambda cfg: XfsTarget(),
    **{name: functools.partial(FuseTarget, name, on) for name, on in FUSE_TARGETS.items()},
}


def boot_args(names) -> tuple[str, ...]:
    """The kernel arguments that arm, at boot, the request count of each
    FUSE target among *names* (fusetrace.boot_arg)."""
    return tuple(fusetrace.boot_arg(n) for n in dict.fromkeys(names) if n in FUSE_TARGETS)


def make_target(name: str, cfg: FuseConfig) -> XfsTarget | FuseTarget:
    try:
        factory = TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown fio target {name}") from None
    return factory(cfg)
