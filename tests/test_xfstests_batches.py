"""xfstests in batches: following check's output (pure), the kernel log of
one test of a batch (the awk program run for real over a kernel log), and
the runner against a guest that plays a batch back test by test, streaming
check's output as check prints it."""
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import FIXTURES
from test_xfstests import HUNG_TASK
from kvariant.errors import KernelReport, StageError
from kvariant.model import Status
from kvariant.proc import Result
from kvariant.workloads import xfstests as xt
from kvariant.workloads.xfstests.config import CHECK_OVERHEAD

FAIL_NOTRUN = FIXTURES / "xfstests-xfs-fail-notrun"

# check's output as it prints it: the name padded to the longest test name,
# the last run's time, then the outcome when the test and its checks ended
OUTPUT = """\
FSTYP         -- xfs (non-debug)
PLATFORM      -- Linux/x86_64 (none) 7.2.13+ #2 SMP PREEMPT_DYNAMIC
MKFS_OPTIONS  -- -f /dev/nullb2
MOUNT_OPTIONS -- /dev/nullb2 /tmp/kvariant/xfstests/xfs/scratch

generic/002        13s ...  12s
generic/003       - output mismatch (see /tmp/kvariant/xfstests/xfs/results/generic/003.out.bad)
    --- tests/generic/003.out	2024-01-01 00:00:00
    +++ /tmp/kvariant/xfstests/xfs/results/generic/003.out.bad
    @@ -1 +1 @@
    -QA output created by 003
    +generic/003 wrong
    ...
generic/003 aggregate results across 2 runs: fail=2 (100.0%)
generic/108       [not run] scsi_debug module not found
generic/1234       5s ...  6s
Ran: generic/002 generic/003 generic/108 generic/1234
Not run: generic/108
Failures: generic/003
Failed 1 of 4 tests
"""
TESTS = ("generic/002", "generic/003", "generic/108", "generic/1234")


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_progress_follows_check_output_in_any_pieces():
    for size in (1, 3, 7, 4096):
        clock = Clock()
        p = xt.CheckProgress(TESTS, clock)
        starts = {}
        for i in range(0, len(OUTPUT), size):
            clock.now += 1
            p.feed(OUTPUT[i:i + size])
            cur = p.current()
            if cur is not None:
                starts.setdefault(cur[0], cur[1])
        assert [t for t, _ in p.snapshot()] == list(TESTS), size
        # a test counts from the moment its padded name is printed, not before
        first = OUTPUT.index("generic/002 ") + len("generic/002 ")
        assert p.snapshot()[0][1] == pytest.approx(1000 + -(-first // size), abs=1), size
        assert p.over() == list(TESTS[:3]) and p.not_started() == []


def test_progress_of_a_name_half_printed_and_of_other_lines():
    clock = Clock()
    p = xt.CheckProgress(("generic/1", "generic/10", "generic/100"), clock)
    p.feed("FSTYP -- fuse\ngeneric/10")  # could still become generic/100
    assert p.current() is None and p.not_started() == ["generic/1", "generic/10", "generic/100"]
    p.feed("0")
    assert p.current() is None
    p.feed("      ")
    assert p.current() == ("generic/100", 1000.0)
    p.feed(" 3s\n    generic/1 in a diff is not a start\nRan: generic/1\n")
    assert p.not_started() == ["generic/1", "generic/10"]


def test_deadlines_of_the_start_up_and_of_each_test():
    clock = Clock()
    p = xt.CheckProgress(TESTS, clock)
    assert p.overdue(1000 + 179, 60, 180) is None
    assert p.overdue(1000 + 181, 60, 180) == "generic/002"  # check's start-up hung: its first test
    clock.now = 1100
    p.feed("generic/002       ")
    assert p.overdue(1159, 60, 180) is None and p.overdue(1161, 60, 180) == "generic/002"
    clock.now = 1150
    p.feed("  1s\ngeneric/003       ")
    assert p.overdue(1209, 60, 180) is None and p.overdue(1211, 60, 180) == "generic/003"
    assert p.over() == ["generic/002"] and p.current() == ("generic/003", 1150)
    # after a stop the next batch runs what was not started
    assert xt.next_batch(list(TESTS), p) == ["generic/108", "generic/1234"]
    assert xt.next_batch(list(TESTS), None) == list(TESTS)


KERNEL_LOG = """\
[   50.1] kvariant: xfstests fuse batch #1
[   51.0] XFS (nullb1): Mounting V5 Filesystem
[   52.0] run fstests generic/002 at 2026-01-01 00:00:01
[   53.0] fuse: fuse-002
[   54.0] run fstests generic/005 at 2026-01-01 00:00:02
[   55.0] fuse: fuse-005
[   60.0] kvariant: xfstests xfs batch #2
[   61.0] XFS (nullb1): xfs start-up
[   62.0] run fstests generic/002 at 2026-01-01 00:01:01
[   63.0] xfs: xfs-002
[   64.0] run fstests generic/005 at 2026-01-01 00:01:02
[   65.0] xfs: xfs-005 hangs
"""


def _slice(tmp_path, marker, test, first):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "dmesg").write_text(f"#!/bin/sh\ncat {tmp_path / 'kmsg'}\n")
    (bin_dir / "dmesg").chmod(0o755)
    (tmp_path / "kmsg").write_text(KERNEL_LOG)
    dest = tmp_path / "out.kmsg"
    cmd = xt.kmsg_slice(str(dest), marker, test, first)
    subprocess.run(["sh", "-c", cmd], check=True, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    return [line.split("] ", 1)[1] for line in dest.read_text().splitlines()]


def test_the_kernel_log_of_one_test_of_a_batch(tmp_path):
    # the first test of a batch has check's start-up; the next one's marker ends it
    assert _slice(tmp_path, "kvariant: xfstests xfs batch #2", "generic/002", True) == [
        "kvariant: xfstests xfs batch #2", "XFS (nullb1): xfs start-up",
        "run fstests generic/002 at 2026-01-01 00:01:01", "xfs: xfs-002"]
    # the same test ran for fuse earlier in this guest: the batch's marker tells
    assert _slice(tmp_path, "kvariant: xfstests xfs batch #2", "generic/005", False) == [
        "run fstests generic/005 at 2026-01-01 00:01:02", "xfs: xfs-005 hangs"]
    assert _slice(tmp_path, "kvariant: xfstests fuse batch #1", "generic/005", False) == [
        "run fstests generic/005 at 2026-01-01 00:00:02", "fuse: fuse-005"]
    # markers gone from the ring buffer: the log's last lines
    assert len(_slice(tmp_path, "kvariant: xfstests xfs batch #9", "generic/002", False)) == 12


def test_batch_and_stop_commands_are_shell(tmp_path):
    lay = xt.guest_layout("fuse")
    check = xt.batches.check_command(lay, xt.batch_argv(xt.XfstestsConfig(loop_failures=2),
                                                         ["generic/002", "generic/005"]), 500)
    cmd = xt.batch_command(check, "/x/check.pid", "kvariant: xfstests fuse batch #1", lay.results)
    stop = xt.stop_command("/x/check.pid", "generic/005")
    for text in (cmd, stop, xt.kmsg_slice("/x/a.kmsg", "m 'q'", "generic/002", True)):
        assert subprocess.run(["sh", "-n", "-c", text]).returncode == 0, text
    assert "timeout -k 30 500 ./check -R xunit -L 2 generic/002 generic/005 & echo $! > /x/check.pid" in cmd
    assert "echo w > /proc/sysrq-trigger" in stop and "kill -TERM $(cat /x/check.pid)" in stop


def test_a_batch_command_runs_check_in_the_background_and_keeps_its_code(tmp_path):
    check = tmp_path / "check"
    check.write_text("#!/bin/sh\necho generic/002; exit 3\n")
    check.chmod(0o755)
    cmd = xt.batch_command(str(check), str(tmp_path / "pid"), "m", str(tmp_path))
    cmd = cmd.replace("> /dev/kmsg", "> /dev/null")
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    assert r.returncode == 3 and r.stdout.startswith("generic/002\n")
    assert "kvariant: ./check exited 3" in r.stdout and (tmp_path / "pid").read_text().strip().isdigit()


# The runner, against a guest that plays a batch back


def _testcases(result_xml: Path) -> dict[str, str]:
    text = result_xml.read_text()
    return {m.group(1): m.group(0) for m in
            re.finditer(r'\t<testcase [^>]*name="([^"]+)".*?</testcase>\n', text, re.S)}


class BatchGuest:
    """A guest whose file system is a directory and whose ./check calls
    play back a fixture per test, as check would: result.xml rewritten
    with the tests so far before each test's name is printed.  Per test:
    "ok" (the fixture's result), "splat" (that, and a hung task in its
    kernel log), "hang" (the clock passes the deadline; the
    test ends when the host stops check), "die" (SSH drops), "broken" (the
    host abandoned the command at a kernel report), "quit" (check exits
    before running it)."""

    def __init__(self, root: Path, plan: dict[str, str], clock: Clock, listing=None):
        self.root, self.plan, self.clock = root, plan, clock
        self.listing = list(plan) if listing is None else listing
        self.fixture = FAIL_NOTRUN
        self.cases = _testcases(self.fixture / "result.xml")
        self.cases["generic/005"] = self.cases["generic/003"].replace("003", "005")
        self.commands: list[str] = []
        self.batches: list[list[str]] = []
        self.stopped = threading.Event()
        self.handed: list[str] = []  # the runner's on_result, as the batch streams
        self.seen_while_running: list[list[str]] = []
        self.results = root / xt.guest_layout("xfs").results.lstrip("/")
        self.xunit = False

    def run(self, command, timeout=None, log=None, stream=None):
        self.commands.append(command)
        if "./check -n" in command:
            listing = self.root / xt.guest_layout("xfs").base.lstrip("/") / "tests.txt"
            listing.parent.mkdir(parents=True, exist_ok=True)
            listing.write_text("FSTYP -- xfs\n" + "".join(f"{t}\n" for t in self.listing))
            return Result(["ssh"], 0, 0.1, "")
        m = re.search(r"\./check ((?:-R xunit )?(?:-L \d+ )?)((?:generic/\d+ ?)+) &", command)
        if m:
            self.xunit = bool(m.group(1))
            return self._batch(command, m.group(2).split(), stream)
        if "sysrq-trigger" in command:
            self.stopped.set()
            return Result(["ssh"], 0, 0.1, "", stdout="INFO: blocked tasks\ntask:xfs_io state:D")
        if ".kmsg" in command and "ls -1d" in command:  # our kernel log of a test that ended
            test = re.search(r"run fstests (\S+) at", command).group(1)
            if self.plan[test] == "splat":
                (self.results / f"{test}.kmsg").write_text(HUNG_TASK)
        if "ls -1d" in command:
            names = [p.relative_to(self.results).as_posix() for p in self.results.rglob("*")
                     if p.is_file()]
            return Result(["ssh"], 0, 0.1, "pyenv: cannot rehash\n" + "\n".join(sorted(names)))
        return Result(["ssh"], 0, 0.1, "")  # setup, recovery, teardown

    def _line(self, test: str) -> str:
        """What check prints after the name, from the fixture's result."""
        case = self.cases[test]
        if "<failure" in case:
            return f" - output mismatch (see {self.results}/{test}.out.bad)\n    --- diff\n"
        if "<skipped" in case:
            return " [not run] " + (self.fixture / f"{test}.notrun").read_text().strip() + "\n"
        return " 13s ...  " + re.search(r'time="(\d+)"', case).group(1) + "s\n"

    def _write(self, done: list[str]) -> None:
        if not self.xunit:  # check writes result.xml with -R xunit only
            return
        self.results.mkdir(parents=True, exist_ok=True)
        (self.results / "result.xml").write_text(
            '<?xml version="1.0"?>\n<testsuite name="xfstests">\n'
            + "".join(self.cases[t] for t in done) + "</testsuite>\n")

    def _batch(self, command, tests, stream):
        self.batches.append(tests)
        done = []
        stream("FSTYP -- xfs\n\n")
        for test in tests:
            what = self.plan[test]
            if what == "quit":  # check's exit trap writes result.xml
                self._write(done)
                return Result(["ssh"], 1, 0.1, "check: no such test", stdout="")
            self._write(done)
            if what == "slow start":  # check's start-up, longer than check's overhead alone
                self.clock.now += CHECK_OVERHEAD + 30
                time.sleep(1.2)  # the host looks at the clock meanwhile
                what = "ok"
            stream(f"{test:<12}")
            if what in ("ok", "splat", "hang"):
                time.sleep(0.6)  # the host hands the test before over while this one runs
                self.seen_while_running.append(list(self.handed))
            if what == "die":
                raise StageError(f"the guest's SSH connection dropped during: {command[:80]}")
            if what == "broken":
                raise KernelReport("ended at once by the kernel's report", reproduce=command)
            if what == "hang":
                self.clock.now += 100000
                assert self.stopped.wait(10), "the host did not stop the hung test"
                self.stopped.clear()
                self._write(done)
                return Result(["ssh"], 143, 1.0, "Interrupted!", stdout="")
            for f in self.fixture.glob(f"{test}.*"):
                (self.results / test).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, self.results / f.relative_to(self.fixture))
            done.append(test)
            self.clock.now += 5
            stream(self._line(test))
        self._write(done)
        stream("Ran: " + " ".join(tests) + "\n")
        return Result(["ssh"], 0, 1.0, "", stdout="")

    def get(self, remote, local, missing_ok=False):
        src = self.root / remote.lstrip("/")
        if not src.is_file():
            if missing_ok:
                return False
            raise StageError(f"guest file {remote} does not exist")
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, local)
        return True

    def run_quiet(self, command, timeout):
        self.commands.append(command)


