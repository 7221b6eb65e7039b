"""xfstests: parser on real result directories, kernel splat scan, config
validation, local.config, ./check argv, guest scripts, and the mount helper
run for real with a stand-in Python.  The runner: test_xfstests_batches.py."""
import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES
from kvariant.errors import ConfigError
from kvariant.model import StageResult, Status
from kvariant.workloads import xfstests as xt

SIX = FIXTURES / "xfstests-xfs-6tests"
FAIL_NOTRUN = FIXTURES / "xfstests-xfs-fail-notrun"

WARNING_SPLAT = """\
[  412.118352] ------------[ cut here ]------------
[  412.118360] WARNING: CPU: 1 PID: 2291 at fs/fuse/passthrough.c:93 fuse_passthrough_write_iter+0x1d5/0x1f0
[  412.118420] Modules linked in: null_blk
[  412.118431] CPU: 1 UID: 0 PID: 2291 Comm: fio Not tainted 7.2.13+ #2 PREEMPT(voluntary)
[  412.118440] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[  412.118444] RIP: 0010:fuse_passthrough_write_iter+0x1d5/0x1f0
[  412.118460] Code: 48 8b 43 20 4c 89 e7 48 89 44 24 08 e8 a1 fe ff ff <0f> 0b e9 6e ff ff ff
[  412.118470] RSP: 0018:ffffb5a8c0b8fc28 EFLAGS: 00010246
[  412.118520] Call Trace:
[  412.118524]  <TASK>
[  412.118530]  ? __warn+0x83/0x130
[  412.118535]  ? fuse_passthrough_write_iter+0x1d5/0x1f0
[  412.118540]  fuse_file_write_iter+0x2ba/0x3e0
[  412.118551]  vfs_write+0x2a0/0x460
[  412.118560]  __x64_sys_pwrite64+0x9a/0xc0
[  412.118570]  do_syscall_64+0x82/0x190
[  412.118580]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[  412.118600]  </TASK>
[  412.118605] ---[ end trace 0000000000000000 ]---
"""

LOCKDEP_SPLAT = """\
[   98.123456] ======================================================
[   98.123460] WARNING: possible circular locking dependency detected
[   98.123463] 7.2.13+ #2 Not tainted
[   98.123466] ------------------------------------------------------
[   98.123468] xfs_io/3120 is trying to acquire lock:
[   98.123471] ffff9a1b0c2d8a10 (&sb->s_type->i_mutex_key#17){++++}-{4:4}, at: fuse_passthrough_write_iter+0x5c/0x1f0
[   98.123480]
               but task is already holding lock:
[   98.123483] ffff9a1b0c2d8b88 (sb_writers#12){.+.+}-{0:0}, at: vfs_write+0xd6/0x460
[   98.123490]
               which lock already depends on the new lock.
[   98.123600]  Possible unsafe locking scenario:
[   98.123610]        CPU0                    CPU1
[   98.123615]        ----                    ----
[   98.123620]   lock(sb_writers#12);
[   98.123625]                                lock(&sb->s_type->i_mutex_key#17);
[   98.123650]
                *** DEADLOCK ***
[   98.123700] stack backtrace:
[   98.123705] CPU: 0 UID: 0 PID: 3120 Comm: xfs_io Not tainted 7.2.13+ #2
[   98.123710] Call Trace:
[   98.123712]  <TASK>
[   98.123715]  dump_stack_lvl+0x68/0x90
[   98.123720]  print_circular_bug+0x26a/0x340
[   98.123725]  __lock_acquire+0x1270/0x2120
[   98.123730]  </TASK>
"""

