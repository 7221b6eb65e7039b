"""Issue-5 logic that needs no VM: splats fail the stage that was running,
resume keeps what ended, run directories are claimed, a full disk is one
line, the debug profile is selectable."""
import json
import os
import subprocess
import sys
import threading

import pytest

from conftest import FIXTURES, PROJECT
from kvariant import cli, config, files, rundirs
from kvariant.errors import ConfigError, ResultsUnwritable
from kvariant.model import StageResult, Status, VariantInfo, VariantResult
from kvariant.ui import UI
from kvariant.pipeline.outcome import judge_console
from kvariant.pipeline.run import Run
from kvariant.pipeline.variant import VariantRun

SPLATS = FIXTURES / "splats"


def stage(status=Status.PASS, message="", detail=""):
    return StageResult("fio/fuse-passthrough/randwrite-4k-nj2", status, message=message, detail=detail)


def judge(s, kernel_log: str) -> None:
    """The outcome rules applied to *s* as the variant's loop applies them."""
    j = judge_console(s.status, s.message, s.detail, kernel_log)
    s.status, s.message, s.detail = j.status, j.message, j.detail


def test_a_splat_fails_a_passing_stage():
    s = stage(message="20000 IOPS")
    judge(s, (SPLATS / "warn-on-write.txt").read_text())
    assert s.status == Status.FAIL
    # Linux 7.2's format; the scanner knows the older "WARNING: CPU: N PID: ..." too
    assert s.message == ("kernel: WARNING: fs/fuse/passthrough.c:74 at fuse_passthrough_write_iter+0xc4/0xd0, "
                         "CPU#0: fio/423")
    assert s.detail.startswith("--- kernel splats ---") and "Call Trace:" in s.detail


def test_a_bug_keeps_the_failure_and_leads_with_the_splat():
    s = stage(Status.FAIL, "fio randwrite-4k-nj2: exit code 1", "fio: pid=214, got signal=11")
    judge(s, (SPLATS / "bug-on-write.txt").read_text())
    assert s.status == Status.FAIL
    # two writers hit the BUG on two CPUs: each report once in the body
    assert s.message == "kernel: kernel BUG at fs/fuse/passthrough.c:74! (+2 more); fio randwrite-4k-nj2: exit code 1"
    assert s.detail.count("Oops: invalid opcode") == 2 and s.detail.count("]  aio_write+0x161/0x280") == 2
    assert "fio: pid=214" in s.detail  # the earlier detail is kept after the reports


def test_a_hang_explained_by_a_bug_is_a_failure():
    """The BUG left the writer's aio context undrained: fio never returned.
    The deadline error becomes a failure led by its cause."""
    s = stage(Status.ERROR, "fio randwrite-4k-nj2: no answer within its deadline of 60 s")
    judge(s, (SPLATS / "bug-on-write.txt").read_text())
    assert s.status == Status.FAIL
    assert s.message.startswith("kernel: kernel BUG at fs/fuse/passthrough.c:74!")
    assert s.message.endswith("; fio randwrite-4k-nj2: no answer within its deadline of 60 s")


def test_a_hang_without_a_cause_stays_an_error():
    s = stage(Status.ERROR, "fio randwrite-4k-nj2: no answer within its deadline of 60 s")
    judge(s, (SPLATS / "deadlock-on-write.txt").read_text())  # sysrq-w only
    assert (s.status, s.message) == (Status.ERROR, "fio randwrite-4k-nj2: no answer within its deadline of 60 s")


def test_a_hung_task_report_names_the_deadlock():
    """The hung-task detector named the blocked writers: a failure led by
    its report, whether the watch ended the stage or its deadline did."""
    for status, message in ((Status.ERROR, "ended at once by the kernel's report"),
                            (Status.ERROR, "fio randwrite-4k-nj2: no answer within its deadline of 60 s")):
        s = stage(status, message)
        judge(s, (SPLATS / "hung-task.txt").read_text())
        assert s.status == Status.FAIL
        assert s.message == f"kernel: INFO: task fio:1046 blocked for more than 20 seconds. (+3 more); {message}"
        assert "blocked on an rw-semaphore likely owned by task fio:1047" in s.detail


def test_a_panic_leads_the_guest_dying():
    s = stage(Status.ERROR, "the guest died during fio/fuse-passthrough/randwrite-4k-nj2 (qemu exited; x)")
    judge(s, "[   70.1] Kernel panic - not syncing: fuse: kvariant fault injection\n")
    assert s.status == Status.FAIL
    assert s.message == ("kernel: Kernel panic - not syncing: fuse: kvariant fault injection; "
                         "the guest died during fio/fuse-passthrough/randwrite-4k-nj2 (qemu exited; x)")


