"""Runner logic that needs no VM: how a stage failure or a missing
xfstests tree is recorded."""
import json
import xml.etree.ElementTree as ET

from conftest import broken_patch_config
from kvariant import config
from kvariant.model import Status, VariantResult
from kvariant.ui import UI
from kvariant.pipeline.run import Run
from kvariant.pipeline.variant import VariantRun
from kvariant.pipeline.xfstests_workload import XfstestsWorkload


def make_run(tmp_path, small_tree, extra=""):
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n{extra}\n'
                    '[[variant]]\nname = "baseline"\n')
    cfg = config.load(conf)
    run = Run(cfg, tmp_path / "results" / "r", "r", UI())
    run.run_dir.mkdir(parents=True)
    result = VariantResult("baseline")
    run.results.append(result)
    return run, VariantRun(run, cfg.variants[0], result)


def test_xfstests_without_tree_is_skipped_with_reason(tmp_path, small_tree, cache):
    run, vr = make_run(tmp_path, small_tree, '[xfstests]\ntests = ["generic/001"]\n')
    XfstestsWorkload().run(vr)
    stage = vr.result.stage("xfstests")
    assert stage.status == Status.SKIP and stage.message == "xfstests not run: no xfstests.dir configured"
    case = next(c for c in ET.parse(vr.dir / "junit.xml").getroot().iter("testcase")
                if c.get("name") == "xfstests")
    assert case.find("skipped").get("message") == stage.message


def test_xfstests_bad_tree_fails_when_required(tmp_path, small_tree, cache):
    (tmp_path / "xt").mkdir()
    run, vr = make_run(tmp_path, small_tree, f'[xfstests]\ndir = "{tmp_path / "xt"}"\nrequired = true\n')
    XfstestsWorkload().run(vr)
    stage = vr.result.stage("xfstests")
    assert stage.status == Status.FAIL and "xfstests not run" in stage.message


def test_failed_apply_skips_the_rest(tmp_path, small_tree, cache):
    conf = broken_patch_config(tmp_path, small_tree)
    cfg = config.load(conf)
    run = Run(cfg, tmp_path / "results" / "r", "r", UI())
    results = run.execute()
    stages = {s.name: s for s in results[0].stages}
    assert stages["apply"].status == Status.FAIL and "does not apply" in stages["apply"].message
    for name in ("build", "boot", "storage", "fio/xfs/randwrite-4k-nj1"):
        assert stages[name].status == Status.SKIP and stages[name].message == "skipped: apply failed"
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["finished"] and summary["status"] == "fail"


def test_together_every_variant_is_built_first_and_a_failure_skips_its_own_rest(tmp_path, small_tree, cache):
    """[fio] together (the default) with two variants whose patch does not
    apply: each records its failure and skips the rest, its guest stages
    included, and the other goes on; the run finishes."""
    conf = broken_patch_config(tmp_path, small_tree)
    conf.write_text(conf.read_text() + conf.read_text().split("\n[[variant]]", 1)[1]
                    .replace('name = "broken"', 'name = "broken-too"').join(["\n[[variant]]", ""]))
    cfg = config.load(conf)
    run = Run(cfg, tmp_path / "results" / "r", "r", UI())
    assert run.together(2)
    results = run.execute()
    assert [r.name for r in results] == ["broken", "broken-too"]
    for r in results:
        stages = {s.name: s for s in r.stages}
        assert stages["apply"].status == Status.FAIL
        for name in ("build", "boot", "storage", "fio/xfs/randwrite-4k-nj1"):
            assert stages[name].status == Status.SKIP and stages[name].message == "skipped: apply failed"
    assert json.loads((run.run_dir / "summary.json").read_text())["finished"]


def test_together_only_when_the_guests_fit(tmp_path, small_tree, monkeypatch):
    from kvariant.pipeline import run as run_mod
    run, _ = make_run(tmp_path, small_tree, '[vm]\nmemory = "4G"\n')
    monkeypatch.setattr(run_mod, "host_memory_mib", lambda: 24 * 1024)
    assert run.together(4) and not run.together(1)
    assert not run.together(5)  # 20 GiB of guests: more than 80% of the host's 24
    (tmp_path / "off").mkdir()
    off, _ = make_run(tmp_path / "off", small_tree, '[fio]\ntogether = false\n')
    assert not off.together(2)
