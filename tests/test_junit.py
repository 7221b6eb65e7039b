"""JUnit per variant, validated against Jenkins' xUnit schema."""
import xml.etree.ElementTree as ET

import pytest
from lxml import etree

from conftest import FIXTURES
from kvariant.junit import to_xml, write_junit
from kvariant.model import BuildInfo, StageResult, Status, VariantInfo, VariantResult

SCHEMA = etree.XMLSchema(etree.parse(str(FIXTURES / "junit-10.xsd")))


def sample() -> VariantResult:
    r = VariantResult("parallel-dio", info=VariantInfo(commit="abc", patches=[{"subject": "x"}],
                                                       build=BuildInfo(kernel_release="7.2.13")))
    r.stages += [
        StageResult("apply", Status.PASS, 0.2, "2 patch(es)"),
        StageResult("build", Status.FAIL, 40.0, "build failed", detail="fs/fuse/file.c:1: error: x <&>",
                    reproduce="make -C src O=out"),
        StageResult("boot", Status.SKIP, message="skipped: build failed"),
        StageResult("fio/xfs/randwrite-4k-nj1", Status.PASS, 12.0, suite="fio.xfs",
                    figures={"iops": 41155.6, "bw_kib": 164654.0, "clat_p99_us": 2900.0,
                             "iops_runs": [41156, 35370, 41156]}),
        StageResult("fio/xfs/randwrite-4k-nj2", Status.ERROR, 3.0, "guest gone", suite="fio.xfs"),
    ]
    return r


def test_valid_against_schema(tmp_path):
    path = tmp_path / "junit.xml"
    write_junit(sample(), path)
    doc = etree.parse(str(path))
    assert SCHEMA.validate(doc), SCHEMA.error_log


def test_figures_are_machine_readable():
    root = ET.fromstring(to_xml(sample()))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    fio = suites["kvariant.parallel-dio.fio.xfs"]
    props = {p.get("name"): p.get("value") for p in fio.iter("property")}
    assert props["randwrite-4k-nj1.iops"] == "41155.6"
    assert props["randwrite-4k-nj1.clat_p99_us"] == "2900.0"
    case = next(c for c in fio.iter("testcase") if c.get("name") == "fio/xfs/randwrite-4k-nj1")
    assert "iops=41155.6" in case.find("system-out").text.splitlines()
    assert props["randwrite-4k-nj1.iops_runs"] == "41156,35370,41156"
    assert "iops_runs=41156,35370,41156" in case.find("system-out").text.splitlines()
    stages = suites["kvariant.parallel-dio.stages"]
    build = next(c for c in stages.iter("testcase") if c.get("name") == "build")
    failure = build.find("failure")
    assert failure.get("message") == "build failed"
    assert "reproduce: make -C src O=out" in failure.text and "error: x <&>" in failure.text
    assert next(c for c in stages.iter("testcase") if c.get("name") == "boot").find("skipped") is not None
    assert stages.get("failures") == "1" and fio.get("errors") == "1"
    info = {p.get("name"): p.get("value") for p in stages.iter("property") if p.get("name").startswith("info.")}
    assert info == {"info.commit": "abc", "info.kernel_release": "7.2.13"}  # a list is no property


def test_schema_rejects_properties_on_testcase():
    """The reason figures live on testsuites: the schema must really check."""
    bad = etree.fromstring(b'<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
                           b'<testcase name="t"><properties/></testcase></testsuite></testsuites>')
    assert not SCHEMA.validate(bad)
