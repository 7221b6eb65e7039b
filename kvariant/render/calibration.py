"""calibrate's tables in words: calibrate.md and the lines printed on the
terminal, from a :class:`~kvariant.calibrate.Calibration`."""

from __future__ import annotations

import dataclasses

from ..calibrate import AA, HALF_WIDTH, Calibration, Calls, Noise
from ..calibration import Rate


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _rate(r: Rate | None) -> str:
    if r is None:
        return "-"
    return f"{r.k}/{r.n} = {r.rate * 100:.1f}% (95% CI {r.ci_low * 100:.1f}-{r.ci_high * 100:.1f}%)"


def _runs_cell(n: Noise) -> str:
    return "-" if n.optimal_runs is None else str(n.optimal_runs)


def _boots_cell(x: int | None, n: Noise) -> str:
    if n.boot_cv is None:  # one boot, or one run per boot: the components are not known
        return "-"
    return "> 200" if x is None else str(x)


def noise_rows(c: Calibration) -> list[list[str]]:
    """One row per kernel and point: the components and what they cost."""
    rows = []
    for p in c.points:
        for n in p.noise + tuple(dataclasses.replace(x, kernel=f"{x.kernel}, normalised")
                                 for x in p.noise_normalised):
            ci = "-" if n.run_cv_ci is None else f"{_pct(n.run_cv_ci[0], 0)}-{_pct(n.run_cv_ci[1], 0)}"
            mean = (f"{n.mean:.2f} of xfs" if n.kernel.endswith(", normalised")  # a ratio, not IOPS
                    else f"{n.mean / 1000:.1f}K")
            rows.append([p.label, n.kernel, str(n.boots), str(n.runs), mean,
                         _pct(n.run_cv), ci, _pct(n.boot_cv), _pct(n.spread, 0), _runs_cell(n),
                         _boots_cell(n.boots_needed_now, n), _boots_cell(n.boots_needed_optimal, n)])
    return rows


NOISE_HEAD = ["point", "kernel", "boots", "runs", "mean IOPS", "run CV", "run CV 95%", "boot CV",
              "(max-min)/median", "K-J runs/boot", "boots for ±15% now", "at K-J runs"]


def _hw(calls_: Calls) -> str:
    w = calls_.median_half_width_pct
    return "-" if w is None else f"±{w:.0f}%"


def call_rows(c: Calibration) -> list[list[str]]:
    """One row per point and method: the false calls (A/A; then all points
    together), or the rates of 'better' and of 'worse' (power)."""
    rows = []
    for p in c.points:
        for calls_ in _methods(p):
            shown = [calls_.called] if c.mode == AA else [calls_.better, calls_.worse]
            rows.append([p.label, calls_.method, str(calls_.called.n), *map(_rate, shown), _hw(calls_)])
    if c.mode == AA:
        rows += [["all points", x.method, str(x.called.n), _rate(x.called), _hw(x)] for x in _methods(c)]
    return rows


def _methods(x) -> list[Calls]:
    """The verdicts a point (or the whole calibration) has, method by method."""
    return [m for m in (x.today, x.twolevel, x.normalised, x.paired, x.paired_normalised,
                                x.paired_p99, x.paired_quiet)
            if m is not None]


def call_head(c: Calibration) -> list[str]:
    shown = ["better or worse (false)"] if c.mode == AA else ["better", "worse"]
    return ["point", "verdict", "pairs", *shown, "median half-width"]


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(c: Calibration) -> str:
    """calibrate.md: what was calibrated, the noise table, the calls table."""
    what = ("A/A: the same kernel as several variants; every better/worse call is false"
            if c.mode == AA else f"power: {c.kernels[1].label} against {c.kernels[0].label}")
    lines = [f"# Calibration ({what})", "",
             f"Runs: {', '.join(c.run_ids)}. Threshold ±{c.threshold * 100:g}%. Each variant's guest "
             "is a boot, its repeats the runs. Kernels: "
             + "; ".join(f"{k.label} = {k.commit[:12] or 'no commit'} ({len(k.variants)} boots)"
                         for k in c.kernels) + ".", ""]
    notes = [f"- {n}" for n in (*c.setup_differences, *c.notes)]
    lines += [*notes, ""] if notes else []
    lines += ["## Variance components", "", *_table(NOISE_HEAD, noise_rows(c)), "",
              "Run CV: within a guest (its 95% interval by chi-square); boot CV: between guests "
              "(ANOVA, clamped at 0). K-J runs/boot: Kalibera & Jones' optimal runs per boot for "
              "the measured costs of a boot (boot and storage stages) and of a run; boots for "
              f"±{HALF_WIDTH * 100:g}%: boots per variant for a change's 95% interval of that "
              "half-width, at the runs per boot measured and at K-J's.", "",
              "## Verdicts over pairs of boots", "", *_table(call_head(c), call_rows(c)), "",
              ("Every pair of boots, within a run and across runs" if c.mode == AA else
               "Every pair of an A boot and a B boot, within a run and across runs")
              + ", judged by both verdicts; 95% intervals are Clopper-Pearson (pairs share boots, "
              "so they are optimistic)."]
    return "\n".join(lines) + "\n"


def summary_lines(c: Calibration) -> list[str]:
    """The short table printed by ``calibrate``."""
    out = [f"{c.mode} over {len(c.run_ids)} run(s), threshold ±{c.threshold * 100:g}%"]
    out += [f"note: {n}" for n in (*c.setup_differences, *c.notes)]
    out += [f"{r[0]:<24} {r[1]:<14} run CV {r[5]:>6}  boot CV {r[7]:>6}  K-J runs/boot {r[9]:>3}  "
            f"boots for ±15% {r[10]}" for r in noise_rows(c)]
    words = ["called"] if c.mode == AA else ["better", "worse"]
    out += [f"{r[0]:<24} {r[1]:<44} " + "  ".join(f"{w} {x}" for w, x in zip(words, r[3:-1]))
            + f"  half-width {r[-1]}" for r in call_rows(c)]
    return out
