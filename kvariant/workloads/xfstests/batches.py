"""Running the selected tests in as few ``./check`` calls as the deadlines
allow: one call per batch, a deadline per test that the host enforces by
following check's output, each test's result handed over as it ends."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from ...errors import KernelReport, StageError
from ...model import StageResult, Status
from ...testcase import TestcaseId
from .config import CHECK_OVERHEAD, KILL_GRACE
from .guest import GuestLayout, _release_steps, batch_argv, single_test_argv
from .progress import CheckProgress, batch_command, kmsg_slice, next_batch, stop_command
from .results import outcome_from_line, outcome_to_stage, parse_results

POLL = 0.5  # s between two looks at check's progress (a host thread; nothing in the guest)


def check_command(lay: GuestLayout, argv: list[str], deadline: float | None = None) -> str:
    timeout = f"timeout -k {KILL_GRACE} {deadline:.0f} " if deadline else ""
    return (f"cd {shlex.quote(lay.tree)} && HOST_OPTIONS={shlex.quote(lay.config)} "
            f"{timeout}{shlex.join(argv)}")


def test_error(fstype: str, what: str, message: str, detail: str = "", reproduce: str = "",
               status: Status = Status.ERROR, seconds: float = 0.0) -> StageResult:
    tid = TestcaseId.xfstests(fstype, what)
    return StageResult(name=str(tid), status=status, seconds=seconds,
                       message=message, detail=detail, reproduce=reproduce, suite=tid.suite)


class _Call:
    """A guest command waited for in a thread of its own (daemon: a guest
    that never answers must not keep the run alive)."""

    def __init__(self, fn: Callable[[], object]):
        self.value: object = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn) -> None:
        try:
            self.value = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            self.error = e

    def wait(self, seconds: float) -> bool:
        self._thread.join(seconds)
        return not self._thread.is_alive()


@dataclasses.dataclass
class _Batch:
    """One ./check call while it runs and after."""

    progress: CheckProgress
    call: _Call
    marker: str
    reported: int = 0  # how many of its started tests were handed over
    stopped: str | None = None  # the test stopped at its deadline
    stopped_at: float = 0.0
    blocked: str = ""  # the guest's blocked tasks (sysrq-w) then
    lost: str = ""  # why the guest is lost


class Batches:
    """The tests of one fstype in ``./check`` batches.  *emit(test, stage)*
    is called for each test as it ends, in check's order; *known* (test ->
    reason) marks known failures."""

    def __init__(self, guest, cfg, lay: GuestLayout, outdir: Path, log: Path, per_test: float,
                 emit: Callable[[str, StageResult], None], clock: Callable[[], float] = time.monotonic,
                 known: dict[str, str] | None = None):
        self.guest, self.cfg, self.lay, self.outdir, self.log = guest, cfg, lay, outdir, log
        self.per_test, self.emit, self.clock = per_test, emit, clock
        self.known = known or {}  # test -> why it is known to fail
        self.pidfile = f"{lay.base}/check.pid"
        self.batches = 0

    def run(self, tests: list[str]) -> str:
        """Run *tests*; returns why the guest is lost, or ""."""
        pending = list(tests)
        while pending:
            b = self._start(pending)
            self._follow(b)
            self._conclude(b)
            rest = [t for t in next_batch(pending, b.progress) if t != b.stopped]
            if b.lost:
                return b.lost
            if rest == pending:  # check ran none of them: it would not now
                why = f"./check exited before running it (batch #{self.batches})"
                for test in rest:
                    self.emit(test, test_error(self.lay.fstype, test, why,
                                               b.progress.output[-3000:], self._reproduce(test)))
                return ""
            pending = rest
        return ""

    def _reproduce(self, test: str) -> str:
        return check_command(self.lay, single_test_argv(self.cfg, test))

    def _start(self, batch: list[str]) -> _Batch:
        self.batches += 1
        marker = f"kvariant: xfstests {self.lay.fstype} batch #{self.batches}"
        total = CHECK_OVERHEAD + len(batch) * (self.per_test + CHECK_OVERHEAD)
        cmd = batch_command(check_command(self.lay, batch_argv(self.cfg, batch), total),
                            self.pidfile, marker, self.lay.results)
        progress = CheckProgress(tuple(batch), self.clock)
        call = _Call(lambda: self.guest.run(cmd, timeout=total + KILL_GRACE + 60, log=self.log,
                                            stream=progress.feed))
        return _Batch(progress, call, marker)

    def _follow(self, b: _Batch) -> None:
        """Until check exits: hand over each test that ended, stop the one
        past its deadline."""
        while not b.call.wait(POLL) and not b.lost:
            for test in b.progress.over()[b.reported:]:
                self._hand_over(b, test)
                if b.lost:
                    return
            now = self.clock()
            if b.stopped is None:  # check's start-up gets what one ./check per test had
                limit = self.per_test + CHECK_OVERHEAD
                test = b.progress.overdue(now, limit, limit)
                if test is not None:
                    self._stop(b, test)
            elif now - b.stopped_at > KILL_GRACE + 60:
                b.lost = f"the guest stopped answering after {b.stopped} hung"

    def _conclude(self, b: _Batch) -> None:
        """After check exited (or the guest was lost): every test it
        started and that was not handed over yet, in order."""
        started = [t for t, _ in b.progress.snapshot()]
        if b.stopped is not None and b.stopped not in started:  # stopped in check's start-up
            started.append(b.stopped)
        error = b.call.error if b.call.wait(0) else None
        if error is not None and not isinstance(error, StageError):
            raise error
        current = started[-1] if started else b.progress.tests[0]
        for test in started[b.reported:]:
            if test == b.stopped or (test == current and error is not None):
                break
            self._hand_over(b, test)  # after a dropped connection, an error at once
        if isinstance(error, StageError) and not b.lost:
            b.lost = (f"{error.message} during {current}" if isinstance(error, KernelReport)
                      else f"the guest's SSH connection was lost during {current}")
        if b.stopped is not None and not b.lost:
            self._recover(b)
        for test in started[b.reported:]:
            b.reported += 1
            if test == b.stopped:
                self.emit(test, self._deadline_error(b, test))
            else:
                self.emit(test, test_error(self.lay.fstype, test, b.lost,
                                           getattr(error, "detail", "") or b.progress.output[-3000:],
                                           self._reproduce(test), seconds=self._ran(b, test)))

    def _ran(self, b: _Batch, test: str) -> float:
        since = dict(b.progress.snapshot()).get(test, b.progress.begun)
        return max(0.0, self.clock() - since)

    def _hand_over(self, b: _Batch, test: str) -> None:
        """A test that ended: its files and kernel log back to the host,
        its result to emit."""
        b.reported += 1
        if b.lost:
            self.emit(test, test_error(self.lay.fstype, test, f"its results were not fetched: {b.lost}",
                                       reproduce=self._reproduce(test)))
            return
        try:
            self._fetch(test, kmsg_slice(f"{self.lay.results}/{test}.kmsg", b.marker, test,
                                         first=test == b.progress.tests[0]))
        except StageError as e:
            b.lost = f"could not fetch results after {test}: {e}"
        line = b.progress.line(test)
        if line is not None and not self.cfg.loop_failures:
            found = outcome_from_line(self.outdir, test, line, b.progress.took(test, self.clock()),
                                      self.cfg.dir)
        else:
            found = next(iter(parse_results(self.outdir, tree=self.cfg.dir, only=test)), None)
        if found is not None:
            stage = outcome_to_stage(found, self.lay.fstype, self.known.get(test))
        else:
            stage = test_error(self.lay.fstype, test, "no result from ./check",
                               b.progress.output[-3000:], seconds=self._ran(b, test))
        stage.reproduce = self._reproduce(test)
        self.emit(test, stage)

    def _fetch(self, test: str, before: str) -> None:
        """After *before* (a guest command): result.xml, check.log,
        check.time and <test>.* (out.bad, full, dmesg, notrun, kmsg, loop
        copies) into outdir; result.xml is also kept as xunit/<test>.xml."""
        res = self.guest.run(f"{before}; cd {shlex.quote(self.lay.results)} && ls -1d result.xml "
                             f"check.log check.time {shlex.quote(test)}.* 2>/dev/null; true",
                             timeout=120)
        if res.timed_out:
            raise StageError(f"listing the results of {test} timed out")
        names = [n for n in (line.strip() for line in res.tail.splitlines())
                 if n in ("result.xml", "check.log", "check.time")
                 or (n.startswith(f"{test}.") and "/" not in n[len(test):])]
        (self.outdir / "result.xml").unlink(missing_ok=True)
        for name in names:
            self.guest.get(f"{self.lay.results}/{name}", self.outdir / name, missing_ok=True)
        if (self.outdir / "result.xml").is_file():
            keep = self.outdir / "xunit" / (test.replace("/", "-") + ".xml")
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.outdir / "result.xml", keep)

    def _stop(self, b: _Batch, test: str) -> None:
        """*test* passed its deadline: ask for the blocked tasks, stop check."""
        b.stopped, b.stopped_at = test, self.clock()
        try:
            res = self.guest.run(stop_command(self.pidfile, test), timeout=90, log=self.log)
        except StageError as e:
            b.lost = (f"{e.message} during {test}" if isinstance(e, KernelReport)
                      else f"the guest's SSH connection was lost after {test} hung")
            return
        b.blocked = res.stdout.strip()
        if res.timed_out:
            b.lost = f"the guest stopped answering after {test} hung"

    def _recover(self, b: _Batch) -> None:
        """After a stopped test: its kernel log and files, our FUSE
        connections aborted, the mounts released."""
        test = b.stopped
        script = "\n".join([kmsg_slice(f"{self.lay.results}/{test}.kmsg", b.marker, test,
                                       first=test == b.progress.tests[0]), *_release_steps(self.lay)])
        try:
            res = self.guest.run(f"sh -c {shlex.quote(script)}", timeout=120, log=self.log)
            if res.timed_out:
                raise StageError("the recovery timed out")
            self._fetch(test, "true")
        except StageError:
            b.lost = f"the guest stopped answering after {test} hung"

    def _deadline_error(self, b: _Batch, test: str) -> StageResult:
        started = dict(b.progress.snapshot())
        limit = self.per_test + CHECK_OVERHEAD
        where = "" if test in started else " (in ./check's start-up, before it)"
        message = f"no result after {self._ran(b, test):.0f} s: past its deadline of {limit:.0f} s{where}"
        if b.lost:
            message += f"; {b.lost}"
        parts = [f"--- ./check's output, last lines ---\n{b.progress.output[-3000:].strip()}"]
        if b.blocked:
            parts.append(f"--- blocked tasks (sysrq-w) and the kernel log after ---\n{b.blocked[-12000:]}")
        else:
            parts.append("--- blocked tasks: the guest did not answer ---")
        return test_error(self.lay.fstype, test, message, "\n\n".join(parts), self._reproduce(test),
                          seconds=self._ran(b, test))
