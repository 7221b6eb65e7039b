"""The fault matrix (tests/fixtures/fault-matrix.toml): the baseline and one
variant per way a patch can break a kernel, in one run.  Each variant's JUnit
says what happened to it, the baseline still passes, the run ends in bounded
time, no qemu is left and the user's tree is unchanged.  Our own patches in
tests/fixtures/patches/; builds are incremental from the baseline's build
directory, and reused by later runs."""
import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import FIXTURES, PROJECT, tree_state
from kvariant import config
from kvariant.vm import qemu_pids
from kvariant.workloads.endwrite import NAME as ENDWRITE

pytestmark = pytest.mark.e2e

CONFIG = FIXTURES / "fault-matrix.toml"
FUSE_POINT = "fio/fuse-passthrough/randwrite-4k-nj2"
XFS_POINT = "fio/xfs/randwrite-4k-nj2"
LATER = ["build", "boot", "storage", FUSE_POINT, XFS_POINT]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    tree = config.load(CONFIG).kernel.tree
    before = tree_state(tree)
    start = time.monotonic()
    p = subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "run", "--config", str(CONFIG),
                        "--results", str(tmp), "--run-id", "faults"],
                       capture_output=True, text=True, timeout=3 * 3600)
    seconds = time.monotonic() - start
    run_dir = tmp / "faults"
    cases = {}
    summary = json.loads((run_dir / "summary.json").read_text())
    for v in summary["planned_variants"]:
        root = ET.parse(run_dir / v / "junit.xml").getroot()
        cases[v] = {c.get("name"): c for c in root.iter("testcase")}
    stages = {v["name"]: {s["name"]: s for s in v["stages"]} for v in summary["variants"]}
    return {"proc": p, "seconds": seconds, "run_dir": run_dir, "cases": cases, "stages": stages,
            "tree": tree, "before": before}


def ended_by_the_report(stage):
    """The watch ended the stage: the host saw the report, abandoned the
    guest's command, gathered the blocked tasks and the console.  Seconds
    from the report to the verdict, and from the stage's start to it (the
    figures themselves are in docs/measurements.md; these bounds are a
    sanity check, far below the deadlines of 3 and 5 minutes)."""
    figures = stage["figures"]
    assert "kernel_report_at_s" in figures, figures
    assert figures["verdict_after_report_s"] < 30
    return figures["verdict_after_report_s"], stage["seconds"]


def verdict(case):
    """(kind, message, body) of a testcase: kind is pass/failure/error/skipped."""
    for kind in ("failure", "error", "skipped"):
        e = case.find(kind)
        if e is not None:
            return kind, e.get("message") or "", e.text or ""
    return "pass", "", ""


def test_the_run_ends_in_bounded_time_and_leaves_nothing(matrix):
    p = matrix["proc"]
    assert p.returncode == 2, p.stderr[-3000:]  # variants failed: exit 2, no traceback
    assert "Traceback" not in p.stderr
    # measured: 17 minutes with six incremental builds, about 9 with the
    # kernels cached (docs/measurements.md); a hang nothing ended never ends
    assert matrix["seconds"] < 45 * 60
    assert qemu_pids("kv-faults-") == []
    assert tree_state(matrix["tree"]) == matrix["before"]
    summary = json.loads((matrix["run_dir"] / "summary.json").read_text())
    assert summary["finished"] and summary["status"] == "fail"


def test_baseline_passes(matrix):
    cases = matrix["cases"]["baseline"]
    for name in ["apply", "build", "boot", "storage", FUSE_POINT, XFS_POINT, ENDWRITE, "dmesg"]:
        assert verdict(cases[name])[0] == "pass", name
    # a target's set-up and prefill are testcases only when they go wrong
    assert not [n for n in cases if n.endswith(("/setup", "/prefill"))]


