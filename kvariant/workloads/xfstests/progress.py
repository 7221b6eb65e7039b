"""Following one ``./check`` over a batch of tests from its output, and the
guest commands that run a batch.  Pure: text in, state and shell out.

check prints each test's name, padded, at the start of a line when the test
starts (``generic/002       ``), and ends that line with the outcome when
the test and its file system checks are done (`` 4s``, ``[not run] ...``,
``- output mismatch ...`` followed by an indented diff).  A test is over
once the next one starts or check exits: by then check has rewritten
result.xml with it (``_make_section_report`` runs before each test's name
is printed, and again at the end).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import threading
import time
from typing import Callable

_NAME = re.compile(r"(\S+)(\s|$)")


@dataclasses.dataclass
class CheckProgress:
    """Which tests of a batch have started, and when, from check's output
    fed in pieces as it arrives (from another thread)."""

    tests: tuple[str, ...]
    clock: Callable[[], float] = time.monotonic
    begun: float = 0.0  # when the batch was started
    started: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    lines: dict[str, str] = dataclasses.field(default_factory=dict)  # test -> the rest of its line
    output: str = ""  # everything check printed
    _line: str = ""
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.begun = self.begun or self.clock()

    def feed(self, text: str) -> None:
        with self._lock:
            self.output += text
            lines = (self._line + text).split("\n")
            self._line = lines.pop()
            for line in lines:
                self._see(line, whole=True)
            self._see(self._line, whole=False)

    def _see(self, line: str, whole: bool) -> None:
        m = _NAME.match(line)
        if not m or (not whole and not m.group(2)):  # a name still being printed
            return
        name = m.group(1)
        if name in self.tests and name not in (t for t, _ in self.started):
            self.started.append((name, self.clock()))
        if whole and name in self.tests and name not in self.lines:
            self.lines[name] = line[len(name):].strip()

    def line(self, test: str) -> str | None:
        """What check printed after *test*'s name, once the line is whole."""
        with self._lock:
            return self.lines.get(test)

    def snapshot(self) -> list[tuple[str, float]]:
        with self._lock:
            return list(self.started)

    def over(self) -> list[str]:
        """The tests that ended: every started one but the last."""
        return [t for t, _ in self.snapshot()[:-1]]

    def current(self) -> tuple[str, float] | None:
        """The test running now and when it started, or None before the first."""
        started = self.snapshot()
        return started[-1] if started else None

    def overdue(self, now: float, per_test: float, startup: float) -> str | None:
        """The test whose deadline passed: the running one *per_test*
        seconds after it started, or the batch's first when check's own
        start-up took more than *startup* seconds."""
        running = self.current()
        if running is None:
            return self.tests[0] if now - self.begun > startup else None
        name, since = running
        return name if now - since > per_test else None

    def took(self, test: str, now: float) -> float:
        """From *test*'s start to the next one's (or *now*)."""
        started = self.snapshot()
        names = [t for t, _ in started]
        if test not in names:
            return max(0.0, now - self.begun)
        i = names.index(test)
        end = started[i + 1][1] if i + 1 < len(started) else now
        return max(0.0, end - started[i][1])

    def not_started(self) -> list[str]:
        seen = {t for t, _ in self.snapshot()}
        return [t for t in self.tests if t not in seen]


def next_batch(tests: list[str], progress: CheckProgress | None) -> list[str]:
    """What the next ./check runs: the tests of *tests* the last batch
    (*progress*) did not start; all of them before the first batch."""
    return list(tests) if progress is None else progress.not_started()


# Guest commands of a batch


def batch_command(check: str, pidfile: str, marker: str, results: str) -> str:
    """Run *check* (a ``./check`` command line, already under ``timeout``)
    in the background so that another command can stop it (its pid in
    *pidfile*), after a kernel log *marker*; exits with check's code."""
    return (f"rm -f {shlex.quote(results)}/result.xml; "
            f"echo {shlex.quote(marker)} > /dev/kmsg; "
            f"{check} & echo $! > {shlex.quote(pidfile)}; wait $!; rc=$?; "
            f"echo; echo \"kvariant: ./check exited $rc\"; exit $rc")


def kmsg_slice(dest: str, batch_marker: str, test: str, first: bool) -> str:
    """Our kernel log of one test of a batch into *dest*: from xfstests'
    ``run fstests TEST at`` line (from the batch's marker for its first
    test, so that check's start-up is in it) to the next test's or the next
    batch's marker, after this batch's marker (the same test may have run for another fstype in this
    guest).  The last 2000 lines when the markers have left the ring."""
    own = f"run fstests {test} at"
    program = ("index($0, b) { inb = 1; if (first) found = 1 } "
               "inb && index($0, own) { found = 1 } "
               "found && index($0, \"run fstests \") && !index($0, own) { exit } "
               "found && index($0, \"kvariant: xfstests \") && !index($0, b) { exit } "
               "found { print }")
    d = shlex.quote(dest)
    return (f"dmesg | awk -v b={shlex.quote(batch_marker)} -v own={shlex.quote(own)} "
            f"-v first={int(first)} {shlex.quote(program)} > {d}; "
            f"[ -s {d} ] || dmesg | tail -n 2000 > {d}")


def stop_command(pidfile: str, test: str) -> str:
    """After a test's deadline: the blocked tasks (sysrq-w) into the kernel
    log and printed, then SIGTERM to check's ``timeout`` (which passes it on
    to check's process group, and SIGKILL after its grace)."""
    mark = shlex.quote(f"kvariant: blocked tasks during {test}")
    return (f"echo {mark} > /dev/kmsg; echo w > /proc/sysrq-trigger; sleep 2; "
            f"dmesg | awk -v m={mark} 'index($0, m) {{f = 1}} f' | tail -n 400; "
            f"kill -TERM $(cat {shlex.quote(pidfile)}) 2>/dev/null; true")
