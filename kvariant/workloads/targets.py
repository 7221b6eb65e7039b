"""fio targets: where in the guest a workload writes.

``xfs``: the XFS on null_blk itself (the reference).  ``fuse-passthrough``
and ``fuse``: our FUSE server (kvariant.fuse) mirroring a directory of that
XFS, with and without passthrough.  A FUSE target reads the server's
counters around every point, so a result can prove which path the data took.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..config import FuseConfig
from ..errors import StageError
from ..fuse.server import server_argv
from .storage import XFS_MOUNT

PROJECT = Path(__file__).resolve().parent.parent.parent
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
    """Our server over ``XFS_MOUNT/<name>-src``, mounted at
    ``/tmp/kvariant/mnt/<name>``."""

    def __init__(self, name: str, passthrough: bool, cfg: FuseConfig):
        self.name = name
        self.passthrough = passthrough
        self.cfg = cfg
        self.source = f"{XFS_MOUNT}/{name}-src"
        self.directory = f"{GUEST_DIR}/mnt/{name}"
        self.stats = f"{GUEST_DIR}/{name}-stats.json"
        self.server_log = f"{GUEST_DIR}/{name}-server.log"

    def argv(self) -> list[str]:
        return server_argv(self.source, self.directory, passthrough=self.passthrough,
                           parallel_direct_writes=self.cfg.parallel_direct_writes,
                           direct_io=self.cfg.direct_io, daemon=True, stats=self.stats,
                           log=self.server_log, python=sys.executable, threads=self.cfg.threads)

    def policy(self) -> dict:
        return {"passthrough": self.passthrough,
                "parallel_direct_writes": self.cfg.parallel_direct_writes,
                "direct_io": self.cfg.direct_io}

    def start(self, guest, log: Path) -> str:
        cmd = (f"mkdir -p {self.source} {self.directory} && "
               f"PYTHONPATH={shlex.quote(str(PROJECT))} {shlex.join(self.argv())}")
        res = guest.run(cmd, timeout=60, log=log)
        if not res.ok:
            raise StageError(f"FUSE server for {self.name} did not mount", detail=res.tail,
                             reproduce=cmd)
        stats = self.counters(guest)
        if not stats:
            raise StageError(f"{self.name}: the server's counters could not be read ({self.stats})",
                             reproduce=cmd)
        if self.passthrough and not stats.get("passthrough_negotiated"):
            raise StageError(f"{self.name}: the kernel did not grant FUSE passthrough at INIT",
                             detail=json.dumps(stats, indent=1)[:3000], reproduce=cmd)
        return self.directory

    def counters(self, guest) -> dict:
        """The server's counters: SIGUSR1 makes it rewrite its stats file;
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

        figures = {
            "server_write_requests": delta("write_requests"),
            "server_read_requests": delta("read_requests"),
            "server_requests": delta("requests_total"),
            "passthrough_opens_granted": delta("passthrough_opens_granted"),
            "passthrough_opens_refused": delta("passthrough_opens_refused"),
            "fuse_protocol": after.get("protocol", ""),
            "passthrough_negotiated": bool(after.get("passthrough_negotiated")),
        }
        why = ""
        if self.passthrough:
            data = figures["server_write_requests"] + figures["server_read_requests"]
            if data:
                why = f"passthrough target, but the server saw {data} READ/WRITE requests"
            elif not figures["passthrough_opens_granted"]:
                why = "passthrough target, but no open was granted passthrough"
        return figures, why

    def stop(self, guest, outdir: Path, log: Path) -> None:
        guest.run(f"umount {self.directory} || umount -l {self.directory}", timeout=60, log=log)
        for remote in (self.stats, self.server_log):
            guest.get(remote, outdir / Path(remote).name, missing_ok=True)


def make_target(name: str, cfg: FuseConfig):
    if name == "xfs":
        return XfsTarget()
    if name == "fuse-passthrough":
        return FuseTarget(name, True, cfg)
    if name == "fuse":
        return FuseTarget(name, False, cfg)
    raise ValueError(f"unknown fio target {name}")
