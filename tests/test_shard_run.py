"""``pipeline.py run --kernels DIR --shard K/N`` without a VM: the store
written by ``build`` from a kernel the cache holds (test_store.py), the
tree gone afterwards, and the shard that the plan gives no unit (it boots
nothing).  Which K/N, from the option or the CI's environment; a store
that does not match the config; which workloads a shard's units run."""
import json
import shutil

import pytest

from conftest import FIXTURES, git
from kvariant import cli, config
from kvariant.config import XfstestsConfig
from kvariant.errors import ConfigError
from kvariant.pipeline.fio_workload import FioWorkload
from kvariant.pipeline.xfstests_workload import XfstestsWorkload, selected
from kvariant.shard.plan import MAX_SHARDS, Unit, make_plan
from kvariant.shard.runner import workloads
from kvariant.shard.spec import ShardSpec, shard_spec
from kvariant.summary import RunSummary
from test_store import cached_kernel


# -- K/N ----------------------------------------------------------------------

@pytest.mark.parametrize("option, total, env, want", [
    ("2/4", None, {}, (2, 4, "--shard")),
    (" 1/1", None, {"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "4"}, (1, 1, "--shard")),  # the option wins
    (None, None, {"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "4", "JOB_COMPLETION_INDEX": "0"},
     (3, 4, "CI_NODE_INDEX/CI_NODE_TOTAL")),  # GitLab's before Kubernetes'
    (None, "4", {"JOB_COMPLETION_INDEX": "0"}, (1, 4, "JOB_COMPLETION_INDEX/--shard-total")),
    (None, "4", {"JOB_COMPLETION_INDEX": "3"}, (4, 4, "JOB_COMPLETION_INDEX/--shard-total")),
    (None, None, {}, (1, 1, "default")),
])
def test_which_shard(option, total, env, want):
    assert shard_spec(option, total, env) == ShardSpec(*want)


@pytest.mark.parametrize("option, total, env, message", [
    ("0/2", None, {}, "--shard: expected a shard K in 1..2 (N = 2), got 0"),
    ("3/2", None, {}, "--shard: expected a shard K in 1..2 (N = 2), got 3"),
    ("1/0", None, {}, f"--shard: expected a number of shards N in 1..{MAX_SHARDS}, got 0"),
    (f"1/{MAX_SHARDS + 1}", None, {}, f"--shard: expected a number of shards N in 1..{MAX_SHARDS}, "
                                      f"got {MAX_SHARDS + 1}"),
    ("a/2", None, {}, "--shard: expected K, a whole number, got 'a'"),
    ("-1/2", None, {}, "--shard: expected K, a whole number, got '-1'"),
    ("2", None, {}, "--shard: expected K/N (shard K of N, e.g. 2/4), got '2'"),
    ("1/2/3", None, {}, "--shard: expected K/N (shard K of N, e.g. 2/4), got '1/2/3'"),
    ("1/2", "2", {}, "--shard-total: expected either --shard K/N or --shard-total N "
                     "(with JOB_COMPLETION_INDEX), got both"),
    (None, None, {"CI_NODE_INDEX": "5", "CI_NODE_TOTAL": "4"},
     "CI_NODE_INDEX/CI_NODE_TOTAL: expected a shard K in 1..4 (N = 4), got 5"),
    (None, None, {"CI_NODE_INDEX": "1"}, "CI_NODE_TOTAL: expected CI_NODE_INDEX and CI_NODE_TOTAL "
                                         "together (GitLab's parallel: N), got one of them"),
    (None, None, {"CI_NODE_INDEX": "x", "CI_NODE_TOTAL": "2"}, "CI_NODE_INDEX: expected K, a whole "
                                                               "number, got 'x'"),
    (None, None, {"JOB_COMPLETION_INDEX": "0"}, "--shard-total: expected --shard-total N with "
                                                "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's "
                                                "index, 0-based)"),
    (None, "2", {"JOB_COMPLETION_INDEX": "2"}, "JOB_COMPLETION_INDEX: expected an index in 0..1 "
                                               "(--shard-total 2), got 2"),
    (None, "0", {"JOB_COMPLETION_INDEX": "0"}, f"--shard-total: expected a number of shards N in "
                                               f"1..{MAX_SHARDS}, got 0"),
    (None, "2", {}, "--shard-total: expected JOB_COMPLETION_INDEX in the environment "
                    "(else give --shard K/N)"),
])
def test_bad_shards(option, total, env, message):
    with pytest.raises(ConfigError) as e:
        shard_spec(option, total, env)
    assert str(e.value) == message


# -- what a shard's units run ---------------------------------------------------

def test_workloads_of_units():
    assert workloads([]) == ()
    fio, = workloads([Unit("fio", ("fio/xfs/x",), 1.0)])
    assert isinstance(fio, FioWorkload)
    _, xfs = workloads([Unit("fio", (), 1.0), Unit("xfstests/xfs/generic/001", (), 1.0),
                        Unit("xfstests/xfs/generic/013", (), 1.0), Unit("xfstests/fuse", (), 1.0)])
    assert isinstance(xfs, XfstestsWorkload)
    assert xfs.only == {"xfs": ("generic/001", "generic/013"), "fuse": None}


def test_a_shard_runs_its_tests_alone():
    cfg = XfstestsConfig(fstypes=("xfs", "fuse"), tests=("generic/001", "generic/002"),
                         groups=("quick",), exclude=("generic/003",))
    assert selected(cfg, None) == [("xfs", cfg), ("fuse", cfg)]
    (fstype, one), = selected(cfg, {"fuse": ("generic/002",)})
    assert fstype == "fuse" and one.tests == ("generic/002",) and one.groups == () and one.exclude == ()
    assert selected(cfg, {"xfs": None}) == [("xfs", cfg)]


# -- a shard from a store, without the tree --------------------------------------

@pytest.fixture
def store(tmp_path, small_tree, cache):
    """A store of two variants of one kernel (the cache's), the config
    fio-only: the plan has one unit, so shard 2/2 has none."""
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n[fio]\ntargets = ["xfs"]\n'
                    '[[variant]]\nname = "baseline"\n[[variant]]\nname = "again"\n')
    cached_kernel(cache, git(small_tree, "rev-parse", "v1"))
    store = tmp_path / "store"
    assert cli.main(["build", "--config", str(conf), "--kernels", str(store)]) == 0
    return conf, store


def shard_run(conf, store, tmp_path, *extra):
    return cli.main(["run", "--config", str(conf), "--kernels", str(store), "--results",
                     str(tmp_path / "results"), *extra])


def test_a_shard_without_units_boots_nothing_and_needs_no_tree(store, tmp_path, small_tree, capsys):
    conf, store_dir = store
    shutil.rmtree(small_tree)  # the shard's host has no tree
    assert shard_run(conf, store_dir, tmp_path, "--shard", "2/2", "--run-id", "s2") == 0
    run = RunSummary.load(tmp_path / "results" / "s2")
    plan = make_plan(config.load(conf, config.KernelSource(base_commit="0" * 40)), 2)
    assert run.shard == {"k": 2, "n": 2, "plan_digest": plan.digest, "plan": plan.to_dict(),
                         "store": json.loads((store_dir / "_store.json").read_text())["digest"]}
    assert plan.units_of(2) == []
    for v in run.variants:
        assert [(s.name, s.status.value) for s in v.stages] == [("apply", "pass"), ("build", "pass")]
        assert v.info.complete and v.info.build.kernel_dir == str(store_dir / v.name)
        assert (tmp_path / "results" / "s2" / v.name / "build.log").is_file()
    stored = json.loads((store_dir / "baseline" / "metadata.json").read_text())["testcases"]
    assert run.variants[0].stages[1].message == stored[1]["message"]
    assert run.finished and "no unit: nothing to boot" in capsys.readouterr().err


def test_the_environment_gives_the_shard(store, tmp_path, monkeypatch):
    conf, store_dir = store
    monkeypatch.setenv("CI_NODE_INDEX", "2")
    monkeypatch.setenv("CI_NODE_TOTAL", "2")
    assert shard_run(conf, store_dir, tmp_path, "--run-id", "gitlab") == 0
    assert RunSummary.load(tmp_path / "results" / "gitlab").shard["k"] == 2
    monkeypatch.delenv("CI_NODE_INDEX")
    monkeypatch.delenv("CI_NODE_TOTAL")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    assert shard_run(conf, store_dir, tmp_path, "--shard-total", "2", "--run-id", "k8s") == 0
    assert RunSummary.load(tmp_path / "results" / "k8s").shard["k"] == 2


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_store_that_does_not_match(store, tmp_path, capsys):
    conf, store_dir = store
    other = tmp_path / "other.toml"
    other.write_text(conf.read_text() + "# changed\n")
    assert shard_run(other, store_dir, tmp_path, "--shard", "2/2") == 1
    assert one_error(capsys).startswith(f"kvariant: error: {store_dir / '_store.json'}: config_sha256: "
                                        f"expected a store built from {other} (sha256 ")
    image = store_dir / "again" / "bzImage"
    image.write_bytes(b"another kernel")
    assert shard_run(conf, store_dir, tmp_path, "--shard", "2/2") == 1
    assert one_error(capsys) == (f"kvariant: error: {image}: expected the kernel the store's "
                                 f"metadata.json records (missing or changed: copy the whole store)")
    shutil.rmtree(store_dir / "again")
    assert shard_run(conf, store_dir, tmp_path, "--shard", "2/2") == 1
    assert "again/metadata.json: not found: expected variant again in the kernel store" in one_error(capsys)
    assert shard_run(conf, tmp_path, tmp_path, "--shard", "1/2") == 1
    assert "_store.json: not found: not a kernel store" in one_error(capsys)


@pytest.mark.parametrize("argv, message", [
    (["--shard", "3/2"], "--shard: expected a shard K in 1..2 (N = 2), got 3"),
    (["--shard", "1/x"], "--shard: expected N, a whole number, got 'x'"),
    (["--shard", "1/2", "--against", "last"], "--against: expected no --against with --kernels "
                                              "(give it to merge)"),
    (["--shard", "1/2", "--resume", "x"], "--resume: expected no --resume with --kernels "
                                          "(run the shard again)"),
])
def test_bad_shard_arguments(store, tmp_path, capsys, argv, message):
    conf, store_dir = store
    assert shard_run(conf, store_dir, tmp_path, *argv) == 1
    assert one_error(capsys) == f"kvariant: error: {message}"
    assert not (tmp_path / "results").exists()


def test_a_shard_needs_a_store(store, tmp_path, capsys):
    conf, _ = store
    assert cli.main(["run", "--config", str(conf), "--shard", "1/2"]) == 1
    assert one_error(capsys) == ("kvariant: error: --shard: expected --kernels DIR too: a shard boots "
                                 "the kernels of a store (pipeline.py build --kernels DIR)")


def test_shards_merge(store, tmp_path, monkeypatch):
    """Shard 2/2 alone merged: shard 1's testcases are errors naming it."""
    conf, store_dir = store
    assert shard_run(conf, store_dir, tmp_path, "--shard", "2/2", "--run-id", "s2") == 0
    out = tmp_path / "merged"
    assert cli.main(["merge", str(tmp_path / "results" / "s2"), "--out", str(out)]) == 2
    merged = RunSummary.load(out)
    fio = next(s for s in merged.variants[0].stages if s.name.startswith("fio/"))
    assert fio.message == "not run: shard 1/2 is missing from the merge"


# -- the times every shard plans on, carried by the store -------------------------

RUN_A = FIXTURES / "runs" / "run-a"
RUN_A_NAME = f"{RunSummary.load(RUN_A).run_id} ({RUN_A})"


def test_a_store_built_with_plan_times_gives_every_shard_them(store, tmp_path, small_tree, capsys):
    """build --plan-times RUN: the store's index carries RUN's times; each
    shard plans on them (the fio unit's seconds are RUN's, the variant RUN
    lacked counted as the mean of the others), so its plan's digest differs
    from a plan by count, and merge would refuse to mix the two."""
    conf, store_dir = store
    by_count = make_plan(config.load(conf, config.KernelSource(base_commit="0" * 40)), 2)
    assert cli.main(["build", "--config", str(conf), "--kernels", str(store_dir),
                     "--plan-times", str(RUN_A)]) == 0
    index = json.loads((store_dir / "_store.json").read_text())
    assert index["plan_times"]["runs"] == [RUN_A_NAME]
    measured = index["plan_times"]["tests"]["fio/xfs/randwrite-4k-nj1"]
    assert set(measured) == {"baseline", "parallel-dio"}
    capsys.readouterr()
    assert shard_run(conf, store_dir, tmp_path, "--shard", "2/2", "--run-id", "timed") == 0
    assert f"balanced by the times of {RUN_A_NAME}" in capsys.readouterr().err
    plan = RunSummary.load(tmp_path / "results" / "timed").shard["plan"]
    fio, = plan["units"]
    names = fio["testcases"]
    want = sum(index["plan_times"]["tests"][t]["baseline"] for t in names)  # baseline measured ...
    want += sum(sum(index["plan_times"]["tests"][t].values()) / 2 for t in names)  # ... "again" not
    assert fio["seconds"] == pytest.approx(want, abs=0.01)
    assert RunSummary.load(tmp_path / "results" / "timed").shard["plan_digest"] != by_count.digest


def test_plan_times_from_the_environment_and_bad_ones(store, tmp_path, monkeypatch, capsys):
    conf, store_dir = store
    monkeypatch.setenv("KVARIANT_PLAN_TIMES", f"{RUN_A}:")
    assert cli.main(["build", "--config", str(conf), "--kernels", str(store_dir)]) == 0
    assert json.loads((store_dir / "_store.json").read_text())["plan_times"]["runs"] == [RUN_A_NAME]
    monkeypatch.setenv("KVARIANT_PLAN_TIMES", "")  # empty: by count
    assert cli.main(["build", "--config", str(conf), "--kernels", str(store_dir)]) == 0
    assert "plan_times" not in json.loads((store_dir / "_store.json").read_text())
    capsys.readouterr()
    before = (store_dir / "_store.json").read_text()
    assert cli.main(["build", "--config", str(conf), "--kernels", str(store_dir),
                     "--plan-times", str(tmp_path)]) == 1
    assert one_error(capsys).startswith(f"kvariant: error: {tmp_path / 'summary.json'}")
    assert (store_dir / "_store.json").read_text() == before  # refused before anything was built
    index = json.loads(before)
    index["plan_times"] = {"runs": [], "tests": {"fio/xfs/randwrite-4k-nj1": {"baseline": "slow"}}}
    (store_dir / "_store.json").write_text(json.dumps(index))
    assert shard_run(conf, store_dir, tmp_path, "--shard", "1/2") == 1
    assert one_error(capsys) == (f"kvariant: error: {store_dir / '_store.json'}: plan_times: expected "
                                 "{runs, tests: {testcase: {variant: seconds}}} as build --plan-times "
                                 "writes it")
