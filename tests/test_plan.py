"""The plan of a sharded run (kvariant.shard.plan): every unit in exactly
one shard, the same plan however often and wherever it is made and
whatever the order of the variants, balanced by known times, spread by
count without them."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kvariant import config
from kvariant.config import XfstestsConfig
from kvariant.shard.plan import Plan, assign, balance, balances, known_times, make_plan
from kvariant.summary import RunSummary
from kvariant.workloads.xfstests.results import parse_check_time
from kvariant.workloads.xfstests.selection import parse_group_list, select
from conftest import FIXTURES, PROJECT

TESTS = [f"generic/{i:03d}" for i in range(1, 41)]


def write_config(tmp_path: Path, tree: Path, variants: list[str], name: str = "p.toml") -> Path:
    tests = ", ".join(f'"{t}"' for t in TESTS)
    text = (f'[kernel]\ntree = "{tree}"\nbase = "v1"\n'
            '[fio]\ntargets = ["xfs", "fuse-passthrough"]\nnumjobs = [1, 2]\nruntime = 4\nrepeat = 2\n'
            f'[xfstests]\nfstypes = ["fuse", "xfs"]\ntests = [{tests}]\nexclude = ["generic/040"]\n')
    text += "".join(f'[[variant]]\nname = "{v}"\n' for v in variants)
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def cfg(tmp_path, small_tree):
    return config.load(write_config(tmp_path, small_tree, ["baseline", "v1", "v2", "v3"]))


@pytest.mark.parametrize("n", range(1, 9))
def test_every_unit_in_exactly_one_shard(cfg, n):
    plan = make_plan(cfg, n)
    assert len(plan.shards) == len(plan.units)
    assert all(1 <= s <= n for s in plan.shards)
    by_shard = [u.name for k in range(1, n + 1) for u in plan.units_of(k)]
    assert sorted(by_shard) == sorted(u.name for u in plan.units)
    assert len(set(by_shard)) == len(by_shard)
    names = {u.name for u in plan.units}
    assert "fio" in names and "xfstests/fuse/generic/001" in names and "xfstests/xfs/generic/039" in names
    assert "xfstests/fuse/generic/040" not in names  # excluded
    assert len(names) == 1 + 2 * 39
    testcases = plan.testcases()
    assert testcases["fio/xfs/randwrite-4k-nj2"] == plan.shard_of("fio")
    if n > 1:  # every shard has work
        assert all(plan.units_of(k) for k in range(1, n + 1))


def test_the_fio_round_is_one_unit(cfg):
    fio = [u for u in make_plan(cfg, 8).units if u.kind == "fio"]
    assert len(fio) == 1
    assert fio[0].testcases == ("fio/xfs/randwrite-4k-nj1", "fio/xfs/randwrite-4k-nj2",
                                "fio/fuse-passthrough/randwrite-4k-nj1",
                                "fio/fuse-passthrough/randwrite-4k-nj2")


def test_same_plan_twice_and_with_the_variants_reordered(tmp_path, small_tree, cfg):
    again = config.load(write_config(tmp_path, small_tree, ["baseline", "v1", "v2", "v3"], "again.toml"))
    reordered = config.load(write_config(tmp_path, small_tree, ["v3", "v1", "baseline", "v2"], "r.toml"))
    times = {"xfstests/fuse/generic/007": {"v1": 300.0, "baseline": 280.0}}
    for n in (1, 3, 8):
        a = make_plan(cfg, n, times=times)
        assert a == make_plan(again, n, times=dict(reversed(list(times.items()))))
        assert a == make_plan(reordered, n, times=times)
        assert a.digest == make_plan(reordered, n, times=times).digest
        assert a.variants == ("baseline", "v1", "v2", "v3")
    assert make_plan(cfg, 2).digest != make_plan(cfg, 3).digest


def test_same_plan_in_another_interpreter(cfg):
    """Another process (another hash seed: set and dict order) on this host:
    the same digest."""
    code = ("import sys; from kvariant import config; from kvariant.shard.plan import make_plan; "
            "print(make_plan(config.load(sys.argv[1]), 4).digest)")
    out = subprocess.run([sys.executable, "-c", code, str(cfg.path)], capture_output=True, text=True,
                         cwd=PROJECT, env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.strip() == make_plan(cfg, 4).digest


def test_the_plan_round_trips_through_json(cfg):
    plan = make_plan(cfg, 3)
    back = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert back == plan and back.digest == plan.digest
    with pytest.raises(ValueError):
        Plan.from_dict({**plan.to_dict(), "n": 2})  # a unit in shard 3 of 2


def test_without_times_tests_are_spread_by_count(cfg):
    plan = make_plan(cfg, 4)
    counts = [sum(u.kind == "xfstests" for u in plan.units_of(k)) for k in range(1, 5)]
    assert max(counts) - min(counts) <= 1 + max(counts) // 2  # the fio shard takes fewer tests
    fio_shard = plan.shard_of("fio")
    others = [c for k, c in enumerate(counts, 1) if k != fio_shard]
    assert max(others) - min(others) <= 1


def test_longest_processing_time_first():
    assert assign([5, 4, 3, 3, 3], 2) == [1, 2, 2, 1, 2]
    assert assign([1, 1, 1, 1], 4) == [1, 2, 3, 4]
    assert assign([], 3) == []


def test_known_times_balance_the_shards(cfg):
    """One test eighty times longer than the rest: it gets a shard to
    itself, the others share the rest evenly, and the balance beats a plan
    that does not know."""
    times = {f"xfstests/{f}/{t}": {v: 10.0 for v in ("baseline", "v1", "v2", "v3")}
             for f in ("fuse", "xfs") for t in TESTS}
    times["xfstests/xfs/generic/017"] = {v: 800.0 for v in ("baseline", "v1", "v2", "v3")}
    informed = make_plan(cfg, 4, times=times)
    long_shard = informed.shard_of("xfstests/xfs/generic/017")
    assert [u.name for u in informed.units_of(long_shard)] == ["xfstests/xfs/generic/017"]
    rest = [load for k, load in enumerate(informed.loads(), 1) if k != long_shard]
    assert max(rest) - min(rest) <= 40.0  # one short test over the four variants
    blind = dataclasses.replace(make_plan(cfg, 4), units=informed.units)  # the blind assignment, real times
    assert balance(informed) < balance(blind)
    assert balance(informed) == pytest.approx(max(informed.loads()) / (sum(informed.loads()) / 4))


def test_balances_at_2_4_8_from_measured_times(cfg):
    """The times of a real xfstests run (tests/fixtures) for six tests,
    the rest estimated: a figure per N, each >= 1."""
    measured = parse_check_time((FIXTURES / "xfstests-xfs-6tests" / "check.time").read_text())
    times = {f"xfstests/xfs/{t}": {"baseline": s} for t, s in measured.items()}
    got = balances(cfg, times=times)
    assert set(got) == {2, 4, 8}
    assert all(b >= 1.0 for b in got.values())
    assert balances(make_single(cfg), ns=(1,)) == {1: 1.0}


def make_single(cfg):
    return dataclasses.replace(cfg, xfstests=None)


def test_known_times_from_a_summary():
    summary = RunSummary.load(FIXTURES / "runs" / "run-a")
    times = known_times(summary.variants)
    assert times["fio/xfs/randwrite-4k-nj1"]["baseline"] > 0
    assert "boot" not in times and set(times["fio/xfs/randwrite-4k-nj1"]) == {"baseline", "parallel-dio"}


def test_a_group_selection_without_a_list_is_one_unit_per_fstype(cfg):
    grouped = dataclasses.replace(cfg, xfstests=XfstestsConfig(groups=("quick",)))
    names = [u.name for u in make_plan(grouped, 2).units]
    assert names == ["fio", "xfstests/fuse", "xfstests/xfs"]
    listed = make_plan(grouped, 2, tests={"fuse": ["generic/002", "generic/001"], "xfs": []})
    assert [u.name for u in listed.units] == ["fio", "xfstests/fuse/generic/001", "xfstests/fuse/generic/002"]


def test_host_selection_reads_group_lists():
    known = parse_group_list("# generated\n\n001 rw auto quick\n002 auto\n003 quick # x\n", "generic")
    known.update(parse_group_list("100 auto quick\n", "xfs"))
    cfg = XfstestsConfig(groups=("quick",), tests=("generic/00[2]",), exclude=("generic/003",))
    assert select(known, cfg) == ["generic/001", "generic/002", "xfs/100"]
    assert select(known, XfstestsConfig(tests=("generic/002", "generic/999"))) == ["generic/002"]


def test_a_variant_no_run_had_counts_as_the_mean_of_those_it_had(cfg):
    """A new patch revision (v3) has no times yet: each of its tests counts
    as that test's mean over the variants measured, not the default."""
    times = {f"xfstests/xfs/{t}": {"baseline": 10.0, "v1": 30.0} for t in TESTS}
    times["fio/xfs/randwrite-4k-nj1"] = {"baseline": 100.0}
    plan = make_plan(cfg, 2, times=times)
    unit = next(u for u in plan.units if u.name == "xfstests/xfs/generic/001")
    assert unit.seconds == pytest.approx(10 + 30 + 20 + 20)
    fio = next(u for u in plan.units if u.kind == "fio")
    assert fio.seconds > 4 * 100.0
