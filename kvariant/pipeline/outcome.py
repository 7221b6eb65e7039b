"""The outcome rules of a stage, as pure functions: what an exception out
of a stage makes of it, and what the kernel's messages while it ran make
of that.  No I/O: the variant's loop (variant.py) acts on what they say
(stops a guest that is gone, waits for a report to finish printing)."""

from __future__ import annotations

import dataclasses

from ..errors import BootFailed, GuestGone, InfraError, KernelReport, StageError
from ..model import Status
from ..splats import Splat, fatal, find_splats, first_fatal, splat_excerpt

HANG_ONLY = ("stall",)  # reports that describe a hang rather than cause one


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A stage's status and text, and what it means for the guest."""

    status: Status
    message: str = ""
    detail: str = ""
    reproduce: str = ""
    guest_gone: bool = False  # the guest is of no more use: stop it, skip the rest
    kernel_report: bool = False  # the rest of a kernel report may still be printing
    internal: bool = False  # a bug of ours: logged with its traceback


def outcome_of(e: BaseException) -> Outcome:
    """What an exception out of a stage makes of it.  A guest that is gone
    (a deadline, a lost connection, a kernel report) is an error; a boot
    that hung is an error and one that failed (a panic) a failure; any
    other stage error is a failure; what the host lacks is an error; and
    anything else is an internal error, kept in the result."""
    if isinstance(e, GuestGone):
        return Outcome(Status.ERROR, e.message, e.detail, e.reproduce, guest_gone=True,
                       kernel_report=isinstance(e, KernelReport))
    if isinstance(e, BootFailed):
        return Outcome(Status.ERROR if e.hung else Status.FAIL, e.message, e.detail, e.reproduce)
    if isinstance(e, StageError):
        return Outcome(Status.FAIL, e.message, e.detail, e.reproduce)
    if isinstance(e, InfraError):
        return Outcome(Status.ERROR, str(e))
    return Outcome(Status.ERROR, f"internal error: {type(e).__name__}: {e}", internal=True)


@dataclasses.dataclass(frozen=True)
class Judged:
    """A stage's status and text after the kernel's messages of its time."""

    status: Status
    message: str
    detail: str
    fatal: Splat | None  # a report that ends the guest, if one was printed


def judge_console(status: Status, message: str, detail: str, kernel_log: str) -> Judged:
    """A kernel splat while the stage ran fails it, led by the report that
    ended the stage (splats.fatal: a BUG, an oops, a panic, a hung task...)
    or else by the first one; the reports lead the detail.  An RCU stall
    alone only describes a hang: a stage that missed its deadline (or lost
    its guest) with nothing more stays an error, the stall named."""
    splats = find_splats(kernel_log)
    if not splats:
        return Judged(status, message, detail, None)
    more = f" (+{len(splats) - 1} more)" if len(splats) > 1 else ""
    lead = next((x for x in splats if fatal(x)), None) or next(
        (x for x in splats if x.kind not in HANG_ONLY), None)
    if lead is None and status == Status.ERROR:
        message = f"{message}; kernel: {splats[0].first_line}{more}"
    else:
        first = (lead or splats[0]).first_line
        message = f"kernel: {first}{more}" + (f"; {message}" if status != Status.PASS and message else "")
        status = Status.FAIL
    report = splat_excerpt(kernel_log, max_lines=200)
    detail = f"--- kernel splats ---\n{report}" + (f"\n\n{detail}" if detail else "")
    return Judged(status, message, detail, first_fatal(kernel_log))
