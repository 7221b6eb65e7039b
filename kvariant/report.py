"""What the end of a run adds: its reports, and --against's regression
verdicts; and ``./pipeline.py compare``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import stats
from .compare import Comparison, compare_runs, load_run, regressions, resolve_run_dir
from .errors import ResultsUnwritable
from .model import Status
from .paths import PROJECT
from .render import write_reports
from .render.markdown import cover_tables
from .render.text import noted_by_run, setup_lines, statistics_text

if TYPE_CHECKING:
    from .runner import Run


def run_comparison(run: "Run", against: Path | None = None, reference: str | None = None) -> "Comparison":
    """The run's variants compared with each other (against the first, or
    *reference*), or with the same variants of the earlier run *against*,
    from the summary.json just written."""
    runs = ([load_run(against)] if against is not None else []) + [load_run(run.run_dir)]
    return compare_runs(runs, threshold=run.threshold, reference=reference,
                        force=getattr(run, "force", False))


def write_run_reports(run: "Run", against: Path | None = None, reference: str | None = None) -> "Comparison":
    """report.md, report.html and report.json of a run, at its end."""
    c = run_comparison(run, against, reference)
    try:
        write_reports(c, run.run_dir)
    except OSError as e:
        raise ResultsUnwritable(f"cannot write the reports in {run.run_dir}: {e.strerror or e}") from None
    return c


def apply_regressions(run: "Run", against: Path | None, reference: str | None) -> list:
    """``--against``: fail the testcases that regressed (a significant IOPS
    drop beyond the threshold, a new xfstests failure) against the earlier
    run *against* (same variant names) or against the variant *reference*
    of this run.  Returns the regressions; their testcases are rewritten in
    the JUnit files and summary.json."""
    from .compare import IN_RUN, REFERENCE, regressions, regressions_since
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
    from .junit import write_junit
    for result in run.results:
        if any(by_name.get(r.variant.rsplit(":", 1)[-1]) is result for r in regs):
            try:
                write_junit(result, run.run_dir / result.name / "junit.xml")
            except OSError as e:
                raise ResultsUnwritable(f"cannot write {run.run_dir / result.name / 'junit.xml'}: "
                                        f"{e.strerror or e}") from None
    run.save(final=True)
    return regs



# ./pipeline.py compare: report.md, report.html, report.json



def default_out_dir(run_dirs: list[Path], run_ids: list[str]) -> Path:
    """The run's own directory for one run; for several, a directory
    ``compare-<other run ids>`` in the last run's directory."""
    if len(run_dirs) == 1:
        return run_dirs[0]
    return run_dirs[-1] / ("compare-" + "+".join(run_ids[:-1]))


def compare_main(run_dirs: list[Path], out_dir: Path | None, threshold: float = stats.DEFAULT_THRESHOLD,
                 reference: str | None = None, *, results_root: Path | None = None,
                 force: bool = False) -> int:
    """``./pipeline.py compare RUN [RUN...]``: RUN is a run directory or a run
    id under results/.  Writes the three reports, prints where they went and
    the table.  Bad input raises KvariantError (one line, exit code 1)."""
    root = results_root or PROJECT / "results"
    dirs = [resolve_run_dir(d, root) for d in run_dirs]
    runs = [load_run(d) for d in dirs]
    c = compare_runs(runs, threshold=threshold, reference=reference, force=force)
    out = Path(out_dir) if out_dir is not None else default_out_dir(dirs, [r.run_id for r in runs])
    try:
        paths = write_reports(c, out)
    except OSError as e:  # read-only, full: the host cannot do the work (exit 3)
        raise ResultsUnwritable(f"{out}: cannot write the reports: {e.strerror or e}") from None
    for line in setup_lines(c):
        print(line)
    for p in paths:
        print(p)
    print()
    for t in cover_tables(c):
        print(t)
    if c.points:
        print(statistics_text(c))
        if noted_by_run(c):
            print(f"Noted by the run: {'; '.join(noted_by_run(c))}.")
    for n in c.notes:
        print(f"\nNote: {n}")
    regs = regressions(c)
    if regs:
        print()
    for r in regs:
        print(f"regression: {r.variant} {r.testcase}: {r.message}")
    return 0
