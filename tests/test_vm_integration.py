"""A real guest: the default kernel (built or reused from the cache) booted
with virtme-ng, driven over SSH with fabric: null_blk, mkfs.xfs, a short fio
job, teardown, and no qemu left behind."""
import shlex
import time
from pathlib import Path

import pytest

from conftest import PROJECT
from kvariant import config
from kvariant.build import build_kernel
from kvariant.config import FioConfig, FuseConfig, NullBlkConfig
from kvariant.errors import BootFailed, StageError
from kvariant.pipeline.boot import Accel
from kvariant.tree import Mirror
from kvariant.vm import KERNEL_ARGS, VM, qemu_pids
from kvariant.workloads import contention, fio, storage, targets
from kvariant.workloads.targets import FuseTarget

pytestmark = pytest.mark.vm


@pytest.fixture(scope="session")
def default_kernel(tmp_path_factory):
    """The default config's base kernel: a cold build on a new machine (about
    14 minutes on 2 cores), then reused from ~/.cache/kvariant."""
    cfg = config.load(PROJECT / "pipeline.toml")
    mirror = Mirror(cfg.kernel.tree)
    mirror.fetch(cfg.kernel.base_commit)
    log = tmp_path_factory.mktemp("build") / "build.log"
    return build_kernel(mirror, cfg.kernel.base_commit, list(cfg.kernel.fragments), log)


# the tracefs instances the pipeline arms at boot for these fio targets
TRACED = KERNEL_ARGS + targets.boot_args(["fuse-passthrough", "fuse"])


def _boot(kernel, name: str, console: Path, attempts: int = 2,
          append: tuple[str, ...] = TRACED) -> tuple[VM, object]:
    """A booted VM of *kernel*.  Under TCG a good kernel now and then dies at
    boot with an int3 Oops while it patches its own text (the pipeline's
    ``boot_retries`` is there for it): such a boot, and only such a boot,
    is tried again, its console kept beside."""
    accel = Accel.choose("auto")
    for attempt in range(1, attempts + 1):
        vm = VM(kernel.kernel_dir / "bzImage", name=name, cpus=2, memory="2G",
                console=console, kvm=accel.kvm and not accel.probe,
                boot_timeout=300, command_timeout=120, append=append)
        try:
            return vm, vm.boot()
        except BaseException as e:
            vm.stop()
            if not (isinstance(e, BootFailed) and "int3" in e.message) or attempt == attempts:
                raise
            console.rename(console.with_name(f"console-attempt{attempt}.log"))
    raise AssertionError("unreachable")


def test_boot_storage_fio_teardown(default_kernel, tmp_path):
    name = f"kv-test-{int(time.time())}"
    vm, guest = _boot(default_kernel, name, tmp_path / "console.log")
    with vm:
        assert qemu_pids(name), "qemu should be running while the guest is up"
        assert guest.run("uname -r").stdout.strip() == default_kernel.release
        res = guest.run("sh -c " + shlex.quote(storage.setup_script(NullBlkConfig(gb=1), cpus=2)),
                        timeout=120)
        assert res.ok, res.tail
        assert "/dev/nullb0 xfs" in res.stdout and "[none]" in res.stdout
        cfg = FioConfig(size="64M", runtime=3, ramp_time=1, numjobs=(2,))
        fio.prefill(guest, storage.XFS_MOUNT, cfg, timeout=120)
        figures = fio.run_point(guest, storage.XFS_MOUNT, cfg, 2, 1, tmp_path / "fio", timeout=120)
        assert figures.error == 0 and figures.numjobs == 2 and figures.iops > 1000
        assert (tmp_path / "fio" / "randwrite-4k-nj2.json").exists()
        _fuse_servers_in_the_guest(guest, cfg, tmp_path)
        # a guest command past its deadline comes back as timed out, not hung
        slow = guest.run("sleep 30", timeout=2)
        assert slow.timed_out and not slow.ok
    assert qemu_pids(name) == []
    assert "Linux version" in (tmp_path / "console.log").read_text()


def test_boot_failure_is_reported_with_console(tmp_path):
    """A kernel image that cannot boot: the VM is torn down at the deadline and
    the error carries the console."""
    bogus = tmp_path / "k" / "bzImage"
    bogus.parent.mkdir()
    bogus.write_bytes(b"\0" * 4096)
    name = f"kv-test-bad-{int(time.time())}"
    vm = VM(bogus, name=name, cpus=1, memory="512M", console=tmp_path / "console.log",
            kvm=False, boot_timeout=30, command_timeout=10)
    with vm, pytest.raises(StageError) as e:
        vm.boot()
    assert qemu_pids(name) == []
    assert e.value.reproduce.startswith("vng --run")


