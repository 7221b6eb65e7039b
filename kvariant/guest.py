"""Guest control over SSH with fabric: one Connection per VM, retried until
the SSH banner arrives, a timeout on every command, the same Result type as
host commands, and files fetched back to the host.

Guest connections read no configuration of the user's: not ~/.ssh/config
or /etc/ssh/ssh_config (a ``Host *`` with ForwardAgent, ProxyCommand,
IdentityFile, Hostname or Port would forward the user's agent into a test
kernel, offer the user's keys, or reroute the connection), nor fabric's and
invoke's YAML files.  Only our key, our port and 127.0.0.1 count; the
reproduce lines say so too (``ssh -F /dev/null ...``)."""

from __future__ import annotations

import logging
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from .errors import GuestGone, KernelReport, StageError, check_interrupt
from .proc import Result

log = logging.getLogger(__name__)

TAIL_CHARS = 4000
_OPEN: list["Guest"] = []  # connections an interrupt must close (see close_all)


def close_all() -> None:
    """Close every open guest connection, ending the channels that running
    commands wait on.  Called by the signal handler before it interrupts the
    run, so that no wait on a remote command outlives the interrupt."""
    for g in list(_OPEN):
        g.close()


def ssh_key() -> Path:
    return Path("~/.cache/virtme-ng/.ssh/id_virtme").expanduser()


GUEST_HOST = "127.0.0.1"
GUEST_USER = "root"


def guest_config() -> Config:
    """A fabric Config that loads no file at all: an empty SSH config object
    instead of ~/.ssh/config and /etc/ssh/ssh_config (``lazy``: no YAML
    either), agent forwarding off."""
    return Config(ssh_config=paramiko.SSHConfig(), lazy=True,
                  overrides={"load_ssh_configs": False, "forward_agent": False})


def guest_connection(port: int, key: Path, timeout: float = 10) -> Connection:
    """The connection to a guest: 127.0.0.1:*port* as root with *key*
    alone; no agent, no other key, no proxy, nothing from ssh_config."""
    return Connection(
        GUEST_HOST, port=port, user=GUEST_USER, config=guest_config(),
        gateway=False, forward_agent=False, connect_timeout=timeout,
        connect_kwargs={"key_filename": [str(key)], "look_for_keys": False,
                        "allow_agent": False, "banner_timeout": 30, "auth_timeout": 30},
    )


def ssh_argv(port: int, key: Path, command: str) -> list[str]:
    """The ``ssh`` command line that does what :func:`guest_connection`
    does (for reproduce lines): ``-F /dev/null`` so that the user's
    ssh_config is not read; no warning about the guest's host key (a new
    one each boot) in the command's output."""
    return ["ssh", "-F", "/dev/null", "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "ForwardAgent=no", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{GUEST_USER}@{GUEST_HOST}", command]


class _Stream:
    """What invoke writes a command's output to: handed to a callback."""

    def __init__(self, callback: Callable[[str], None]):
        self.callback = callback

    def write(self, text: str) -> None:
        self.callback(text)

    def flush(self) -> None:
        pass


