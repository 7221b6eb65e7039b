"""The server process: mount, answer INIT, worker threads, signals, stats.

Threads: the main thread mounts, answers INIT, then starts `threads` workers
(default 4) and only waits for signals and writes stats.  Worker 0 reads the
session's /dev/fuse fd, the others each read their own clone of it
(FUSE_DEV_IOC_CLONE), and each answers on the fd it read from.  A request that
blocks in the backing file system (fsync, a slow rename) ties up one worker
only; under passthrough the data never reaches us, so the pool mostly serves
metadata.

Attribute and entry timeouts default to 1 s (--timeout): the backing tree is
changed only through this mount, and the kernel drops its cached attributes
itself after the changes it makes (the one change we make behind its back,
dropping setuid bits on a write, is announced with FUSE_NOTIFY_INVAL_INODE),
so this is safe and saves many GETATTRs; --timeout 0 trades speed for never
serving a cached attribute.  Negative lookups are not cached.

FUSE_HANDLE_KILLPRIV_V2 is negotiated by default (--no-killpriv-v2 to turn
it off): without it the kernel asks the server for security.capability
before every write, passthrough writes included, which would make fio
measure this Python process instead of the kernel.  With it the server drops
setuid/setgid bits and capabilities itself; files that carry them are opened
without passthrough, since passthrough writes never reach the server.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import select
import signal
import threading
import time
from dataclasses import dataclass

from . import mount as sysc
from .ops import OpenPolicy, PassthroughFS
from .stats import Stats, read_stats, write_stats

__all__ = ["FuseServerError", "ServerOptions", "serve", "server_argv", "read_stats"]

log = logging.getLogger(__name__)

HEADER_ROOM = 4096
GRACE_SECONDS = 5.0  # after our umount, how long workers may take to see ENODEV
READY_TIMEOUT = 30.0
STATS_INTERVAL = 1.0
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP}


class FuseServerError(Exception):
    """The server cannot start; the message is one line for the user."""


@dataclass(frozen=True)
class ServerOptions:
    source: str
    mountpoint: str
    fsname: str | None = None  # mount source shown by findmnt -S; default: source
    passthrough: bool = True
    parallel_direct_writes: bool = False
    direct_io: bool = False
    daemon: bool = False
    stats: str | None = None
    log: str | None = None
    threads: int = 4
    timeout: float = 1.0
    max_write: int = 1 << 20
    read_only: bool = False
    killpriv_v2: bool = True

    def __post_init__(self):
        if self.threads < 1:
            raise FuseServerError("--threads must be at least 1")
        if self.timeout < 0:
            raise FuseServerError("--timeout must not be negative")
        if self.max_write < 4096 or self.max_write % 4096:
            raise FuseServerError("--max-write must be a multiple of 4096")

    @property
    def policy(self) -> OpenPolicy:
        return OpenPolicy(self.passthrough, self.parallel_direct_writes, self.direct_io)


def server_argv(source, mountpoint, *, passthrough: bool = True,
                parallel_direct_writes: bool = False, direct_io: bool = False,
                daemon: bool = False, stats=None, log=None, fsname: str | None = None,
                python: str = "python3", threads: int | None = None,
                timeout: float | None = None, killpriv_v2: bool = True) -> list[str]:
    """The command line that starts the server (PYTHONPATH must reach kvariant)."""
    argv = [python, "-m", "kvariant.fuse", str(source), str(mountpoint),
            "--passthrough" if passthrough else "--no-passthrough"]
    if parallel_direct_writes:
        argv.append("--parallel-direct-writes")
    if direct_io:
        argv.append("--direct-io")
    if not killpriv_v2:
        argv.append("--no-killpriv-v2")
    argv.append("--daemon" if daemon else "--foreground")
    for flag, value in (("--stats", stats), ("--log", log), ("--fsname", fsname),
                        ("--threads", threads), ("--timeout", timeout)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def _raise_fd_limit() -> None:
    """Each inode the kernel knows holds one O_PATH fd."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            want = int(f.read())
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (OSError, ValueError):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            log.warning("could not raise the open file limit")


