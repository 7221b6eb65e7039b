"""Lock contention from the kernel's lock:contention_begin/end tracepoints:
the parser on a real trace (tests/fixtures/trace/), and a real traced fio run
on this host's FUSE passthrough, whose kernel takes the inode lock for write
in fuse_passthrough_write_iter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import boot_instance
from kvariant.fuse.server import server_argv
from kvariant.workloads import contention

FIXTURES = Path(__file__).parent / "fixtures" / "trace"
REPO = Path(__file__).resolve().parents[1]


def sh(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_real_trace_attributes_waits_to_the_fuse_write_path():
    text = (FIXTURES / "contention-fuse-passthrough-write.txt").read_text()
    c = contention.parse_trace(text)
    site = c.site("fuse_passthrough_write_iter", "write")
    # three waits: 739.411742 -> .412666, .439688 -> .439724, .450463 -> .450494
    assert site.waits == 3 and site.unfinished == 0
    assert site.wait_us == pytest.approx(924 + 36 + 31, abs=0.01)
    assert c.lost == 0 and list(c.sites) == [("fuse_passthrough_write_iter", "write")]
    figures = c.figures(seconds=2.0)
    assert figures["contention.fuse_passthrough_write_iter.write_waits_per_s"] == 1.5
    assert figures["contention.fuse_passthrough_write_iter.write_wait_us_mean"] == pytest.approx(330.3)


def test_spin_waits_are_ignored_and_an_open_wait_is_unfinished():
    text = """\
             fio-7    [000] d..2.   1.000000: contention_begin: 00000000aa (flags=SPIN)
             fio-7    [000] d..2.   1.000010: contention_end: 00000000aa (ret=0)
             fio-8    [001] d..2.   2.000000: contention_begin: 00000000bb (flags=MUTEX)
             fio-8    [001] d..2.   2.000001: <stack trace>
 => trace_event_raw_event_contention_begin
 => __mutex_lock.constprop.0
 => fuse_lock_inode
 => fuse_lookup
             fio-9    [001] d..2.   3.000000: contention_begin: 00000000cc (flags=READ)
             fio-9    [001] d..2.   3.000001: <stack trace>
 => trace_event_raw_event_contention_begin
 => rwsem_down_read_slowpath
 => down_read
 => xfs_ilock
 => xfs_file_dio_write_aligned
             fio-9    [001] ...1.   3.000500: contention_end: 00000000cc (ret=0)
