"""The terminal: one line per stage as a run goes (a spinner with the
running stage while stderr is a terminal), and at its end the table of
variants x stages, the kernels built, the fio cover-letter tables and the
xfstests differences."""

from __future__ import annotations

import contextlib
import signal
import threading

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .comparison import Comparison, regressions
from .model import StageResult, Status, VariantResult
from .render.markdown import cover_tables
from .render.text import noted_by_run, statistics_text
from .tally import summarize as summarize_xfstests

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

    def update(self, variant: str, stage: str, text: str) -> None:
        """The running stage's line, with *text* (a build's progress)."""
        if self.live and self._status is not None:
            self._status.update(f"{variant}: {stage}: {text} ...")

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
        fio = [x for x in r.stages if x.id.target]
        bad = sum(1 for x in fio if not x.status.ok)
        cells.append(f"{len(fio) - bad}/{len(fio)} ok" if fio else "-")
        table.add_row(r.name, *cells)
    return table


def build_line(results: list[VariantResult]) -> str:
    """How many kernels the run built and reused (series checks included)."""
    built, reused, seconds = 0, 0, 0.0
    for r in results:
        if r.info.build.build_reused is not None:
            reused += bool(r.info.build.build_reused)
            built += not r.info.build.build_reused
            seconds += r.info.build.build_seconds or 0.0
        for s in r.stages:
            if s.suite == "series" and s.status == Status.PASS:
                if s.figures.get("build_reused"):
                    reused += 1
                else:
                    built += 1
                    seconds += s.seconds
    return f"kernels: {built} built ({seconds:.0f} s of building), {reused} reused"



def print_summary(ui: UI, results: list[VariantResult], stages: tuple[str, ...],
                  comparison: Comparison | None, interrupted: bool = False) -> None:
    ui.show(stage_table(results, stages))
    ui.info(build_line(results))
    if comparison is not None and comparison.points:
        for t in cover_tables(comparison):
            ui.info(t)
        ui.info(statistics_text(comparison))
        for n in comparison.notes:
            ui.info(f"Note: {n}")
    for line in xfstests_lines(summarize_xfstests({v.name: v.stages for v in results})):
        ui.info(line)
    if interrupted:
        ui.show("[bold magenta]interrupted[/]: the results above are what finished")


def xfstests_lines(summary: dict) -> list[str]:
    """Per fstype: passed/failed/skipped per variant, then the tests whose
    status differs (new failures first)."""
    lines = []
    for fstype, data in summary.items():
        counts = ", ".join(f"{v}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
                           + (f", {c['errors']} errors" if c["errors"] else "")
                           + (f", {c['flaky']} flaky" if c.get("flaky") else "")
                           + (f", {c['known_failures']} known failures" if c.get("known_failures") else "")
                           + (f", {c['known_passed']} known failures passed (fixed?)"
                              if c.get("known_passed") else "")
                           for v, c in data["variants"].items())
        lines.append(f"xfstests on {fstype}: {counts}")
        for d in data["differences"]:
            tag = ("NEW FAILURE in " + ", ".join(d["new_failures"]) if d["new_failures"] else
                   "fixed in " + ", ".join(d["fixed"]) if d["fixed"] else "differs")
            states = " ".join(f"{v}={st}" for v, st in d["statuses"].items())
            lines.append(f"  {d['test']}: {tag} ({states})")
    return lines


def comparison_lines(c: Comparison) -> list[str]:
    """What ``compare`` prints after where the reports went: the cover-letter
    tables, how to read them, the notes and the regressions."""
    lines = [""]
    lines += cover_tables(c)
    if c.points:
        lines.append(statistics_text(c))
        if noted_by_run(c):
            lines.append(f"Noted by the run: {'; '.join(noted_by_run(c))}.")
    lines += [f"\nNote: {n}" for n in c.notes]
    regs = regressions(c)
    if regs:
        lines.append("")
    lines += [f"regression: {r.variant} {r.testcase}: {r.message}" for r in regs]
    return lines
