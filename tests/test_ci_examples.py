"""examples/ci/: the sharded pipelines' structure (GitLab and GitHub), and
nightly.sh's KVARIANT_TREE, which the pipeline reads itself (the config
file is not rewritten)."""
import json
import os
import subprocess

import yaml

from conftest import PROJECT, broken_patch_config, git
from kvariant.summary import RunSummary

CI = PROJECT / "examples" / "ci"


def test_gitlab_sharded_pipeline():
    doc = yaml.safe_load((CI / "gitlab-sharded.yml").read_text())
    assert doc["stages"] == ["build", "test", "merge"]
    build, test, merge = doc["kvariant-build"], doc["kvariant-test"], doc["kvariant-merge"]
    assert build["stage"] == "build" and build["artifacts"]["paths"] == ["kernels/"]
    assert "--kernels kernels" in " ".join(build["script"])
    assert test["stage"] == "test" and test["parallel"] == 2 and test["needs"] == ["kvariant-build"]
    script = " ".join(test["script"])
    assert "--kernels kernels" in script and "--shard" not in script  # CI_NODE_INDEX/CI_NODE_TOTAL
    assert '--run-id "shard-$CI_NODE_INDEX"' in script
    assert test["artifacts"] == {"when": "always", "paths": ["runs/"], "expire_in": "7 days"}
    assert merge["stage"] == "merge" and merge["when"] == "always"
    assert merge["needs"] == [{"job": "kvariant-test", "artifacts": True}]
    assert "merge runs/shard-* --out runs/merged" in " ".join(merge["script"])
    assert merge["artifacts"]["reports"]["junit"] == "runs/merged/*/junit.xml"


def test_github_sharded_workflow():
    doc = yaml.safe_load((CI / "github-sharded.yml").read_text())
    jobs = doc["jobs"]
    shards = jobs["test"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(doc["env"]["SHARDS"]) + 1))
    assert jobs["test"]["needs"] == "build" and jobs["test"]["strategy"]["fail-fast"] is False
    assert jobs["merge"]["needs"] == "test" and jobs["merge"]["if"] == "always()"
    runs = {s.get("name", ""): s.get("run", "") for j in jobs.values() for s in j["steps"]}
    assert '--shard "${{ matrix.shard }}/$SHARDS"' in runs["Run shard ${{ matrix.shard }} of ${{ env.SHARDS }}"]
    assert "merge runs/shard-* --out runs/merged" in runs["Merge the shards"]
    uses = [(j, s["uses"].split("@")[0], s.get("with", {})) for j, job in jobs.items() for s in job["steps"]
            if "uses" in s]
    assert ("build", "actions/upload-artifact", {"name": "kvariant-kernels", "path": "kernels/",
                                                 "retention-days": 1}) in uses
    assert ("test", "actions/download-artifact", {"name": "kvariant-kernels", "path": "kernels/"}) in uses
    assert ("merge", "actions/download-artifact", {"pattern": "kvariant-shard-*", "path": "runs/",
                                                   "merge-multiple": True}) in uses


def nightly(tmp_path, conf, tree: str):
    env = {**os.environ, "KVARIANT_CONFIG": str(conf), "KVARIANT_TREE": tree,
           "KVARIANT_RESULTS": str(tmp_path / "results"), "KVARIANT_DEADLINE": "10m"}
    return subprocess.run([str(CI / "nightly.sh"), "run", "n1"], env=env, capture_output=True,
                          text=True, timeout=300)


def test_nightly_points_the_pipeline_at_kvariant_tree(tmp_path, small_tree, cache):
    conf = broken_patch_config(tmp_path, small_tree)
    conf.write_text(conf.read_text().replace(str(small_tree), str(tmp_path / "gone")))
    before = conf.read_text()
    proc = nightly(tmp_path, conf, str(tmp_path))  # not a git repository
    assert proc.returncode == 1
    assert (f"kvariant: error: KVARIANT_TREE: expected a kernel git tree, got {tmp_path}, "
            f"which is not a git repository") in proc.stderr
    proc = nightly(tmp_path, conf, str(small_tree))  # the broken patch fails apply: no VM
    assert proc.returncode == 2, proc.stderr[-2000:]
    run = RunSummary.load(tmp_path / "results" / "n1")
    assert run.config == str(conf) and conf.read_text() == before
    assert run.variants[0].info.base_commit == git(small_tree, "rev-parse", "v1")
    assert not list(tmp_path.glob(".nightly-*"))
    assert json.loads((tmp_path / "results" / "n1" / "summary.json").read_text())["status"] == "fail"