HUNG_TASK = """\
[  369.512301] INFO: task xfs_io:4021 blocked for more than 122 seconds.
[  369.512322]       Not tainted 7.2.13+ #2
[  369.512326] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[  369.512330] task:xfs_io          state:D stack:0     pid:4021  tgid:4021  ppid:4011   flags:0x00004002
[  369.512340] Call Trace:
[  369.512343]  <TASK>
[  369.512350]  __schedule+0x3f1/0xb40
[  369.512360]  schedule+0x27/0xf0
[  369.512365]  schedule_preempt_disabled+0x15/0x30
[  369.512370]  rwsem_down_write_slowpath+0x2a7/0x6c0
[  369.512380]  down_write+0x5a/0x60
[  369.512385]  fuse_passthrough_write_iter+0x5c/0x1f0
[  369.512390]  vfs_write+0x2a0/0x460
[  369.512400]  </TASK>
"""

OOPS = """\
[  501.000100] BUG: kernel NULL pointer dereference, address: 0000000000000008
[  501.000110] #PF: supervisor read access in kernel mode
[  501.000115] #PF: error_code(0x0000) - not-present page
[  501.000120] PGD 0 P4D 0
[  501.000125] Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI
[  501.000130] CPU: 0 UID: 0 PID: 77 Comm: kworker/0:2 Not tainted 7.2.13+ #2
[  501.000140] RIP: 0010:fuse_request_end+0x2e/0x1c0
[  501.000150] ---[ end trace 0000000000000000 ]---
[  502.000000] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[  502.000010] BUG: KASAN: slab-use-after-free in fuse_dev_do_read+0x9b1/0xa20
[  502.000020] UBSAN: shift-out-of-bounds in fs/fuse/inode.c:1402:31
[  502.000030] BUG: MAX_LOCKDEP_CHAIN_HLOCKS too low!
"""


# Parser


def test_parse_six_passing_tests_with_times_from_check_time():
    outcomes = xt.parse_results(SIX)
    times = xt.parse_check_time((SIX / "check.time").read_text())
    assert [o.name for o in outcomes] == ["generic/001", "generic/002", "generic/005",
                                          "generic/006", "generic/007", "generic/011"]
    assert all(o.status == "pass" and not o.splats for o in outcomes)
    assert {o.name: o.seconds for o in outcomes} == times
    assert times["generic/001"] == 95


def test_parse_failure_with_diff_pass_and_not_run_reason():
    by_name = {o.name: o for o in xt.parse_results(FAIL_NOTRUN)}
    assert set(by_name) == {"generic/002", "generic/003", "generic/108"}
    failed = by_name["generic/002"]
    assert failed.status == "fail" and failed.seconds == 13
    assert failed.message.startswith("- output mismatch")
    assert failed.diff.startswith("--- tests/generic/002.out")
    assert "-deliberately wrong golden line" in failed.diff
    assert by_name["generic/003"].status == "pass" and by_name["generic/003"].seconds == 24
    assert by_name["generic/108"].status == "notrun"
    assert "scsi_debug" in by_name["generic/108"].message

    stage = xt.outcome_to_stage(failed, "xfs")
    assert stage.name == "xfstests/xfs/generic/002" and stage.suite == "xfstests.xfs"
    assert stage.status == Status.FAIL and stage.message.startswith("output mismatch")
    assert "-deliberately wrong golden line" in stage.detail
    skipped = xt.outcome_to_stage(by_name["generic/108"], "fuse")
    assert skipped.status == Status.SKIP and skipped.message == "scsi_debug module not found"
    assert skipped.suite == "xfstests.fuse"
    assert xt.outcome_to_stage(by_name["generic/003"], "xfs").status == Status.PASS


def _truncated_copy(src: Path, dst: Path, cut_after: str) -> Path:
    shutil.copytree(src, dst)
    text = (src / "result.xml").read_text()
    (dst / "result.xml").write_text(text[:text.index(cut_after) + len(cut_after)])
    return dst