def _run(tmp_path, plan, listing=None, done=None, known=None, loop=0):
    clock = Clock()
    guest = BatchGuest(tmp_path / "guest", plan, clock, listing)
    tree = tmp_path / "xfstests"
    (tree / "tests" / "generic").mkdir(parents=True, exist_ok=True)
    (tree / "tests" / "generic" / "002.out").write_text("QA output created by 002\n")
    cfg = xt.XfstestsConfig(dir=tree, tests=("generic/00?",), test_timeout=60, loop_failures=loop,
                            **({"known_failures": known} if known else {}))

    def on_result(stage):
        guest.handed.append(stage.name.split("/", 2)[2])

    results = xt.run_xfstests(guest, cfg, "xfs", policy={}, outdir=tmp_path / "out", python="python3",
                              project_dir="/p", timeout_per_test=0, log=tmp_path / "x.log",
                              on_result=on_result, done=done, clock=clock)
    return guest, {r.name.split("/", 2)[2]: r for r in results}, [r.name.split("/", 2)[2] for r in results]


def test_one_check_for_all_tests_each_handed_over_as_it_ends(tmp_path):
    plan = {"generic/002": "ok", "generic/003": "splat", "generic/108": "ok"}
    guest, by, order = _run(tmp_path, plan)
    assert guest.batches == [list(plan)] and order == list(plan)
    # while generic/108 ran, the tests before it were already in the JUnit
    assert guest.seen_while_running == [[], ["generic/002"], ["generic/002", "generic/003"]]
    assert by["generic/002"].status == Status.FAIL and "+Silence is goodness" in by["generic/002"].detail
    assert by["generic/003"].status == Status.FAIL  # passed, but a hung task in its kernel log
    assert by["generic/003"].message.startswith("kernel splat: INFO: task xfs_io:4021 blocked")
    assert by["generic/108"].status == Status.SKIP and "scsi_debug" in by["generic/108"].message
    assert "./check -R xunit generic/003" in by["generic/003"].reproduce
    checks = [c for c in guest.commands if "./check generic/" in c]
    total = CHECK_OVERHEAD + 3 * (60 + CHECK_OVERHEAD)
    assert len(checks) == 1 and f"timeout -k 30 {total:.0f} ./check generic/002 generic/003" in checks[0]
    assert by["generic/002"].message.startswith("output mismatch (see ")
    assert "+++ generic/002.out.bad" in by["generic/002"].detail  # against the tree's golden output
    assert by["generic/003"].seconds == 24  # check's own time, from its line
    # our kernel log of each test came from its slice of the batch
    assert sum("run fstests generic/003 at" in c for c in guest.commands) == 1
    out = tmp_path / "out"
    assert (out / "generic" / "002.out.bad").is_file() and (out / "generic" / "108.notrun").is_file()
    assert not (out / "result.xml").exists()


