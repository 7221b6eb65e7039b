"""Every number of the config has a documented range, checked at load: the
one line names the file, the key and the range (no VM)."""
import shutil
import subprocess

import pytest

from conftest import PROJECT
from kvariant import config
from kvariant.config import checks
from kvariant.errors import ConfigError


def config_with(tmp_path, small_tree, extra: str):
    p = tmp_path / "p.toml"
    p.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n{extra}\n[[variant]]\nname = "baseline"\n')
    return p


def refused(path) -> str:
    with pytest.raises(ConfigError) as e:
        config.load(path)
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"{path}: ")
    return line


SECONDS = "a number of seconds in 1..86400"
OUT_OF_RANGE = [  # the inputs of the report, and their neighbours
    ("[timeouts]\nboot = 0", "timeouts.boot", SECONDS, "got 0"),
    ("[timeouts]\ncommand = 1e10", "timeouts.command", SECONDS, "got 10000000000.0"),
    ("[timeouts]\nfio = inf", "timeouts.fio", f"0 (runtime + ramp + 120 s) or {SECONDS}", "got inf"),
    ("[timeouts]\nstorage = nan", "timeouts.storage", SECONDS, "got nan"),
    ("[timeouts]\nprefill = -5", "timeouts.prefill", SECONDS, "got -5"),
    ('[timeouts]\nbuild = "100h"', "timeouts.build", "a number of seconds in 1..172800", "got '100h'"),
    ("[timeouts]\nkvm_probe = true", "timeouts.kvm_probe", SECONDS, "got True"),
    ("[fio]\nruntime = 0", "fio.runtime", SECONDS, "got 0"),
    ("[fio]\nruntime = inf", "fio.runtime", SECONDS, "got inf"),
    ("[fio]\nramp_time = 7200", "fio.ramp_time", "a number of seconds in 0..3600", "got 7200"),
    ("[fio]\nrepeat = 1000000000", "fio.repeat", "a whole number in 1..100", "got 1000000000"),
    ("[fio]\nrepeat = true", "fio.repeat", "a whole number in 1..100", "got True"),
    ("[fio]\nboots = 0", "fio.boots", "a whole number in 1..10", "got 0"),
    ("[fio]\niodepth = 0", "fio.iodepth", "a whole number in 1..1024", "got 0"),
    ("[fio]\nnumjobs = [1000000]", "fio.numjobs", "whole numbers in 1..256", "got [1000000]"),
    ("[fio]\nnumjobs = []", "fio.numjobs", "a non-empty list", "got []"),
    ("[fio]\nnumjobs = [true]", "fio.numjobs", "whole numbers in 1..256", "got [True]"),
    (f"[fio]\nnumjobs = {list(range(1, 40))}", "fio.numjobs", "at most 32", "got [1, 2"),
    ("[fio]\ntargets = []", "fio.targets", "a non-empty list of xfs", "got []"),
    ("[vm]\nmemory = \"0G\"", "vm.memory", 'a size like "4G" or "2048M" from 256M up to', "got '0G'"),
    ("[vm]\nmemory = \"999999999G\"", "vm.memory", "up to this host's RAM (", "got '999999999G'"),
    ("[vm]\ncpus = 100000000", "vm.cpus", "a number of CPUs in 1..", "got 100000000"),
    ("[vm]\nboot_retries = 1000", "vm.boot_retries", "a whole number in 0..10", "got 1000"),
    ("[null_blk]\ngb = 100000", "null_blk.gb", "a whole number in 1..1024", "got 100000"),
    ("[fuse]\nthreads = 100000", "fuse.threads", "a whole number in 1..64", "got 100000"),
    ('[xfstests]\ntest_timeout = inf', "xfstests.test_timeout", SECONDS, "got inf"),
    ('[xfstests]\nloop_failures = 1000000', "xfstests.loop_failures", "a whole number in 0..100", "got 1000000"),
    ("[correctness]\nrounds = 0", "correctness.rounds", "a whole number in 1..100", "got 0"),
    ("[correctness]\nwriters = 1", "correctness.writers", "a whole number in 2..32", "got 1"),
    ("[correctness]\nwriters = 2.5", "correctness.writers", "a whole number in 2..32", "got 2.5"),
    ('[correctness]\nseconds = "1s"', "correctness.seconds", "a number of seconds in 2..3600", "got '1s'"),
    ("[correctness]\nseconds = inf", "correctness.seconds", "a number of seconds in 2..3600", "got inf"),
]


@pytest.mark.parametrize("extra,key,expected,got", OUT_OF_RANGE)
def test_numbers_out_of_their_range_are_refused(tmp_path, small_tree, extra, key, expected, got):
    line = refused(config_with(tmp_path, small_tree, extra))
    assert f": {key}: expected " in line and expected in line and got in line


def test_jobs_out_of_range(tmp_path, small_tree):
    p = tmp_path / "p.toml"
    p.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\njobs = 100000\n[[variant]]\nname = "b"\n')
    assert "kernel.jobs: expected a whole number in 1..1024, got 100000" in refused(p)