def test_truncated_result_xml_falls_back_to_check_log(tmp_path):
    # cut inside generic/002's testcase: nothing complete is left in the XML
    d = _truncated_copy(FAIL_NOTRUN, tmp_path / "r", "deliberately wrong")
    tree = tmp_path / "xfstests"
    (tree / "tests" / "generic").mkdir(parents=True)
    (tree / "tests" / "generic" / "002.out").write_text(
        "QA output created by 002\nSilence is goodness ...\ndeliberately wrong golden line\n")
    by_name = {o.name: o for o in xt.parse_results(d, tree=tree)}
    assert by_name["generic/002"].status == "fail"
    diff = by_name["generic/002"].diff  # .out.bad against the golden output
    assert diff.startswith("--- tests/generic/002.out\n+++ generic/002.out.bad\n")
    assert "-deliberately wrong golden line" in diff
    assert by_name["generic/002"].message == "output mismatch (see generic/002.out.bad)"
    assert by_name["generic/003"].status == "pass" and by_name["generic/003"].seconds == 24
    assert by_name["generic/108"].status == "notrun"
    assert by_name["generic/108"].message == "scsi_debug module not found"  # from 108.notrun


def test_truncated_result_xml_keeps_complete_testcases(tmp_path):
    d = _truncated_copy(SIX, tmp_path / "r", 'name="generic/005" time="10">')
    (d / "check.log").write_text("")  # a hung guest: check never wrapped up
    outcomes = xt.parse_results(d)
    assert [o.name for o in outcomes] == ["generic/001", "generic/002"]


def test_missing_result_xml_uses_check_log_and_times(tmp_path):
    shutil.copytree(SIX, tmp_path / "r")
    (tmp_path / "r" / "result.xml").unlink()
    outcomes = xt.parse_results(tmp_path / "r")
    assert len(outcomes) == 6 and all(o.status == "pass" for o in outcomes)
    assert outcomes[0].seconds == 95


def test_interrupted_check_log_leaves_out_the_test_that_hung():
    log = ("\nKernel version: 7.2.13+\nSat Nov 21 20:07:19 UTC 2026\n"
           "Ran: generic/001 generic/013\nInterrupted!\nPassed all 2 tests\n"
           "\nKernel version: 7.2.13+\nSat Nov 21 21:07:19 UTC 2026\n"
           "Ran: generic/014\nFailures: generic/014\nFailed 1 of 1 tests\n")
    assert xt.parse_check_log(log) == {"generic/001": "pass", "generic/014": "fail"}


def test_loops_of_a_failing_test_are_one_outcome(tmp_path):
    case = ('<testcase classname="xfstests.global" name="generic/013" time="{t}">{body}</testcase>')
    fail = '<failure message="- output mismatch (see x)" type="TestFail" />'
    body = "".join(case.format(t=t, body=b) for t, b in ((10, fail), (11, ""), (12, fail)))
    (tmp_path / "result.xml").write_text(
        '<?xml version="1.0"?><testsuite xmlns="urn:x" name="xfstests">' + body + "</testsuite>")
    (o,) = xt.parse_results(tmp_path)
    # it passed once when run again: flaky, reported as such and not as a failure
    assert o.status == "pass" and o.flaky and o.runs == 3 and o.seconds == 33
    assert o.message.startswith("flaky: failed 2 of 3 runs")
    assert xt.outcome_to_stage(o, "xfs").figures == {"runs": 3, "flaky": True}
    (tmp_path / "result.xml").write_text(
        '<?xml version="1.0"?><testsuite xmlns="urn:x" name="xfstests">'
        + "".join(case.format(t=t, body=fail) for t in (10, 11, 12)) + "</testsuite>")
    (o,) = xt.parse_results(tmp_path)
    assert o.status == "fail" and not o.flaky and "failed 3 of 3 runs" in o.message
    assert xt.outcome_to_stage(o, "xfs").figures == {"runs": 3}


# Kernel log