def test_a_fatal_report_leads_an_earlier_warning():
    text = (SPLATS / "warn-on-write.txt").read_text() + (SPLATS / "bug-on-write.txt").read_text()
    s = stage(Status.ERROR, "ended at once by the kernel's report")
    judge(s, text)
    assert s.message.startswith("kernel: kernel BUG at fs/fuse/passthrough.c:74! (+3 more); ended at once")


def test_an_rcu_stall_alone_only_describes_a_hang():
    s = stage(Status.ERROR, "fio randwrite-4k-nj2: no answer within its deadline of 60 s")
    judge(s, "[  99.0] rcu: INFO: rcu_preempt self-detected stall on CPU\n")
    assert s.status == Status.ERROR
    assert s.message.endswith("; kernel: rcu: INFO: rcu_preempt self-detected stall on CPU")


def test_no_splat_changes_nothing():
    s = stage(message="20000 IOPS")
    judge(s, (FIXTURES / "dmesg-clean-boot.txt").read_text())
    assert (s.status, s.message, s.detail) == (Status.PASS, "20000 IOPS", "")


def test_run_dirs_are_claimed_once(tmp_path):
    got = []
    threads = [threading.Thread(target=lambda: got.append(rundirs.new_run_dir(tmp_path, None)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in got}) == 4  # same second, four directories
    with pytest.raises(ConfigError, match="already holds a run"):
        rundirs.new_run_dir(tmp_path, got[0].name)


def small_config(tmp_path, small_tree, patch=None):
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n[fio]\nnumjobs = [1, 2]\n'
                    '[[variant]]\nname = "baseline"\n[[variant]]\nname = "second"\n')
    return conf


def test_resume_keeps_what_ended(tmp_path, small_tree, cache):
    cfg = config.load(small_config(tmp_path, small_tree))
    done = StageResult("fio/xfs/randwrite-4k-nj1", Status.PASS, 9.0, "100 IOPS", figures={"iops": 100},
                       suite="fio.xfs")
    cut = StageResult("fio/xfs/randwrite-4k-nj2", Status.ERROR, 3.0, "interrupted", suite="fio.xfs")
    finished = VariantResult("baseline", [StageResult("apply", Status.PASS)], VariantInfo(complete=True))
    partial = VariantResult("second", [StageResult("boot", Status.PASS), done, cut])
    previous = {"seconds": 50.0, "variants": [finished.to_dict(), partial.to_dict()]}
    run = Run(cfg, tmp_path / "r", "r", UI(), previous=previous)
    vr = VariantRun(run, cfg.variants[1], VariantResult("second"), previous=partial)
    assert set(vr.done) == {"fio/xfs/randwrite-4k-nj1"}  # the interrupted point runs again
    assert run.resumed == [50.0]


def test_resume_refuses_a_finished_run_and_a_changed_config(tmp_path, small_tree):
    conf = small_config(tmp_path, small_tree)
    run_dir = tmp_path / "results" / "r1"
    run_dir.mkdir(parents=True)
    from kvariant.summary import config_digest
    summary = {"config": str(conf), "config_sha256": config_digest(conf), "finished": False,
               "planned_variants": ["baseline", "second"], "variants": []}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    args = cli.parser().parse_args(["run", "--resume", str(run_dir)])
    got_dir, got_summary, cfg = cli._resumable(args)
    assert got_dir == run_dir and [v.name for v in cfg.variants] == ["baseline", "second"]
    conf.write_text(conf.read_text() + "\n# edited\n")
    with pytest.raises(ConfigError, match="changed since run r1 began"):
        cli._resumable(args)
    (run_dir / "summary.json").write_text(json.dumps({**summary, "finished": True}))
    with pytest.raises(ConfigError, match="finished; there is nothing to resume"):
        cli._resumable(args)
    with pytest.raises(ConfigError, match="does not exist"):
        cli._resumable(cli.parser().parse_args(["run", "--resume", str(tmp_path / "nope")]))


