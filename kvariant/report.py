"""What a run shows and leaves: one line per stage as it goes, summary.json
(rewritten atomically after every stage), and the final table of variants x
stages with the fio IOPS."""

from __future__ import annotations

import contextlib
import html
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
from .compare import (Comparison, FioPoint, PointDelta, compare_runs, fio_setup, fmt_iops, load_run,
                      regressions, resolve_run_dir)
from .errors import ResultsUnwritable
from .paths import PROJECT
from .summary import setup_record
from .junit import write_atomic
from .workloads.xfstests import summarize as summarize_xfstests
from .model import StageResult, Status, VariantResult

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

VERDICT_COLOURS = {  # background, text
    stats.BETTER: ("#d8f0dc", "#14532d"),
    stats.WORSE: ("#f9d9dc", "#7f1d1d"),
    stats.NO_CHANGE: ("#e6e8eb", "#374151"),
    stats.NOT_SIGNIFICANT: ("#ffffff", "#4b5563"),
    stats.INCONCLUSIVE: ("#fdf0c8", "#713f12"),
    stats.NOT_COMPARED: ("#ede9fe", "#4c1d95"),
}
STATUS_COLOURS = {"pass": "#14532d", "fail": "#b91c1c", "error": "#86198f", "skip": "#92400e",
                  "-": "#6b7280"}
MAX_LISTED = 20  # tests listed per kind of xfstests change in report.md


def _n(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("ch") else "s")


def fmt_pct(x: float) -> str:
    return f"{x:+.0f}%" if abs(x) >= 10 else f"{x:+.1f}%"


def sample_cell(s: stats.Sample | None) -> str:
    if s is None:
        return "-"
    if s.half_width is None:
        return f"{fmt_iops(s.mean)} (1 run)"
    return f"{fmt_iops(s.mean)} ±{fmt_iops(s.half_width)}"


def delta_cell(d: PointDelta | None) -> str:
    """``+127% (better)``; a bare ``inconclusive``: its change means nothing."""
    if d is None:
        return "-"
    if d.verdict == stats.INCONCLUSIVE or d.difference.change_pct is None:
        return stats.INCONCLUSIVE
    return f"{fmt_pct(d.difference.change_pct)} ({d.verdict})"


def ci_text(d: PointDelta) -> str:
    x = d.difference
    if x.ci_low_pct is None:
        return "no interval"
    return f"{fmt_pct(x.ci_low_pct)} to {fmt_pct(x.ci_high_pct)}"


def _groups(c: Comparison) -> list[tuple[str, str, str]]:
    """(target, job, column title) per table group; the job is named only
    when the runs hold several."""
    keys = list(dict.fromkeys((p.target, p.job) for p in c.points))
    several_jobs = len({j for _, j in keys}) > 1
    return [(t, j, f"{t} {j}" if several_jobs else t) for t, j in keys]


def _columns(c: Comparison) -> list[str]:
    """Variant labels in table order: the reference first."""
    return [c.reference] + [v for v in c.labels if v != c.reference]


def _fio_columns(c: Comparison) -> list[str]:
    """The reference, then the variants with fio figures."""
    have = {label for p in c.points for label in p.samples}
    return [v for v in _columns(c) if v == c.reference or v in have]


def _table_rows(c: Comparison, groups, titled: bool) -> tuple[list[str], list[list[str]]]:
    """Rows numjobs; per group a column per variant and after each variant
    but the reference its Δ against the reference.  *titled*: the group is
    named in each header (a single table for all targets)."""
    cols = _fio_columns(c)
    header = ["numjobs"]
    for _, _, title in groups:
        for i, v in enumerate(cols):
            header.append(f"{v} {title}" if titled else v)
            if i:
                header.append(f"Δ {title}" if titled else "Δ")
    rows = []
    for nj in sorted({p.numjobs for p in c.points}):
        row = [str(nj)]
        for target, job, _ in groups:
            p = next((p for p in c.points if (p.target, p.job, p.numjobs) == (target, job, nj)), None)
            for i, v in enumerate(cols):
                s = p.samples.get(v) if p else None
                cell = sample_cell(s)
                if p and s and p.status.get(v) not in ("pass", None):
                    cell += f" ({p.status[v]})"
                row.append(cell)
                if i:
                    row.append(delta_cell(p.delta(c.reference, v) if p else None))
        rows.append(row)
    return header, rows


def md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[cell.replace("|", "\\|") for cell in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines) + "\n"