def test_with_looping_failures_the_results_come_from_check_s_xunit_report(tmp_path):
    plan = {"generic/002": "ok", "generic/003": "ok", "generic/108": "ok"}
    guest, by, order = _run(tmp_path, plan, loop=1)
    checks = [c for c in guest.commands if "./check -R xunit -L 1 generic/002" in c]
    assert len(checks) == 1 and order == list(plan)
    assert by["generic/002"].status == Status.FAIL and by["generic/003"].status == Status.PASS
    assert by["generic/108"].status == Status.SKIP and "scsi_debug" in by["generic/108"].message
    again = {o.name: o.status for o in xt.parse_results(tmp_path / "out")}
    assert again == {"generic/002": "fail", "generic/003": "pass", "generic/108": "notrun"}


def test_a_hung_test_errors_and_the_rest_go_on_in_a_new_check(tmp_path):
    plan = {"generic/002": "ok", "generic/005": "hang", "generic/003": "ok", "generic/108": "ok"}
    guest, by, order = _run(tmp_path, plan)
    assert guest.batches == [list(plan), ["generic/003", "generic/108"]]
    assert order == list(plan)
    hung = by["generic/005"]
    assert hung.status == Status.ERROR
    assert re.match(rf"no result after \d+ s: past its deadline of {60 + CHECK_OVERHEAD:.0f} s$", hung.message)
    assert "task:xfs_io state:D" in hung.detail and "blocked tasks (sysrq-w)" in hung.detail
    assert by["generic/003"].status == Status.PASS and by["generic/108"].status == Status.SKIP
    # the stop, then the recovery (mounts released) came before the next batch
    stop = next(i for i, c in enumerate(guest.commands) if "sysrq-trigger" in c)
    second = [i for i, c in enumerate(guest.commands) if "./check generic/" in c][1]
    assert stop < second and any("/abort" in c for c in guest.commands[stop:second])


