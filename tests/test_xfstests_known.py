"""Known xfstests failures: the lists (vmconfigs/xfstests/), their bad
input, and how a known failure, a known failure that passes and a new
failure reach the JUnit."""
import subprocess
import sys

import pytest

from conftest import PROJECT
from kvariant.config.known import check_known_failures, list_name, read_known_failures
from kvariant.config.schema import KNOWN_FAILURES
from kvariant.errors import ConfigError
from kvariant import junit
from kvariant.model import Status
from kvariant.workloads import xfstests as xt
from kvariant.workloads.xfstests.results import TestOutcome


def test_the_project_lists_read_and_are_named_for_a_server_and_fstype():
    check_known_failures(KNOWN_FAILURES)
    names = {p.name for p in KNOWN_FAILURES.glob("*.txt")}
    assert names == {"kvariant-fuse.txt", "passthrough_hp-fuse.txt", "xfs.txt"}
    assert list_name("kvariant", "fuse") == "kvariant-fuse.txt"
    assert list_name("passthrough_hp", "xfs") == "xfs.txt"  # no FUSE server takes part
    known = read_known_failures(KNOWN_FAILURES / "kvariant-fuse.txt")
    assert known["generic/003"].startswith("atime: ")
    assert xt.XfstestsConfig().known_failures == KNOWN_FAILURES


def test_a_list_with_comments_and_reasons(tmp_path):
    f = tmp_path / "xfs.txt"
    f.write_text("# header\n\ngeneric/003  # atime follows the backing fs  \n"
                 "  xfs/122\t#the reason # with a hash\n")
    assert read_known_failures(f) == {"generic/003": "atime follows the backing fs",
                                      "xfs/122": "the reason # with a hash"}
    assert read_known_failures(tmp_path / "missing.txt") == {}


@pytest.mark.parametrize("text, line, expected", [
    ("generic/003\n", 1, "expected a test like generic/003, then '#' and why it fails on the base kernel,"
                         " got 'generic/003'"),
    ("# c\ngeneric/003 #   \n", 2, "got 'generic/003 #'"),
    ("generic/003 # a\n003 # b\n", 2, "got '003 # b'"),
    ("generic/003 # a\ngeneric/005 # b\ngeneric/003 # c\n", 3, "generic/003 is listed twice (first on line 1)"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, text, line, expected):
    f = tmp_path / "kvariant-fuse.txt"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_known_failures(f)
    assert str(e.value).startswith(f"{f}: line {line}: ") and expected in str(e.value)
    assert "\n" not in str(e.value)


def test_unreadable_lists_and_a_stray_file(tmp_path):
    f = tmp_path / "xfs.txt"
    f.write_bytes(b"generic/003 # caf\xe9\n")
    with pytest.raises(ConfigError, match=rf"^{f}: cannot read a known failure list: "):
        read_known_failures(f)
    f.write_text("generic/003 # ok\n")
    (tmp_path / "kvariant-fuze.txt").write_text("")
    with pytest.raises(ConfigError, match="kvariant-fuze.txt: not a known failure list: expected one of "
                                          "xfs.txt, kvariant-fuse.txt, passthrough_hp-fuse.txt"):
        check_known_failures(tmp_path)


def test_the_config_key_and_the_cli_line(tmp_path):
    lists = tmp_path / "known"
    lists.mkdir()
    cfg = xt.xfstests_config_from_table({"known_failures": "known"}, "p.toml", tmp_path)
    assert cfg.known_failures == lists
    with pytest.raises(ConfigError, match="^p.toml: xfstests.known_failures: expected an existing directory"):
        xt.xfstests_config_from_table({"known_failures": "nope"}, "p.toml", tmp_path)
    (lists / "xfs.txt").write_text("generic/001 # fine\ngeneric/002\n")
    conf = tmp_path / "p.toml"
    conf.write_text('[xfstests]\nknown_failures = "known"\n[[variant]]\nname = "baseline"\n')
    p = subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "run", "--config", str(conf)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        f"kvariant: error: {lists / 'xfs.txt'}: line 2: expected a test like generic/003, then '#' "
        "and why it fails on the base kernel, got 'generic/002'"]
    assert not (tmp_path / "results").exists()


FAILED = TestOutcome("generic/003", "fail", 30.0, "- output mismatch (see generic/003.out.bad)",
                     diff="--- generic/003.out\n+++ generic/003.out.bad\n-ok\n+not ok")


def test_a_known_failure_is_skipped_with_its_reason_and_the_diff():
    stage = xt.outcome_to_stage(FAILED, "fuse", known="atime follows the backing XFS")
    assert stage.status == Status.SKIP
    assert stage.message == ("known failure: atime follows the backing XFS "
                             "(xfstests: output mismatch (see generic/003.out.bad))")
    assert "+not ok" in stage.detail and stage.figures == {"known_failure": "atime follows the backing XFS"}
    tc = junit.testcase("baseline", stage)
    assert tc.is_skipped() and not tc.is_failure() and "+not ok" in tc.skipped[0]["output"]
    # not listed: a failure as before
    assert xt.outcome_to_stage(FAILED, "fuse").status == Status.FAIL


def test_a_known_failure_that_passes_is_flagged_and_a_splat_still_fails():
    passed = TestOutcome("generic/003", "pass", 20.0)
    stage = xt.outcome_to_stage(passed, "fuse", known="atime")
    assert stage.status == Status.PASS and stage.message == "fixed? passed, but known to fail: atime"
    assert stage.figures == {"known_failure": "atime", "fixed": True}
    splat = TestOutcome("generic/003", "fail", 30.0, "- output mismatch", splats=["kernel BUG at fs/fuse/file.c:12!"])
    assert xt.outcome_to_stage(splat, "fuse", known="atime").status == Status.FAIL
    notrun = TestOutcome("generic/003", "notrun", 1.0, "no atime")
    stage = xt.outcome_to_stage(notrun, "fuse", known="atime")
    assert stage.status == Status.SKIP and stage.message == "no atime" and stage.figures == {}


def test_the_summary_counts_known_failures_and_those_that_passed():
    from kvariant.ui import xfstests_lines
    stages = [xt.outcome_to_stage(FAILED, "fuse", known="atime"),
              xt.outcome_to_stage(TestOutcome("generic/005", "pass", 1.0), "fuse", known="x"),
              xt.outcome_to_stage(TestOutcome("generic/006", "fail", 1.0, "- output mismatch"), "fuse")]
    counts = xt.summarize({"baseline": stages})["fuse"]["variants"]["baseline"]
    assert (counts["skipped"], counts["known_failures"], counts["passed"], counts["known_passed"],
            counts["failed"]) == (1, 1, 1, 1, 1)
    assert xfstests_lines(xt.summarize({"baseline": stages}))[0] == (
        "xfstests on fuse: baseline: 1 passed, 1 failed, 1 skipped, 1 known failures, "
        "1 known failures passed (fixed?)")
