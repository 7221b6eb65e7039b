"""The outcome rules (kvariant.pipeline.outcome): what an exception out of
a stage makes of it, and which kernel report ends the guest.  Pure
functions, fed the exceptions the stages raise and real console text."""
from pathlib import Path

from kvariant.errors import BootFailed, GuestGone, InfraError, KernelReport, StageError
from kvariant.model import Status
from kvariant.pipeline.outcome import judge_console, outcome_of

SPLATS = Path(__file__).parent / "fixtures" / "splats"


def test_a_guest_that_is_gone_is_an_error_that_ends_the_guest():
    out = outcome_of(GuestGone("fio: no answer within its deadline of 60 s", "tail", "ssh ..."))
    assert (out.status, out.message, out.detail, out.reproduce) == (
        Status.ERROR, "fio: no answer within its deadline of 60 s", "tail", "ssh ...")
    assert out.guest_gone and not out.kernel_report and not out.internal


def test_a_kernel_report_ends_the_guest_and_waits_for_the_rest_of_it():
    out = outcome_of(KernelReport("ended at once by the kernel's report"))
    assert out.status == Status.ERROR and out.guest_gone and out.kernel_report


def test_a_boot_that_hung_is_an_error_and_one_that_panicked_a_failure():
    assert outcome_of(BootFailed("no SSH within 600 s", hung=True)).status == Status.ERROR
    out = outcome_of(BootFailed("Kernel panic - not syncing: VFS", "console", "vng ..."))
    assert (out.status, out.detail, out.reproduce, out.guest_gone) == (Status.FAIL, "console", "vng ...", False)


def test_a_stage_error_is_a_failure_and_the_host_s_lack_an_error():
    assert outcome_of(StageError("patch does not apply")).status == Status.FAIL
    out = outcome_of(InfraError("qemu-system-x86_64 not found"))
    assert (out.status, out.message) == (Status.ERROR, "qemu-system-x86_64 not found")


def test_anything_else_is_an_internal_error_kept_in_the_result():
    out = outcome_of(KeyError("iops"))
    assert (out.status, out.message, out.internal) == (Status.ERROR, "internal error: KeyError: 'iops'", True)


def test_a_fatal_report_is_named_and_a_warning_is_not():
    bug = judge_console(Status.PASS, "1 IOPS", "", (SPLATS / "bug-on-write.txt").read_text())
    assert bug.fatal is not None and bug.fatal.first_line.startswith("kernel BUG at fs/fuse/passthrough.c:74!")
    warn = judge_console(Status.PASS, "1 IOPS", "", (SPLATS / "warn-on-write.txt").read_text())
    assert warn.status == Status.FAIL and warn.fatal is None