class Session:
    """One mounted file system and the threads serving it."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.source = os.path.abspath(options.source)
        self.mountpoint = os.path.abspath(options.mountpoint)
        self.fsname = options.fsname or options.source
        self.stats_path = os.path.abspath(options.stats) if options.stats else None
        self.bufsize = options.max_write + HEADER_ROOM
        self.stats = Stats(source=self.source, mountpoint=self.mountpoint, fsname=self.fsname,
                           log=os.path.abspath(options.log) if options.log else None,
                           pid=os.getpid(), state="starting", threads=options.threads,
                           passthrough_requested=options.passthrough,
                           passthrough_negotiated=False,
                           parallel_direct_writes=options.parallel_direct_writes,
                           direct_io=options.direct_io, protocol=None, kernel_protocol=None,
                           killpriv_v2_requested=options.killpriv_v2,
                           killpriv_v2_negotiated=False)
        self.dev_fd = self.root_fd = -1
        self.fs: PassthroughFS | None = None
        self.workers: list[threading.Thread] = []
        self.worker_failed = False
        self.ready_fd: int | None = None  # daemon child: pipe to the waiting parent
        self.mount_id: int | None = None
        self._written = -1

    # startup

    def mount(self) -> None:
        """Open the source and /dev/fuse, then mount(2); FuseServerError on failure."""
        try:
            self._mount()
        except BaseException:
            self.close()
            raise
        log.info("mounted %s on %s (fuse, source %s, pid %d)", self.fsname, self.mountpoint,
                 self.source, os.getpid())

    def _mount(self) -> None:
        try:
            self.root_fd = os.open(self.source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise FuseServerError(f"source {self.source}: {e.strerror}") from None
        if not os.path.isdir(self.mountpoint):
            raise FuseServerError(f"mountpoint {self.mountpoint} is not a directory")
        try:
            self.dev_fd = sysc.open_device()
        except OSError as e:
            raise FuseServerError(f"/dev/fuse: {e.strerror}") from None
        self.fs = PassthroughFS(self.root_fd, self.dev_fd, self.options.policy, self.stats,
                                timeout=self.options.timeout, max_write=self.options.max_write,
                                killpriv_v2=self.options.killpriv_v2)
        try:
            sysc.mount_fuse(self.dev_fd, self.fsname, self.mountpoint,
                            read_only=self.options.read_only)
        except OSError as e:
            raise FuseServerError(f"mount {self.fsname} on {self.mountpoint}: "
                                  f"{os.strerror(e.errno)}") from None
        found = sysc.find_mount(self.mountpoint)
        if found and found["fstype"] == "fuse":
            self.mount_id = found["id"]

    def answer_init(self) -> None:
        """Serve requests on the session fd until INIT is answered."""
        buf = bytearray(self.bufsize)
        view = memoryview(buf)
        while not self.fs.initialized:
            try:
                n = os.readv(self.dev_fd, [buf])
            except OSError as e:
                if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue
                raise FuseServerError(f"reading /dev/fuse before INIT: {e.strerror}") from None
            self._send(self.dev_fd, self.fs.handle(view[:n]))
        self.stats.set_info(state="running")
        self.write_stats(force=True)

    # workers

    def start_workers(self) -> None:
        fds = [self.dev_fd]
        for _ in range(self.options.threads - 1):
            try:
                fds.append(sysc.clone_device(self.dev_fd))
            except OSError as e:
                log.warning("FUSE_DEV_IOC_CLONE failed (%s): sharing the session fd", e)
                fds.append(self.dev_fd)
        for i, fd in enumerate(fds):
            t = threading.Thread(target=self._worker, args=(fd,), name=f"fuse-worker-{i}",
                                 daemon=True)
            t.start()
            self.workers.append(t)

    def _worker(self, fd: int) -> None:
        buf = bytearray(self.bufsize)
        view = memoryview(buf)
        while True:
            try:
                n = os.readv(fd, [buf])
            except OSError as e:
                if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue
                if e.errno != errno.ENODEV:
                    log.error("reading /dev/fuse: %s; worker stops", e)
                    self.worker_failed = True
                return  # ENODEV: the connection is gone (unmounted or aborted)
            try:
                reply = self.fs.handle(view[:n])
            except Exception:  # handle() does not raise; belt and braces
                log.exception("request handling failed")
                continue
            self._send(fd, reply)

    @staticmethod
    def _send(fd: int, reply: list | None) -> None:
        if not reply:
            return
        try:
            os.writev(fd, reply)
        except OSError as e:
            if e.errno != errno.ENOENT:  # ENOENT: request interrupted, nobody waits
                log.error("writing reply: %s", e)

    # running

    def write_stats(self, force: bool = False, **extra) -> None:
        if not self.stats_path or (not force and self.stats.changes == self._written):
            return
        self._written = self.stats.changes
        live = {"backing_ids_open": self.fs.backing.count if self.fs else 0,
                "nodes": len(self.fs.nodes) if self.fs else 0,
                "open_handles": len(self.fs.handles) if self.fs else 0}
        try:
            write_stats(self.stats_path, self.stats.snapshot(**live, **extra))
        except OSError as e:
            log.error("writing stats %s: %s", self.stats_path, e)

    def wait(self) -> int:
        """Until unmounted (ENODEV) or signalled; stats about every second."""
        deadline = None
        next_stats = time.monotonic() + STATS_INTERVAL
        while True:
            info = signal.sigtimedwait(_SIGNALS, 0.25)
            if info is not None and info.si_signo == signal.SIGUSR1:
                self.write_stats(force=True)
            elif info is not None and deadline is None:
                log.info("signal %d: unmounting %s", info.si_signo, self.mountpoint)
                self.unmount()
                deadline = time.monotonic() + GRACE_SECONDS
            if not any(t.is_alive() for t in self.workers):
                log.info("connection ended")
                self._detach_leftover()
                break
            now = time.monotonic()
            if deadline is not None and now > deadline:
                log.warning("workers still busy %.0f s after unmount; exiting", GRACE_SECONDS)
                break
            if now >= next_stats:
                self.write_stats()
                next_stats = now + STATS_INTERVAL
        return 1 if self.worker_failed else 0

    def _detach_leftover(self) -> None:
        """After an aborted connection our mount is still there (ENOTCONN): detach it."""
        if self.mount_id is None or not any(m["id"] == self.mount_id
                                            for m in sysc.read_mountinfo()):
            return
        try:
            sysc.umount2(self.mountpoint, sysc.MNT_DETACH)
            log.info("detached the dead mount %s", self.mountpoint)
        except OSError as e:
            log.error("umount %s: %s", self.mountpoint, e)

    def unmount(self) -> None:
        try:
            how = sysc.unmount(self.mountpoint)
            log.info("umount %s: %s", self.mountpoint, how)
        except OSError as e:
            log.error("umount %s: %s", self.mountpoint, e)

    def close(self) -> None:
        """Drop our descriptors (the daemon's parent, once the child has them)."""
        for fd in (self.dev_fd, self.root_fd):
            if fd >= 0:
                os.close(fd)
        self.dev_fd = self.root_fd = -1
        self.fs = None

    def finish(self, code: int) -> None:
        self.stats.set_info(state="exited", exit_code=code)
        self.write_stats(force=True)
        log.info("exit %d", code)


def _wait_ready(rfd: int) -> str:
    """The child's one-line report ("ready" or an error); "" if it died first."""
    deadline = time.monotonic() + READY_TIMEOUT
    data = b""
    with os.fdopen(rfd, "rb", buffering=0) as pipe:
        while time.monotonic() < deadline:
            if not select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return "timed out waiting for the server to answer INIT"
            chunk = pipe.read(512)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").strip()


def _daemonize(session: Session) -> bool:
    """Fork once the mount is live.  The parent waits for the child to answer
    INIT and returns True (or raises FuseServerError); the child starts a new
    session on /dev/null and returns False."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(wfd)
        session.close()
        message = _wait_ready(rfd)
        if message == "ready":
            return True
        session.unmount()
        raise FuseServerError(message or "server exited before answering INIT")
    os.close(rfd)
    session.stats.set_info(pid=os.getpid())
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    session.ready_fd = wfd
    return False


def _report_ready(session: Session, message: str) -> None:
    if session.ready_fd is not None:
        os.write(session.ready_fd, message.encode() + b"\n")
        os.close(session.ready_fd)
        session.ready_fd = None


def serve(options: ServerOptions) -> int:
    """Mount options.source on options.mountpoint and serve until unmounted.

    Returns the exit code; raises FuseServerError when the mount fails.  With
    options.daemon the caller's process returns 0 once the mount is live and
    INIT answered; the daemon child never returns (it ends with os._exit).
    Signals (TERM, INT, HUP: unmount; USR1: write stats) are blocked from the
    start and taken by the main thread with sigtimedwait, so none can kill
    the server between mount and unmount.
    """
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    old_umask = os.umask(0)  # modes from the kernel are final (it applied the caller's)
    _raise_fd_limit()
    session = Session(options)
    try:
        session.mount()
        if options.daemon and _daemonize(session):
            return 0
    finally:
        if session.fs is None:  # failed, or the daemon's parent
            os.umask(old_umask)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return _run(session, old_mask)


def _run(session: Session, old_mask) -> int:
    daemon = session.options.daemon
    code = 1
    try:
        session.answer_init()
        _report_ready(session, "ready")
        session.start_workers()
        code = session.wait()
    except FuseServerError as e:
        log.error("%s", e)
        _report_ready(session, str(e))
        session.unmount()
    except BaseException as e:
        log.exception("server failed")
        _report_ready(session, f"server failed: {e!r}")
        session.unmount()
        if not daemon:
            raise
    finally:
        session.finish(code)
        if daemon:
            logging.shutdown()
            os._exit(code)
        while signal.sigtimedwait(_SIGNALS, 0):  # late signals must not kill the caller
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return code
