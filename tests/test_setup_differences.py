"""Runs measured with different setups (another fio bs, runtime, guest,
accelerator, FUSE policy): the report says first what differs, and no
better/worse verdict is given across them unless --force."""
import json
import shutil
import types

from conftest import FIXTURES
from kvariant import cli, config, stats
from kvariant.compare import compare_runs, load_run
from kvariant.comparison import regressions, regressions_since
from kvariant.junit import write_junit
from kvariant.model import VariantResult
from kvariant.report import apply_regressions
from kvariant.ui import UI
from kvariant.pipeline.run import Run
from kvariant.summary import SETUP_KEYS, RunSummary, setup_record

RUNS = FIXTURES / "runs"
SETUP = {"accel": "tcg", "vm.cpus": 2, "vm.memory": "4G", "null_blk.gb": 4, "null_blk.bs": 4096,
         "fio.rw": "randwrite", "fio.bs": "4k", "fio.ioengine": "libaio", "fio.iodepth": 64,
         "fio.size": "1G", "fio.runtime": 10.0, "fio.ramp_time": 2.0,
         "fuse.parallel_direct_writes": True, "fuse.direct_io": False, "fuse.threads": 4,
         "kernel.fragments": ["fuse-xfs-nullblk.config"]}


def with_setup(name, dest, accel=None, record=True, **changes):
    """A copy of a fixture run; with a setup record (SETUP, with *changes*:
    fio__bs="64k" sets fio.bs) unless not *record*; run under *accel*."""
    shutil.copytree(RUNS / name, dest)
    path = dest / "summary.json"
    data = json.loads(path.read_text())
    if record:
        data["setup"] = {**SETUP, **{k.replace("__", "."): v for k, v in changes.items()}}
    if accel:
        data["accel"] = {"kvm": accel == "kvm", "reason": "test"}
        if record:
            data["setup"]["accel"] = accel
    path.write_text(json.dumps(data))
    return dest


def cross_run(c):
    """The verdicts of pairs whose sides are in different runs."""
    return [d.verdict for p in c.points for d in p.deltas
            if c.variant(d.a).run_id != c.variant(d.b).run_id]


def test_different_setups_are_said_first_and_not_judged(tmp_path):
    a = with_setup("run-a", tmp_path / "run-a")
    b = with_setup("run-b", tmp_path / "run-b", fio__bs="64k", vm__cpus=4, fuse__parallel_direct_writes=False)
    c = compare_runs([load_run(a), load_run(b)])
    assert c.setup_differences == ["vm.cpus: 2 in 20261121-220102, 4 in 20261122-091500",
                                   "fio.bs: 4k in 20261121-220102, 64k in 20261122-091500",
                                   "fuse.parallel_direct_writes: true in 20261121-220102, "
                                   "false in 20261122-091500"]
    verdicts = cross_run(c)
    assert verdicts and set(verdicts) == {stats.NOT_COMPARED}
    d = next(d for p in c.points for d in p.deltas if d.verdict == stats.NOT_COMPARED)
    assert d.reason == ("the runs' setups differ (vm.cpus, fio.bs, fuse.parallel_direct_writes); "
                        "--force judges anyway")
    # within run-b, the variants share a setup: judged as ever
    in_b = [d.verdict for p in c.points for d in p.deltas if d.kind == "in-run"]
    assert stats.NOT_COMPARED not in in_b and {stats.BETTER, stats.WORSE} & set(in_b)
    # no fio regression is against a variant of the other run
    fio_regs = [r for r in regressions(c) if r.testcase.startswith("fio/")]
    assert fio_regs and all(r.message.split(" against ")[1].startswith(r.variant.split(":")[0])
                            for r in fio_regs)
    assert regressions_since(c, "20261121-220102", "20261122-091500") == []

    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "report.md").read_text().splitlines()
    assert md[2].startswith("**The runs' setups differ: vm.cpus: 2 in 20261121-220102, 4 in 20261122-091500; ")
    assert md[2].endswith("No better/worse verdict is given across them (\"not compared\"); --force gives one.**")
    assert "setups differ: vm.cpus: 2 in 20261121-220102" in (tmp_path / "out" / "report.html").read_text()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["setup_differences"] == c.setup_differences