def test_a_patch_that_does_not_apply(matrix):
    cases = matrix["cases"]["does-not-apply"]
    kind, message, body = verdict(cases["apply"])
    assert kind == "failure" and "patch does not apply" in message
    assert "rejected hunk:" in body and "WARN_ON_ONCE" in body
    for name in LATER:
        assert verdict(cases[name])[:2] == ("skipped", "skipped: apply failed")


def test_a_patch_that_breaks_the_build(matrix):
    cases = matrix["cases"]["build-break"]
    kind, message, body = verdict(cases["build"])
    assert kind == "failure"
    assert message.startswith("build failed: fs/fuse/passthrough.c:")
    assert "fuse_passthrough_account_write" in message
    assert "error: implicit declaration of function 'fuse_passthrough_account_write'" in body
    for name in LATER[1:]:
        assert verdict(cases[name])[:2] == ("skipped", "skipped: build failed")


def test_a_kernel_that_panics_at_boot(matrix):
    cases = matrix["cases"]["boot-panic"]
    kind, message, body = verdict(cases["boot"])
    assert kind == "failure"
    assert message.startswith("the kernel panicked before SSH answered: Kernel panic - not syncing: "
                              "fuse: kvariant fault injection: panic in fuse_init")
    assert "Kernel panic - not syncing" in body  # the console's last screen
    assert float(cases["boot"].get("time")) < 120  # not the 4-minute boot deadline
    for name in LATER[2:]:
        assert verdict(cases[name])[:2] == ("skipped", "skipped: boot failed")


def test_a_bug_on_write(matrix):
    cases = matrix["cases"]["bug-on-write"]
    kind, message, body = verdict(cases[FUSE_POINT])
    # the oopsed writer's aio context is never drained: fio would never return
    assert kind == "failure"
    assert message.startswith("kernel: kernel BUG at fs/fuse/passthrough.c:")
    assert message.endswith("; ended at once by the kernel's report")
    assert "Oops: invalid opcode" in body and "fuse_passthrough_write_iter" in body
    assert "--- blocked tasks (sysrq-w) ---" in body and "--- console, last lines ---" in body
    after_report, seconds = ended_by_the_report(matrix["stages"]["bug-on-write"][FUSE_POINT])
    assert seconds < 90
    kind, message, _ = verdict(cases[XFS_POINT])
    assert kind == "skipped"
    assert message.startswith(f"skipped: the kernel failed during {FUSE_POINT}: kernel BUG at fs/fuse/")
    assert verdict(cases["dmesg"])[0] == "failure"
    assert verdict(cases["dmesg"])[1].startswith("kernel BUG at fs/fuse/passthrough.c:")
    # the kernel's report with file:line in its frames, from the variant's own vmlinux
    body = verdict(cases["dmesg"])[2]
    assert body.startswith("(decoded by the tree's scripts/decode_stacktrace.sh)")
    assert re.search(r"RIP: 0010:fuse_passthrough_write_iter \(fs/fuse/passthrough\.c:74\b", body), body[:3000]
    assert re.search(r"\] +aio_write \(fs/aio\.c:\d+\)", body), body[:3000]
    assert "No such file" not in body
    assert "Code: " in body and "<-- trapping instruction" in body  # decodecode's disassembly
    figures = matrix["stages"]["bug-on-write"]["dmesg"]["figures"]
    assert figures["frames_decoded"] >= 5


def test_a_bug_in_the_prefill(matrix):
    """Every passthrough write BUGs, the prefill's first: a testcase of its
    own fails at once, not at the prefill's deadline."""
    cases = matrix["cases"]["bug-on-every-write"]
    prefill = "fio/fuse-passthrough/prefill"
    kind, message, body = verdict(cases[prefill])
    assert kind == "failure"
    assert message.startswith("kernel: kernel BUG at fs/fuse/passthrough.c:74!")
    assert message.endswith("; ended at once by the kernel's report")
    assert "Oops: invalid opcode" in body and "fuse_passthrough_write_iter" in body
    assert "--- blocked tasks (sysrq-w) ---" in body and "--- console, last lines ---" in body
    after_report, seconds = ended_by_the_report(matrix["stages"]["bug-on-every-write"][prefill])
    assert seconds < 90
    for name in (FUSE_POINT, XFS_POINT):
        assert verdict(cases[name])[:2] == (
            "skipped", f"skipped: the kernel failed during {prefill}: kernel BUG at fs/fuse/passthrough.c:74!")
    assert verdict(cases["dmesg"])[1].startswith("kernel BUG at fs/fuse/passthrough.c:74!")


