"""Typed errors.  The CLI is the one place that turns them into a message
and an exit code; a failing *variant* is data (a stage result), not one of
these."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .proc import Result


class KvariantError(Exception):
    """Base class: an error the user sees as one line."""

    exit_code = 1


class ConfigError(KvariantError):
    """The configuration file is wrong: names the file, the key, what was expected."""

    def __init__(self, path, key: str, expected: str):
        self.path, self.key, self.expected = path, key, expected
        where = f"{path}: {key}" if key else f"{path}"
        super().__init__(f"{where}: {expected}")


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM reached the run.  Not a KeyboardInterrupt: invoke
    (under fabric) catches those to forward them to the remote command and
    goes on waiting."""


_interrupt_requested = False


def request_interrupt() -> None:
    """The signal handler's mark: raised again at the next checkpoint
    (check_interrupt) even if the exception it raised at once was lost in
    a library's broad except while later signals are ignored."""
    global _interrupt_requested
    _interrupt_requested = True


def check_interrupt() -> None:
    """A checkpoint: RunInterrupted once an interrupt was requested."""
    if _interrupt_requested:
        raise RunInterrupted()


class InfraError(KvariantError):
    """Something the host lacks or cannot do (qemu missing, disk full...)."""

    exit_code = 3


class StageError(Exception):
    """A stage of one variant failed; carries the detail for its testcase."""

    def __init__(self, message: str, detail: str = "", reproduce: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.reproduce = reproduce


class BootFailed(StageError):
    """The guest did not reach SSH; *hung* when no panic or oops explains
    it (the boot deadline passed)."""

    def __init__(self, message: str, detail: str = "", reproduce: str = "", hung: bool = False):
        super().__init__(message, detail, reproduce)
        self.hung = hung


class GuestGone(StageError):
    """The guest cannot be used any more: a workload did not return by its
    deadline, or the guest died or dropped its SSH connection.  The testcase
    that was running is an error, the VM is stopped, and the variant's
    remaining stages are skipped."""


class KernelReport(GuestGone):
    """The kernel printed a report that leaves the workload unable to finish
    (a BUG, an oops, a hung task...) while a stage ran: the guest's command
    was abandoned at once rather than waited for until its deadline."""


class GitTimedOut(InfraError):
    """A git command did not finish by its deadline (a hung remote, a
    locked repository...); it was killed."""

    def __init__(self, cmdline: str, timeout: float):
        self.cmdline, self.timeout = cmdline, timeout
        super().__init__(f"git did not finish within {timeout:g} s and was killed: {cmdline}")


class ResultsUnwritable(KvariantError):
    """The results directory cannot be written (disk full, read-only):
    nothing more can be recorded, so the run stops."""

    exit_code = 3


class CommandFailed(StageError):
    def __init__(self, what: str, result: "Result"):
        if result.timed_out:
            msg = f"{what}: timed out after {result.duration:.0f} s"
        else:
            msg = f"{what}: exit code {result.returncode}"
        super().__init__(msg, detail=result.tail, reproduce=result.cmdline)
        self.result = result