def test_unwritable_junit_stops_the_run_with_one_error(tmp_path, small_tree, cache, monkeypatch):
    cfg = config.load(small_config(tmp_path, small_tree))
    run = Run(cfg, tmp_path / "r", "r", UI())

    real = files.write_atomic

    def full(path, text):  # the disk fills once the summary is there
        if path.name == "junit.xml":
            raise OSError(28, "No space left on device")
        real(path, text)
    monkeypatch.setattr(files, "write_atomic", full)
    with pytest.raises(ResultsUnwritable, match=r"cannot write .*/junit.xml: No space left on device"):
        run.execute()
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["variants"]  # what it had


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_full_disk_is_one_line_and_exit_3(tmp_path, small_tree):
    mnt = tmp_path / "full"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={mnt}/fill", "bs=4k"], capture_output=True)
        conf = small_config(tmp_path, small_tree)
        p = subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "run", "--config", str(conf),
                            "--results", str(mnt)], capture_output=True, text=True, timeout=120)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 3, p.stderr
        assert "Traceback" not in p.stderr
        assert lines[-1].startswith("kvariant: error: cannot write ") and "No space left on device" in lines[-1]
        assert not [f for f in mnt.rglob(".*") if f.name.startswith((".summary", ".junit"))]  # no half files
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_debug_profile_by_name(tmp_path, small_tree):
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n'
                    '[[variant]]\nname = "baseline"\n[[variant]]\nname = "dbg"\nfragments = ["debug"]\n')
    cfg = config.load(conf)
    assert cfg.variants[1].fragments == (config.DEBUG_FRAGMENT,)
    assert config.with_fragment(cfg, config.DEBUG_FRAGMENT).kernel.fragments[-1] == config.DEBUG_FRAGMENT
    conf.write_text(conf.read_text().replace('"debug"', '"debgu"'))
    with pytest.raises(ConfigError, match=r"variant\[1\] \(dbg\)\.fragments\[0\]: expected an existing "
                                          r"kconfig fragment file or one of debug, fuse-xfs-nullblk"):
        config.load(conf)


def test_debug_fragment_asks_for_the_checkers():
    text = config.DEBUG_FRAGMENT.read_text()
    for option in ("CONFIG_PROVE_LOCKING=y", "CONFIG_KASAN=y", "CONFIG_DEBUG_ATOMIC_SLEEP=y",
                   "CONFIG_DETECT_HUNG_TASK=y", "CONFIG_UBSAN=y"):
        assert option in text


def test_against_an_earlier_run_fails_the_testcase_that_regressed(tmp_path):
    """--against RUN: a significant drop of the same variant fails its
    testcase in the JUnit and summary; nothing else changes."""
    import shutil
    import types
    import xml.etree.ElementTree as ET
    from kvariant.junit import write_junit
    from kvariant.report import apply_regressions

    new = tmp_path / "20261122-091500"
    shutil.copytree(FIXTURES / "runs" / "run-b", new)
    data = json.loads((new / "summary.json").read_text())
    results = [VariantResult.from_dict(v) for v in data["variants"]]
    for r in results:
        write_junit(r, new / r.name / "junit.xml")
    saved = []
    before = [(s.name, s.status, s.message) for s in results[0].stages]
    run = types.SimpleNamespace(run_dir=new, run_id="20261122-091500", threshold=0.05, results=results,
                                save=lambda final: saved.append(final))
    regs = apply_regressions(run, FIXTURES / "runs" / "run-a", None)
    assert [(r.variant, r.testcase) for r in regs] == [
        ("20261122-091500:parallel-dio", "fio/fuse-passthrough/randwrite-4k-nj2")]
    stage = results[1].stage("fio/fuse-passthrough/randwrite-4k-nj2")
    assert stage.status == Status.FAIL and stage.figures["regression"]
    assert stage.message.startswith("regression against run 20261121-220102: IOPS -28.7% (95% CI ")
    cases = {c.get("name"): c for c in ET.parse(new / "parallel-dio" / "junit.xml").getroot().iter("testcase")}
    assert cases["fio/fuse-passthrough/randwrite-4k-nj2"].find("failure") is not None
    assert cases["fio/xfs/randwrite-4k-nj2"].find("failure") is None  # not against the earlier run
    assert [(s.name, s.status, s.message) for s in results[0].stages] == before and saved == [True]


def test_real_reports_of_the_debug_profile():
    """From tests/fixtures/fault-matrix-debug.toml under TCG: the hung-task
    detector (20 s) on the self-deadlock, naming the lock's owner, and a
    KASAN report at boot that tainted the kernel and turned lockdep off."""
    from kvariant.splats import find_splats, splat_excerpt
    hung = (SPLATS / "hung-task.txt").read_text()
    assert [(s.kind, s.first_line) for s in find_splats(hung)][:2] == [
        ("hung", "INFO: task fio:1046 blocked for more than 20 seconds."),
        ("hung", "INFO: task fio:1047 blocked for more than 20 seconds.")]
    assert "blocked on an rw-semaphore likely owned by task fio:1047" in splat_excerpt(hung)
    kasan = (SPLATS / "kasan-at-boot.txt").read_text()
    assert [(s.kind, s.first_line) for s in find_splats(kasan)] == [
        ("kasan", "BUG: KASAN: wild-memory-access in do_raw_spin_lock+0x121/0x270")]
