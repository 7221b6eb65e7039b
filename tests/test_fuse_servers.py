"""Both FUSE servers mounted on this host (its kernel has FUSE passthrough
and the fuse:fuse_request_send tracepoint), and the kernel-side count of the
READ/WRITE requests that reach a server."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import boot_instance
from kvariant.fuse.server import read_stats
from kvariant.fuse.servers import SERVERS, LIBFUSE_VERSION, MountSpec, PassthroughHp, get_server
from kvariant.workloads import fusetrace

REPO = Path(__file__).resolve().parents[1]


def sh(script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# pure parts


def test_connection_is_the_kernel_dev_t_of_maj_min():
    assert fusetrace.connection_of("0:52") == 52
    assert fusetrace.connection_of("8:1\n") == (8 << 20) | 1
    with pytest.raises(ValueError):
        fusetrace.connection_of("fuse")


def test_stats_count_entries_and_overrun_over_cpus():
    text = ("entries: 3\noverrun: 0\ncommit overrun: 9\nbytes: 120\ndropped events: 0\n"
            "entries: 1024\noverrun: 7\ncommit overrun: 0\n")
    assert fusetrace.parse_stats(text) == 3 + 1024 + 7
    with pytest.raises(ValueError):
        fusetrace.parse_stats("cat: no such file\n")


def test_instance_tags_cannot_leave_the_instances_directory():
    assert fusetrace.instance_dir("fuse-passthrough").endswith("/instances/kvariant-fuse-passthrough")
    for bad in ("../x", "a b", "", "A"):
        with pytest.raises(ValueError):
            fusetrace.instance_dir(bad)


def test_setup_builds_the_libfuse_version_the_registry_runs():
    text = (REPO / "setup.sh").read_text()
    assert re.search(rf"^fuse_version={re.escape(LIBFUSE_VERSION)}$", text, re.M)


def test_passthrough_hp_argv_maps_the_open_policy():
    hp = get_server("passthrough_hp")
    spec = MountSpec("/src", "/mnt", passthrough=False, direct_io=True, threads=2, fsname="/dev/x")
    argv = hp.argv(spec, python="python3")
    assert argv[:2] == ["sh", "-c"] and "ulimit -n" in argv[2]  # then exec "$0" "$@"
    assert argv[3].endswith(f"libfuse-{LIBFUSE_VERSION}/passthrough_hp")
    assert argv[4:] == ["--nopassthrough", "--direct-io", "--num-threads", "2",
                        "-o", "fsname=/dev/x", "/src", "/mnt"]
    assert hp.refuse(parallel_direct_writes=False, direct_io=False)
    assert not hp.refuse(parallel_direct_writes=True, direct_io=True)
    with pytest.raises(ValueError, match="known: kvariant, passthrough_hp"):
        get_server("fusexmp")


# real mounts on this host


@pytest.fixture
def mounted(tmp_path):
    """Mount a server over tmp_path/src at tmp_path/mnt and count its data
    requests in a trace instance armed as a guest's kernel arms it at boot;
    always unmounted afterwards, the instance removed."""
    with contextlib.ExitStack() as stack:
        def mount(server: str, passthrough: bool):
            src, mnt = tmp_path / "src", tmp_path / "mnt"
            src.mkdir(exist_ok=True)
            mnt.mkdir(exist_ok=True)
            spec = MountSpec(str(src), str(mnt), passthrough=passthrough, threads=2,
                             stats=str(tmp_path / "stats.json"), log=str(tmp_path / "server.log"))
            s = get_server(server)
            assert not s.missing(), s.missing()
            tag = f"test-{server.replace('_', '-')}-{os.getpid()}"
            stack.enter_context(boot_instance(fusetrace.instance_dir(tag), fusetrace.EVENT))
            argv = s.argv(spec, python=sys.executable)
            res = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO,
                                 env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
            assert res.returncode == 0, res.stderr
            stack.callback(sh, f"umount {mnt} || umount -l {mnt}")
            started = sh(fusetrace.start_script(tag, str(mnt)))
            assert started.returncode == 0, started.stderr
            stack.callback(sh, fusetrace.stop_script(tag))
            return mnt, tag

        yield mount


def _requests(tag: str) -> int:
    res = sh(fusetrace.read_script(tag))
    assert res.returncode == 0, res.stderr
    return fusetrace.parse_stats(res.stdout)


def _direct_io(mnt: Path) -> None:
    res = sh(f"dd if=/dev/zero of={mnt}/f bs=4k count=64 oflag=direct status=none && "
             f"dd if={mnt}/f of=/dev/null bs=4k iflag=direct status=none")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_passthrough_keeps_data_requests_from_the_server(mounted, server):
    mnt, tag = mounted(server, passthrough=True)
    before = _requests(tag)
    _direct_io(mnt)
    assert _requests(tag) - before == 0
    assert (mnt.parent / "src" / "f").stat().st_size == 64 * 4096


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_without_passthrough_the_kernel_counts_every_read_and_write(mounted, server, tmp_path):
    mnt, tag = mounted(server, passthrough=False)
    before = _requests(tag)
    _direct_io(mnt)
    seen = _requests(tag) - before
    assert seen >= 128  # 64 O_DIRECT writes and 64 reads of 4 KiB
    if SERVERS[server].counters:  # our server's own counters agree
        sh(f"kill -USR1 $(sed -n 's/^ *\"pid\": *\\([0-9]*\\).*/\\1/p' {tmp_path}/stats.json); sleep 1")
        stats = read_stats(str(tmp_path / "stats.json"))
        assert stats["write_requests"] + stats["read_requests"] == seen


def test_a_missing_passthrough_hp_names_the_setup_step(monkeypatch, tmp_path):
    monkeypatch.setenv("KVARIANT_CACHE", str(tmp_path))
    assert "./setup.sh fuse" in PassthroughHp().missing()


# the config's [fuse] server and the targets' two witnesses


CONFIG = """
[kernel]
tree = "{tree}"
base = "v1"