def test_the_guest_lost_or_broken_during_a_batch(tmp_path):
    plan = {"generic/002": "ok", "generic/003": "die", "generic/108": "ok"}
    guest, by, order = _run(tmp_path / "die", plan)
    assert order == list(plan) and len(guest.batches) == 1
    assert by["generic/002"].status == Status.FAIL
    assert (by["generic/003"].status, by["generic/003"].message) == (
        Status.ERROR, "the guest's SSH connection was lost during generic/003")
    assert by["generic/108"].status == Status.SKIP and by["generic/108"].message.startswith("not run:")
    plan = {"generic/002": "ok", "generic/003": "broken", "generic/108": "ok"}
    guest, by, order = _run(tmp_path / "broken", plan)
    assert by["generic/003"].message == "ended at once by the kernel's report during generic/003"
    assert (by["generic/108"].status, by["generic/108"].message) == (
        Status.SKIP, "not run: ended at once by the kernel's report during generic/003")
    assert not any("teardown" in c or "mount.fuse" in c for c in guest.commands[-1:])


def test_a_check_that_runs_nothing_is_not_started_again(tmp_path):
    plan = {"generic/002": "ok", "generic/003": "quit", "generic/108": "ok"}
    guest, by, order = _run(tmp_path, plan)
    assert guest.batches == [list(plan), ["generic/003", "generic/108"]]
    assert by["generic/002"].status == Status.FAIL
    for test in ("generic/003", "generic/108"):
        assert by[test].status == Status.ERROR and "./check exited before running it" in by[test].message


