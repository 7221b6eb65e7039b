"""Guest control over SSH with fabric: one Connection per VM, retried until
the SSH banner arrives, a timeout on every command, the same Result type as
host commands, and files fetched back to the host."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Callable

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut

from .errors import GuestGone, StageError
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


def _connection(port: int, key: Path, timeout: float = 10) -> Connection:
    return Connection(
        "127.0.0.1", port=port, user="root",
        connect_timeout=timeout,
        connect_kwargs={"key_filename": str(key), "look_for_keys": False,
                        "allow_agent": False, "banner_timeout": 30, "auth_timeout": 30},
    )


class Guest:
    def __init__(self, conn: Connection, default_timeout: float):
        self.conn = conn
        self.default_timeout = default_timeout
        _OPEN.append(self)

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
            conn = _connection(port, key)
            try:
                conn.open()
                r = conn.run("true", hide=True, warn=True, timeout=30, in_stream=False)
                if r.exited == 0:
                    return cls(conn, default_timeout)
                last = f"true exited {r.exited}"
            except (paramiko.SSHException, socket.error, EOFError, CommandTimedOut, OSError) as e:
                last = f"{type(e).__name__}: {e}"
            conn.close()
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
        raise StageError(f"SSH did not answer before the boot deadline (last: {last})")

    def run(self, command: str, timeout: float | None = None, log: Path | None = None) -> Result:
        """Run *command* through the guest's shell.  A dropped connection is
        a StageError (the guest is gone); a non-zero exit is data."""
        timeout = timeout or self.default_timeout
        start = time.monotonic()
        try:
            r = self.conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
            out = (r.stdout or "") + (r.stderr or "")
            result = Result(["ssh", command], r.exited, time.monotonic() - start, out[-TAIL_CHARS:],
                            stdout=r.stdout or "")
        except CommandTimedOut as e:
            out = (e.result.stdout or "") + (e.result.stderr or "")
            result = Result(["ssh", command], None, time.monotonic() - start, out[-TAIL_CHARS:],
                            timed_out=True, stdout=e.result.stdout or "")
        except (paramiko.SSHException, socket.error, EOFError, OSError) as e:
            raise GuestGone(f"the guest's SSH connection dropped during: {command[:80]}",
                            detail=f"{type(e).__name__}: {e}") from None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"$ {command}\n{out}")
                f.write(f"[exit {result.returncode}{' (timed out)' if result.timed_out else ''},"
                        f" {result.duration:.1f} s]\n")
        return result

    def run_quiet(self, command: str, timeout: float) -> None:
        """Best effort (teardown): errors are ignored."""
        try:
            self.conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        except Exception:  # noqa: BLE001 - the guest may be gone already
            pass

    def get(self, remote: str, local: Path, missing_ok: bool = False) -> bool:
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn.get(remote, str(local))
            return True
        except FileNotFoundError:
            if missing_ok:
                return False
            raise StageError(f"guest file {remote} does not exist")
        except (paramiko.SSHException, socket.error, EOFError, OSError) as e:
            if missing_ok and isinstance(e, IOError) and "No such file" in str(e):
                return False
            raise StageError(f"could not fetch {remote} from the guest", detail=str(e)) from None

    def close(self) -> None:
        if self in _OPEN:
            _OPEN.remove(self)
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
