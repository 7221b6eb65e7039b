"""One run: every variant through apply -> build -> boot -> storage -> fio.

A stage that fails is recorded (Status.FAIL/ERROR with its detail) and the
stages after it are SKIP with the reason; the next variant goes on.  JUnit
and summary.json are rewritten atomically after every stage, so a run that
is killed keeps what it had.  The VM is torn down on every path.  While a
workload stage runs, the guest's console is watched: a kernel report that
ends a stage (splats.fatal) ends it at once.  The workloads themselves are
in workload_stages.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shlex
import subprocess
import time
from pathlib import Path
from typing import Callable

from .build import build_kernel, toolchain
from .config import Config, Variant
from .errors import GuestGone, InfraError, KernelReport, ResultsUnwritable, RunInterrupted, StageError
from .junit import write_junit
from .model import StageResult, Status, VariantResult
from .paths import PROJECT, short_hash, slug
from .tree import Mirror, apply_series, patch_files, series_from_ref
from .splats import Splat, fatal, find_splats, first_fatal, splat_excerpt
from .summary import RunSummary
from .ui import UI
from .vm import VM, BootFailed, ConsoleWatch, console_tail, kvm_candidate, remember_kvm_verdict, remembered_kvm_verdict
from .workload_stages import WorkloadStages
from .workloads import fio, storage

log = logging.getLogger(__name__)

STAGES = ("apply", "build", "boot", "storage")
HANG_ONLY = ("stall",)  # reports that describe a hang rather than cause one
ABANDONED = "ended at once by the kernel's report"  # the message of a stage a report ended
STAGE_LOGS = {"apply": "apply.log", "build": "build.log", "boot": "console.log", "storage": "guest.log"}


Interrupted = RunInterrupted  # what a stage raises once it recorded the interrupt


@dataclasses.dataclass
class Accel:
    kvm: bool
    probe: bool  # try KVM first, fall back to TCG when the boot does not reach SSH
    reason: str

    @classmethod
    def choose(cls, wanted: str) -> "Accel":
        if wanted == "tcg":
            return cls(False, False, "accel = tcg in the config")
        if wanted == "kvm":
            return cls(True, False, "accel = kvm in the config")
        verdict = remembered_kvm_verdict()
        if verdict:
            return cls(verdict == "kvm", False, f"{verdict} (probed earlier since this host booted)")
        ok, why = kvm_candidate()
        if not ok:
            return cls(False, False, f"tcg: {why}")
        return cls(True, True, "kvm, to be confirmed by a boot that reaches SSH")


class Run:
    def __init__(self, config: Config, run_dir: Path, run_id: str, ui: UI,
                 previous: dict | None = None):
        self.config = config
        self.run_dir = run_dir
        self.run_id = run_id
        self.ui = ui
        self.mirror = Mirror(config.kernel.tree)
        self.accel = Accel.choose(config.vm.accel)
        self.results: list[VariantResult] = []
        self.started = time.time()
        self.interrupted = False
        self.threshold = 0.05  # smallest IOPS change the reports call better or worse
        self.force = False  # --force: verdicts against an earlier run with another setup
        # --resume: the summary.json of the interrupted run this one finishes
        self.previous = previous
        self.resumed = list(previous.get("resumed", [])) + [previous.get("seconds", 0)] if previous else []
        if previous:
            self.started -= previous.get("seconds", 0)

    def execute(self) -> list[VariantResult]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        before = {v["name"]: VariantResult.from_dict(v) for v in (self.previous or {}).get("variants", [])}
        self.save()
        try:
            for variant in self.config.variants:
                prev = before.get(variant.name)
                if prev is not None and prev.info.get("complete"):
                    self.results.append(prev)  # finished before the interrupt: kept as it was
                    self.ui.info(f"{variant.name:<16} kept from the interrupted run ({prev.status.value})")
                    continue
                result = VariantResult(variant.name)
                self.results.append(result)
                VariantRun(self, variant, result, previous=prev).execute()
        except (Interrupted, KeyboardInterrupt):
            self.interrupted = True
        finally:
            self.save(final=True)
        return self.results

    def save(self, final: bool = False) -> None:
        RunSummary.of_run(self, final).write(self.run_dir)


class VariantRun(WorkloadStages):
    def __init__(self, run: Run, variant: Variant, result: VariantResult,
                 previous: VariantResult | None = None):
        self.run = run
        # --resume: the workload testcases that ended before the interrupt
        # are kept, not run again (apply, build, boot and storage are: the
        # guest is a new one)
        self.done: dict[str, StageResult] = {} if previous is None else {
            s.name: s for s in previous.stages
            if s.name.startswith(("fio/", "xfstests/")) and s.message != "interrupted"}
        self.config = run.config
        self.variant = variant
        self.result = result
        self.dir = run.run_dir / variant.name
        self.commit = self.config.kernel.base_commit
        self.kernel_image: Path | None = None
        self.vm: VM | None = None
        self.gone = ""  # why the guest cannot be used any more, once it cannot

    # -- bookkeeping ----------------------------------------------------
    def record(self, stage: StageResult) -> StageResult:
        self.result.stages.append(stage)
        self.run.ui.stage(self.variant.name, stage)
        try:
            write_junit(self.result, self.dir / "junit.xml")
        except OSError as e:
            raise ResultsUnwritable(f"cannot write {self.dir / 'junit.xml'}: {e.strerror or e}") from None
        self.run.save()
        return stage

    @contextlib.contextmanager
    def measuring(self, stage: StageResult, keep_pass: bool = True):
        """Time *stage*, turn what goes wrong in the block into its status,
        and record it (a passing one only with *keep_pass*).  While a guest
        runs, its console is watched from the stage's start: a report that
        ends a stage (splats.fatal) abandons the guest's command at once.
        Only an interrupt leaves the block as an exception."""
        self.run.ui.begin(self.variant.name, stage.name)
        start = time.monotonic()
        interrupted = False
        # the kernel's messages while the stage runs, once there is a guest
        mark = self.vm.console_mark() if self.vm is not None and self.vm.guest is not None else None
        watch = self.vm.watch(mark, self.abandon_guest) if mark is not None else None
        try:
            with watch or contextlib.nullcontext():
                yield stage
        except (KeyboardInterrupt, Interrupted):
            stage.status, stage.message = Status.ERROR, "interrupted"
            interrupted = True
        except Exception as e:  # noqa: BLE001 - each kind becomes the stage's status
            self.stage_failed(stage, e)
        stage.seconds = time.monotonic() - start
        if mark is not None and not interrupted:
            self.judge_console(stage, mark, watch, start)
        if keep_pass or stage.status != Status.PASS:
            self.record(stage)
        if self.gone and self.vm is not None:
            self.vm.stop()  # a hung, broken or dead guest is of no more use
        if interrupted:
            raise Interrupted()

    def stage_failed(self, stage: StageResult, e: Exception) -> None:
        """What an exception out of a stage makes of it."""
        if isinstance(e, StageError):
            e = self.as_guest_gone(e, stage.name)
        if isinstance(e, GuestGone):
            stage.status = Status.ERROR
            stage.message, stage.reproduce = e.message, e.reproduce
            if isinstance(e, KernelReport):
                self.vm.settle()  # the rest of the report, still on its way
            stage.detail = self.hang_detail(e.detail)
            self.gone = self.gone or f"the guest stopped answering during {stage.name}"
        elif isinstance(e, BootFailed):
            stage.status = Status.ERROR if e.hung else Status.FAIL
            stage.message, stage.detail, stage.reproduce = e.message, e.detail, e.reproduce
        elif isinstance(e, StageError):
            stage.status = Status.FAIL
            stage.message, stage.detail, stage.reproduce = e.message, e.detail, e.reproduce
        elif isinstance(e, InfraError):
            stage.status, stage.message = Status.ERROR, str(e)
        else:  # a bug of ours: keep it in the result, go on
            log.error("stage %s of %s", stage.name, self.variant.name, exc_info=e)
            stage.status, stage.message = Status.ERROR, f"internal error: {type(e).__name__}: {e}"

    def abandon_guest(self, splat: Splat) -> None:
        """The console watch saw a report that ends the stage (called from
        its thread): stop waiting for the guest."""
        guest = self.vm.guest if self.vm is not None else None
        if guest is not None:
            log.warning("%s: %s: abandoning the guest's command", self.variant.name, splat.first_line)
            guest.abandon(ABANDONED)

    def judge_console(self, stage: StageResult, mark: int, watch: ConsoleWatch | None,
                      start: float) -> None:
        """The kernel's reports since *mark* fail the stage; one that ends a
        stage also ends the guest: the VM is stopped and what remains of the
        variant is skipped, naming the report.  When the watch ended the
        stage, its figures say when the host saw the report (seconds into
        the stage) and how long the verdict took after it."""
        text = self.vm.console_since(mark)
        self.fail_on_splats(stage, text)
        report = first_fatal(text)
        if report is not None:
            self.gone = f"the kernel failed during {stage.name}: {report.first_line}"
        if watch is not None and watch.found is not None:
            stage.figures = {**stage.figures, "kernel_report_at_s": round(watch.seen - start, 1),
                             "verdict_after_report_s": round(time.monotonic() - watch.seen, 1)}

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

    @staticmethod
    def fail_on_splats(stage: StageResult, kernel_log: str) -> None:
        """A kernel splat while the stage ran fails it, led by the report
        that ended the stage (splats.fatal: a BUG, an oops, a panic, a hung
        task...) or else by the first one; the reports are the body.  An RCU
        stall alone only describes a hang: a stage that missed its deadline
        (or lost its guest) with nothing more stays an error."""
        splats = find_splats(kernel_log)
        if not splats:
            return
        more = f" (+{len(splats) - 1} more)" if len(splats) > 1 else ""
        lead = next((x for x in splats if fatal(x)), None) or next(
            (x for x in splats if x.kind not in HANG_ONLY), None)
        if lead is None and stage.status == Status.ERROR:
            stage.message = f"{stage.message}; kernel: {splats[0].first_line}{more}"
        else:
            first = (lead or splats[0]).first_line
            stage.message = f"kernel: {first}{more}" + (f"; {stage.message}" if stage.status != Status.PASS
                                                        and stage.message else "")
            stage.status = Status.FAIL
        report = splat_excerpt(kernel_log, max_lines=200)
        stage.detail = f"--- kernel splats ---\n{report}" + (f"\n\n{stage.detail}" if stage.detail else "")

    def step(self, name: str, fn: Callable[[], str | None], log_name: str = "") -> bool:
        """Run stage *fn*; its return value is the stage's message.  True
        when it passed."""
        with self.measuring(StageResult(name, Status.PASS, log=log_name)) as stage:
            stage.message = fn() or ""
        return stage.status == Status.PASS

    def skip_rest(self, names: list[str], why: str) -> None:
        for name in names:
            self.record(StageResult(name, Status.SKIP, message=why))

    # -- the variant ----------------------------------------------------
    def execute(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if (self.dir / "console.log").exists():  # an interrupted run's, kept beside the new one
            n = len(list(self.dir.glob("console-interrupted*.log"))) + 1
            (self.dir / "console.log").rename(self.dir / f"console-interrupted{n}.log")
        self.result.info["base"] = self.config.kernel.base
        self.result.info["base_commit"] = self.config.kernel.base_commit
        try:
            for i, name in enumerate(STAGES):
                if name == "build" and self.variant.bisect and len(self.result.info.get("patches", [])) > 1:
                    self.check_series()
                if not self.step(name, getattr(self, name), STAGE_LOGS[name]):
                    why = self.gone or f"{name} failed"
                    self.skip_rest(list(STAGES[i + 1:]) + self.later_names(), f"skipped: {why}")
                    if i > STAGES.index("boot"):  # a failed boot's own message has the panic
                        self.record_dmesg()
                    return
            for workload in (self.run_fio, self.run_xfstests):
                workload()
                if self.gone:
                    self.skip_missing(f"skipped: {self.gone}")
                    break
            self.record_dmesg()
            self.result.info["complete"] = True
            self.run.save()
        except (KeyboardInterrupt, RunInterrupted):
            # between measured stages (a target's set-up, a prefill): what
            # was still to come is marked, so the JUnit says interrupted
            done = {s.name for s in self.result.stages}
            for name in [n for n in self.later_names() if n not in done] or ["interrupted"]:
                self.record(StageResult(name, Status.ERROR, message="interrupted",
                                        suite=f"fio.{name.split('/')[1]}" if name.startswith("fio/") else "stages"))
            raise Interrupted() from None
        finally:
            self.teardown()

    def skip_missing(self, why: str) -> None:
        done = {s.name for s in self.result.stages}
        for name in self.later_names():
            if name not in done and not (name == "xfstests" and any(
                    n.startswith("xfstests/") for n in done)):
                self.record(StageResult(name, Status.SKIP, message=why, suite=suite_of(name)))

    def record_dmesg(self) -> None:
        """The ``dmesg`` testcase: every kernel splat of the guest's life,
        read from the console the host kept (so it is there even when the
        guest died)."""
        earlier = "".join(p.read_text(errors="replace")
                          for p in sorted(self.dir.glob("console-interrupted*.log")))
        text = earlier + self.vm.console_since(0)
        splats = find_splats(text)
        stage = StageResult("dmesg", Status.PASS, suite="kernel", log="console.log")
        if splats:
            kinds = ", ".join(dict.fromkeys(s.kind for s in splats))
            stage.status = Status.FAIL
            stage.message = f"{splats[0].first_line} ({len(splats)} splat(s): {kinds})"
            stage.detail = splat_excerpt(text, max_lines=400)
        else:
            stage.message = f"no kernel splats in {len(text.splitlines())} console lines"
        stage.figures = {"splats": len(splats)}
        self.record(stage)

    def later_names(self) -> list[str]:
        """The testcases after storage, for skipping them by name."""
        names = [f"fio/{t}/{fio.point_name(self.config.fio, n)}"
                 for t in self.config.fio.targets for n in self.config.fio.numjobs]
        return names + (["xfstests"] if self.config.xfstests is not None else [])

    def apply(self) -> str:
        files: list[Path] = []
        for spec in self.variant.patches:
            if spec.ref:
                files.append(series_from_ref(self.config.kernel.tree, self.config.kernel.base_commit,
                                             spec.ref, self.dir))
            else:
                files += patch_files(spec.path)
        self.run.mirror.fetch(self.config.kernel.base_commit)
        applied = apply_series(self.run.mirror, self.config.kernel.base_commit, files,
                               identity=f"{self.run.run_id}/{self.variant.name}")
        (self.dir / "apply.log").write_text("".join(
            f"{p.commit} {p.patch_id} {p.subject}  [{p.source}]\n" for p in applied) or "no patches\n")
        if applied:
            self.commit = applied[-1].commit
        self.result.info["commit"] = self.commit
        self.result.info["patches"] = [dataclasses.asdict(p) for p in applied]
        return f"{len(applied)} patch(es) on {self.config.kernel.base}"

    def fragments(self) -> list[Path]:
        return list(self.config.kernel.fragments) + list(self.variant.fragments)

    def check_series(self) -> None:
        """bisect = true: each patch of the series, on top of the ones before
        it, must build; one testcase per patch (apply already checked that
        each applies).  The last one is the variant's own build, reused by
        the build stage."""
        patches = self.result.info["patches"]
        for i, p in enumerate(patches, 1):
            name = f"series/{i:02d}-{slug(p['subject'])[:64]}"
            stage = StageResult(name, Status.PASS, suite="series", log=f"build-patch{i:02d}.log")
            with self.measuring(stage):
                try:
                    res = build_kernel(self.run.mirror, p["commit"], self.fragments(),
                                       self.dir / f"build-patch{i:02d}.log",
                                       jobs=self.config.kernel.jobs or None, timeout=self.config.timeouts.build)
                except StageError as e:
                    e.message = f"patch {i}/{len(patches)} breaks the build: {p['subject']}: {e.message}"
                    raise
                stage.message = (f"patch {i}/{len(patches)} applies and builds "
                                 f"({'reused' if res.reused else f'built in {res.seconds:.0f} s'})")
                stage.figures = {"commit": p["commit"], "patch_id": p["patch_id"],
                                 "build_reused": res.reused}

    def build(self) -> str:
        res = build_kernel(self.run.mirror, self.commit, self.fragments(), self.dir / "build.log",
                           jobs=self.config.kernel.jobs or None, timeout=self.config.timeouts.build)
        self.kernel_image = res.kernel_dir / "bzImage"
        self.result.info.update(kernel_release=res.release, kernel_dir=str(res.kernel_dir),
                                build_dir=str(res.build_dir), build_seconds=round(res.seconds, 1),
                                build_reused=res.reused, toolchain=toolchain())
        how = "reused (same commit and config)" if res.reused else (
            "configured and built" if res.configured else "incremental build")
        return f"{res.release}: {how} in {res.seconds:.0f} s"

    def boot(self) -> str:
        accel = self.run.accel
        vm_cfg, t = self.config.vm, self.config.timeouts
        # run ids are unique within one results directory only: the name
        # also carries a hash of the run's directory, since a teardown kills
        # leftover qemus by name
        name = f"kv-{self.run.run_id}-{self.variant.name}"[:52] + f"-{short_hash(str(self.run.run_dir), length=6)}"

        def make(kvm: bool, deadline: float) -> VM:
            return VM(self.kernel_image, name=name, cpus=vm_cfg.cpus, memory=vm_cfg.memory,
                      console=self.dir / "console.log", kvm=kvm, boot_timeout=deadline,
                      command_timeout=t.command)

        note = ""
        if accel.kvm and accel.probe:
            self.vm = make(True, t.kvm_probe)
            try:
                self.vm.boot()
                remember_kvm_verdict("kvm")
                self.run.accel = Accel(True, False, "kvm (a boot reached SSH)")
            except StageError as e:
                self.vm.stop()
                remember_kvm_verdict("tcg")
                self.run.accel = Accel(False, False, f"tcg: a KVM boot did not reach SSH in {t.kvm_probe:.0f} s")
                note = f"KVM boot failed ({e.message}); fell back to TCG. "
        attempt = 0
        failures: list[str] = []
        while self.vm is None or self.vm.guest is None:
            attempt += 1
            self.vm = make(self.run.accel.kvm, t.boot)
            try:
                self.vm.boot()
            except StageError as e:
                # Under TCG a good kernel can die at boot now and then (an int3
                # Oops while the kernel patches its own text on several vCPUs);
                # a kernel that really cannot boot fails every attempt.
                if attempt > vm_cfg.boot_retries:
                    if attempt > 1 and all(m == e.message for m in failures):
                        e.message += f" (all {attempt} attempts; the first: console-attempt1.log)"
                    elif attempt > 1:
                        e.message = f"{e.message} (attempt {attempt}; earlier: {note.strip()})"
                    raise
                failures.append(e.message)
                kept = self.dir / f"console-attempt{attempt}.log"
                (self.dir / "console.log").rename(kept)
                note += f"attempt {attempt} failed: {e.message} [{kept.name}]; "
                self.vm = None
        self.result.info["boot_attempts"] = attempt
        self.result.info["vng"] = " ".join(self.vm.argv)  # how to boot this kernel by hand
        self.result.info["ssh_port"] = self.vm.port
        self.result.info["accel"] = "kvm" if self.run.accel.kvm else "tcg"
        self.result.info["accel_reason"] = self.run.accel.reason
        uname = self.vm.guest.run("uname -r", timeout=30).stdout.strip()
        return f"{note}{self.result.info['accel']}, {vm_cfg.cpus} vCPUs, {vm_cfg.memory}: {uname or '?'}"

    def storage(self) -> str:
        g = self.vm.guest
        script = storage.setup_script(self.config.null_blk, self.config.vm.cpus)
        res = g.run(f"mkdir -p /tmp/kvariant && sh -c {shlex.quote(script)}",
                    timeout=self.config.timeouts.storage, log=self.dir / "guest.log")
        if res.timed_out:
            raise GuestGone(f"storage set-up: no answer within its deadline of "
                            f"{self.config.timeouts.storage:.0f} s", detail=res.tail,
                            reproduce=res.cmdline)
        res.check("null_blk + mkfs.xfs + mount")
        return " ".join(res.stdout.split())

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
        if self.vm is None:
            return
        if self.vm.guest is not None:
            try:
                self.vm.guest.run("dmesg > /tmp/kvariant-dmesg.txt", timeout=30)
                self.vm.guest.get("/tmp/kvariant-dmesg.txt", self.dir / "dmesg.txt", missing_ok=True)
            except StageError:
                pass
        self.vm.stop()


def suite_of(name: str) -> str:
    parts = name.split("/")
    if parts[0] in ("fio", "xfstests") and len(parts) > 1:
        return f"{parts[0]}.{parts[1]}"
    return "xfstests" if name == "xfstests" else "stages"