def test_force_judges_across_setups(tmp_path, capsys):
    a = with_setup("run-a", tmp_path / "run-a")
    b = with_setup("run-b", tmp_path / "run-b", fio__runtime=30.0)
    same = compare_runs([load_run(RUNS / "run-a"), load_run(RUNS / "run-b")])
    forced = compare_runs([load_run(a), load_run(b)], force=True)
    assert cross_run(forced) == cross_run(same) and stats.WORSE in cross_run(forced)
    assert forced.setup_differences == ["fio.runtime: 10 in 20261121-220102, 30 in 20261122-091500"]
    assert regressions_since(forced, "20261121-220102", "20261122-091500")
    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "out"), "--force"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == ("The runs' setups differ: fio.runtime: 10 in 20261121-220102, 30 in 20261122-091500. "
                     "Verdicts across them are given all the same (--force).")


def test_against_a_run_with_another_setup_fails_nothing_without_force(tmp_path):
    """run --against: the regression verdict follows the same rule."""
    old = with_setup("run-a", tmp_path / "20261121-220102", accel="kvm", record=False)
    new = with_setup("run-b", tmp_path / "20261122-091500")
    results = [VariantResult.from_dict(v) for v in json.loads((new / "summary.json").read_text())["variants"]]
    for r in results:
        write_junit(r, new / r.name / "junit.xml")
    run = types.SimpleNamespace(run_dir=new, run_id="20261122-091500", threshold=0.05, results=results,
                                save=lambda final: None, force=False)
    assert apply_regressions(run, old, None) == []
    run.force = True
    assert [r.testcase for r in apply_regressions(run, old, None)] == ["fio/fuse-passthrough/randwrite-4k-nj2"]


def test_older_summaries_stay_loadable_and_say_so(tmp_path):
    c = compare_runs([load_run(RUNS / "run-a"), load_run(RUNS / "run-b")])
    assert c.setup_differences == [] and stats.WORSE in cross_run(c)
    assert "Run 20261121-220102 does not record its setup (an older summary): of it only the " \
           "accelerator is checked." in c.notes
    # an older summary of a KVM run against a TCG one: the accelerator alone is enough to tell
    kvm = with_setup("run-b", tmp_path / "run-b", accel="kvm", record=False)
    c = compare_runs([load_run(RUNS / "run-a"), load_run(kvm)])
    assert c.setup_differences == ["accel: tcg in 20261121-220102, kvm in 20261122-091500"]
    assert set(cross_run(c)) == {stats.NOT_COMPARED}


def test_a_setup_of_the_wrong_type_is_one_line(tmp_path, capsys):
    bad = with_setup("run-a", tmp_path / "run-a")
    data = json.loads((bad / "summary.json").read_text())
    (bad / "summary.json").write_text(json.dumps({**data, "setup": ["4k"]}))
    assert cli.main(["compare", str(bad)]) == 1
    assert capsys.readouterr().err.strip() == (f"kvariant: error: {bad}/summary.json: setup: "
                                               "expected an object, got a list")


def test_summary_records_the_setup(tmp_path, small_tree, cache):
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n[fio]\nbs = "64k"\n'
                    '[vm]\ncpus = 1\n[[variant]]\nname = "baseline"\n')
    cfg = config.load(conf)
    record = setup_record(cfg, kvm=False)
    assert tuple(record) == SETUP_KEYS
    assert (record["fio.bs"], record["vm.cpus"], record["accel"]) == ("64k", 1, "tcg")
    run = Run(cfg, tmp_path / "r", "r", UI())
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text(json.dumps(RunSummary.of_run(run, final=True).to_dict()))
    assert load_run(tmp_path / "r").setup == setup_record(cfg, run.accel.kvm)
