"""The words every report shares, over a :class:`~kvariant.comparison.Comparison`:
cells, verdict rules, titles, the lists of what changed."""

from __future__ import annotations

from .. import stats
from ..comparison import (CONTROL_TARGET, NORMALISED, PAIRED, PAIRED_NORMALISED, Comparison, FioPoint,
                          PointDelta, fmt_iops)
from ..testcase import STAGES

XFSTESTS_TITLES = {"new_failures": "new failures", "fixed": "now pass (fixed)",
                   "now_run": "now run and pass", "no_longer_run": "no longer run",
                   "other": "status changed"}
MAX_LISTED = 20  # tests listed per kind of xfstests change in report.md


def plural(n: int, word: str) -> str:
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


def fio_groups(c: Comparison) -> list[tuple[str, str, str]]:
    """(target, job, column title) per table group; the job is named only
    when the runs hold several."""
    keys = list(dict.fromkeys((p.target, p.job) for p in c.points))
    several_jobs = len({j for _, j in keys}) > 1
    return [(t, j, f"{t} {j}" if several_jobs else t) for t, j in keys]


def columns(c: Comparison) -> list[str]:
    """Variant labels in table order: the reference first."""
    return [c.reference] + [v for v in c.labels if v != c.reference]


def fio_columns(c: Comparison) -> list[str]:
    """The reference, then the variants with fio figures."""
    have = {label for p in c.points for label in p.samples}
    return [v for v in columns(c) if v == c.reference or v in have]

def repeats_text(c: Comparison) -> str:
    ns = sorted({s.n for p in c.points for s in p.samples.values()})
    return f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"


def basis_text(c: Comparison) -> str:
    ref = c.reference
    return (f"Each cell: mean IOPS of {repeats_text(c)} runs ± the half-width of its 95% confidence "
            f"interval (Student t). Δ: change of the mean against {ref}; its 95% CI is Welch's t "
            f"interval of the difference, in percent of {ref}'s mean." + _paired_text(c)
            + _normalised_text(c))


def _paired_text(c: Comparison) -> str:
    points = sorted({p.target for p in c.points for d in p.deltas if d.method in (PAIRED, PAIRED_NORMALISED)})
    if not points:
        return ""
    normalised = sorted({p.target for p in c.points for d in p.deltas if d.method == PAIRED_NORMALISED})
    return (f" Where the variants' guests were up together ({', '.join(points)}), their runs took turns "
            f"round by round: Δ and its CI are those of the pairs (run i of one beside run i of the "
            f"other), the geometric mean of the pairs' ratios with Student's t on their logs"
            + (f"; for {', '.join(normalised)} each run first divided by the {CONTROL_TARGET} run "
               f"beside it" if normalised else "")
            + (". With several guests each ([fio] boots), each pair of guests up together is one unit"
               if any(p.boots for p in c.points) else "")
            + ". What drifts over the run hits both sides of a pair.")


def _normalised_text(c: Comparison) -> str:
    points = sorted({p.target for p in c.points for d in p.deltas if d.method.startswith(NORMALISED)})
    if not points:
        return ""
    return (f" Where the runs were measured in interleaved rounds ({', '.join(points)}), Δ and its CI "
            f"are those of the runs each divided by the {CONTROL_TARGET} run beside it in the same "
            f"guest: the ratio of the geometric means, Welch's t on the log ratios. What moves a "
            f"whole guest divides out; the {CONTROL_TARGET} rows show whether the control moved."
            + (" Where a variant measured in several guests ([fio] boots), each guest's mean is one "
               "unit of the interval." if any(p.boots for p in c.points) else ""))


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
    return (f"{basis_text(c)} A change is better or worse only when {r[stats.BETTER]}; no change: "
            f"{r[stats.NO_CHANGE]}; inconclusive: {r[stats.INCONCLUSIVE]}; not significant: "
            f"{r[stats.NOT_SIGNIFICANT]}. Medians are in report.html and report.json.")


def changes(c: Comparison) -> list[tuple[FioPoint, PointDelta]]:
    """Every fio delta, grouped by compared pair (in the order of
    ``c.pairs``), then by target and numjobs."""
    order = {(p.a, p.b): i for i, p in enumerate(c.pairs)}
    flat = [(p, d) for p in c.points for d in p.deltas]
    return sorted(flat, key=lambda x: order.get((x[1].a, x[1].b), len(order)))  # stable



def changes_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["compared", "target", "numjobs", "means", "change", "95% CI", "verdict"]
    rows = []
    titles = {(t, j): title for t, j, title in fio_groups(c)}
    for p, d in changes(c):
        a, b = p.samples[d.a], p.samples[d.b]
        ch = "-" if d.difference.change_pct is None else fmt_pct(d.difference.change_pct)
        rows.append([f"{d.b} against {d.a}", titles[(p.target, p.job)], str(p.numjobs),
                     f"{fmt_iops(a.mean)} → {fmt_iops(b.mean)}", ch, ci_text(d), d.verdict])
    return header, rows



def patch_change_summary(ch) -> tuple[str, list[str]]:
    """(a one-line summary, one line per patch that differs)."""
    if ch.same:
        return f"the same {plural(len(ch.unchanged), 'patch')}", []
    if ch.added and not (ch.unchanged or ch.changed or ch.reworded or ch.removed):
        return f"adds {plural(len(ch.added), 'patch')} ({ch.a} has none)", []
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



def without(c: Comparison, fstype: str) -> list[str]:
    return [v for v in c.labels if v not in c.xfstests_counts.get(fstype, {})]



def one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def stage_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["variant", *STAGES, "result"]
    rows = [[v.label, *(v.stages[s] for s in STAGES), v.status] for v in c.variants]
    return header, rows



def runs_lines(c: Comparison) -> list[str]:
    out = []
    for r in c.runs:
        started = r.started.replace("T", " ")[:16]
        out.append(f"Run {r.run_id}, started {started}, guest under {r.accel.upper()}"
                   + (" (interrupted)" if r.interrupted else ""))
    return out


def report_title(c: Comparison) -> str:
    others = [v for v in c.labels if v != c.reference]
    if len(c.runs) > 1:
        return "Runs " + ", ".join(r.run_id for r in c.runs[:-1]) + f" and {c.runs[-1].run_id}"
    if not others:
        return c.reference
    if len(others) > 3:
        return f"{len(others)} variants against {c.reference}"
    return f"{', '.join(others)} against {c.reference}"




def noted_by_run(c: Comparison) -> list[str]:
    """What the run noted on its fio points, each once."""
    return list(dict.fromkeys(n for p in c.points for n in p.notes))
