"""``pipeline.py merge``: shard run directories made from a real run
(tests/fixtures/runs/run-a, with xfstests results of
tests/fixtures/xfstests-xfs-6tests), split as the plan says, merged back
into the run they came from; a shard missing or cut short leaves errors
naming it; shards that do not belong together are refused."""
import copy
import json
from pathlib import Path

import pytest

from conftest import FIXTURES
from kvariant import cli, config
from kvariant.shard.plan import make_plan
from kvariant.summary import RunSummary
from kvariant.workloads.xfstests.results import parse_check_time

TIMES = parse_check_time((FIXTURES / "xfstests-xfs-6tests" / "check.time").read_text())


def whole_run() -> dict:
    """run-a's summary with an xfstests test per line of check.time and a
    dmesg testcase, as a run without shards would have them."""
    data = json.loads((FIXTURES / "runs" / "run-a" / "summary.json").read_text())
    for v in data["variants"]:
        v["stages"] += [{"name": f"xfstests/xfs/{t}", "status": "pass", "seconds": s,
                         "suite": "xfstests.xfs", "log": f"xfstests/xfs/"} for t, s in TIMES.items()]
        v["stages"].append({"name": "dmesg", "status": "pass", "suite": "kernel", "log": "console.log",
                            "message": "no kernel splats"})
        v["info"]["complete"] = True
    return data


@pytest.fixture
def plan(tmp_path, small_tree):
    tests = ", ".join(f'"{t}"' for t in TIMES)
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n'
                    '[fio]\ntargets = ["fuse-passthrough", "xfs"]\nnumjobs = [1, 2, 4]\n'
                    f'[xfstests]\nfstypes = ["xfs"]\ntests = [{tests}]\n'
                    '[[variant]]\nname = "baseline"\n[[variant]]\nname = "parallel-dio"\n')
    return make_plan(config.load(conf), 2)


def shard_dirs(tmp_path: Path, plan, store: str = "store-digest") -> list[Path]:
    """The whole run cut into the plan's shards, each a run directory."""
    whole, testcases = whole_run(), plan.testcases()
    dirs = []
    for k in range(1, plan.n + 1):
        data = copy.deepcopy(whole)
        data["run_id"] = f"shard-{k}"
        for v in data["variants"]:
            v["stages"] = [s for s in v["stages"] if testcases.get(s["name"], k) == k]
            (tmp_path / f"shard-{k}" / v["name"]).mkdir(parents=True)
            (tmp_path / f"shard-{k}" / v["name"] / "console.log").write_text(f"shard {k} console\n")
        data["shard"] = {"k": k, "n": plan.n, "plan_digest": plan.digest, "plan": plan.to_dict(),
                         "store": store}
        (tmp_path / f"shard-{k}" / "summary.json").write_text(json.dumps(data))
        dirs.append(tmp_path / f"shard-{k}")
    return dirs


def names(run: RunSummary, variant: str) -> list[str]:
    return [s.name for s in next(v for v in run.variants if v.name == variant).stages]


def test_the_plan_splits_this_run(plan):
    assert {plan.shard_of(u.name) for u in plan.units} == {1, 2}


def test_merged_shards_are_the_run_they_came_from(tmp_path, plan, capsys):
    out = tmp_path / "merged"
    assert cli.main(["merge", *map(str, shard_dirs(tmp_path, plan)), "--out", str(out)]) == 0
    merged, whole = RunSummary.load(out), RunSummary.from_dict(Path("whole.json"), whole_run())
    for v in whole.variants:
        assert names(merged, v.name) == [s.name for s in v.stages]
        got = {s.name: s.status for s in next(m for m in merged.variants if m.name == v.name).stages}
        assert got == {s.name: s.status for s in v.stages}
    assert merged.finished and merged.shard["k"] is None and merged.shard["missing"] == []
    assert [m["k"] for m in merged.shard["merged"]] == [1, 2]
    assert (out / "baseline" / "shard-2" / "console.log").read_text() == "shard 2 console\n"
    boot = next(s for s in merged.variants[0].stages if s.name == "boot")
    assert boot.log == "shard-1/console.log"
    junit = (out / "parallel-dio" / "junit.xml").read_text()
    assert junit.count("<testcase ") == len(whole.variants[1].stages)
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    assert "=== shard 2/2" in (out / "run.log").read_text()


