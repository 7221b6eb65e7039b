"""Comparing variants: the cover-letter table of fio IOPS.

Rows are numjobs; for every target a column per variant with the median IOPS
over the repeats and its spread (half the range), and for every variant after
the first its change against the first, in percent.  A change inside the
spread of either side is marked as such ("~"), never shown as a win.
"""

from __future__ import annotations

import re

from .model import VariantResult

POINT = re.compile(r"^fio/(?P<target>[^/]+)/(?P<name>.+)-nj(?P<nj>\d+)$")


def collect(results: list[VariantResult]) -> dict[tuple[str, int], dict[str, dict]]:
    """(target, numjobs) -> variant -> figures, for every fio point with figures."""
    table: dict[tuple[str, int], dict[str, dict]] = {}
    for r in results:
        for s in r.stages:
            m = POINT.match(s.name)
            if m and s.figures.get("iops") is not None:
                table.setdefault((m.group("target"), int(m.group("nj"))), {})[r.name] = s.figures
    return table


def fmt_iops(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}K"
    return f"{v:.0f}"


def spread(fig: dict) -> float:
    return (fig.get("iops_max", fig["iops"]) - fig.get("iops_min", fig["iops"])) / 2


def change(base: dict, other: dict) -> str:
    if not base["iops"]:
        return "n/a"
    pct = (other["iops"] - base["iops"]) / base["iops"] * 100
    # Ranges that overlap cannot tell the variants apart.
    overlap = (other.get("iops_min", other["iops"]) <= base.get("iops_max", base["iops"]) and
               base.get("iops_min", base["iops"]) <= other.get("iops_max", other["iops"]))
    repeated = base.get("repeats", 1) > 1 and other.get("repeats", 1) > 1
    mark = "" if (repeated and not overlap) else " ~"
    return f"{pct:+.1f}%{mark}"


def cover_letter_table(results: list[VariantResult], targets: list[str] | None = None) -> str:
    data = collect(results)
    if not data:
        return ""
    variants = [r.name for r in results]
    targets = targets or list(dict.fromkeys(t for t, _ in data))
    targets = [t for t in targets if any(k[0] == t for k in data)]
    numjobs = sorted({nj for _, nj in data})
    header = ["numjobs"]
    for t in targets:
        for i, v in enumerate(variants):
            header.append(f"{v} {t}")
            if i:
                header.append(f"Δ {t}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for nj in numjobs:
        row = [str(nj)]
        for t in targets:
            by_v = data.get((t, nj), {})
            base = by_v.get(variants[0])
            for i, v in enumerate(variants):
                fig = by_v.get(v)
                cell = "-" if fig is None else fmt_iops(fig["iops"]) + (
                    f" ±{fmt_iops(spread(fig))}" if fig.get("repeats", 1) > 1 else "")
                row.append(cell)
                if i:
                    row.append(change(base, fig) if base and fig else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def fio_markdown(results: list[VariantResult], *, fio_cfg, vm_cfg, null_blk, fuse_cfg,
                 accel: str, base: str) -> str:
    """fio.md: the table in the shape of a patch cover letter, with the job
    and the machine it ran on."""
    table = cover_letter_table(results, list(fio_cfg.targets))
    if not table:
        return ""
    over = [n for n in fio_cfg.numjobs if n > vm_cfg.cpus]
    lines = [
        f"fio {fio_cfg.rw} {fio_cfg.bs}, O_DIRECT, {fio_cfg.ioengine}, iodepth {fio_cfg.iodepth}, "
        f"numjobs {'/'.join(map(str, fio_cfg.numjobs))}, all jobs on one shared file of "
        f"{fio_cfg.size} prefilled by a sequential write; ramp {fio_cfg.ramp_time:g} s, "
        f"runtime {fio_cfg.runtime:g} s, {fio_cfg.repeat} run(s) per point "
        f"(median IOPS{', ± half the range' if fio_cfg.repeat > 1 else ''}).",
        "",
        f"Guest: {accel}, {vm_cfg.cpus} vCPUs, {vm_cfg.memory}; XFS on null_blk "
        f"({null_blk.gb} GB, bs {null_blk.bs}, memory_backed, scheduler none); kernel {base} "
        f"+ each variant's patches.",
        f"FUSE targets: kvariant's passthrough server over a directory of that XFS; open policy "
        f"parallel_direct_writes={str(fuse_cfg.parallel_direct_writes).lower()}, "
        f"direct_io={str(fuse_cfg.direct_io).lower()}; `fuse` is the same server without passthrough.",
        "",
        table,
        "Δ: change against the first variant. \"~\" marks a change that does not stand out of the "
        "spread (the ranges of the repeats overlap, or there was one run).",
    ]
    if over:
        lines.append(f"numjobs {', '.join(map(str, over))} exceed the guest's {vm_cfg.cpus} vCPUs.")
    return "\n".join(lines) + "\n"