def test_tests_an_interrupted_run_has_keep_their_places(tmp_path):
    plan = {"generic/002": "ok", "generic/003": "ok", "generic/108": "ok"}
    kept = xt.outcome_to_stage(xt.TestOutcome("generic/003", "pass", 3.0), "xfs")
    kept.message = "from before"
    guest, by, order = _run(tmp_path, plan, done={"xfstests/xfs/generic/003": kept})
    assert guest.batches == [["generic/002", "generic/108"]]
    assert order == list(plan) and by["generic/003"].message == "from before"


def test_runner_reports_a_failed_setup_or_an_empty_selection(tmp_path):
    class Broken(BatchGuest):
        def run(self, command, timeout=None, log=None, stream=None):
            if "set -e" in command:
                return Result(["ssh", command], 1, 0.1, "mount: /dev/nullb1: can't read superblock")
            return super().run(command, timeout, log, stream)

    cfg = xt.XfstestsConfig(dir=tmp_path)
    kw = dict(policy={}, python="python3", project_dir="/p", timeout_per_test=10,
              log=tmp_path / "x.log")
    (r,) = xt.run_xfstests(Broken(tmp_path / "g", {}, Clock()), cfg, "fuse", outdir=tmp_path / "o1", **kw)
    assert r.name == "xfstests/fuse/setup" and r.status == Status.ERROR
    assert "superblock" in r.detail
    (r,) = xt.run_xfstests(BatchGuest(tmp_path / "g2", {}, Clock()), cfg, "xfs",
                           outdir=tmp_path / "o2", **kw)
    assert r.name == "xfstests/xfs/list" and r.status == Status.ERROR


