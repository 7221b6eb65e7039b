"""The boot stage: the accelerator (KVM where it works, else TCG, probed
once per host boot) and a guest that reaches SSH, retried under TCG."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import StageError
from ..paths import short_hash
from ..vm import KERNEL_ARGS, VM, kvm_candidate, remember_kvm_verdict, remembered_kvm_verdict
from ..workloads import contention, targets

if TYPE_CHECKING:
    from ..config import Config
    from .variant import VariantRun


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


def vm_name(v: "VariantRun") -> str:
    """Run ids are unique within one results directory only: the name also
    carries a hash of the run's directory, since a teardown kills leftover
    qemus by name."""
    return f"kv-{v.run.run_id}-{v.variant.name}"[:52] + f"-{short_hash(str(v.run.run_dir), length=6)}"


def kernel_args(config: "Config") -> tuple[str, ...]:
    """The guest kernel's arguments: the hung-task detector's, and the
    tracefs instances the fio workload reads (the FUSE targets' request
    counts; lock contention when ``[fio] contention`` is on).  Enabling a
    tracepoint patches kernel text: at boot that happens in start_kernel()
    while one CPU runs, and any failure falls inside the boot, which is
    retried; on a running TCG guest it now and then ends in an int3 Oops."""
    args = KERNEL_ARGS + targets.boot_args(config.fio.targets)
    return args + ((contention.boot_arg(),) if config.fio.contention else ())


def make_vm(v: "VariantRun", kvm: bool, deadline: float) -> VM:
    vm_cfg, t = v.config.vm, v.config.timeouts
    return VM(v.kernel_image, name=vm_name(v), cpus=vm_cfg.cpus, memory=vm_cfg.memory,
              console=v.dir / "console.log", kvm=kvm, boot_timeout=deadline, command_timeout=t.command,
              append=kernel_args(v.config))


def probe_kvm(v: "VariantRun") -> str:
    """A first boot with KVM that must reach SSH within the probe's
    deadline; the verdict is remembered until the host reboots."""
    try:
        v.vm = make_vm(v, True, v.config.timeouts.kvm_probe)
        v.vm.boot()
        remember_kvm_verdict("kvm")
        v.run.accel = Accel(True, False, "kvm (a boot reached SSH)")
        return ""
    except StageError as e:
        v.vm.stop()
        v.vm = None
        remember_kvm_verdict("tcg")
        v.run.accel = Accel(False, False, f"tcg: a KVM boot did not reach SSH in "
                                          f"{v.config.timeouts.kvm_probe:.0f} s")
        return f"KVM boot failed ({e.message}); fell back to TCG. "


def boot(v: "VariantRun") -> str:
    """The guest, up to ``boot_retries`` more attempts: under TCG a good
    kernel can die at boot now and then (an int3 Oops while the kernel
    patches its own text on several vCPUs); a kernel that really cannot
    boot fails every attempt."""
    note = probe_kvm(v) if v.run.accel.kvm and v.run.accel.probe else ""
    attempt, failures = 0, []
    while v.vm is None or v.vm.guest is None:
        attempt += 1
        v.vm = make_vm(v, v.run.accel.kvm, v.config.timeouts.boot)
        try:
            v.vm.boot()
        except StageError as e:
            if attempt > v.config.vm.boot_retries:
                if attempt > 1 and all(m == e.message for m in failures):
                    e.message += f" (all {attempt} attempts; the first: console-attempt1.log)"
                elif attempt > 1:
                    e.message = f"{e.message} (attempt {attempt}; earlier: {note.strip()})"
                raise
            failures.append(e.message)
            kept = v.dir / f"console-attempt{attempt}.log"
            (v.dir / "console.log").rename(kept)
            note += f"attempt {attempt} failed: {e.message} [{kept.name}]; "
            v.vm = None
    info = v.result.info.boot
    info.boot_attempts = attempt
    info.vng = " ".join(v.vm.argv)  # how to boot this kernel by hand
    info.ssh_port = v.vm.port
    info.accel = "kvm" if v.run.accel.kvm else "tcg"
    info.accel_reason = v.run.accel.reason
    uname = v.vm.guest.run("uname -r", timeout=30).stdout.strip()
    return f"{note}{info.accel}, {v.config.vm.cpus} vCPUs, {v.config.vm.memory}: {uname or '?'}"
