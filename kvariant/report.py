"""What the end of a run adds: its reports (report.md, report.html,
report.json in the run directory), and --against's regression verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .compare import compare_runs, load_run
from .comparison import IN_RUN, REFERENCE, Comparison, Regression, regressions, regressions_since
from .files import writing
from .junit import write_junit
from .model import Status, VariantResult
from .render import write_reports


class FinishedRun(Protocol):
    """What the end of a run needs of it."""

    run_id: str
    run_dir: Path
    results: list[VariantResult]
    threshold: float
    force: bool

    def save(self, final: bool = False) -> None: ...


def run_comparison(run: FinishedRun, against: Path | None = None, reference: str | None = None) -> Comparison:
    """The run's variants compared with each other (against the first, or
    *reference*), or with the same variants of the earlier run *against*,
    from the summary.json just written."""
    runs = ([load_run(against)] if against is not None else []) + [load_run(run.run_dir)]
    return compare_runs(runs, threshold=run.threshold, reference=reference,
                        force=getattr(run, "force", False))


def write_run_reports(run: FinishedRun, against: Path | None = None, reference: str | None = None) -> Comparison:
    """report.md, report.html and report.json of a run, at its end."""
    c = run_comparison(run, against, reference)
    with writing(f"cannot write the reports in {run.run_dir}"):
        write_reports(c, run.run_dir)
    return c


def apply_regressions(run: FinishedRun, against: Path | None, reference: str | None) -> list[Regression]:
    """``--against``: fail the testcases that regressed (a significant IOPS
    drop beyond the threshold, a new xfstests failure) against the earlier
    run *against* (same variant names) or against the variant *reference*
    of this run.  Returns the regressions; their testcases are rewritten in
    the JUnit files and summary.json."""
    c = run_comparison(run, against, reference)
    if against is not None:
        old = c.runs[0].run_id
        regs = regressions_since(c, old, run.run_id)
        what = f"run {old}"
    else:
        regs = regressions(c, kinds=(REFERENCE, IN_RUN), where=lambda a, b: a == c.reference)
        what = f"variant {reference}"
    by_name = {r.name: r for r in run.results}
    for reg in regs:
        result = by_name.get(reg.variant.rsplit(":", 1)[-1])
        stage = result.stage(reg.testcase) if result is not None else None
        if stage is None:
            continue
        stage.message = f"regression against {what}: {reg.message}" + (
            f"; {stage.message}" if stage.message and stage.status != Status.PASS else "")
        stage.status = Status.FAIL
        stage.figures["regression"] = True
    for result in run.results:
        if any(by_name.get(r.variant.rsplit(":", 1)[-1]) is result for r in regs):
            write_junit(result, run.run_dir / result.name / "junit.xml")
    run.save(final=True)
    return regs