def test_scan_splats_finds_each_report_once():
    assert xt.scan_splats(WARNING_SPLAT) == [
        "WARNING: CPU: 1 PID: 2291 at fs/fuse/passthrough.c:93 fuse_passthrough_write_iter+0x1d5/0x1f0"]
    assert xt.scan_splats(LOCKDEP_SPLAT) == ["WARNING: possible circular locking dependency detected"]
    assert xt.scan_splats(HUNG_TASK) == ["INFO: task xfs_io:4021 blocked for more than 122 seconds."]
    assert xt.scan_splats(OOPS) == [
        "BUG: kernel NULL pointer dereference, address: 0000000000000008",  # its Oops line joins it
        "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
        "BUG: KASAN: slab-use-after-free in fuse_dev_do_read+0x9b1/0xa20",
        "UBSAN: shift-out-of-bounds in fs/fuse/inode.c:1402:31",
    ]
    both = WARNING_SPLAT + HUNG_TASK
    assert len(xt.scan_splats(both)) == 2
    assert "fuse_passthrough_write_iter" in xt.splat_excerpt(both)


def test_clean_boot_has_no_splat():
    assert xt.scan_splats((FIXTURES / "dmesg-clean-boot.txt").read_text()) == []


def test_splat_fails_a_passing_test(tmp_path):
    shutil.copytree(SIX, tmp_path / "r")
    (tmp_path / "r" / "generic" / "005.dmesg").write_text("[ 1.0] run fstests generic/005\n" + LOCKDEP_SPLAT)
    by_name = {o.name: o for o in xt.parse_results(tmp_path / "r")}
    o = by_name["generic/005"]
    assert o.status == "pass" and o.splats == ["WARNING: possible circular locking dependency detected"]
    stage = xt.outcome_to_stage(o, "fuse")
    assert stage.status == Status.FAIL
    assert stage.message == "kernel splat: WARNING: possible circular locking dependency detected"
    assert "*** DEADLOCK ***" in stage.detail
    assert xt.outcome_to_stage(by_name["generic/006"], "fuse").status == Status.PASS


def test_our_kernel_log_counts_hangs_but_not_warnings_a_test_may_provoke(tmp_path):
    shutil.copytree(SIX, tmp_path / "r")
    (tmp_path / "r" / "generic" / "006.kmsg").write_text(WARNING_SPLAT)
    (tmp_path / "r" / "generic" / "007.kmsg").write_text(WARNING_SPLAT + HUNG_TASK)
    by_name = {o.name: o for o in xt.parse_results(tmp_path / "r")}
    assert by_name["generic/006"].splats == []
    assert by_name["generic/007"].splats == ["INFO: task xfs_io:4021 blocked for more than 122 seconds."]


# Configuration


def test_config_defaults_and_values(tmp_path):
    assert xt.xfstests_config_from_table({}, "p.toml", tmp_path) == xt.XfstestsConfig()
    d = xt.XfstestsConfig()
    assert d.dir is None and d.fstypes == ("xfs", "fuse") and d.test_timeout == 900
    assert d.loop_failures == 0 and d.required is False
    (tmp_path / "exclude.txt").write_text("generic/017\n")
    cfg = xt.xfstests_config_from_table(
        {"dir": "../xfstests", "fstypes": ["fuse"], "tests": ["generic/001", "generic/00?"],
         "groups": ["quick", "generic/rw"], "exclude": ["generic/017"],
         "exclude_file": "exclude.txt", "test_timeout": "90s", "loop_failures": 2,
         "required": True}, "p.toml", tmp_path)
    assert cfg.dir == tmp_path / "../xfstests" and cfg.fstypes == ("fuse",)
    assert cfg.tests == ("generic/001", "generic/00?") and cfg.groups == ("quick", "generic/rw")
    assert cfg.exclude_file == tmp_path / "exclude.txt"
    assert cfg.test_timeout == 90 and cfg.loop_failures == 2 and cfg.required
    assert xt.xfstests_config_from_table({"test_timeout": 60}, "p", tmp_path).test_timeout == 60