def test_the_ranges_accept_their_bounds(tmp_path, small_tree):
    c = config.load(config_with(tmp_path, small_tree, '[timeouts]\nfio = 0\nbuild = "48h"\nboot = 1\n'
                                                      '[fio]\nramp_time = 0\nrepeat = 100\nnumjobs = [1, 256, 1]\n'
                                                      '[vm]\nboot_retries = 0\nmemory = "256M"\ncpus = 1\n'))
    assert (c.timeouts.fio, c.timeouts.build, c.timeouts.boot) == (0, 172800, 1)
    assert c.fio.numjobs == (1, 256) and c.fio.repeat == 100 and c.vm.memory == "256M"


def test_host_limits_are_pure_and_name_the_host_figure():
    assert checks.cpus_problem(2, 2) is None
    assert checks.cpus_problem(3, 2) == "a number of CPUs in 1..2 (this host has 2 CPUs)"
    assert checks.cpus_problem(0, 8) is not None
    assert checks.cpus_problem(300, None) == "a number of CPUs in 1..256"
    assert checks.memory_problem("4G", 8192) is None
    assert checks.memory_problem("8192M", 8192) is None
    assert "up to this host's RAM (8191M)" in checks.memory_problem("8G", 8191)
    assert checks.memory_problem("128M", 8192) is not None  # below the floor
    assert checks.memory_problem("4 G", 8192) is not None


def test_host_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8388608 kB\nMemFree:  1 kB\n")
    assert checks.host_memory_mib(meminfo) == 8192
    assert checks.host_memory_mib(tmp_path / "absent") is None
    assert checks.host_memory_mib() > 0  # this host's /proc/meminfo


def test_readme_documents_every_range():
    """README's table of ranges and checks.RANGES say the same."""
    text = (PROJECT / "README.md").read_text()
    table = text[text.index("### Ranges of the numbers"):]
    table = table[:table.index("\n\n", table.index("|"))]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `")]
    for key, (lo, hi) in checks.RANGES.items():
        assert any(f"`{key}`" in k and f"{lo}..{hi}" in r for k, r in rows), key
    host = [r for k, r in rows if "`vm.cpus`" in k or "`vm.memory`" in k]
    assert len(host) == 2 and all("host" in r for r in host)


FIO_STRINGS = [  # free strings that reach fio's argv and the points' file names
    ('bs = "4k/../../x"', "fio.bs", 'a block size like "4k" or "1m"', "got '4k/../../x'"),
    ('bs = "1k"', "fio.bs", "a multiple of null_blk.bs (4096)", "got '1k'"),
    ('bs = "64m"', "fio.bs", "up to 16m", "got '64m'"),
    ('bs = 4096', "fio.bs", "a block size", "got 4096"),
    ('rw = "randwrite/../../x"', "fio.rw", "one of read, write, randread, randwrite", "got 'randwrite/"),
    ('rw = "randrw"', "fio.rw", "not a mixed or trim mode", "got 'randrw'"),
    ('ioengine = "null"', "fio.ioengine", "one of fio's file engines io_uring, libaio", "got 'null'"),
    ('ioengine = "libaio --exec_prerun=x"', "fio.ioengine", "file engines", "got 'libaio --exec_prerun=x'"),
    ('size = "1 G"', "fio.size", 'a file size like "512m" or "1g"', "got '1 G'"),
    ('size = "10"', "fio.size", "from 1m", "got '10'"),
    ('size = "100g"', "fio.size", "up to 3686m (1 target(s) on the 4G null_blk device)", "got '100g'"),
    ('size = "2g"\ntargets = ["xfs", "fuse", "fuse-passthrough"]', "fio.size", "up to 1228m (3 target(s)",
     "got '2g'"),
]


@pytest.mark.parametrize("extra,key,expected,got", FIO_STRINGS)
def test_fio_strings_are_what_fio_accepts(tmp_path, small_tree, extra, key, expected, got):
    line = refused(config_with(tmp_path, small_tree, f"[fio]\n{extra}"))
    assert f": {key}: expected " in line and expected in line and got in line


def test_point_names_come_from_checked_parts(tmp_path, small_tree):
    from kvariant.workloads.fio import point_name
    c = config.load(config_with(tmp_path, small_tree, '[fio]\nbs = "64K"\nrw = "randread"\nsize = "1G"\n'
                                                      'ioengine = "io_uring"\n[null_blk]\nbs = 512\n'))
    assert point_name(c.fio, 4) == "randread-64k-nj4" and c.fio.size == "1G"
    with pytest.raises(ValueError):
        config.FioConfig(bs="4k/../../x")
    with pytest.raises(ValueError):
        config.FioConfig(rw="../x")


@pytest.mark.skipif(not shutil.which("fio"), reason="fio is not installed on this host")
def test_the_static_engines_are_fios():
    out = subprocess.run(["fio", "--enghelp"], capture_output=True, text=True, timeout=30).stdout
    assert set(checks.FIO_ENGINES) <= {line.strip() for line in out.splitlines()[1:]}
