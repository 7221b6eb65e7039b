"""The one way kvariant runs a host command.

Argument lists only, no shell; stdin from /dev/null; an explicit cwd and a
``LANG=C`` environment; always a timeout; a new session so that on timeout or
interrupt the whole process group is killed; output streamed line by line to
a log file, with a tail kept in memory for error messages.

``run`` waits for a command; ``spawn`` starts one that lives on (a guest's
vng) and returns a :class:`Spawned` whose ``stop`` kills its whole group.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .errors import CommandFailed

logger = logging.getLogger(__name__)  # (run()'s "log" is the file of its output)

DEFAULT_TAIL = 60


@dataclasses.dataclass
class Result:
    """What a finished command did; shared by host and guest commands."""

    argv: list[str]
    returncode: int | None  # None when it was killed at its deadline
    duration: float
    tail: str  # the last lines of the output (stdout and stderr)
    timed_out: bool = False
    stdout: str = ""  # guest commands: stdout alone, for parsing

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def cmdline(self) -> str:
        return shlex.join(self.argv)

    def check(self, what: str) -> "Result":
        if not self.ok:
            raise CommandFailed(what, self)
        return self


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["LANG"] = "C"
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


def virtme_path() -> dict[str, str]:
    """virtme-ng calls its sibling scripts (virtme-run, virtme-configkernel)
    by name: put the bin/ of the interpreter we run under first on PATH."""
    bindir = str(Path(sys.executable).parent)
    return {"PATH": bindir + os.pathsep + os.environ.get("PATH", "")}


def kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group of *proc* (a session leader), then SIGKILL
    the group: at once when the leader is gone (its children may linger),
    after *grace* seconds when it is not.  Nothing to do when the group has
    no process left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # The leader is gone; children in the group may linger.
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


class Spawned:
    """A host process started by :func:`spawn`, leader of a process group
    of its own.  ``wait`` raises ``subprocess.TimeoutExpired`` at its
    timeout, as Popen's does."""

    def __init__(self, popen: subprocess.Popen, argv: list[str]):
        self._popen = popen
        self.argv = argv

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def poll(self) -> int | None:
        return self._popen.poll()

    def alive(self) -> bool:
        return self._popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self._popen.wait(timeout=timeout)

    def stop(self, grace: float = 5.0) -> None:
        """End the whole process group (see kill_group); idempotent, and
        fine on a process that has exited already."""
        kill_group(self._popen, grace)


def spawn(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: str | os.PathLike,
    env: Mapping[str, str] | None = None,
    output: str | os.PathLike | None = None,
) -> Spawned:
    """Start *argv* in a session of its own and return at once.  Its output
    (stdout and stderr) is appended to the file *output*, or discarded.
    Raises FileNotFoundError when the program does not exist."""
    args = [os.fspath(a) for a in argv]
    logger.info("$ cd %s && %s", shlex.quote(os.fspath(cwd)), shlex.join(args))
    out = open(output, "ab") if output is not None else subprocess.DEVNULL
    try:
        popen = subprocess.Popen(args, cwd=cwd, env=base_env(env), stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if output is not None:
            out.close()
    return Spawned(popen, args)


def _open_log(path: str | os.PathLike, head: str):
    """*path* opened to append a command's output, headed by *head*; line
    buffered, so that ``tail -f`` on a build or test log follows it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a", buffering=1, encoding="utf-8", errors="replace")
    f.write(head + "\n")
    f.flush()
    return f


def _pump(proc: subprocess.Popen, tail: collections.deque, logf, on_line) -> None:
    """A command's output, line by line, into its tail, its log file and
    *on_line* (a line it returns goes into the log file after the one it
    was given: a note of ours, e.g. a build's progress)."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        tail.append(line)
        if logf:
            logf.write(line + "\n")
        note = on_line(line) if on_line else None
        if note and logf:
            logf.write(note + "\n")


def run(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: str | os.PathLike,
    timeout: float,
    env: Mapping[str, str] | None = None,
    log: str | os.PathLike | None = None,
    on_line: Callable[[str], str | None] | None = None,
    tail_lines: int = DEFAULT_TAIL,
    stdin: str | os.PathLike | None = None,
) -> Result:
    """Run *argv* to completion or until *timeout* seconds have passed.

    Output (stdout and stderr merged) is appended to *log* when given, headed
    by the command line that reproduces it.  Never raises for a non-zero exit:
    the caller inspects :class:`Result` (or calls ``check``).  On
    KeyboardInterrupt the process group is killed and the interrupt re-raised.
    *stdin* is a file to read standard input from (else /dev/null).
    """
    args = [os.fspath(a) for a in argv]
    logger.debug("$ cd %s && %s", shlex.quote(os.fspath(cwd)), shlex.join(args))
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    logf = _open_log(log, f"$ cd {shlex.quote(os.fspath(cwd))} && {shlex.join(args)}") if log else None
    start = time.monotonic()
    infile = open(stdin, "rb") if stdin is not None else None
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=base_env(env),
            stdin=infile if infile is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if infile is not None:
            infile.close()
    reader = threading.Thread(target=_pump, args=(proc, tail, logf, on_line), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc)
    except BaseException:
        kill_group(proc)
        raise
    finally:
        reader.join(timeout=10)
        if logf:
            if timed_out:
                logf.write(f"kvariant: killed after {timeout:.0f} s\n")
            logf.close()
    return Result(
        argv=args,
        returncode=None if timed_out else proc.returncode,
        duration=time.monotonic() - start,
        tail="\n".join(tail),
        timed_out=timed_out,
    )
