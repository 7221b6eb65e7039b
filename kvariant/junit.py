"""JUnit XML per variant, with junit-xml.

One testsuite for the stages (apply, build, boot, storage) and one per
workload suite (``fio.xfs``, ...).  Figures are machine-readable twice: as
``<property name="POINT.KEY">`` of their testsuite (the Jenkins schema allows
properties on testsuites, not on testcases) and as ``KEY=value`` lines in the
testcase's system-out.  Files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from .files import write_result
from .model import Status, VariantResult, figure_text

DETAIL_CHARS = 20000


def figure_lines(figures: dict) -> str:
    return "".join(f"{k}={figure_text(v)}\n" for k, v in figures.items())


def testcase(variant: str, stage) -> TestCase:
    out = []
    if stage.figures:
        out.append(figure_lines(stage.figures))
    if stage.log:
        out.append(f"log: {stage.log}\n")
    if stage.reproduce:
        out.append(f"reproduce: {stage.reproduce}\n")
    tc = TestCase(stage.name, classname=f"kvariant.{variant}.{stage.suite}",
                  elapsed_sec=round(stage.seconds, 3), stdout="".join(out) or None)
    body = stage.detail[-DETAIL_CHARS:]
    if stage.reproduce and stage.status in (Status.FAIL, Status.ERROR):
        body = f"reproduce: {stage.reproduce}\n\n{body}"
    if stage.status == Status.FAIL:
        tc.add_failure_info(message=stage.message or "failed", output=body or None)
    elif stage.status == Status.ERROR:
        tc.add_error_info(message=stage.message or "error", output=body or None)
    elif stage.status == Status.SKIP:
        tc.add_skipped_info(message=stage.message or "skipped", output=body or None)
    return tc


def suites(result: VariantResult) -> list[TestSuite]:
    by_suite: dict[str, list] = {}
    for stage in result.stages:
        by_suite.setdefault(stage.suite, []).append(stage)
    out = []
    for suite, stages in by_suite.items():
        props = {}
        for s in stages:
            for k, v in s.figures.items():
                props[f"{s.id.leaf}.{k}"] = figure_text(v)
        if suite == "stages":
            props.update({f"info.{k}": str(v) for k, v in result.info.to_dict().items()
                          if isinstance(v, (str, int, float))})
        out.append(TestSuite(f"kvariant.{result.name}.{suite}",
                             [testcase(result.name, s) for s in stages],
                             properties=props or None))
    return out


def to_xml(result: VariantResult) -> str:
    return to_xml_report_string(suites(result), prettyprint=True, encoding="utf-8")


def write_junit(result: VariantResult, path: Path) -> None:
    """*path* written atomically, or ResultsUnwritable naming it."""
    write_result(path, to_xml(result))