def test_a_warning_on_write(matrix):
    cases = matrix["cases"]["warn-on-write"]
    kind, message, body = verdict(cases[FUSE_POINT])
    assert kind == "failure"
    assert message.startswith("kernel: WARNING: ") and "fs/fuse/passthrough.c" in message
    assert "fuse_passthrough_write_iter" in body and "---[ end trace" in body
    # the guest still answers: the variant goes on
    assert verdict(cases[XFS_POINT])[0] == "pass"
    kind, message, _ = verdict(cases["dmesg"])
    assert kind == "failure" and message.startswith("WARNING: ")


def test_a_deadlock_on_write(matrix):
    """The writers block forever on the inode lock: the hung-task detector
    (20 s, checked every 5 s) names them, and that ends the point."""
    cases = matrix["cases"]["deadlock-on-write"]
    kind, message, body = verdict(cases[FUSE_POINT])
    assert kind == "failure"
    # (the kernel prints how long: 20 s and up to one 5 s check more)
    assert re.match(r"kernel: INFO: task fio:\d+ blocked for more than 2\d seconds\.", message), message
    assert message.endswith("; ended at once by the kernel's report")
    assert "--- blocked tasks (sysrq-w) ---" in body
    assert "task:fio" in body and "fuse_passthrough_write_iter" in body
    assert "--- console, last lines ---" in body
    # the first blocked write comes a moment after the point's start
    after_report, seconds = ended_by_the_report(matrix["stages"]["deadlock-on-write"][FUSE_POINT])
    assert seconds < 90
    kind, message, _ = verdict(cases[XFS_POINT])
    assert kind == "skipped"
    assert message.startswith(f"skipped: the kernel failed during {FUSE_POINT}: INFO: task fio:")


def test_the_guest_dies_mid_workload(matrix):
    cases = matrix["cases"]["panic-on-write"]
    kind, message, body = verdict(cases[FUSE_POINT])
    # the panic leads; what the host noticed first (the watch, or qemu's
    # exit) follows it
    assert kind == "failure"
    assert message.startswith("kernel: Kernel panic - not syncing: fuse: kvariant fault injection: "
                              "panic on a small O_DIRECT write")
    assert "--- console, last lines ---" in body and "fuse_passthrough_write_iter" in body
    assert matrix["stages"]["panic-on-write"][FUSE_POINT]["seconds"] < 90
    kind, message, _ = verdict(cases[XFS_POINT])
    assert (kind, message) == ("skipped", f"skipped: the kernel failed during {FUSE_POINT}: Kernel panic - "
                                          "not syncing: fuse: kvariant fault injection: panic on a small "
                                          "O_DIRECT write")
    assert verdict(cases["dmesg"])[1].startswith("Kernel panic - not syncing: fuse: kvariant fault injection")


def test_a_size_update_outside_the_inode_lock(matrix):
    """end_write updates the size with the inode lock dropped: no kernel
    check says a word, fio passes, and only the correctness workload sees
    the FUSE inode's size past the backing file's EOF."""
    cases = matrix["cases"]["endwrite-unlocked"]
    kind, message, body = verdict(cases[ENDWRITE])
    assert kind == "failure", message
    assert re.match(r"round \d+: the FUSE inode's size is \d+, the backing file's \d+", message), message
    assert "the FUSE inode's size is" in body
    stage = matrix["stages"]["endwrite-unlocked"][ENDWRITE]
    assert stage["figures"]["size_mismatches"] >= 1
    for name in (FUSE_POINT, XFS_POINT, "dmesg"):
        assert verdict(cases[name])[0] == "pass", name