@pytest.mark.parametrize("table,key", [
    ({"colour": "red"}, "xfstests.colour"),
    ({"dir": 3}, "xfstests.dir"),
    ({"fstypes": "fuse"}, "xfstests.fstypes"),
    ({"fstypes": ["ext4"]}, "xfstests.fstypes[0]"),
    ({"fstypes": []}, "xfstests.fstypes"),
    ({"tests": ["001"]}, "xfstests.tests[0]"),
    ({"tests": [1]}, "xfstests.tests[0]"),
    ({"groups": ["quick", "no spaces"]}, "xfstests.groups[1]"),
    ({"exclude": "generic/001"}, "xfstests.exclude"),
    ({"exclude_file": "missing.txt"}, "xfstests.exclude_file"),
    ({"test_timeout": "soon"}, "xfstests.test_timeout"),
    ({"test_timeout": 0}, "xfstests.test_timeout"),
    ({"test_timeout": True}, "xfstests.test_timeout"),
    ({"loop_failures": -1}, "xfstests.loop_failures"),
    ({"loop_failures": "2"}, "xfstests.loop_failures"),
    ({"loop_failures": True}, "xfstests.loop_failures"),
    ({"required": "yes"}, "xfstests.required"),
])
def test_config_errors_name_the_key(tmp_path, table, key):
    with pytest.raises(ConfigError) as e:
        xt.xfstests_config_from_table(table, "pipeline.toml", tmp_path)
    assert e.value.key == key and e.value.path == "pipeline.toml"
    assert str(e.value).startswith(f"pipeline.toml: {key}: ")