def _fuse_servers_in_the_guest(guest, cfg: FioConfig, tmp_path: Path) -> None:
    """Our server over the guest's XFS: with passthrough it sees no
    READ/WRITE during fio; without it, every write.  The kernel's count,
    armed at boot, agrees with the server's own."""
    for passthrough in (True, False):
        name = "fuse-passthrough" if passthrough else "fuse"
        target = FuseTarget(name, passthrough, FuseConfig(threads=2))
        out = tmp_path / "kvariant" / name
        directory = target.start(guest, tmp_path / "guest.log")
        try:
            assert target.traced
            fio.prefill(guest, directory, cfg, timeout=120)
            before = target.counters(guest)
            fio.run_point(guest, directory, cfg, 2, 1, out, timeout=120)
            figures, why = target.check(before, target.counters(guest))
        finally:
            target.stop(guest, out, tmp_path / "guest.log")
        assert why == "", (name, why)
        data = figures["server_write_requests"] + figures["server_read_requests"]
        assert (data == 0) if passthrough else (data > 100), figures
        assert figures["kernel_data_requests"] == data, figures


def _point(guest, target: FuseTarget, cfg: FioConfig, tmp_path: Path) -> tuple[dict, str]:
    """One fio point on *target* (mounted, prefilled), with its witnesses."""
    directory = target.start(guest, tmp_path / "guest.log")
    try:
        fio.prefill(guest, directory, cfg, timeout=120)
        before = target.counters(guest)
        fio.run_point(guest, directory, cfg, 2, 1, tmp_path / "fio" / target.name, timeout=120)
        return target.check(before, target.counters(guest))
    finally:
        target.stop(guest, tmp_path / "fio" / target.name, tmp_path / "guest.log")


class SilentlyOff(FuseTarget):
    """A passthrough target whose server runs with --nopassthrough."""

    def argv(self) -> list[str]:
        argv = super().argv()
        i = next(i for i, a in enumerate(argv) if a.endswith("/passthrough_hp")) + 1  # its options follow
        return [*argv[:i], "--nopassthrough", *argv[i:]]


def test_passthrough_hp_in_a_guest_with_the_kernels_count_and_contention(default_kernel, tmp_path):
    """libfuse's passthrough_hp as the fuse-passthrough target of a guest
    booted as the pipeline boots it (the request count and, as with
    ``[fio] contention``, the lock events armed on the command line): no
    READ/WRITE reaches it under passthrough; with --nopassthrough, a point
    that claims passthrough fails on the kernel's count; writers of the
    base kernel wait on the FUSE inode lock."""
    name = f"kv-test-hp-{int(time.time())}"
    vm, guest = _boot(default_kernel, name, tmp_path / "console.log",
                      append=TRACED + (contention.boot_arg(),))
    with vm:
        res = guest.run("sh -c " + shlex.quote(storage.setup_script(NullBlkConfig(gb=1), cpus=2)),
                        timeout=120)
        assert res.ok, res.tail
        cfg = FioConfig(size="64M", runtime=3, ramp_time=1, numjobs=(2,))
        hp = FuseConfig(server="passthrough_hp", threads=2)
        on = FuseTarget("fuse-passthrough", True, hp)
        figures, why = _point(guest, on, cfg, tmp_path / "on")
        assert on.traced and why == "" and figures == {"kernel_data_requests": 0}, (figures, why)
        # passthrough turned off behind the point's back (as passthrough_hp
        # does by itself when a backing file cannot be registered)
        off = SilentlyOff("fuse-passthrough", True, hp)
        assert "--nopassthrough" in off.argv()
        figures, why = _point(guest, off, cfg, tmp_path / "off")
        assert figures["kernel_data_requests"] > 100, figures
        assert why.startswith("passthrough target, but the kernel sent "), why
        assert why.endswith(" READ/WRITE requests to passthrough_hp")
        # lock contention, traced on the base kernel's passthrough writes
        directory = on.start(guest, tmp_path / "guest.log")
        try:
            for attempt in range(3):  # likely, not certain, in any one run
                traced = contention.traced_run(guest, directory, cfg, 2, tmp_path / "traced", 120)
                if traced.get("contention_fuse_write_waits_per_s"):
                    break
        finally:
            on.stop(guest, tmp_path / "traced", tmp_path / "guest.log")
        assert traced["contention_fuse_write_waits_per_s"] > 0, traced
        assert "contention.fuse_passthrough_write_iter.write_waits_per_s" in traced, traced
        assert guest.run("cat /proc/cmdline").stdout.count("trace_instance=") == 3
    assert qemu_pids(name) == []
    assert "int3" not in (tmp_path / "console.log").read_text()
