"""Testcase ids: every name kind the pipeline writes (the fixtures' runs,
and the names the code itself makes) reads back to its kind, target or
fstype, point and JUnit suite, and writes back to the same name."""
import json
from pathlib import Path

import pytest

from conftest import PROJECT
from kvariant.config import XFSTESTS_FSTYPES, FioConfig
from kvariant.testcase import STAGES, Kind, TestcaseId
from kvariant.workloads import fio
from kvariant.workloads.targets import TARGETS
from kvariant.workloads.xfstests import outcome_to_stage, parse_results
from kvariant.workloads.xfstests.batches import test_error as _error

FIXTURES = PROJECT / "tests" / "fixtures"


def fixture_testcases() -> list[tuple[str, str]]:
    """(name, suite) of every testcase in the fixtures' summaries."""
    found = {}
    for path in sorted((FIXTURES / "runs").glob("*/summary.json")):
        for v in json.loads(path.read_text())["variants"]:
            found.update({s["name"]: s["suite"] for s in v["stages"]})
    return sorted(found.items())


def code_testcases() -> list[tuple[str, str]]:
    """(name, suite) of the names the pipeline makes: its stages, a series
    patch, the kernel's log, fio points and steps per target, xfstests
    tests (parsed from fixture results) and steps per fstype."""
    names = [(s, "stages") for s in (*STAGES, "interrupted")]
    names += [("series/01-fuse-keep-fopen-parallel-direct-writes", "series"), ("dmesg", "kernel"),
              ("xfstests", "xfstests"),
              ("correctness/fuse-passthrough/endwrite", "correctness.fuse-passthrough")]
    for target in TARGETS:
        names += [(f"fio/{target}/{fio.point_name(FioConfig(), n)}", f"fio.{target}") for n in (1, 16)]
        names += [(f"fio/{target}/{step}", f"fio.{target}") for step in ("setup", "prefill")]
    for fstype in XFSTESTS_FSTYPES:
        for outcome in parse_results(FIXTURES / "xfstests-xfs-fail-notrun"):
            s = outcome_to_stage(outcome, fstype)
            names.append((s.name, s.suite))
        names += [(_error(fstype, step, "").name, f"xfstests.{fstype}") for step in ("list", "setup")]
        names.append((f"xfstests/{fstype}", f"xfstests.{fstype}"))
    return names


ALL = fixture_testcases() + code_testcases()


def test_the_names_cover_every_kind():
    kinds = {TestcaseId.parse(n).kind for n, _ in ALL}
    assert kinds == set(Kind)
    assert any(TestcaseId.parse(n).test for n, _ in fixture_testcases())
    assert any(TestcaseId.parse(n).point for n, _ in fixture_testcases())


@pytest.mark.parametrize("name,suite", ALL)
def test_a_name_reads_back_to_itself_and_its_suite(name, suite):
    tid = TestcaseId.parse(name)
    assert str(tid) == name
    assert tid.suite == suite
    assert TestcaseId(tid.kind, tid.scope, tid.name) == tid


def test_a_fio_point_and_the_steps_around_it():
    tid = TestcaseId.parse("fio/fuse-passthrough/randwrite-4k-nj16")
    assert (tid.kind, tid.target, tid.fstype) == (Kind.FIO, "fuse-passthrough", "")
    assert tid.point == ("randwrite-4k", 16)
    assert tid == TestcaseId.fio_point("fuse-passthrough", "randwrite-4k", 16)
    assert tid.leaf == "randwrite-4k-nj16"
    assert TestcaseId.parse("fio/xfs/prefill").point is None
    assert TestcaseId.parse("fio/xfs/prefill").target == "xfs"


def test_an_xfstests_test_and_the_steps_around_it():
    tid = TestcaseId.parse("xfstests/fuse/generic/001")
    assert (tid.kind, tid.fstype, tid.target, tid.test) == (Kind.XFSTESTS, "fuse", "", "generic/001")
    assert tid == TestcaseId.xfstests("fuse", "generic/001")
    assert tid.leaf == "001" and tid.point is None
    step = TestcaseId.parse("xfstests/xfs/list")
    assert (step.fstype, step.name, step.test) == ("xfs", "list", "")
    assert TestcaseId.parse("xfstests").fstype == "" and TestcaseId.parse("xfstests/xfs").fstype == "xfs"


@pytest.mark.parametrize("name", ["fio", "fio/xfs", "fio//x", "fio/xfs/", "xfstests/", "xfstests//x",
                                  "xfstests/xfs/", "series", "series/", "correctness", "correctness/x",
                                  "", "/", "dmesg/x", "weird/name"])
def test_a_name_of_no_known_form_is_a_stage_of_that_name(name):
    tid = TestcaseId.parse(name)
    assert (tid.kind, tid.scope, tid.name, str(tid), tid.suite) == (Kind.STAGE, "", name, name, "stages")
    assert tid.point is None and not tid.target and not tid.fstype


def test_the_stages_are_defined_once():
    from kvariant.pipeline import stages
    from kvariant.render import text
    assert tuple(s.name for s in stages.STAGES) == STAGES and text.STAGES is STAGES
    for module in ("pipeline/stages", "pipeline/variant", "comparison", "compare", "render/text", "cli"):
        assert '"apply", "build"' not in Path(PROJECT / "kvariant" / f"{module}.py").read_text()
