"""What a run shows and leaves: one line per stage as it goes, summary.json
(rewritten atomically after every stage), and the final table of variants x
stages with the fio IOPS."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import stats
from .compare import Comparison, compare_runs, fio_setup, load_run, regressions, resolve_run_dir
from .errors import ResultsUnwritable
from .paths import PROJECT
from .summary import setup_record
from .junit import write_atomic
from .workloads.xfstests import summarize as summarize_xfstests
from .model import StageResult, Status, VariantResult
from .render import write_reports
from .render.markdown import cover_tables
from .render.text import noted_by_run, setup_lines, statistics_text

if TYPE_CHECKING:
    from .runner import Run

STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.ERROR: "bold magenta",
         Status.SKIP: "yellow"}


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM wait until the block has ended, then reach the
    handler they were for.  Only the main thread runs Python's signal
    handlers (and may set them): elsewhere there is nothing to hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, object]] = []
    saved = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(s)
            if callable(handler):
                saved[s] = handler
                signal.signal(s, lambda signum, frame: caught.append((signum, frame)))
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    if caught:
        signum, frame = caught[0]
        saved[signum](signum, frame)


class UI:
    """Console output on stderr: a line per finished stage, and a spinner
    with the running stage while stderr is a terminal.

    A line is written once, whatever signal comes: rich writes its buffer
    and only then clears it, so a SIGTERM between the two left the line in
    the buffer and the next print wrote it again.  Each line is queued,
    then written with SIGINT/SIGTERM held; an interrupt before that leaves
    it queued for the next write, never written twice."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal
        self._status = None
        self._queue: list[tuple[object, bool]] = []

    def begin(self, variant: str, stage: str) -> None:
        if not self.live:
            return
        self._stop()
        self._status = self.console.status(f"{variant}: {stage} ...")
        self._status.start()

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def show(self, renderable, markup: bool = True) -> None:
        """Write *renderable* (text, a table) once."""
        self._queue.append((renderable, markup))
        with _signals_held():
            self._stop()
            while self._queue:
                item, markup = self._queue[0]
                self.console.print(item, markup=markup, soft_wrap=isinstance(item, str))
                del self._queue[0]

    def stage(self, variant: str, s: StageResult) -> None:
        msg = f" {escape(s.message)}" if s.message else ""
        self.show(f"{variant:<16} {s.name:<28} [{STYLE[s.status]}]{s.status.value.upper():<5}[/]"
                  f" {s.seconds:7.1f} s{msg}")

    def info(self, text: str) -> None:
        self.show(text, markup=False)


def summary_dict(run: "Run", final: bool) -> dict:
    return {
        "run_id": run.run_id,
        "config": str(run.config.path),
        "config_sha256": config_digest(run.config.path),
        "fio_setup": fio_setup_of(run),
        "setup": setup_record(run.config, run.accel.kvm),
        "planned_variants": [v.name for v in run.config.variants],
        "resumed": run.resumed,
        "debug": any(f.name == "debug.config" for f in run.config.kernel.fragments),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.started)),
        "seconds": round(time.time() - run.started, 1),
        "finished": final and not run.interrupted,
        "interrupted": run.interrupted,
        "accel": {"kvm": run.accel.kvm, "reason": run.accel.reason},
        "status": overall(run.results).value if run.results else "pending",
        "variants": [v.to_dict() for v in run.results],
        "xfstests": summarize_xfstests({v.name: v.stages for v in run.results}),
    }


def config_digest(path) -> str:
    """The config file's SHA-256: --resume refuses a config that changed."""
    import hashlib
    try:
        return hashlib.sha256(open(path, "rb").read()).hexdigest()
    except OSError:
        return ""


def overall(results: list[VariantResult]) -> Status:
    if any(r.status != Status.PASS for r in results):
        return Status.FAIL
    return Status.PASS


def write_summary(run: "Run", final: bool) -> None:
    try:
        write_atomic(run.run_dir / "summary.json", json.dumps(summary_dict(run, final), indent=2) + "\n")
    except OSError as e:
        raise ResultsUnwritable(f"cannot write {run.run_dir / 'summary.json'}: {e.strerror or e}") from None


def fio_setup_of(run: "Run") -> str:
    c = run.config
    return fio_setup(fio_cfg=c.fio, vm_cfg=c.vm, null_blk=c.null_blk, fuse_cfg=c.fuse,
                     accel="KVM" if run.accel.kvm else "TCG", base=c.kernel.base)


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


def stage_table(results: list[VariantResult], stages: tuple[str, ...]) -> Table:
    table = Table(title="stages", show_lines=False)
    table.add_column("variant")
    for s in stages:
        table.add_column(s)
    table.add_column("fio")
    for r in results:
        cells = []
        for s in stages:
            st = r.stage(s)
            cells.append("-" if st is None else
                         f"[{STYLE[st.status]}]{st.status.value}[/] {st.seconds:.0f}s")
        fio = [x for x in r.stages if x.suite.startswith("fio")]
        bad = sum(1 for x in fio if not x.status.ok)
        cells.append(f"{len(fio) - bad}/{len(fio)} ok" if fio else "-")
        table.add_row(r.name, *cells)
    return table


def build_line(results: list[VariantResult]) -> str:
    """How many kernels the run built and reused (series checks included)."""
    built, reused, seconds = 0, 0, 0.0
    for r in results:
        if "build_reused" in r.info:
            reused += bool(r.info["build_reused"])
            built += not r.info["build_reused"]
            seconds += r.info.get("build_seconds", 0.0)
        for s in r.stages:
            if s.suite == "series" and s.status == Status.PASS:
                if s.figures.get("build_reused"):
                    reused += 1
                else:
                    built += 1
                    seconds += s.seconds
    return f"kernels: {built} built ({seconds:.0f} s of building), {reused} reused"


def print_summary(ui: UI, run: "Run", stages: tuple[str, ...], comparison: "Comparison | None") -> None:
    ui.show(stage_table(run.results, stages))
    ui.info(build_line(run.results))
    if comparison is not None and comparison.points:
        for t in cover_tables(comparison):
            ui.info(t)
        ui.info(statistics_text(comparison))
        for n in comparison.notes:
            ui.info(f"Note: {n}")
    for line in xfstests_lines(summarize_xfstests({v.name: v.stages for v in run.results})):
        ui.info(line)
    if run.interrupted:
        ui.show("[bold magenta]interrupted[/]: the results above are what finished")


def xfstests_lines(summary: dict) -> list[str]:
    """Per fstype: passed/failed/skipped per variant, then the tests whose
    status differs (new failures first)."""
    lines = []
    for fstype, data in summary.items():
        counts = ", ".join(f"{v}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
                           + (f", {c['errors']} errors" if c["errors"] else "")
                           + (f", {c['flaky']} flaky" if c.get("flaky") else "")
                           for v, c in data["variants"].items())
        lines.append(f"xfstests on {fstype}: {counts}")
        for d in data["differences"]:
            tag = ("NEW FAILURE in " + ", ".join(d["new_failures"]) if d["new_failures"] else
                   "fixed in " + ", ".join(d["fixed"]) if d["fixed"] else "differs")
            states = " ".join(f"{v}={st}" for v, st in d["statuses"].items())
            lines.append(f"  {d['test']}: {tag} ({states})")
    return lines


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