def cover_tables(c: Comparison) -> list[str]:
    """The cover-letter table: one for all targets, as in fio.md, or one per
    target (under its name in bold) when one would exceed 8 columns."""
    groups = _groups(c)
    if not groups:
        return []
    per_group = 2 * len(_fio_columns(c)) - 1
    if 1 + per_group * len(groups) <= 8 or len(groups) == 1:
        return [md_table(*_table_rows(c, groups, titled=True))]
    return [f"**{g[2]}**\n\n" + md_table(*_table_rows(c, [g], titled=False)) for g in groups]


def _repeats_text(c: Comparison) -> str:
    ns = sorted({s.n for p in c.points for s in p.samples.values()})
    return f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"


def _basis_text(c: Comparison) -> str:
    ref = c.reference
    return (f"Each cell: mean IOPS of {_repeats_text(c)} runs ± the half-width of its 95% confidence "
            f"interval (Student t). Δ: change of the mean against {ref}; its 95% CI is Welch's t "
            f"interval of the difference, in percent of {ref}'s mean.")


def verdict_rules(threshold: float) -> dict[str, str]:
    t = f"±{threshold * 100:g}%"
    return {
        stats.BETTER: f"the CI excludes 0 and the change exceeds {t}",
        stats.WORSE: f"the CI excludes 0 and the change exceeds {t}",
        stats.NO_CHANGE: f"the whole CI lies within {t}",
        stats.NOT_SIGNIFICANT: f"any other case: no change beyond {t} is shown, nor ruled out",
        stats.INCONCLUSIVE: f"the CI includes 0 and reaches beyond {t} on both sides, or a side "
                            f"has a single run",
        stats.NOT_COMPARED: "the two runs' setups differ (see the top of the report); --force "
                            "gives a verdict all the same",
    }


def setup_lines(c: Comparison) -> list[str]:
    """The first lines of a report when the runs' setups differ."""
    if not c.setup_differences:
        return []
    then = ("Verdicts across them are given all the same (--force)." if c.forced else
            "No better/worse verdict is given across them (\"not compared\"); --force gives one.")
    return [f"The runs' setups differ: {'; '.join(c.setup_differences)}. {then}"]


def statistics_text(c: Comparison) -> str:
    r = verdict_rules(c.threshold)
    return (f"{_basis_text(c)} A change is better or worse only when {r[stats.BETTER]}; no change: "
            f"{r[stats.NO_CHANGE]}; inconclusive: {r[stats.INCONCLUSIVE]}; not significant: "
            f"{r[stats.NOT_SIGNIFICANT]}. Medians are in report.html and report.json.")


def _changes(c: Comparison) -> list[tuple[FioPoint, PointDelta]]:
    """Every fio delta, grouped by compared pair (in the order of
    ``c.pairs``), then by target and numjobs."""
    order = {(p.a, p.b): i for i, p in enumerate(c.pairs)}
    flat = [(p, d) for p in c.points for d in p.deltas]
    return sorted(flat, key=lambda x: order.get((x[1].a, x[1].b), len(order)))  # stable


def _changes_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["compared", "target", "numjobs", "means", "change", "95% CI", "verdict"]
    rows = []
    titles = {(t, j): title for t, j, title in _groups(c)}
    for p, d in _changes(c):
        a, b = p.samples[d.a], p.samples[d.b]
        ch = "-" if d.difference.change_pct is None else fmt_pct(d.difference.change_pct)
        rows.append([f"{d.b} against {d.a}", titles[(p.target, p.job)], str(p.numjobs),
                     f"{fmt_iops(a.mean)} → {fmt_iops(b.mean)}", ch, ci_text(d), d.verdict])
    return header, rows


def _patch_lines(c: Comparison) -> list[str]:
    lines = []
    for v in c.variants:
        base = f" on {v.base}" if v.base else ""
        if not v.patches:
            lines.append(f"- **{v.label}**: no patches{base}")
            continue
        lines.append(f"- **{v.label}**: {_n(len(v.patches), 'patch')}{base}")
        lines += [f"  {i}. {p.subject} (patch-id {p.short_id})" for i, p in enumerate(v.patches, 1)]
    if c.patch_changes:
        lines += ["", "Between revisions:", ""]
        for ch in c.patch_changes:
            head, items = patch_change_summary(ch)
            lines.append(f"- {ch.b} against {ch.a}: {head}")
            lines += [f"  - {x}" for x in items]
    return lines


