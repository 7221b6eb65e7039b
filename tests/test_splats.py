"""Which kernel reports end a stage at once (splats.fatal), on the real
reports the fault matrices produced, and the console watch that looks for
them while a stage runs."""
import threading
import time

from conftest import FIXTURES
from kvariant.splats import find_splats, first_fatal, fatal
from kvariant.vm import ConsoleWatch

SPLATS = FIXTURES / "splats"


def kinds(name):
    return [(s.kind, fatal(s)) for s in find_splats((SPLATS / name).read_text())]


def test_reports_that_end_a_stage():
    # the oopsed writer never drains its aio context: fio cannot return
    assert first_fatal((SPLATS / "bug-on-write.txt").read_text()).first_line == \
        "kernel BUG at fs/fuse/passthrough.c:74!"
    # the hung-task detector names the deadlocked writers
    assert first_fatal((SPLATS / "hung-task.txt").read_text()).first_line == \
        "INFO: task fio:1046 blocked for more than 20 seconds."
    assert kinds("hung-task.txt") == [("hung", True)] * 4
    assert kinds("kasan-at-boot.txt") == [("kasan", True)]


def test_reports_the_workload_survives():
    assert kinds("warn-on-write.txt") == [("warning", False)]  # WARN_ON: the write goes on
    assert first_fatal((SPLATS / "warn-on-write.txt").read_text()) is None
    assert first_fatal((SPLATS / "deadlock-on-write.txt").read_text()) is None  # sysrq-w's own output
    assert first_fatal((FIXTURES / "dmesg-clean-boot.txt").read_text()) is None
    survives = ["[ 1.0] BUG: sleeping function called from invalid context at mm/slab.c:1",
                "[ 1.0] BUG: using smp_processor_id() in preemptible [00000000] code: fio/1",
                "[ 1.0] UBSAN: array-index-out-of-bounds in fs/fuse/passthrough.c:80:3",
                "[ 1.0] rcu: INFO: rcu_preempt self-detected stall on CPU"]
    for line in survives:
        assert [fatal(s) for s in find_splats(line)] == [False], line
    ends = ["[ 1.0] BUG: soft lockup - CPU#1 stuck for 22s! [fio:411]",
            "[ 1.0] WARNING: possible recursive locking detected",
            "[ 1.0] Kernel panic - not syncing: fuse: kvariant fault injection",
            "[ 1.0] BUG: unable to handle page fault for address: 0000000000001000"]
    for line in ends:
        assert [fatal(s) for s in find_splats(line)] == [True], line


def test_the_watch_sees_a_report_from_its_mark_on(tmp_path):
    console = tmp_path / "console.log"
    console.write_text((SPLATS / "hung-task.txt").read_text())  # before the stage: not its business
    mark = console.stat().st_size
    seen = []
    with ConsoleWatch(console, mark, seen.append, interval=0.2) as watch:
        with open(console, "a") as f:  # the serial console: a line at a time, the first split
            f.write((SPLATS / "warn-on-write.txt").read_text())
            f.flush()
            time.sleep(0.5)
            assert seen == []  # a warning lets the stage go on
            bug = (SPLATS / "bug-on-write.txt").read_text()
            cut = bug.index("kernel BUG at") + 5
            f.write(bug[:cut])
            f.flush()
            time.sleep(0.5)
            assert seen == []  # half a line is not a report yet
            f.write(bug[cut:])
            f.flush()
            deadline = time.monotonic() + 5
            while not seen and time.monotonic() < deadline:
                time.sleep(0.1)
    assert [s.first_line for s in seen] == ["kernel BUG at fs/fuse/passthrough.c:74!"]
    assert watch.found is seen[0] and watch.seen > 0


def test_the_watch_stops_with_its_stage(tmp_path):
    console = tmp_path / "console.log"
    console.write_text("")
    before = threading.active_count()
    with ConsoleWatch(console, 0, lambda s: None, interval=0.2):
        assert threading.active_count() == before + 1
    assert threading.active_count() == before
