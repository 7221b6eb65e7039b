"""The FUSE servers a run can mount: a registry, as virtme-ng keeps its
architectures.  The config's ``[fuse] server`` names one of SERVERS.

``kvariant``: our own server (this package), which counts the requests it
receives.  ``passthrough_hp``: libfuse's example server, the one FUSE
developers test passthrough with, built by ``./setup.sh fuse`` from Debian's
fuse3 source package into the cache.  It sets FOPEN_PARALLEL_DIRECT_WRITES
on every open and keeps no counters: the kernel's tracepoint
(kvariant/workloads/fusetrace.py) is the witness of the data path for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..paths import cache_dir
from .server import server_argv

LIBFUSE_VERSION = "3.18.3"  # setup.sh's fuse_version


@dataclass(frozen=True)
class MountSpec:
    """One mount of a server: what it serves, where, and the open policy."""
    source: str
    mountpoint: str
    passthrough: bool = True
    parallel_direct_writes: bool = True
    direct_io: bool = False
    threads: int | None = None  # None: the server's default
    fsname: str | None = None
    log: str | None = None
    stats: str | None = None
    timeout: float | None = None  # our server only: attribute and entry timeouts
    killpriv_v2: bool = True  # our server only


class FuseServer:
    name = ""
    title = ""  # in the reports' words
    counters = False  # keeps counters of its own (a stats file)

    def refuse(self, parallel_direct_writes: bool, direct_io: bool) -> str:
        """Why this server cannot apply that open policy ("" if it can)."""
        return ""

    def missing(self) -> str:
        """Why this server cannot run on this host ("" if it can)."""
        return ""

    def argv(self, spec: MountSpec, python: str) -> list[str]:
        """A command that mounts, then returns with the server running on."""
        raise NotImplementedError


class KvariantServer(FuseServer):
    name = "kvariant"
    title = "kvariant's passthrough server"
    counters = True

    def argv(self, spec: MountSpec, python: str) -> list[str]:
        return server_argv(spec.source, spec.mountpoint, passthrough=spec.passthrough,
                           parallel_direct_writes=spec.parallel_direct_writes,
                           direct_io=spec.direct_io, daemon=True, stats=spec.stats,
                           log=spec.log, fsname=spec.fsname, python=python,
                           threads=spec.threads, timeout=spec.timeout,
                           killpriv_v2=spec.killpriv_v2)


RAISE_NOFILE = 'ulimit -n "$(cat /proc/sys/fs/nr_open)" 2>/dev/null; exec "$0" "$@"'


class PassthroughHp(FuseServer):
    name = "passthrough_hp"
    title = f"libfuse {LIBFUSE_VERSION}'s passthrough_hp"

    @property
    def binary(self) -> Path:
        return cache_dir() / f"libfuse-{LIBFUSE_VERSION}" / "passthrough_hp"

    def refuse(self, parallel_direct_writes: bool, direct_io: bool) -> str:
        if not parallel_direct_writes:
            return "it sets FOPEN_PARALLEL_DIRECT_WRITES on every open"
        return ""

    def missing(self) -> str:
        if not self.binary.is_file():
            return f"{self.binary} is not built (run ./setup.sh fuse)"
        return ""

    def argv(self, spec: MountSpec, python: str) -> list[str]:
        # It keeps an fd open for every inode the kernel knows, and raises
        # only its soft limit, to the hard one: 4096 in a guest, where
        # generic/006's 4096 files then end in EMFILE.  The shell raises
        # both to fs.nr_open first, as our server does for itself.
        argv = ["sh", "-c", RAISE_NOFILE, str(self.binary)]
        if not spec.passthrough:
            argv.append("--nopassthrough")
        if spec.direct_io:
            argv.append("--direct-io")
        if spec.threads:
            argv += ["--num-threads", str(spec.threads)]
        if spec.fsname:
            argv += ["-o", f"fsname={spec.fsname}"]
        return argv + [spec.source, spec.mountpoint]


SERVERS: dict[str, FuseServer] = {s.name: s for s in (KvariantServer(), PassthroughHp())}


def get_server(name: str) -> FuseServer:
    try:
        return SERVERS[name]
    except KeyError:
        raise ValueError(f"unknown FUSE server {name!r} (known: {', '.join(SERVERS)})") from None
