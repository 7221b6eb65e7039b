"""report.html: one self-contained file, the plots as data URIs."""

from __future__ import annotations

import base64
import html

from .. import stats
from ..comparison import Comparison, PointDelta, fmt_iops, regressions
from .plots import plot_png
from .text import (XFSTESTS_TITLES, basis_text, changes, changes_rows, delta_cell, fio_columns,
                   fio_groups, one_line, patch_change_summary, plural, noted_by_run, runs_lines,
                   sample_cell, setup_lines, stage_rows, report_title, verdict_rules, without)

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
    if plots is None:
        plots = {(t, j): plot_png(c, t, j) for t, j, _ in fio_groups(c)}
    out = [*_head(c), *_fio_section(c, plots), *_patches_section(c), *_xfstests_section(c),
           *_stages_section(c)]
    out.append('<p class="small">Written by kvariant compare; the same data is in report.json.</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _head(c: Comparison) -> list[str]:
    """The title, the runs, the reference and the regressions."""
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>{_h(report_title(c))}</title><style>{CSS}</style></head><body>",
           f"<h1>{_h(report_title(c))}</h1>"]
    out += [f'<div class="regressions"><b>{_h(line)}</b></div>' for line in setup_lines(c)]
    out += [f'<p class="meta">{_h(line)}</p>' for line in runs_lines(c)]
    out.append(f'<p class="meta">Reference: <b>{_h(c.reference)}</b>; threshold '
               f'±{c.threshold * 100:g}%; 95% confidence intervals.</p>')
    regs = regressions(c)
    if regs:
        out.append('<div class="regressions"><b>Regressions</b> (an IOPS change judged worse, a new '
                   'xfstests failure):<ul>' + "".join(
                       f"<li>{_h(r.variant)}: <code>{_h(r.testcase)}</code>: {_h(one_line(r.message, 300))}</li>"
                       for r in regs) + "</ul></div>")
    return out


def _fio_section(c: Comparison, plots: dict[tuple[str, str], bytes]) -> list[str]:
    out = ["<h2>fio IOPS</h2>"]
    groups = fio_groups(c)
    if not groups:
        out.append("<p>No fio figures in these runs.</p>")
    else:
        rules = verdict_rules(c.threshold)
        out.append(f'<p class="explain">{_h(basis_text(c))} Hover a cell for the runs and the '
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
        out.append(_point_table(c, target, job))
        png = plots.get((target, job))
        if png:
            out.append(f'<img alt="{_h(title)}: IOPS against numjobs" '
                       f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')
        out.append("</div>")
    if groups:
        point_notes = noted_by_run(c)
        if point_notes:
            out.append(f'<p class="small">Noted by the run: {_h("; ".join(point_notes))}.</p>')
        out.append("<h3>Changes with their 95% confidence intervals</h3>")
        header, crows = changes_rows(c)
        header = [f'<th class="l">{_h(x)}</th>' for x in header[:2]] + header[2:]
        rows = [[f'<td class="l">{_h(r[0])}</td>', f'<td class="l">{_h(r[1])}</td>']
                + [f"<td>{_h(x)}</td>" for x in r[2:-1]] + [_verdict_td(d, d.verdict)]
                for (_, d), r in zip(changes(c), crows)]
        out.append(_html_table(header, rows, raw=True))
    return out


def _point_table(c: Comparison, target: str, job: str) -> str:
    """A row per numjobs: each variant's IOPS, and its verdict against the reference."""
    cols = fio_columns(c)
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
    return _html_table(header, rows, raw=True)


def _patches_section(c: Comparison) -> list[str]:
    out = ["<h2>Patches</h2><ul>"]
    for v in c.variants:
        base = f" on {_h(v.base)}" if v.base else ""
        if not v.patches:
            out.append(f"<li><b>{_h(v.label)}</b>: no patches{base}</li>")
            continue
        items = "".join(f"<li>{_h(p.subject)} <code>{_h(p.short_id)}</code></li>" for p in v.patches)
        out.append(f"<li><b>{_h(v.label)}</b>: {plural(len(v.patches), 'patch')}{base}<ol>{items}</ol></li>")
    out.append("</ul>")
    if c.patch_changes:
        out.append("<h3>Between revisions</h3><ul>")
        for ch in c.patch_changes:
            head, items = patch_change_summary(ch)
            sub = "".join(f"<li>{_h(x)}</li>" for x in items)
            out.append(f"<li><b>{_label_html(ch.b)}</b> against {_label_html(ch.a)}: {_h(head)}"
                       + (f"<ul>{sub}</ul>" if sub else "") + "</li>")
        out.append("</ul>")
    return out


def _xfstests_section(c: Comparison) -> list[str]:
    out = ["<h2>xfstests</h2>"]
    if not c.xfstests_counts:
        out.append("<p>No xfstests results in these runs.</p>")
    for fstype, by_label in c.xfstests_counts.items():
        out.append(f"<h3>{_h(fstype)}</h3>")
        out.append(_html_table(["variant", "passed", "failed", "skipped", "errors"],
                               [[v, str(n["passed"]), str(n["failed"]), str(n["skipped"]),
                                 str(n["errors"])] for v, n in by_label.items()]))
        if without(c, fstype):
            out.append(f'<p class="small">No results, not compared: {_h(", ".join(without(c, fstype)))}</p>')
        rows = _xfstests_rows(c, fstype)
        if rows:
            out.append(_html_table(["compared", "change", "test", "status", "message"], rows,
                                   raw=True, cls="text"))
        else:
            out.append("<p>No test changed status.</p>")
    return out


def _xfstests_rows(c: Comparison, fstype: str) -> list[list[str]]:
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
                             f"<td>{_h(one_line(t.message, 300))}</td>"])
    return rows


def _stages_section(c: Comparison) -> list[str]:
    out = ["<h2>Stages</h2>"]
    header, srows = stage_rows(c)
    out.append(_html_table(header, [[f"<td>{_h(r[0])}</td>"] + [f"<td>{_status_span(x)}</td>" for x in r[1:]]
                                    for r in srows], raw=True))
    failed = [(v, f) for v in c.variants for f in v.failed]
    if failed:
        out.append(_html_table(["variant", "testcase", "status", "message"],
                               [[v.label, f.name, f.status, one_line(f.message, 300)]
                                for v, f in failed], cls="text"))
    else:
        out.append("<p>No testcase failed.</p>")
    return out