class Guest:
    def __init__(self, conn: Connection, default_timeout: float, key: Path | None = None):
        self.conn = conn
        self.default_timeout = default_timeout
        self.key = key or ssh_key()
        self.abandoned = ""  # why every command is abandoned now (see abandon)
        self._running: set = set()  # the runners of commands under way
        self._lock = threading.Lock()
        _OPEN.append(self)

    def argv(self, command: str) -> list[str]:
        return ssh_argv(self.conn.port, self.key, command)

    def reproduce(self, command: str) -> str:
        """The line a user pastes into a shell to run *command* as we do."""
        return shlex.join(self.argv(command))

    @classmethod
    def connect(cls, port: int, *, key: Path, deadline: float, alive: Callable[[], bool],
                default_timeout: float) -> "Guest":
        """Retry until ``true`` runs in the guest.  QEMU accepts TCP before
        sshd is up, so the banner read is what tells."""
        delay = 0.5
        last = "no attempt"
        while time.monotonic() < deadline:
            if not alive():
                raise StageError("the guest exited before SSH answered")
            conn = guest_connection(port, key)
            try:
                conn.open()
                r = conn.run("true", hide=True, warn=True, timeout=30, in_stream=False)
                if r.exited == 0:
                    return cls(conn, default_timeout, key)
                last = f"true exited {r.exited}"
            except (paramiko.SSHException, socket.error, EOFError, CommandTimedOut, OSError) as e:
                last = f"{type(e).__name__}: {e}"
            conn.close()
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
        raise StageError(f"SSH did not answer before the boot deadline (last: {last})")

    def run(self, command: str, timeout: float | None = None, log: Path | None = None,
            stream: Callable[[str], None] | None = None) -> Result:
        """Run *command* through the guest's shell.  A dropped connection is
        a StageError (the guest is gone); a non-zero exit is data; once
        abandon() was called, KernelReport.  *stream* sees the command's
        stdout as it arrives (from another thread)."""
        timeout = timeout or self.default_timeout
        check_interrupt()  # a checkpoint: no new command once the run was interrupted
        start = time.monotonic()
        try:
            r = self._wait(command, timeout, stream)
            out = (r.stdout or "") + (r.stderr or "")
            # a channel closed without an exit status: the deadline's own
            # kill when it fired (invoke may miss that it did), else a drop
            timed_out = r.exited == -1 and time.monotonic() - start >= timeout
            result = Result(self.argv(command), None if timed_out else r.exited, time.monotonic() - start,
                            out[-TAIL_CHARS:], timed_out=timed_out, stdout=r.stdout or "")
        except CommandTimedOut as e:
            out = (e.result.stdout or "") + (e.result.stderr or "")
            result = Result(self.argv(command), None, time.monotonic() - start, out[-TAIL_CHARS:],
                            timed_out=True, stdout=e.result.stdout or "")
        except (paramiko.SSHException, socket.error, EOFError, OSError) as e:
            self._check_abandoned(command)
            raise GuestGone(f"the guest's SSH connection dropped during: {command[:80]}",
                            detail=f"{type(e).__name__}: {e}") from None
        self._check_abandoned(command, out)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"$ {command}\n{out}")
                f.write(f"[exit {result.returncode}{' (timed out)' if result.timed_out else ''},"
                        f" {result.duration:.1f} s]\n")
        return result

    def _wait(self, command: str, timeout: float, stream: Callable[[str], None] | None = None):
        """Start *command* and wait for it; abandon() closes its channel."""
        self._check_abandoned(command)
        shown = {"hide": "err", "out_stream": _Stream(stream)} if stream else {"hide": True}
        promise = self.conn.run(command, warn=True, timeout=timeout, in_stream=False,
                                asynchronous=True, **shown)
        with self._lock:
            self._running.add(promise.runner)
        try:
            if self.abandoned:  # abandoned while it started
                promise.runner.kill()
            return promise.join()
        finally:
            with self._lock:
                self._running.discard(promise.runner)

    def abandon(self, why: str) -> None:
        """From any thread: stop waiting for the command under way (its
        channel is closed) and refuse later ones; each raises KernelReport
        with *why*.  For a guest whose kernel broke: the VM is stopped next."""
        with self._lock:
            self.abandoned = why
            running = list(self._running)
        for runner in running:
            try:
                runner.kill()
            except Exception:  # noqa: BLE001 - a channel that is already gone
                pass

    def _check_abandoned(self, command: str, out: str = "") -> None:
        if self.abandoned:
            raise KernelReport(self.abandoned, detail=out[-TAIL_CHARS:], reproduce=self.reproduce(command))

    def run_quiet(self, command: str, timeout: float) -> None:
        """Best effort (teardown): errors are ignored."""
        try:
            self.conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        except Exception:  # noqa: BLE001 - the guest may be gone already
            pass

    def get(self, remote: str, local: Path, missing_ok: bool = False) -> bool:
        check_interrupt()
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn.get(remote, str(local))
            return True
        except FileNotFoundError:
            local.unlink(missing_ok=True)  # paramiko opens it before it asks for the remote one
            if missing_ok:
                return False
            raise StageError(f"guest file {remote} does not exist")
        except (paramiko.SSHException, socket.error, EOFError, OSError) as e:
            if missing_ok and isinstance(e, IOError) and "No such file" in str(e):
                local.unlink(missing_ok=True)
                return False
            raise StageError(f"could not fetch {remote} from the guest", detail=str(e)) from None

    def close(self) -> None:
        if self in _OPEN:
            _OPEN.remove(self)
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
