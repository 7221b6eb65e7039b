"""Pure parts of the VM stage."""
from kvariant import vm
from conftest import FIXTURES


def test_vng_argv():
    argv = vm.vng_argv("/k/bzImage", name="kv-x", cpus=2, memory="4G", port=2222, kvm=False)
    assert argv[:3] == ["vng", "--run", "/k/bzImage"]
    for pair in (["--ssh", "2222"], ["--cpus", "2"], ["--memory", "4G"], ["--name", "kv-x"]):
        i = argv.index(pair[0])
        assert argv[i:i + 2] == pair
    assert "--ssh-tcp" in argv and "--disable-kvm" in argv
    assert argv[-2] == "--exec" and vm.STOP_FILE in argv[-1]
    # the hung-task detector names a deadlock after 20 s, checked every 5 s
    i = argv.index("--append")
    assert argv[i:i + 4] == ["--append", "sysctl.kernel.hung_task_timeout_secs=20",
                             "--append", "sysctl.kernel.hung_task_check_interval_secs=5"]
    assert "--disable-kvm" not in vm.vng_argv("/k", name="n", cpus=1, memory="1G", port=1, kvm=True)


def test_cpu_flags():
    assert vm.cpu_has_virt("flags\t\t: fpu vme de pse vmx smx\n")
    assert vm.cpu_has_virt("flags\t\t: fpu svm\n")
    assert not vm.cpu_has_virt("flags\t\t: fpu vme hypervisor\nmodel name: vmx-like cpu\n")


def test_free_ports_differ():
    assert len({vm.free_port() for _ in range(5)}) >= 4


def test_panic_line():
    assert vm.panic_line("x\n[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n") == \
        "Kernel panic - not syncing: VFS: Unable to mount root fs"
    assert vm.panic_line((FIXTURES / "dmesg-clean-boot.txt").read_text()) == ""