def _fake_tree(root: Path, built: bool = True) -> Path:
    (root / "common").mkdir(parents=True)
    (root / "check").write_text("#!/bin/bash\n")
    (root / "common" / "rc").write_text("")
    if built:
        for rel in ("ltp/fsstress", "ltp/fsx", "src/fill", "tests/generic/group.list"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("")
            (root / rel).chmod(0o755)
    return root


def test_tree_problem(tmp_path):
    assert "does not exist" in xt.tree_problem(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert "not an xfstests tree" in xt.tree_problem(tmp_path / "empty")
    assert "ltp/fsstress is missing" in xt.tree_problem(_fake_tree(tmp_path / "src", built=False))
    assert xt.tree_problem(_fake_tree(tmp_path / "built")) is None
    (tmp_path / "built" / "tests" / "generic" / "group.list").unlink()
    assert "group.list" in xt.tree_problem(tmp_path / "built")


# Argument builders and scripts


def test_local_config_for_both_fstypes():
    lay = xt.guest_layout("fuse")
    fuse = xt.local_config("fuse", test_dev=lay.test_dev, test_dir=lay.test_dir,
                           scratch_dev=lay.scratch_dev, scratch_mnt=lay.scratch_mnt,
                           results_base=lay.results, extra={"LOAD_FACTOR": 2})
    assert "export FSTYP=fuse\n" in fuse and "export FUSE_SUBTYP=.kvariant\n" in fuse
    # a tag, not the source directory: umount(8) takes an existing directory for a mount point
    assert f"export TEST_DEV=kvariant-test\n" in fuse and lay.test_dev == "kvariant-test"
    assert lay.sources[0].startswith(lay.backing[0] + "/")
    assert f"export SCRATCH_DEV={lay.scratch_dev}\n" in fuse
    assert f"export RESULT_BASE={lay.results}\n" in fuse and "export LOAD_FACTOR=2\n" in fuse
    assert "export KEEP_DMESG=yes\n" in fuse
    xfs = xt.local_config("xfs", test_dev="/dev/nullb1", test_dir="/t", scratch_dev="/dev/nullb2",
                          scratch_mnt="/s", results_base="/r")
    assert "export FSTYP=xfs\n" in xfs and "FUSE_SUBTYP" not in xfs
    assert "export TEST_DEV=/dev/nullb1\n" in xfs and "export SCRATCH_MNT=/s\n" in xfs
    with pytest.raises(ValueError):
        xt.local_config("ext4", test_dev="", test_dir="", scratch_dev="", scratch_mnt="",
                        results_base="")
    with pytest.raises(ValueError):
        xt.local_config("xfs", test_dev="", test_dir="", scratch_dev="", scratch_mnt="",
                        results_base="", extra={"bad name": "x"})
    # sourced by bash, the values come back as written
    out = subprocess.run(["bash", "-c", fuse + 'echo "$FSTYP$FUSE_SUBTYP $TEST_DEV"'],
                         capture_output=True, text=True, check=True).stdout
    assert out == f"fuse.kvariant {lay.test_dev}\n"


def test_check_argv_options_before_tests():
    cfg = xt.XfstestsConfig(tests=("generic/001", "generic/002"), groups=("quick",),
                            exclude=("generic/017", "generic/018"),
                            exclude_file=Path("/x/exclude"), loop_failures=2)
    argv = xt.check_argv(cfg, "fuse")
    assert argv == ["./check", "-R", "xunit", "-L", "2", "-g", "quick",
                    "-e", "generic/017,generic/018", "-E", "/x/exclude",
                    "generic/001", "generic/002"]
    assert xt.list_argv(cfg, "fuse") == ["./check", "-n", "-g", "quick", "-e",
                                         "generic/017,generic/018", "-E", "/x/exclude",
                                         "generic/001", "generic/002"]
    # tests alone: no group (check would add none); nothing: a short default, not "auto"
    assert xt.check_argv(xt.XfstestsConfig(tests=("generic/001",)), "xfs") == [
        "./check", "-R", "xunit", "generic/001"]
    assert xt.check_argv(xt.XfstestsConfig(), "xfs") == ["./check", "-R", "xunit", "-g", "quick"]
    assert xt.single_test_argv(cfg, "generic/013") == ["./check", "-R", "xunit", "-L", "2",
                                                       "generic/013"]
    with pytest.raises(ValueError):
        xt.check_argv(cfg, "ext4")


def test_parse_test_list_of_check_n():
    text = ("generic/999 - unknown test, ignored\n"
            "FSTYP         -- fuse\n"
            "PLATFORM      -- Linux/x86_64 virtme-ng 7.2.13+ #2 SMP PREEMPT_DYNAMIC\n"
            "MKFS_OPTIONS  -- /tmp/kvariant/xfstests/fuse/scratch-xfs/src\n"
            "MOUNT_OPTIONS -- /tmp/kvariant/xfstests/fuse/scratch-xfs/src /tmp/x\n\n"
            "generic/001       \n"
            "generic/002              [expunged]\n"
            "generic/005\n")
    assert xt.parse_test_list(text) == ["generic/001", "generic/005"]


def _sh_syntax(script: str) -> None:
    r = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


POLICY = {"passthrough": True, "parallel_direct_writes": True, "direct_io": False}


@pytest.mark.parametrize("fstype", ["xfs", "fuse"])
def test_guest_scripts_are_valid_shell(fstype):
    script = xt.guest_setup_script(fstype, xfstests_dir="/srv/xfstests", python="/usr/bin/python3",
                                   project_dir="/srv/kvariant", policy=POLICY)
    _sh_syntax(script)
    _sh_syntax(xt.guest_teardown_script(fstype))
    lay = xt.guest_layout(fstype)
    assert script.startswith("set -e\n")
    # two devices through configfs, next to the fio stage's nullb0
    assert "modprobe null_blk nr_devices=0" in script
    assert "/sys/kernel/config/nullb/nullb1/memory_backed" in script
    assert "echo 1 > /sys/kernel/config/nullb/nullb2/power" in script
    assert "mkfs.xfs -f -q /dev/nullb1" in script
    assert f"export RESULT_BASE={lay.results}" in script
    assert ("mount.fuse.kvariant" in script) == (fstype == "fuse")
    if fstype == "fuse":
        assert f"mount -t xfs /dev/nullb1 {lay.backing[0]}" in script
        assert f"mkdir -p {lay.sources[0]}" in script
        assert f"kvariant-scratch) dir={lay.sources[1]} ;;" in script
    cmd = xt.batches.check_command(lay, xt.single_test_argv(xt.XfstestsConfig(), "generic/001"), 1080)
    _sh_syntax(cmd)
    assert "timeout -k 30 1080 ./check -R xunit generic/001" in cmd
    assert f"HOST_OPTIONS={lay.config}" in cmd


def _run_helper(tmp_path, args, policy=POLICY, env_path=None, sources=None):
    """Run the helper on the host with a stand-in Python that records its argv."""
    record = tmp_path / "argv.txt"
    record.unlink(missing_ok=True)
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/bin/sh\necho "PYTHONPATH=$PYTHONPATH" > {record}\n'
                           f'for a in "$@"; do echo "$a" >> {record}; done\n')
    fake_python.chmod(0o755)
    helper = tmp_path / "mount.fuse.kvariant"
    helper.write_text(xt.mount_helper_script(str(fake_python), "/srv/kv ariant", policy,
                                             str(tmp_path / "logs"), sources))
    helper.chmod(0o755)
    env = {"PATH": env_path or os.environ["PATH"]}
    r = subprocess.run(["sh", str(helper), *args], capture_output=True, text=True, env=env)
    lines = record.read_text().splitlines() if record.exists() else []
    return r, lines


def test_mount_helper_starts_our_server_with_the_source_as_fsname(tmp_path):
    text = xt.mount_helper_script("/usr/bin/python3", "/srv/kvariant", POLICY, "/tmp/logs",
                                  {"kvariant-test": "/x/test-xfs/src"})
    _sh_syntax(text)
    src_dir = tmp_path / "test-xfs" / "src"
    src_dir.mkdir(parents=True)
    mnt = "/tmp/kvariant/xfstests/fuse/test"
    # as mount(8) calls it for: mount -t fuse.kvariant kvariant-test MNT -o noatime
    r, argv = _run_helper(tmp_path, ["kvariant-test", mnt, "-o", "rw,noatime", "-t", "fuse.kvariant"],
                          sources={"kvariant-test": str(src_dir)})
    assert r.returncode == 0, r.stderr
    assert argv[0] == "PYTHONPATH=/srv/kv ariant"
    args = argv[1:]
    assert args[:4] == ["-m", "kvariant.fuse", str(src_dir), mnt]
    assert "--passthrough" in args and "--parallel-direct-writes" in args
    assert "--direct-io" not in args and "--daemon" in args
    assert args[args.index("--fsname") + 1] == "kvariant-test"  # what findmnt -S must find
    assert args[-2:] == ["-o", "rw,noatime"]
    assert args[args.index("--log") + 1] == f"{tmp_path}/logs/kvariant-test.log"
    assert args[args.index("--stats") + 1] == f"{tmp_path}/logs/kvariant-test-stats.json"

    # upstream's -o source=DIR wins and is not passed on; mount(8)'s flags; another policy
    other = tmp_path / "other"
    other.mkdir()
    r, argv = _run_helper(tmp_path, ["kvariant-test", mnt, "-n", f"-osource={other},ro"],
                          policy={"passthrough": False, "direct_io": True, "threads": 2},
                          sources={"kvariant-test": str(src_dir)})
    assert r.returncode == 0, r.stderr
    assert argv[3] == str(other) and argv[-2:] == ["-o", "ro"]
    assert "--no-passthrough" in argv and "--direct-io" in argv
    assert argv[argv.index("--threads") + 1] == "2"
    # a directory as SOURCE serves itself; no options, no -o
    r, argv = _run_helper(tmp_path, [str(other), mnt])
    assert r.returncode == 0 and argv[3] == str(other) and "-o" not in argv
    assert argv[argv.index("--fsname") + 1] == str(other)
    # an unknown tag is a mount failure (32), the server is not started
    r, argv = _run_helper(tmp_path, ["kvariant-nope", mnt, "-o", "rw"])
    assert r.returncode == 32 and argv == [] and "no source directory" in r.stderr


def test_mount_helper_fake_remount_and_bad_calls(tmp_path):
    src, mnt = "/x/src", "/x/mnt"
    r, argv = _run_helper(tmp_path, [src, mnt, "-f", "-o", "rw"])
    assert r.returncode == 0 and argv == []  # mount -f: nothing to do
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "mount").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/mount.txt\n')
    (shim / "mount").chmod(0o755)
    r, argv = _run_helper(tmp_path, [src, mnt, "-o", "remount,ro"],
                          env_path=f"{shim}:{os.environ['PATH']}")
    assert r.returncode == 0 and argv == []
    assert (tmp_path / "mount.txt").read_text() == "-i -t fuse -o remount,ro /x/mnt\n"
    r, _ = _run_helper(tmp_path, [src])
    assert r.returncode != 0 and "usage" in r.stderr
    r, _ = _run_helper(tmp_path, [src, mnt, "-o"])
    assert r.returncode != 0
    with pytest.raises(ValueError):
        xt.mount_helper_script("python3", "/p", {"writeback": True}, "/l")


