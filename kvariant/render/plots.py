"""The plots of report.html: IOPS against numjobs, one per target."""

from __future__ import annotations

from ..comparison import Comparison
from .text import fio_columns


def plot_png(c: Comparison, target: str, job: str) -> bytes:
    """IOPS against numjobs for one target: a line per variant through the
    means, error bars of the 95% CI, each repeat as a faint dot."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = [p for p in c.points if (p.target, p.job) == (target, job)]
    numjobs = sorted({p.numjobs for p in points})
    cols = [v for v in fio_columns(c) if any(v in p.samples for p in points)]
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
    _axes(ax, numjobs)
    ax.set_title(f"{target}: {job} IOPS (mean, 95% CI; dots: each run)", fontsize=10)
    ax.legend(frameon=False, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=2 if len(cols) > 1 else 1)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.12)
    return buf.getvalue()


def _axes(ax, numjobs: list[int]) -> None:
    """numjobs along x, IOPS (1.5K, 2M) from 0 up y, light grid, no box."""
    from matplotlib.ticker import FuncFormatter

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