def test_a_missing_shard_turns_its_testcases_into_errors(tmp_path, plan):
    out = tmp_path / "merged"
    one, _ = shard_dirs(tmp_path, plan)
    assert cli.main(["merge", str(one), "--out", str(out)]) == 2
    merged = RunSummary.load(out)
    lost = [t for t, k in plan.testcases().items() if k == 2]
    assert lost
    for v in merged.variants:
        by_name = {s.name: s for s in v.stages}
        for t in lost:
            assert by_name[t].status.value == "error"
            assert by_name[t].message == "not run: shard 2/2 is missing from the merge"
        assert names(merged, v.name)[-1] == "dmesg"
    assert merged.shard["missing"] == [2] and not merged.finished
    assert "shard 2/2 is missing from the merge" in (out / "baseline" / "junit.xml").read_text()


def test_a_shard_cut_short_and_a_boot_that_failed_in_one_shard(tmp_path, plan):
    dirs = shard_dirs(tmp_path, plan)
    data = json.loads((dirs[1] / "summary.json").read_text())
    dropped = data["variants"][0]["stages"].pop()  # its last workload testcase never ended
    if dropped["name"] == "dmesg":
        dropped = data["variants"][0]["stages"].pop(-1)
    data["variants"][1]["stages"][2].update(status="error", message="boot timed out")
    (dirs[1] / "summary.json").write_text(json.dumps(data))
    out = tmp_path / "merged"
    assert cli.main(["merge", *map(str, dirs), "--out", str(out)]) == 2
    merged = RunSummary.load(out)
    lost = next(s for s in merged.variants[0].stages if s.name == dropped["name"])
    assert lost.message == "not run: shard 2/2 did not report it"
    boot = next(s for s in merged.variants[1].stages if s.name == "boot")
    assert boot.status.value == "error" and boot.message == "shard 2/2: boot timed out"


def test_shards_that_do_not_belong_together_are_refused(tmp_path, plan, capsys):
    a = shard_dirs(tmp_path / "a", plan)
    b = shard_dirs(tmp_path / "b", plan, store="another-store")
    out = str(tmp_path / "merged")
    assert cli.main(["merge", str(a[0]), str(b[1]), "--out", out]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shard.store: expected the kernel store of" in err[0]
    data = json.loads((b[1] / "summary.json").read_text())
    data["config_sha256"] = "0" * 64
    (b[1] / "summary.json").write_text(json.dumps(data))
    assert cli.main(["merge", str(a[0]), str(b[1]), "--out", out]) == 1
    assert "config_sha256: expected the config of" in capsys.readouterr().err
    assert cli.main(["merge", str(a[0]), str(a[0]), "--out", out]) == 1
    assert "got shard 1 twice" in capsys.readouterr().err
    assert cli.main(["merge", str(FIXTURES / "runs" / "run-a"), "--out", out]) == 1
    assert "shard: expected the run of one shard (run --shard K/N), got no shard record" in capsys.readouterr().err
    data = json.loads((a[1] / "summary.json").read_text())
    data["shard"]["plan"]["units"][0]["shard"] = 3 - data["shard"]["plan"]["units"][0]["shard"]
    (a[1] / "summary.json").write_text(json.dumps(data))
    assert cli.main(["merge", str(a[1]), "--out", out]) == 1
    assert "shard.plan: expected the plan its digest names" in capsys.readouterr().err
    assert not Path(out).exists() or not any(Path(out).iterdir())


def test_merge_refuses_an_out_directory_that_holds_files(tmp_path, plan, capsys):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert cli.main(["merge", *map(str, shard_dirs(tmp_path, plan)), "--out", str(out)]) == 1
    assert "--out: expected a new or empty directory" in capsys.readouterr().err


def test_summaries_without_a_shard_record_still_load():
    assert RunSummary.load(FIXTURES / "runs" / "run-a").shard is None


def test_merge_against_an_earlier_run(tmp_path, plan):
    """--against: the verdict of a merged run against the run it came
    from: nothing regressed."""
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "summary.json").write_text(json.dumps(whole_run()))
    out = tmp_path / "merged"
    dirs = shard_dirs(tmp_path, plan)
    assert cli.main(["merge", *map(str, dirs), "--out", str(out), "--against", str(earlier)]) == 0
    assert "regression" not in (out / "summary.json").read_text()