[fuse]
{fuse}

[[variant]]
name = "baseline"
"""


@pytest.mark.parametrize("fuse, message", [
    ('server = "fusexmp"', "fuse.server: expected one of kvariant, passthrough_hp, got 'fusexmp'"),
    ('server = 1', "fuse.server: expected one of kvariant, passthrough_hp, got 1"),
    ('server = "passthrough_hp"\nparallel_direct_writes = false',
     "fuse.server: expected a server that can apply fuse.parallel_direct_writes = false "
     "(passthrough_hp: it sets FOPEN_PARALLEL_DIRECT_WRITES on every open), got 'passthrough_hp'"),
    ('parallel_direct_writes = false\n[[variant]]\nname = "hp"\nfuse_server = "passthrough_hp"',
     "variant[0] (hp).fuse_server: expected a server that can apply fuse.parallel_direct_writes = false"),
    ('[[variant]]\nname = "hp"\nfuse_server = "libfuse"',
     "variant[0] (hp).fuse_server: expected one of kvariant, passthrough_hp, got 'libfuse'"),
])
def test_fuse_server_bad_input_is_one_line(tmp_path, small_tree, fuse, message):
    from kvariant import config
    from kvariant.errors import ConfigError
    p = tmp_path / "p.toml"
    p.write_text(CONFIG.format(tree=small_tree, fuse=fuse))
    with pytest.raises(ConfigError) as e:
        config.load(p)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_fuse_server_chosen_in_the_config_and_per_variant(tmp_path, small_tree):
    from kvariant import config
    p = tmp_path / "p.toml"
    p.write_text(CONFIG.format(tree=small_tree, fuse='server = "passthrough_hp"'))
    c = config.load(p)
    assert c.fuse.server == "passthrough_hp" and c.fuse_for(c.variants[0]).server == "passthrough_hp"
    p.write_text(CONFIG.format(tree=small_tree, fuse='threads = 2\n[[variant]]\nname = "hp"\n'
                                                     'fuse_server = "passthrough_hp"'))
    c = config.load(p)
    assert [c.fuse_for(v).server for v in c.variants] == ["passthrough_hp", "kvariant"]
    assert c.fuse_for(c.variants[0]).threads == 2


def test_passthrough_point_fails_on_the_kernels_count_for_any_server():
    from kvariant.config import FuseConfig
    from kvariant.workloads.targets import make_target
    hp = make_target("fuse-passthrough", FuseConfig(server="passthrough_hp"))
    assert hp.argv()[3].endswith("passthrough_hp") and hp.policy()["server"] == "passthrough_hp"
    figures, why = hp.check({"kernel_data_requests": 5}, {"kernel_data_requests": 5})
    assert figures == {"kernel_data_requests": 0} and why == ""
    figures, why = hp.check({"kernel_data_requests": 5}, {"kernel_data_requests": 905})
    assert why == "passthrough target, but the kernel sent 900 READ/WRITE requests to passthrough_hp"
    ours = make_target("fuse-passthrough", FuseConfig())
    server = {"write_requests": 0, "read_requests": 0, "passthrough_opens_granted": 1}
    _, why = ours.check({**server, "kernel_data_requests": 0},
                        {**server, "passthrough_opens_granted": 2, "kernel_data_requests": 3})
    assert "kernel sent 3 READ/WRITE requests to kvariant" in why
    _, why = make_target("fuse", FuseConfig(server="passthrough_hp")).check(
        {"kernel_data_requests": 0}, {"kernel_data_requests": 900})
    assert why == ""


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_xfstests_mount_helper_mounts_either_server(tmp_path, server):
    """The mount.fuse helper run as mount(8) runs it for xfstests: the
    mount's source is the device name xfstests looks up (findmnt -S), its
    type plain fuse, and the server the configured one."""
    from kvariant.workloads.xfstests.guest import mount_helper_script
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    helper = tmp_path / "mount.fuse.kvariant"
    helper.write_text(mount_helper_script(sys.executable, str(REPO),
                                          {"server": server, "passthrough": True, "threads": 2},
                                          str(tmp_path / "logs"), {"kvariant-test": str(src)}))
    helper.chmod(0o755)
    try:
        res = subprocess.run(["sh", str(helper), "kvariant-test", str(mnt), "-o", "rw,noatime"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stderr
        found = sh("findmnt -n -S kvariant-test -o TARGET,FSTYPE,OPTIONS").stdout.split()
        assert found[:2] == [str(mnt), "fuse"] and "rw" in found[2].split(",")
        pids = sh(f"pgrep -f -a '{mnt}'").stdout
        assert ("passthrough_hp" in pids) == (server == "passthrough_hp"), pids
        (mnt / "f").write_text("through the helper")
        assert (src / "f").read_text() == "through the helper"
    finally:
        sh(f"umount {mnt} || umount -l {mnt}")


def test_the_count_needs_the_instance_armed_at_boot_and_leaves_its_event_on(mounted, tmp_path):
    mnt, tag = mounted("kvariant", passthrough=False)
    d = Path(fusetrace.instance_dir(tag))
    assert (d / "tracing_on").read_text().strip() == "1"
    stopped = sh(fusetrace.stop_script(tag))
    assert stopped.returncode == 0, stopped.stderr
    # the event stays on (turning it off patches kernel text); nothing is counted
    assert (d / fusetrace.EVENT / "enable").read_text().strip() == "1"
    assert (d / "tracing_on").read_text().strip() == "0"
    before = _requests(tag)
    _direct_io(mnt)
    assert _requests(tag) == before
    unarmed = f"test-unarmed-{os.getpid()}"
    res = sh(fusetrace.start_script(unarmed, str(mnt)))
    assert res.returncode != 0 and not Path(fusetrace.instance_dir(unarmed)).exists()
    assert (f"(kernel argument trace_instance=kvariant-{unarmed}^traceoff,fuse:fuse_request_send)"
            in res.stderr), res.stderr


def test_boot_args_arm_each_fuse_target_and_contention_on_request(tmp_path, small_tree):
    from kvariant import config
    from kvariant.pipeline.boot import kernel_args
    from kvariant.vm import KERNEL_ARGS
    p = tmp_path / "p.toml"
    p.write_text(CONFIG.format(tree=small_tree, fuse="") +
                 '[fio]\ntargets = ["fuse-passthrough", "xfs", "fuse"]\n')
    c = config.load(p)
    assert kernel_args(c) == KERNEL_ARGS + (
        "trace_instance=kvariant-fuse-passthrough^traceoff,fuse:fuse_request_send",
        "trace_instance=kvariant-fuse^traceoff,fuse:fuse_request_send")
    p.write_text(CONFIG.format(tree=small_tree, fuse="") +
                 '[fio]\ntargets = ["xfs"]\ncontention = true\n')
    assert kernel_args(config.load(p)) == KERNEL_ARGS + (
        "trace_instance=kvariant-contention^traceoff,lock:contention_begin,lock:contention_end",)