def test_the_known_failures_of_the_fstype_are_marked(tmp_path):
    known = tmp_path / "known"
    known.mkdir()
    (known / "xfs.txt").write_text("generic/002  # deliberately wrong\ngeneric/003  # was broken\n")
    (known / "kvariant-fuse.txt").write_text("generic/108  # another fstype's list\n")
    plan = {"generic/002": "ok", "generic/003": "ok", "generic/108": "ok"}
    guest, by, order = _run(tmp_path, plan, known=known)
    assert (by["generic/002"].status, by["generic/002"].figures) == (
        Status.SKIP, {"known_failure": "deliberately wrong"})
    assert by["generic/002"].message.startswith("known failure: deliberately wrong (xfstests: ")
    assert by["generic/003"].status == Status.PASS and by["generic/003"].message.startswith("fixed? ")
    assert by["generic/108"].figures == {}
    (known / "xfs.txt").write_text("generic/002\n")  # broken after the config was read
    guest, by, order = _run(tmp_path / "bad", plan, known=known)
    assert order == ["known-failures"] and by["known-failures"].status == Status.ERROR
    assert "xfs.txt: line 1: expected a test like" in by["known-failures"].message


@pytest.mark.parametrize("line, status, seconds, message", [
    ("13s ...  12s", "pass", 12.0, ""),
    ("12s", "pass", 12.0, ""),
    ("[not run] scsi_debug module not found", "notrun", 7.0, "scsi_debug module not found"),
    ("- output mismatch (see /r/generic/002.out.bad)", "fail", 7.0, "- output mismatch (see /r/generic/002.out.bad)"),
    ("13s ... [failed, exit status 1]- output mismatch (see /r/generic/002.out.bad)", "fail", 7.0,
     "[failed, exit status 1]- output mismatch (see /r/generic/002.out.bad)"),
    ("13s ... _check_dmesg: something found (see /r/generic/002.dmesg)", "fail", 7.0,
     "_check_dmesg: something found (see /r/generic/002.dmesg)"),
    ("13s ...", "fail", 7.0, "failed (see check.log and generic/002.full)"),  # a file system check failed
])
def test_an_outcome_from_the_line_check_printed(tmp_path, line, status, seconds, message):
    (tmp_path / "generic").mkdir()
    if status == "notrun":
        (tmp_path / "generic" / "002.notrun").write_text("scsi_debug module not found\n")
    out = xt.results.outcome_from_line(tmp_path, "generic/002", line, 7.0)
    assert (out.status, out.seconds, out.message) == (status, seconds, message)


def test_progress_keeps_each_test_s_line_and_how_long_it_took():
    clock = Clock()
    p = xt.CheckProgress(TESTS, clock)
    for i, piece in enumerate(OUTPUT.split("\n")):
        clock.now = 1000 + 10 * i
        p.feed(piece + "\n")
    assert p.line("generic/002") == "13s ...  12s" and p.line("generic/108").startswith("[not run] ")
    assert p.line("generic/003").startswith("- output mismatch")  # not the -L aggregate line
    assert p.took("generic/002", 5000) == 10 and p.took("generic/003", 5000) == 80
    assert p.took("generic/1234", 1200) == 50  # still running: until now


def test_check_s_start_up_has_what_one_check_per_test_had(tmp_path):
    plan = {"generic/002": "slow start", "generic/003": "ok", "generic/108": "ok"}
    guest, by, order = _run(tmp_path, plan)
    assert len(guest.batches) == 1 and not any("sysrq" in c for c in guest.commands)
    assert by["generic/002"].status == Status.FAIL and by["generic/003"].status == Status.PASS