def patch_change_summary(ch) -> tuple[str, list[str]]:
    """(a one-line summary, one line per patch that differs)."""
    if ch.same:
        return f"the same {_n(len(ch.unchanged), 'patch')}", []
    if ch.added and not (ch.unchanged or ch.changed or ch.reworded or ch.removed):
        return f"adds {_n(len(ch.added), 'patch')} ({ch.a} has none)", []
    counts = [f"{len(getattr(ch, k))} {k}" for k in ("changed", "reworded", "added", "removed",
                                                     "unchanged") if getattr(ch, k)]
    items = [f"changed: {r.subject} (patch-id {r.old_patch_id[:12] or '-'} → {r.patch_id[:12] or '-'})"
             for r in ch.changed]
    items += [f"reworded, same patch-id {r.patch_id[:12]}: \"{r.old_subject}\" → \"{r.subject}\""
              for r in ch.reworded]
    items += [f"added: {p.subject} ({p.short_id})" for p in ch.added]
    items += [f"removed: {p.subject} ({p.short_id})" for p in ch.removed]
    return ", ".join(counts), items


XFSTESTS_TITLES = {"new_failures": "new failures", "fixed": "now pass (fixed)",
                   "now_run": "now run and pass", "no_longer_run": "no longer run",
                   "other": "status changed"}


def _without(c: Comparison, fstype: str) -> list[str]:
    return [v for v in c.labels if v not in c.xfstests_counts.get(fstype, {})]


def _counts_text(n: dict) -> str:
    return (f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped"
            + (f", {n['errors']} errors" if n["errors"] else ""))


def _xfstests_lines(c: Comparison) -> list[str]:
    if not c.xfstests_counts:
        return ["No xfstests results in these runs."]
    lines = []
    for fstype, by_label in c.xfstests_counts.items():
        lines.append(f"- **{fstype}**:")
        lines += [f"  - {v}: {_counts_text(n)}" for v, n in by_label.items()]
        if _without(c, fstype):
            lines.append(f"  - no results (not compared): {', '.join(_without(c, fstype))}")
        for x in c.xfstests:
            if x.fstype != fstype:
                continue
            if x.empty:
                lines.append(f"  - {x.b} against {x.a}: no test changed status")
                continue
            lines.append(f"  - {x.b} against {x.a}:")
            for kind, title in XFSTESTS_TITLES.items():
                tests = getattr(x, kind)
                if not tests:
                    continue
                shown = ", ".join(f"{t.test} ({t.a} → {t.b})" for t in tests[:MAX_LISTED])
                more = f", and {len(tests) - MAX_LISTED} more" if len(tests) > MAX_LISTED else ""
                lines.append(f"    - {title}: {shown}{more}")
                if kind == "new_failures":
                    lines += [f"      - {t.test}: {_one_line(t.message)}" for t in tests[:MAX_LISTED]
                              if t.message]
    return lines


def _regression_lines(c: Comparison) -> list[str]:
    return [f"- {r.variant}: `{r.testcase}`: {_one_line(r.message, 220)}" for r in regressions(c)]


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _stage_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    from .compare import STAGE_NAMES
    header = ["variant", *STAGE_NAMES, "result"]
    rows = [[v.label, *(v.stages[s] for s in STAGE_NAMES), v.status] for v in c.variants]
    return header, rows


def _failed_lines(c: Comparison) -> list[str]:
    lines = [f"- {v.label}: `{f.name}` {f.status}: {_one_line(f.message) or '(no message)'}"
             for v in c.variants for f in v.failed]
    return lines or ["No testcase failed."]


def _runs_line(c: Comparison) -> list[str]:
    out = []
    for r in c.runs:
        started = r.started.replace("T", " ")[:16]
        out.append(f"Run {r.run_id}, started {started}, guest under {r.accel.upper()}"
                   + (" (interrupted)" if r.interrupted else ""))
    return out


def _title(c: Comparison) -> str:
    others = [v for v in c.labels if v != c.reference]
    if len(c.runs) > 1:
        return "Runs " + ", ".join(r.run_id for r in c.runs[:-1]) + f" and {c.runs[-1].run_id}"
    if not others:
        return c.reference
    if len(others) > 3:
        return f"{len(others)} variants against {c.reference}"
    return f"{', '.join(others)} against {c.reference}"


