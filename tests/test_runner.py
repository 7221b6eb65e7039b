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
