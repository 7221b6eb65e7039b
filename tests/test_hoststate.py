"""The host's state around a fio run (kvariant.hoststate): /proc/stat read
as the kernel writes it, shares computed by hand, and a real sample of
this host while a process of ours burns CPU."""
import os
import subprocess
import sys

from kvariant import hoststate
from kvariant.hoststate import CpuTimes, HostState, Sample

STAT = """cpu  1765012 16275 294455 501960 4248 0 8709 3617 0 0
cpu0 884521 7189 145861 252999 2326 0 2870 1802 0 0
intr 1 2 3
"""


def test_cpu_times_are_read_from_the_first_line():
    t = CpuTimes.parse(STAT)
    assert t == CpuTimes(total=1765012 + 16275 + 294455 + 501960 + 4248 + 0 + 8709 + 3617,
                         idle=501960 + 4248, steal=3617)


def test_an_older_kernel_without_steal_reads_as_none_stolen():
    assert CpuTimes.parse("cpu  10 0 5 80 5\n") == CpuTimes(total=100, idle=85, steal=0)


def test_shares_between_two_samples():
    a = Sample(CpuTimes(1000, 800, 10), at=0.0, own_cpu_s=1.0, load1=0.5, qemus=frozenset({1, 2}))
    b = Sample(CpuTimes(1400, 1000, 50), at=2.0, own_cpu_s=1.1, load1=1.5, qemus=frozenset({1, 2, 3}))
    s = HostState.between(a, b, ours=frozenset({1}))
    # 400 ticks: 200 idle, 40 stolen; our process 0.1 s of CPU in 2 s
    assert s == HostState(busy_pct=50.0, steal_pct=10.0, load1=1.5, other_qemus=2, own_cpu_pct=5.0)


def test_a_point_s_figures_keep_each_run():
    states = [HostState(50.0, 1.0, 0.5, 0, 0.4), HostState(90.0, 12.5, 2.5, 1, 0.6)]
    assert hoststate.figures(states) == {
        "host_steal_pct_runs": [1.0, 12.5], "host_busy_pct_runs": [50.0, 90.0],
        "host_load1_max": 2.5, "host_other_qemus_max": 1, "host_own_cpu_pct_max": 0.6}
    assert hoststate.figures([]) == {}


def test_this_host_sampled_while_a_child_burns_cpu():
    """A real /proc: a child that spends half a second of CPU shows as our
    own CPU (children count once they are waited for) and as busy time,
    however loaded the host is."""
    a = Sample.take()
    subprocess.run([sys.executable, "-c", "import time\nwhile time.process_time() < 0.5: pass"], check=True)
    b = Sample.take()
    # and the interpreter's start-up; clock ticks summed as floats (37.94 - 37.44 < 0.5)
    assert b.own_cpu_s - a.own_cpu_s >= 0.5 - 0.02
    s = HostState.between(a, b)
    assert s.own_cpu_pct == round(100 * (b.own_cpu_s - a.own_cpu_s) / (b.at - a.at), 1)
    assert b.cpu.total - b.cpu.idle - (a.cpu.total - a.cpu.idle) >= 0.4 * os.sysconf("SC_CLK_TCK")
    assert 0 < s.busy_pct <= 100 and 0 <= s.steal_pct <= 100 and s.load1 >= 0 and s.other_qemus >= 0


def test_one_run_measures_at_a_time(cache):
    """Two runs' points on one host: the second waits for the first's lock
    (a real flock under the cache, from another process) and says so."""
    from kvariant.model import StageResult, Status
    from kvariant.pipeline.fio_workload import measuring_alone

    holder = subprocess.Popen([sys.executable, "-c",
                               "import time\nfrom kvariant.paths import locked\n"
                               "with locked('measure'):\n    print('held', flush=True)\n    time.sleep(1.5)\n"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    stage = StageResult("fio/xfs/randwrite-4k-nj1", Status.PASS)
    with measuring_alone(stage):
        pass
    holder.wait(timeout=10)
    assert 1.0 <= stage.figures["measure_wait_s"] <= 5
    free = StageResult("fio/xfs/randwrite-4k-nj2", Status.PASS)
    with measuring_alone(free):
        pass
    assert "measure_wait_s" not in free.figures
