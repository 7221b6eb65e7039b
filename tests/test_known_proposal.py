"""``pipeline.py known-failures RUN``: the lists a run of the base kernel
proposes.  A listed test that failed again keeps its reason, one that
passed is left out as "fixed?", a new failure gets a REVIEW: reason that
the list reader refuses until a person writes why."""
import json
import shutil

import pytest

from conftest import FIXTURES
from kvariant import cli
from kvariant.config.known import read_known_failures
from kvariant.errors import ConfigError
from kvariant.model import StageResult, Status, VariantInfo, VariantResult
from kvariant.workloads.xfstests.proposal import base_variant, propose, server_of

KNOWN = {"generic/003": "atime follows the backing XFS", "generic/062": "xattrs on a symlink",
         "generic/080": "mtime after an mmap write", "generic/999": "not in this run"}


def stage(name, status, message="", **figures):
    return StageResult(name, status, message=message, figures=figures, suite="xfstests.fuse")


def base_run(policy="passthrough,parallel_direct_writes"):
    return VariantResult("baseline", [
        StageResult("build", Status.PASS),
        stage("xfstests/fuse/setup", Status.PASS),
        stage("xfstests/fuse/generic/001", Status.PASS),
        stage("xfstests/fuse/generic/003", Status.SKIP, "known failure: atime (xfstests: output mismatch)",
              known_failure="atime follows the backing XFS"),
        stage("xfstests/fuse/generic/062", Status.PASS, "fixed? passed, but known to fail: xattrs",
              known_failure="xattrs on a symlink", fixed=True),
        stage("xfstests/fuse/generic/080", Status.FAIL, "kernel splat: BUG: x"),
        stage("xfstests/fuse/generic/091", Status.FAIL, "- output mismatch (see generic/091.out.bad)"),
        stage("xfstests/fuse/generic/113", Status.ERROR, "deadline: still running after 780 s"),
        stage("xfstests/fuse/generic/120", Status.SKIP, "not run: no O_DIRECT"),
    ], VariantInfo(patches=[], xfstests_fuse_policy=policy))


def test_a_proposal_keeps_drops_and_adds(tmp_path):
    (p,) = propose(base_run(), lambda name: KNOWN if name == "kvariant-fuse.txt" else {}, "run r1, variant baseline")
    assert p.name == "kvariant-fuse.txt"
    assert p.kept == ("generic/003", "generic/080", "generic/999")  # failed again (a splat too), or not run
    assert p.fixed == ("generic/062",)
    assert p.new == ("generic/091", "generic/113")
    lines = p.text.splitlines()
    assert "generic/003  # atime follows the backing XFS" in lines
    assert "generic/091  # REVIEW: - output mismatch (see generic/091.out.bad)" in lines
    assert "generic/113  # REVIEW: deadline: still running after 780 s" in lines
    assert "# fixed? generic/062 passed: xattrs on a symlink" in lines
    assert not any(t in p.text for t in ("generic/001", "generic/120", "setup"))
    assert p.line() == ("kvariant-fuse.txt: 3 kept, 2 new (generic/091, generic/113), "
                        "1 fixed? (generic/062)")
    f = tmp_path / "kvariant-fuse.txt"
    f.write_text(p.text)
    with pytest.raises(ConfigError) as e:  # unreviewed: refused
        read_known_failures(f)
    assert str(e.value).startswith(f"{f}: line ") and "expected why generic/091 fails on the base kernel, " \
        "got the proposal's 'REVIEW: - output mismatch" in str(e.value)
    f.write_text(p.text.replace("REVIEW: - output mismatch (see generic/091.out.bad)", "reviewed: a reason")
                 .replace("REVIEW: deadline", "slow under TCG; deadline"))
    assert set(read_known_failures(f)) == {"generic/003", "generic/080", "generic/999", "generic/091",
                                           "generic/113"}


def test_the_server_and_the_base_variant():
    assert server_of(base_run()) == "kvariant"
    assert server_of(base_run("passthrough,server=passthrough_hp")) == "passthrough_hp"
    (p,) = propose(base_run("passthrough,server=passthrough_hp"), lambda name: {}, "x")
    assert p.name == "passthrough_hp-fuse.txt" and p.kept == () and p.fixed == ()
    patched = VariantResult("v1", [], VariantInfo(patches=[{"subject": "x"}]))
    assert base_variant([patched, base_run()]).name == "baseline"
    assert base_variant([patched]) is None


def test_the_command(tmp_path, capsys):
    run = tmp_path / "r1"
    shutil.copytree(FIXTURES / "runs" / "run-a", run)
    data = json.loads((run / "summary.json").read_text())
    data["variants"][0] = base_run().to_dict()
    (run / "summary.json").write_text(json.dumps(data))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "kvariant-fuse.txt").write_text("generic/003  # atime\n")
    assert cli.main(["known-failures", str(run), "--lists", str(lists)]) == 0
    out = run / "known-failures" / "kvariant-fuse.txt"
    assert capsys.readouterr().out.strip() == (
        f"kvariant-fuse.txt: 1 kept, 3 new (generic/080, generic/091, generic/113), 0 fixed? -> {out}")
    assert "generic/003  # atime\n" in out.read_text()

    assert cli.main(["known-failures", str(run), "--variant", "nope"]) == 1
    assert capsys.readouterr().err.strip() == (f"kvariant: error: --variant: expected a variant of {run} "
                                               f"(baseline, parallel-dio), got 'nope'")
    assert cli.main(["known-failures", str(run), "--variant", "parallel-dio"]) == 1
    assert "expected xfstests testcases of that variant" in capsys.readouterr().err
    (lists / "kvariant-fuse.txt").write_text("generic/003\n")
    assert cli.main(["known-failures", str(run), "--lists", str(lists)]) == 1
    assert capsys.readouterr().err.startswith(f"kvariant: error: {lists / 'kvariant-fuse.txt'}: line 1: ")
