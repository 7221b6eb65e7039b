"""report.md: plain markdown to paste into a patch cover letter; its
cover-letter tables are the terminal's too."""

from __future__ import annotations

from ..comparison import Comparison, regressions
from .text import (MAX_LISTED, XFSTESTS_TITLES, changes_rows, delta_cell, fio_columns, fio_groups,
                   one_line, patch_change_summary, plural, noted_by_run, runs_lines, sample_cell,
                   setup_lines, stage_rows, statistics_text, report_title, without)


def _table_rows(c: Comparison, groups, titled: bool) -> tuple[list[str], list[list[str]]]:
    """Rows numjobs; per group a column per variant and after each variant
    but the reference its Δ against the reference.  *titled*: the group is
    named in each header (a single table for all targets)."""
    cols = fio_columns(c)
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
    groups = fio_groups(c)
    if not groups:
        return []
    per_group = 2 * len(fio_columns(c)) - 1
    if 1 + per_group * len(groups) <= 8 or len(groups) == 1:
        return [md_table(*_table_rows(c, groups, titled=True))]
    return [f"**{g[2]}**\n\n" + md_table(*_table_rows(c, [g], titled=False)) for g in groups]



def _patch_lines(c: Comparison) -> list[str]:
    lines = []
    for v in c.variants:
        base = f" on {v.base}" if v.base else ""
        if not v.patches:
            lines.append(f"- **{v.label}**: no patches{base}")
            continue
        lines.append(f"- **{v.label}**: {plural(len(v.patches), 'patch')}{base}")
        lines += [f"  {i}. {p.subject} (patch-id {p.short_id})" for i, p in enumerate(v.patches, 1)]
    if c.patch_changes:
        lines += ["", "Between revisions:", ""]
        for ch in c.patch_changes:
            head, items = patch_change_summary(ch)
            lines.append(f"- {ch.b} against {ch.a}: {head}")
            lines += [f"  - {x}" for x in items]
    return lines



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
        if without(c, fstype):
            lines.append(f"  - no results (not compared): {', '.join(without(c, fstype))}")
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
                    lines += [f"      - {t.test}: {one_line(t.message)}" for t in tests[:MAX_LISTED]
                              if t.message]
    return lines


def _regression_lines(c: Comparison) -> list[str]:
    return [f"- {r.variant}: `{r.testcase}`: {one_line(r.message, 220)}" for r in regressions(c)]



def _failed_lines(c: Comparison) -> list[str]:
    lines = [f"- {v.label}: `{f.name}` {f.status}: {one_line(f.message) or '(no message)'}"
             for v in c.variants for f in v.failed]
    return lines or ["No testcase failed."]



LOCKS = (("fuse", "write"), ("fuse", "read"), ("xfs", "write"), ("xfs", "read"))


def _contention_lines(c: Comparison) -> list[str]:
    """Lock waits per second in each point's traced run, per variant: the
    FUSE inode lock (sites in fs/fuse) and the backing XFS, by mode."""
    points = [p for p in c.points if p.contention]
    if not points:
        return []
    header = ["point", "variant", *[f"{layer} {mode} waits/s" for layer, mode in LOCKS]]
    rows = [[f"{p.target} nj{p.numjobs}", label,
             *[f"{p.contention[label].get(f'contention_{layer}_{mode}_waits_per_s', 0):g}"
               for layer, mode in LOCKS]]
            for p in points for label in c.labels if label in p.contention]
    return ["## Lock contention", "",
            "Sleeping-lock waits per second in one short traced fio run of each point, after "
            "the measured runs (lock:contention_begin/end; per-site figures are in the JUnit "
            "and report.json).", "", md_table(header, rows), ""]


def host_row(label: str, figures: list[dict]) -> list[str]:
    """One variant's host over its points: the runs' steal and busy shares,
    the most other guests, our own process at its most, the waits."""
    steal = [float(x) for f in figures for x in f.get("host_steal_pct_runs", [])]
    busy = [float(x) for f in figures for x in f.get("host_busy_pct_runs", [])]
    if not steal:
        return []
    waited = sum(float(f.get("measure_wait_s", 0)) for f in figures)
    return [label, str(len(steal)), f"{min(steal):g}–{max(steal):g}", f"{min(busy):g}–{max(busy):g}",
            f"{max(int(f.get('host_other_qemus_max', 0)) for f in figures)}",
            f"{max(float(f.get('host_own_cpu_pct_max', 0)) for f in figures):g}", f"{waited:g}"]


def _host_lines(c: Comparison) -> list[str]:
    """The host while each variant measured (hoststate.py), so that a
    burst of steal time or another guest beside ours is seen."""
    rows = [row for label in c.labels
            if (row := host_row(label, [p.host[label] for p in c.points if label in p.host]))]
    if not rows:
        return []
    header = ["variant", "fio runs", "steal %", "busy %", "other guests", "our process, % of a CPU",
              "waited for the host, s"]
    return ["## The host while measuring", "",
            "Per fio run, the share of all CPUs' time the hypervisor under this machine took "
            "(steal) and the share busy; the most guests running beside ours; what the pipeline's "
            "own process spent; and how long points waited for another run's measurement.", "",
            md_table(header, rows), ""]


def comparison_markdown(c: Comparison) -> str:
    """report.md: plain markdown to paste into a patch cover letter."""
    out = [f"# {report_title(c)}", ""]
    out += [f"**{line}**\n" for line in setup_lines(c)]
    out += [line + ("." if not line.endswith(".") else "") for line in runs_lines(c)]
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
        point_notes = noted_by_run(c)
        out += [statistics_text(c), ""]
        if point_notes:
            out += [f"Noted by the run: {'; '.join(point_notes)}.", ""]
    else:
        out += ["No fio figures in these runs.", ""]
    for n in c.notes:
        out += [f"Note: {n}", ""]
    if tables:
        out += ["### Changes with their 95% confidence intervals", "", md_table(*changes_rows(c))]
    out += _contention_lines(c)
    out += _host_lines(c)
    out += ["## Patches", "", *_patch_lines(c), ""]
    out += ["## xfstests", "", *_xfstests_lines(c), ""]
    out += ["## Stages", "", md_table(*stage_rows(c)), *_failed_lines(c), ""]
    return "\n".join(out).rstrip("\n") + "\n"