def comparison_markdown(c: Comparison) -> str:
    """report.md: plain markdown to paste into a patch cover letter."""
    out = [f"# {_title(c)}", ""]
    out += [f"**{line}**\n" for line in setup_lines(c)]
    out += [line + ("." if not line.endswith(".") else "") for line in _runs_line(c)]
    out += [f"Reference: {c.reference}.", ""]
    regs = _regression_lines(c)
    if regs:
        out += ["Regressions (an IOPS change judged worse, a new xfstests failure):", "", *regs, ""]
    tables = cover_tables(c)
    out += ["## fio IOPS", ""]
    setups = list(dict.fromkeys(r.setup for r in c.runs if r.setup))
    if len(setups) == 1:
        out += [setups[0], ""]
    else:
        out += [f"{r.run_id}: {r.setup}\n" for r in c.runs if r.setup]
    if tables:
        for t in tables:
            out += [t]
        point_notes = list(dict.fromkeys(n for p in c.points for n in p.notes))
        out += [statistics_text(c), ""]
        if point_notes:
            out += [f"Noted by the run: {'; '.join(point_notes)}.", ""]
    else:
        out += ["No fio figures in these runs.", ""]
    for n in c.notes:
        out += [f"Note: {n}", ""]
    if tables:
        out += ["### Changes with their 95% confidence intervals", "", md_table(*_changes_rows(c))]
    out += ["## Patches", "", *_patch_lines(c), ""]
    out += ["## xfstests", "", *_xfstests_lines(c), ""]
    out += ["## Stages", "", md_table(*_stage_rows(c)), *_failed_lines(c), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def comparison_json(c: Comparison) -> str:
    """report.json, for machines.  Keys (stable; ``schema`` changes when they do):

    - ``schema``: "kvariant-compare/1"; ``threshold`` (fraction, 0.05 = 5%),
      ``confidence`` (0.95), ``change_of``: "mean", ``reference``: a label;
    - ``runs``: [{run_id, path, accel (kvm|tcg|?), accel_reason, started,
      finished, interrupted}];
    - ``variants``: [{label ("name", or "RUNID:name" with several runs),
      run_id, name, status, base, commit, accel, stages {apply, build, boot,
      storage: pass|fail|error|skip|-}, failed [{name, status, message}],
      patches [{subject, patch_id, commit, source}]}];
    - ``pairs``: [{a, b, kind}]: B compared against A; kind "reference",
      "in-run" (against the first variant of B's run) or "same-name" (the
      same variant in an earlier run);
    - ``fio``: [{target, job, numjobs, testcase, samples {label: {runs, n,
      mean, median, sd, half_width, ci_low, ci_high}}, status {label:
      status}, notes [str], deltas [{a, b, kind, diff, change_pct, df,
      half_width, ci_low, ci_high, ci_low_pct, ci_high_pct, verdict,
      reason}]}]; IOPS in ops/s, ``*_pct`` in percent of A's mean; values
      that do not exist (one run) are null; verdict is one of better, worse,
      no change, not significant, inconclusive, not compared (runs whose
      setups differ, without --force);
    - ``xfstests``: {counts {fstype: {label: {passed, failed, skipped,
      errors}}}, deltas [{fstype, a, b, kind, new_failures, fixed, now_run,
      no_longer_run, other: [{test, a, b, message}]}]} (statuses pass, fail,
      error, skip, missing);
    - ``patch_changes``: [{a, b, unchanged [patch], changed [{subject,
      old_subject, old_patch_id, patch_id}], reworded [same], added [patch],
      removed [patch]}];
    - ``regressions``: [{variant, testcase, message}] (:func:`regressions`);
    - ``notes``: [str].

    ``Comparison.from_dict(json.loads(text))`` gives the comparison back.
    """
    return json.dumps(c.to_dict(), indent=2, sort_keys=False) + "\n"


# Plots


def plot_png(c: Comparison, target: str, job: str) -> bytes:
    """IOPS against numjobs for one target: a line per variant through the
    means, error bars of the 95% CI, each repeat as a faint dot."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    points = [p for p in c.points if (p.target, p.job) == (target, job)]
    numjobs = sorted({p.numjobs for p in points})
    cols = [v for v in _fio_columns(c) if any(v in p.samples for p in points)]
    # a colour per variant name, a line style per run: the same variant in
    # two runs is one colour, dashed in the earlier run
    names = list(dict.fromkeys(c.variant(v).name for v in cols))
    run_ids = [r.run_id for r in c.runs]
    fig = Figure(figsize=(5.6, 3.6 + 0.2 * ((len(cols) + 1) // 2)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    palette = ["#4b5563", "#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"]
    width = min(0.18, 0.6 / max(len(cols), 1))  # between the variants at one numjobs
    for i, label in enumerate(cols):
        v = c.variant(label)
        colour = palette[names.index(v.name) % len(palette)]
        latest = v.run_id == run_ids[-1]
        off = (i - (len(cols) - 1) / 2) * width
        xs, ys, errs = [], [], []
        for k, nj in enumerate(numjobs):
            p = next((p for p in points if p.numjobs == nj), None)
            s = p.samples.get(label) if p else None
            if s is None:
                continue
            xs.append(k + off)
            ys.append(s.mean)
            errs.append(s.half_width or 0.0)
            # each run beside its bar, where the bar does not hide it
            ax.scatter([k + off + width * 0.3] * s.n, s.runs, s=18, color=colour, alpha=0.45,
                       linewidths=0, zorder=2)
        if xs:
            ax.errorbar(xs, ys, yerr=errs, color=colour, marker="o" if latest else "s",
                        markersize=5, linewidth=1.8, linestyle="-" if latest else "--",
                        capsize=4, elinewidth=1.2, label=label, zorder=3)
    ax.set_xticks(range(len(numjobs)), [str(n) for n in numjobs])
    ax.set_xlim(-0.5, len(numjobs) - 0.5)
    ax.set_xlabel("numjobs")
    ax.set_ylabel("IOPS")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}K" if v >= 1e3 else f"{v:g}"))
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{target}: {job} IOPS (mean, 95% CI; dots: each run)", fontsize=10)
    ax.legend(frameon=False, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=2 if len(cols) > 1 else 1)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.12)
    return buf.getvalue()


# HTML


def _h(text) -> str:
    return html.escape(str(text), quote=True)


def _html_table(header: list[str], rows: list[list[str]], raw: bool = False, cls: str = "") -> str:
    """Cells are escaped unless *raw* (then the caller escaped them)."""
    cell = (lambda x: x) if raw else _h
    head = "".join(x if x.startswith("<th") else f"<th>{_h(x)}</th>" for x in header)
    body = "".join("<tr>" + "".join(x if raw and x.startswith("<td") else f"<td>{cell(x)}</td>"
                                    for x in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _label_html(label: str) -> str:
    """RUNID:variant, breakable after the colon only."""
    parts = label.split(":", 1)
    if len(parts) == 1:
        return f'<span class="nw">{_h(label)}</span>'
    return f'<span class="nw">{_h(parts[0])}:</span><wbr><span class="nw">{_h(parts[1])}</span>'


def _verdict_td(d: PointDelta | None, text: str | None = None) -> str:
    if d is None:
        return "<td>-</td>"
    bg, fg = VERDICT_COLOURS[d.verdict]
    label = text if text is not None else delta_cell(d)
    return (f'<td class="verdict" style="background:{bg};color:{fg}" title="{_h(d.reason)}">'
            f"{_h(label)}</td>")


def _chip(word: str) -> str:
    bg, fg = VERDICT_COLOURS[word]
    return f'<span style="background:{bg};color:{fg}">{_h(word)}</span>'


def _status_span(status: str) -> str:
    return f'<span style="color:{STATUS_COLOURS.get(status, "#111")};font-weight:600">{_h(status)}</span>'


CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#111827;margin:24px auto;
max-width:1180px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#4b5563;margin:0 0 2px}
table{border-collapse:collapse;margin:8px 0 10px}
th,td{border:1px solid #d1d5db;padding:4px 9px;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600}
td:first-child,th:first-child,td.l,th.l{text-align:left}
th{white-space:normal;min-width:60px}
.nw{white-space:nowrap}
table.text td,table.text th{text-align:left;white-space:normal}
td.verdict{font-weight:600}
.small{color:#4b5563;font-size:12.5px}
.regressions{background:#fdecee;border-left:4px solid #b91c1c;padding:6px 10px;margin:12px 0;
max-width:1000px}.regressions ul{margin:4px 0 2px}
.note{background:#fdf6e3;border-left:4px solid #d97706;padding:6px 10px;margin:8px 0;max-width:1000px}
.explain{max-width:1000px;color:#374151}
ul.legend{list-style:none;padding:0;margin:6px 0 10px;color:#374151}
ul.legend li{margin:3px 0}
.legend span{display:inline-block;min-width:104px;text-align:center;padding:0 6px;margin-right:4px;
border-radius:3px;font-weight:600;border:1px solid #d1d5db}
.point{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}
.point img{border:1px solid #e5e7eb;max-width:100%}
code{font-family:ui-monospace,monospace;font-size:12.5px;background:#f3f4f6;padding:0 3px}
ol,ul{margin:4px 0 8px}
"""


def comparison_html(c: Comparison, plots: dict[tuple[str, str], bytes] | None = None) -> str:
    """report.html: one self-contained file, the plots as data URIs."""
    import base64

    if plots is None:
        plots = {(t, j): plot_png(c, t, j) for t, j, _ in _groups(c)}
    cols = _fio_columns(c)
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>{_h(_title(c))}</title><style>{CSS}</style></head><body>",
           f"<h1>{_h(_title(c))}</h1>"]
    out += [f'<div class="regressions"><b>{_h(line)}</b></div>' for line in setup_lines(c)]
    out += [f'<p class="meta">{_h(line)}</p>' for line in _runs_line(c)]
    out.append(f'<p class="meta">Reference: <b>{_h(c.reference)}</b>; threshold '
               f'±{c.threshold * 100:g}%; 95% confidence intervals.</p>')

    regs = regressions(c)
    if regs:
        out.append('<div class="regressions"><b>Regressions</b> (an IOPS change judged worse, a new '
                   'xfstests failure):<ul>' + "".join(
                       f"<li>{_h(r.variant)}: <code>{_h(r.testcase)}</code>: {_h(_one_line(r.message, 300))}</li>"
                       for r in regs) + "</ul></div>")
    out.append("<h2>fio IOPS</h2>")
    groups = _groups(c)
    if not groups:
        out.append("<p>No fio figures in these runs.</p>")
    else:
        rules = verdict_rules(c.threshold)
        out.append(f'<p class="explain">{_h(_basis_text(c))} Hover a cell for the runs and the '
                   f"verdict's reason.</p>")
        items = [(_chip(stats.BETTER) + " " + _chip(stats.WORSE), rules[stats.BETTER])]
        items += [(_chip(w), rules[w]) for w in (stats.NO_CHANGE, stats.NOT_SIGNIFICANT,
                                                 stats.INCONCLUSIVE)]
        out.append('<ul class="legend">' + "".join(f"<li>{a} {_h(b)}</li>" for a, b in items)
                   + "</ul>")
    for n in c.notes:
        out.append(f'<p class="note">{_h(n)}</p>')
    for target, job, title in groups:
        out.append(f'<h3>{_h(title)}</h3><div class="point">')
        header = ["numjobs"]
        for i, v in enumerate(cols):
            header.append(f"<th>{_label_html(v)}</th>")
            if i:
                header.append("Δ" if len(cols) > 2 else f"Δ against {c.reference}")
        rows = []
        for p in [p for p in c.points if (p.target, p.job) == (target, job)]:
            row = [f"<td>{p.numjobs}</td>"]
            for i, v in enumerate(cols):
                s = p.samples.get(v)
                tip = "" if s is None else (f"runs: {', '.join(f'{x:.0f}' for x in s.runs)}; "
                                            f"median {fmt_iops(s.median)}")
                bad = p.status.get(v) not in ("pass", None)
                row.append(f'<td title="{_h(tip)}">{_h(sample_cell(s))}'
                           + (f" {_status_span(p.status[v])}" if s and bad else "")
                           + (f'<br><span class="small">median {fmt_iops(s.median)}</span>' if s else "")
                           + "</td>")
                if i:
                    row.append(_verdict_td(p.delta(c.reference, v)))
            rows.append(row)
        out.append(_html_table(header, rows, raw=True))
        png = plots.get((target, job))
        if png:
            out.append(f'<img alt="{_h(title)}: IOPS against numjobs" '
                       f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')
        out.append("</div>")
    if groups:
        point_notes = list(dict.fromkeys(n for p in c.points for n in p.notes))
        if point_notes:
            out.append(f'<p class="small">Noted by the run: {_h("; ".join(point_notes))}.</p>')
        out.append("<h3>Changes with their 95% confidence intervals</h3>")
        header, crows = _changes_rows(c)
        header = [f'<th class="l">{_h(x)}</th>' for x in header[:2]] + header[2:]
        rows = [[f'<td class="l">{_h(r[0])}</td>', f'<td class="l">{_h(r[1])}</td>']
                + [f"<td>{_h(x)}</td>" for x in r[2:-1]] + [_verdict_td(d, d.verdict)]
                for (_, d), r in zip(_changes(c), crows)]
        out.append(_html_table(header, rows, raw=True))

    out.append("<h2>Patches</h2><ul>")
    for v in c.variants:
        base = f" on {_h(v.base)}" if v.base else ""
        if not v.patches:
            out.append(f"<li><b>{_h(v.label)}</b>: no patches{base}</li>")
            continue
        items = "".join(f"<li>{_h(p.subject)} <code>{_h(p.short_id)}</code></li>" for p in v.patches)
        out.append(f"<li><b>{_h(v.label)}</b>: {_n(len(v.patches), 'patch')}{base}<ol>{items}</ol></li>")
    out.append("</ul>")
    if c.patch_changes:
        out.append("<h3>Between revisions</h3><ul>")
        for ch in c.patch_changes:
            head, items = patch_change_summary(ch)
            sub = "".join(f"<li>{_h(x)}</li>" for x in items)
            out.append(f"<li><b>{_label_html(ch.b)}</b> against {_label_html(ch.a)}: {_h(head)}"
                       + (f"<ul>{sub}</ul>" if sub else "") + "</li>")
        out.append("</ul>")

    out.append("<h2>xfstests</h2>")
    if not c.xfstests_counts:
        out.append("<p>No xfstests results in these runs.</p>")
    for fstype, by_label in c.xfstests_counts.items():
        out.append(f"<h3>{_h(fstype)}</h3>")
        out.append(_html_table(["variant", "passed", "failed", "skipped", "errors"],
                               [[v, str(n["passed"]), str(n["failed"]), str(n["skipped"]),
                                 str(n["errors"])] for v, n in by_label.items()]))
        if _without(c, fstype):
            out.append(f'<p class="small">No results, not compared: {_h(", ".join(_without(c, fstype)))}</p>')
        rows = []
        for x in c.xfstests:
            if x.fstype != fstype:
                continue
            for kind, title in XFSTESTS_TITLES.items():
                for t in getattr(x, kind):
                    colour = {"new_failures": "#b91c1c", "fixed": "#14532d"}.get(kind, "#374151")
                    rows.append([f"<td>{_label_html(x.b)} against {_label_html(x.a)}</td>",
                                 f'<td style="color:{colour};font-weight:600">{_h(title)}</td>',
                                 f"<td>{_h(t.test)}</td>", f"<td>{_h(t.a)} → {_h(t.b)}</td>",
                                 f"<td>{_h(_one_line(t.message, 300))}</td>"])
        if rows:
            out.append(_html_table(["compared", "change", "test", "status", "message"], rows,
                                   raw=True, cls="text"))
        else:
            out.append("<p>No test changed status.</p>")

    out.append("<h2>Stages</h2>")
    header, srows = _stage_rows(c)
    out.append(_html_table(header, [[f"<td>{_h(r[0])}</td>"] + [f"<td>{_status_span(x)}</td>" for x in r[1:]]
                                    for r in srows], raw=True))
    failed = [(v, f) for v in c.variants for f in v.failed]
    if failed:
        out.append(_html_table(["variant", "testcase", "status", "message"],
                               [[v.label, f.name, f.status, _one_line(f.message, 300)]
                                for v, f in failed], cls="text"))
    else:
        out.append("<p>No testcase failed.</p>")
    out.append('<p class="small">Written by kvariant compare; the same data is in report.json.</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_reports(c: Comparison, out_dir: Path) -> list[Path]:
    """report.md, report.html and report.json in *out_dir*, each written
    atomically; returns their paths."""
    out_dir = Path(out_dir)
    files = [(out_dir / "report.md", comparison_markdown(c)),
             (out_dir / "report.html", comparison_html(c)),
             (out_dir / "report.json", comparison_json(c))]
    for path, text in files:
        write_atomic(path, text)
    return [p for p, _ in files]


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
        point_notes = list(dict.fromkeys(n for p in c.points for n in p.notes))
        if point_notes:
            print(f"Noted by the run: {'; '.join(point_notes)}.")
    for n in c.notes:
        print(f"\nNote: {n}")
    regs = regressions(c)
    if regs:
        print()
    for r in regs:
        print(f"regression: {r.variant} {r.testcase}: {r.message}")
    return 0
