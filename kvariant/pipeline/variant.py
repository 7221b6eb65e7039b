"""One variant through its stages and workloads: each stage is timed,
turned into a testcase by the outcome rules (outcome.py) and recorded as
it ends.  A stage that fails skips what follows, naming why; a guest that
is gone (a deadline, a kernel report, qemu died) is stopped and the rest
of the variant is skipped.  While a guest runs, its console is watched: a
report that ends a stage ends it at once.  The VM is torn down on every
path."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Variant
from ..decode import decode, resolved_frames
from ..errors import BootFailed, GuestGone, RunInterrupted, StageError, check_interrupt
from ..model import StageResult, Status, VariantResult
from ..splats import Splat, find_splats, splat_excerpt
from ..vm import VM, ConsoleWatch, console_tail
from .correctness_workload import CorrectnessWorkload
from .fio_workload import FioWorkload
from .outcome import judge_console, outcome_of
from ..testcase import TestcaseId
from .stages import Stage, Workload
from .xfstests_workload import XfstestsWorkload

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)

WORKLOADS: tuple[Workload, ...] = (FioWorkload(), CorrectnessWorkload(), XfstestsWorkload())
ABANDONED = "ended at once by the kernel's report"  # the message of a stage a report ended


class VariantRun:
    def __init__(self, run: "Run", variant: Variant, result: VariantResult,
                 previous: VariantResult | None = None):
        self.run = run
        # --resume: the workload testcases that ended before the interrupt
        # are kept, not run again (apply, build, boot and storage are: the
        # guest is a new one)
        self.done: dict[str, StageResult] = {} if previous is None else {
            s.name: s for s in previous.stages
            if s.id.scope and s.message != "interrupted"}
        self.config = run.config
        self.variant = variant
        self.result = result
        self.dir = run.run_dir / variant.name
        self.commit = self.config.kernel.base_commit
        self.kernel_image: Path | None = None
        self.vm: VM | None = None
        self.gone = ""  # why the guest cannot be used any more, once it cannot
        self.ended = False  # a stage failed: the rest is recorded as skipped

    # -- the variant ----------------------------------------------------
    def execute(self) -> None:
        """The variant alone: its stages, its workloads, its guest torn
        down on every path."""
        try:
            self.begin()
            if self.run_stages(self.run.stages):
                self.run_workloads(self.run.workloads)
                self.finish()
        except (KeyboardInterrupt, RunInterrupted):
            self.mark_interrupted()
            raise RunInterrupted() from None
        finally:
            self.teardown()

    def begin(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if (self.dir / "console.log").exists():  # an interrupted run's, kept beside the new one
            n = len(list(self.dir.glob("console-interrupted*.log"))) + 1
            (self.dir / "console.log").rename(self.dir / f"console-interrupted{n}.log")
        self.result.info.base = self.config.kernel.base
        self.result.info.base_commit = self.config.kernel.base_commit

    def run_stages(self, stages: tuple[Stage, ...], later: tuple[Stage, ...] = ()) -> bool:
        """*stages* in order; True when all passed.  When one fails, the
        stages after it, *later* ones (run after these) and the workloads'
        testcases are skipped, naming why."""
        for i, stage in enumerate(stages):
            if not self.step(stage):
                why = self.gone or f"{stage.name} failed"
                rest = [s.name for s in (*stages[i + 1:], *later)]
                self.skip_rest(rest + self.later_names(), f"skipped: {why}")
                if stage.name != "boot" and self.booted:  # a failed boot's own message has the panic
                    self.record_dmesg()
                self.ended = True
                return False
        return True

    @property
    def booted(self) -> bool:
        return any(s.name == "boot" and s.status == Status.PASS for s in self.result.stages)

    def run_workloads(self, workloads: tuple[Workload, ...]) -> None:
        for workload in workloads:
            workload.run(self)
            if self.gone:
                break
        if self.gone:
            self.skip_missing(f"skipped: {self.gone}")

    def finish(self) -> None:
        """The kernel's verdict over the guest's life; the variant complete."""
        self.record_dmesg()
        self.result.info.complete = True
        self.run.save()

    def step(self, stage: Stage) -> bool:
        """Run *stage* (after what comes before it); True when it passed."""
        if stage.replay is not None:
            check_interrupt()
            return self.record(stage.replay(self)).status == Status.PASS
        if stage.before is not None:
            stage.before(self)
        with self.measuring(StageResult(stage.name, Status.PASS, log=stage.log)) as result:
            result.message = stage.run(self) or ""
        return result.status == Status.PASS

    def later_names(self) -> list[str]:
        """The testcases after storage, for skipping them by name."""
        return [name for w in self.run.workloads for name in w.names(self.config)]

    def mark_interrupted(self) -> None:
        """Between measured stages (a target's set-up, a prefill): what was
        still to come is marked, so the JUnit says interrupted."""
        done = {s.name for s in self.result.stages}
        for name in [n for n in self.later_names() if n not in done] or ["interrupted"]:
            self.record(StageResult(name, Status.ERROR, message="interrupted",
                                    suite=TestcaseId.parse(name).suite if TestcaseId.parse(name).target else "stages"))

    # -- recording ------------------------------------------------------
    def record(self, stage: StageResult) -> StageResult:
        return self.run.recorder.record(self.result, stage)

    def skip_rest(self, names: list[str], why: str) -> None:
        for name in names:
            self.record(StageResult(name, Status.SKIP, message=why))

    def skip_missing(self, why: str) -> None:
        done = {s.name for s in self.result.stages}
        for name in self.later_names():
            if name not in done and not (name == "xfstests" and any(
                    TestcaseId.parse(n).fstype for n in done)):
                self.record(StageResult(name, Status.SKIP, message=why, suite=TestcaseId.parse(name).suite))

    def record_dmesg(self) -> None:
        """The ``dmesg`` testcase: every kernel splat of the guest's life,
        read from the console the host kept (so it is there even when the
        guest died)."""
        if self.vm is None:  # a run of the stages before boot only (``build``)
            return
        earlier = "".join(p.read_text(errors="replace")  # an interrupted run's, earlier fio guests'
                          for pattern in ("console-interrupted*.log", "console-boot*.log")
                          for p in sorted(self.dir.glob(pattern)))
        text = earlier + self.vm.console_since(0)
        splats = find_splats(text)
        stage = StageResult("dmesg", Status.PASS, suite="kernel", log="console.log")
        if splats:
            kinds = ", ".join(dict.fromkeys(s.kind for s in splats))
            stage.status = Status.FAIL
            stage.message = f"{splats[0].first_line} ({len(splats)} splat(s): {kinds})"
            stage.detail = splat_excerpt(text, max_lines=400)
            kernel_dir = self.result.info.build.kernel_dir
            decoded = decode(stage.detail, Path(kernel_dir), self.dir) if kernel_dir else None
            if decoded is not None:
                stage.detail = f"(decoded by the tree's scripts/decode_stacktrace.sh)\n{decoded}"
                stage.figures["frames_decoded"] = resolved_frames(decoded)
        else:
            stage.message = f"no kernel splats in {len(text.splitlines())} console lines"
        stage.figures["splats"] = len(splats)
        self.record(stage)

    # -- one stage ------------------------------------------------------
    @contextlib.contextmanager
    def measuring(self, stage: StageResult, keep_pass: bool = True, record: bool = True,
                  label: str = ""):
        """Time *stage*, turn what goes wrong in the block into its status,
        and record it (a passing one only with *keep_pass*; with *record*
        False the caller records it, after more blocks of the same stage:
        their times add up; *label* says which block on the terminal).
        While a guest runs, its console is watched from the block's start:
        a report that ends a stage (splats.fatal) abandons the guest's
        command at once.  Only an interrupt leaves the block as an
        exception, and the stage is recorded then."""
        check_interrupt()  # a checkpoint before each testcase
        self.run.ui.begin(self.variant.name, f"{stage.name} ({label})" if label else stage.name)
        start = time.monotonic()
        interrupted = False
        # the kernel's messages while the stage runs, once there is a guest
        mark = self.vm.console_mark() if self.vm is not None and self.vm.guest is not None else None
        watch = self.vm.watch(mark, self.abandon_guest) if mark is not None else None
        try:
            with watch or contextlib.nullcontext():
                yield stage
        except (KeyboardInterrupt, RunInterrupted):
            stage.status, stage.message = Status.ERROR, "interrupted"
            interrupted = True
        except Exception as e:  # noqa: BLE001 - each kind becomes the stage's status
            self.stage_failed(stage, e)
        stage.seconds += time.monotonic() - start
        if mark is not None and not interrupted:
            self.judge_console(stage, mark, watch, start)
        if interrupted or (record and (keep_pass or stage.status != Status.PASS)):
            self.record(stage)
        if self.gone and self.vm is not None:
            self.vm.stop()  # a hung, broken or dead guest is of no more use
        if interrupted:
            raise RunInterrupted()

    def stage_failed(self, stage: StageResult, e: Exception) -> None:
        """What an exception out of a stage makes of it (outcome.py), and
        what that means for the guest."""
        if isinstance(e, StageError):
            e = self.as_guest_gone(e, stage.name)
        out = outcome_of(e)
        if out.internal:  # a bug of ours: kept in the result and the log; the run goes on
            log.error("stage %s of %s", stage.name, self.variant.name, exc_info=e)
        stage.status, stage.message = out.status, out.message
        stage.detail, stage.reproduce = out.detail, out.reproduce
        if out.kernel_report:
            self.vm.settle()  # the rest of the report, still on its way
        if out.guest_gone:
            stage.detail = self.hang_detail(out.detail)
            self.gone = self.gone or f"the guest stopped answering during {stage.name}"

    def as_guest_gone(self, e: StageError, what: str) -> StageError:
        """A failure while the guest's qemu is gone (a panic, a crash) is the
        guest dying, whatever the command that noticed it said."""
        vm = self.vm
        if isinstance(e, (GuestGone, BootFailed)) or vm is None or vm.proc is None:
            return e
        try:
            vm.proc.wait(timeout=2)  # a qemu that is dying has a moment to go
        except subprocess.TimeoutExpired:
            return e
        self.gone = f"the guest died during {what}"
        return GuestGone(f"{self.gone} (qemu exited; {e.message})", e.detail, e.reproduce)

    def abandon_guest(self, splat: Splat) -> None:
        """The console watch saw a report that ends the stage (called from
        its thread): stop waiting for the guest."""
        guest = self.vm.guest if self.vm is not None else None
        if guest is not None:
            log.warning("%s: %s: abandoning the guest's command", self.variant.name, splat.first_line)
            guest.abandon(ABANDONED)

    def judge_console(self, stage: StageResult, mark: int, watch: ConsoleWatch | None,
                      start: float) -> None:
        """The kernel's reports since *mark* judge the stage (outcome.py);
        one that ends a stage also ends the guest: the VM is stopped and
        what remains of the variant is skipped, naming the report.  When
        the watch ended the stage, its figures say when the host saw the
        report (seconds into the stage) and how long the verdict took."""
        judged = judge_console(stage.status, stage.message, stage.detail, self.vm.console_since(mark))
        stage.status, stage.message, stage.detail = judged.status, judged.message, judged.detail
        if judged.fatal is not None:
            self.gone = f"the kernel failed during {stage.name}: {judged.fatal.first_line}"
        if watch is not None and watch.found is not None:
            stage.figures = {**stage.figures, "kernel_report_at_s": round(watch.seen - start, 1),
                             "verdict_after_report_s": round(time.monotonic() - watch.seen, 1)}

    def hang_detail(self, detail: str) -> str:
        """After a deadline passed or the kernel broke: the guest's blocked
        tasks (sysrq-w) when its qemu still runs, and the console's last
        lines."""
        parts = [detail] if detail else []
        if self.vm is None:
            return detail
        if self.vm.alive():
            blocked = self.vm.blocked_tasks()
            if blocked.strip():
                parts.append(f"--- blocked tasks (sysrq-w) ---\n{blocked.strip()}")
            else:
                parts.append("--- blocked tasks: the guest did not answer a new SSH connection ---")
        parts.append(f"--- console, last lines ---\n{console_tail(self.vm.console)}")
        return "\n\n".join(parts)

    def teardown(self) -> None:
        """The guest's dmesg when it can still be had (not after an
        interrupt), and the VM stopped on every path."""
        if self.vm is None:
            return
        try:
            if self.vm.guest is not None:
                self.vm.guest.run("dmesg > /tmp/kvariant-dmesg.txt", timeout=30)
                self.vm.guest.get("/tmp/kvariant-dmesg.txt", self.dir / "dmesg.txt", missing_ok=True)
        except (StageError, RunInterrupted):
            pass
        finally:
            self.vm.stop()