# Summary


def _stages(statuses: dict[str, str], fstype="fuse") -> list[StageResult]:
    return [StageResult(f"xfstests/{fstype}/{t}", Status(s), suite=f"xfstests.{fstype}")
            for t, s in statuses.items()] + [StageResult("build", Status.PASS)]


def test_summarize_counts_and_differences():
    summary = xt.summarize({
        "base": _stages({"generic/001": "pass", "generic/002": "fail", "generic/003": "pass",
                         "generic/108": "skip"}) + _stages({"generic/001": "pass"}, "xfs"),
        "patched": _stages({"generic/001": "pass", "generic/002": "pass", "generic/003": "error",
                            "generic/108": "skip"}) + _stages({"generic/001": "fail"}, "xfs"),
    })
    fuse = summary["fuse"]
    assert fuse["variants"]["base"] == {"passed": 2, "failed": 1, "skipped": 1, "errors": 0, "flaky": 0,
                                        "known_failures": 0, "known_passed": 0}
    assert fuse["variants"]["patched"] == {"passed": 2, "failed": 0, "skipped": 1, "errors": 1, "flaky": 0,
                                           "known_failures": 0, "known_passed": 0}
    assert [d["test"] for d in fuse["differences"]] == ["generic/003", "generic/002"]
    assert fuse["differences"][0]["new_failures"] == ["patched"]
    assert fuse["differences"][1]["fixed"] == ["patched"]
    assert summary["xfs"]["differences"] == [
        {"test": "generic/001", "statuses": {"base": "pass", "patched": "fail"},
         "new_failures": ["patched"], "fixed": []}]