# kvariant stats
entries: 10
overrun: 4
entries: 3
overrun: 1
"""
    c = contention.parse_trace(text)
    assert c.site("xfs_ilock", "read").waits == 1
    assert c.site("xfs_ilock", "read").wait_us == pytest.approx(500)
    assert c.site("fuse_lock_inode", "mutex").unfinished == 1
    assert c.lost == 5
    assert not any(mode == "other" for _, mode in c.sites)


def test_site_skips_lock_machinery():
    assert contention.site_of(["trace_event_raw_event_contention_begin", "rwsem_down_write_slowpath",
                               "down_write", "inode_lock", "fuse_passthrough_write_iter"]) \
        == "fuse_passthrough_write_iter"
    assert contention.site_of([]) == "?"


@pytest.fixture
def passthrough_mount(tmp_path):
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    argv = server_argv(src, mnt, passthrough=True, parallel_direct_writes=True, daemon=True,
                       python=sys.executable, threads=2)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert res.returncode == 0, res.stderr
    yield mnt
    sh(f"umount {mnt} || umount -l {mnt}")


def test_traced_fio_on_host_passthrough_shows_writers_waiting(passthrough_mount):
    """This host's kernel serialises passthrough O_DIRECT writers on the
    FUSE inode lock; eight writers for a few seconds wait on it."""
    f = passthrough_mount / "f"
    assert sh(f"fio --name=p --filename={f} --rw=write --bs=1M --size=64M --direct=1 "
              "--ioengine=libaio --output-format=terse").returncode == 0
    tag = f"test-contention-{os.getpid()}"  # suites that run at once never share it
    d = contention.instance_dir(tag)
    with boot_instance(d, contention.BEGIN, contention.END):
        try:
            for attempt in range(3):  # contention is likely, not certain, in any one run
                started = sh(contention.start_script(tag))
                assert started.returncode == 0, started.stderr
                run = sh(f"fio --name=t --filename={f} --rw=randwrite --bs=4k --size=64M --direct=1 "
                         "--ioengine=libaio --iodepth=64 --numjobs=8 --overwrite=1 --runtime=2 "
                         "--time_based --group_reporting --output-format=terse")
                assert run.returncode == 0, run.stderr
                read = sh(contention.read_script(tag))
                assert read.returncode == 0 and "# kvariant stats" in read.stdout, read.stderr
                c = contention.parse_trace(read.stdout)
                if c.site("fuse_passthrough_write_iter", "write").waits:
                    break
            assert c.site("fuse_passthrough_write_iter", "write").waits > 0, c.sites
            assert c.site("fuse_passthrough_write_iter", "read").waits == 0
        finally:
            stopped = sh(contention.stop_script(tag))
        # the events stay on (turning them off patches kernel text); nothing is recorded
        assert stopped.returncode == 0, stopped.stderr
        assert Path(d, contention.BEGIN, "enable").read_text().strip() == "1"
        assert Path(d, "tracing_on").read_text().strip() == "0"
        assert Path(d, contention.BEGIN, "trigger").read_text().startswith("#")


def test_contention_needs_the_instance_armed_at_boot():
    tag = f"test-unarmed-{os.getpid()}"
    res = sh(contention.start_script(tag))
    assert res.returncode != 0
    assert f"(kernel argument trace_instance=kvariant-{tag}^traceoff,lock:contention_begin," in res.stderr
    assert not Path(contention.instance_dir(tag)).exists()
    assert contention.boot_arg() == ("trace_instance=kvariant-contention^traceoff,"
                                     "lock:contention_begin,lock:contention_end")


def test_fuse_figures_sum_the_sites_by_layer_and_mode():
    c = contention.Contention(sites={
        ("fuse_passthrough_write_iter", "write"): contention.Site(waits=30, wait_us=3000.0),
        ("fuse_file_write_iter", "write"): contention.Site(waits=10, wait_us=1000.0),
        ("xfs_ilock", "read"): contention.Site(waits=4, wait_us=40.0),
    })
    f = contention.fuse_figures(c, seconds=4.0)
    assert f["contention_fuse_write_waits_per_s"] == 10.0
    assert f["contention_fuse_write_wait_us_mean"] == 100.0
    assert f["contention_fuse_read_waits_per_s"] == 0.0 and "contention_fuse_read_wait_us_mean" not in f
    assert f["contention_xfs_read_waits_per_s"] == 1.0 and f["contention_xfs_read_wait_us_mean"] == 10.0


def test_report_shows_lock_waits_per_variant(tmp_path):
    """A point's contention figures reach the comparison (and report.json)
    and report.md's "Lock contention" table, per variant."""
    from kvariant import config
    from kvariant.comparison import FioPoint
    from kvariant.compare import CONTENTION
    from kvariant.render.markdown import _contention_lines
    assert CONTENTION.match("contention_fuse_write_waits_per_s")
    assert not CONTENTION.match("contention.fuse_passthrough_write_iter.write_waits_per_s")
    p = FioPoint("fuse-passthrough", "randwrite-4k", 2, samples={}, status={}, notes=[], deltas=[],
                 contention={"baseline": {"contention_fuse_write_waits_per_s": 412.5},
                             "parallel-dio": {"contention_fuse_write_waits_per_s": 0.0}})
    assert FioPoint.from_dict(p.to_dict()) == p

    class C:  # the two attributes the table reads
        points = [p]
        labels = ["baseline", "parallel-dio"]
    text = "\n".join(_contention_lines(C()))
    assert "| fuse-passthrough nj2 | baseline | 412.5 | 0 | 0 | 0 |" in text
    assert "| fuse-passthrough nj2 | parallel-dio | 0 | 0 | 0 | 0 |" in text
    assert config.FioConfig().contention is False  # opt-in: arming tracepoints patches kernel text