def test_a_failure_that_passes_on_the_rerun_is_flaky():
    from kvariant.workloads.xfstests.results import TestOutcome, _merge_runs, outcome_to_stage
    failed = TestOutcome("generic/013", "fail", 30.0, "- output mismatch (see generic/013.out.bad)",
                         diff="--- generic/013.out\n+++ generic/013.out.bad\n-ok\n+not ok")
    passed = TestOutcome("generic/013", "pass", 28.0)
    merged = _merge_runs([failed, passed])
    assert merged.flaky and merged.status == "pass" and merged.runs == 2 and merged.seconds == 58.0
    stage = outcome_to_stage(merged, "xfs")
    assert stage.status == Status.PASS and stage.figures == {"runs": 2, "flaky": True}
    assert stage.message.startswith("flaky: failed 1 of 2 runs (output mismatch")
    assert "+not ok" in stage.detail
    # failing every time is a failure, not flaky
    again = _merge_runs([failed, dataclasses.replace(failed, seconds=31.0)])
    assert not again.flaky and again.status == "fail" and "(failed 2 of 2 runs)" in again.message
    summary = xt.summarize({"baseline": [stage]})
    assert summary["xfs"]["variants"]["baseline"]["flaky"] == 1


def test_one_rule_classifies_a_status_change():
    from kvariant.tally import change
    assert [change("pass", b) for b in ("pass", "fail", "error", "skip", "missing")] == [
        None, "new_failures", "new_failures", "no_longer_run", "no_longer_run"]
    assert [change(a, "pass") for a in ("fail", "error", "skip", "missing")] == [
        "fixed", "fixed", "now_run", "now_run"]
    assert change("fail", "error") == "other" and change("skip", "fail") == "new_failures"
    assert change("fail", "skip") == "no_longer_run"
