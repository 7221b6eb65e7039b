"""What a run shows and leaves: one line per stage as it goes, summary.json
(rewritten atomically after every stage), and the final table of variants x
stages with the fio IOPS."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .compare import fio_markdown
from .junit import write_atomic
from .workloads.xfstests import summarize as summarize_xfstests
from .model import StageResult, Status, VariantResult

if TYPE_CHECKING:
    from .runner import Run

STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.ERROR: "bold magenta",
         Status.SKIP: "yellow"}


class UI:
    """Console output on stderr: a line per finished stage, and a spinner
    with the running stage while stderr is a terminal."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal
        self._status = None

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

    def stage(self, variant: str, s: StageResult) -> None:
        self._stop()
        msg = f" {escape(s.message)}" if s.message else ""
        self.console.print(f"{variant:<16} {s.name:<28} [{STYLE[s.status]}]{s.status.value.upper():<5}[/]"
                           f" {s.seconds:7.1f} s{msg}", markup=True, soft_wrap=True)

    def info(self, text: str) -> None:
        self._stop()
        self.console.print(text, markup=False, soft_wrap=True)


def summary_dict(run: "Run", final: bool) -> dict:
    return {
        "run_id": run.run_id,
        "config": str(run.config.path),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.started)),
        "seconds": round(time.time() - run.started, 1),
        "finished": final and not run.interrupted,
        "interrupted": run.interrupted,
        "accel": {"kvm": run.accel.kvm, "reason": run.accel.reason},
        "status": overall(run.results).value if run.results else "pending",
        "variants": [v.to_dict() for v in run.results],
        "xfstests": summarize_xfstests({v.name: v.stages for v in run.results}),
    }


def overall(results: list[VariantResult]) -> Status:
    if any(r.status != Status.PASS for r in results):
        return Status.FAIL
    return Status.PASS


def write_summary(run: "Run", final: bool) -> None:
    write_atomic(run.run_dir / "summary.json", json.dumps(summary_dict(run, final), indent=2) + "\n")
    table = fio_markdown_of(run)
    if table:
        write_atomic(run.run_dir / "fio.md", table)


def fio_markdown_of(run: "Run") -> str:
    c = run.config
    return fio_markdown(run.results, fio_cfg=c.fio, vm_cfg=c.vm, null_blk=c.null_blk, fuse_cfg=c.fuse,
                        accel="KVM" if run.accel.kvm else "TCG", base=c.kernel.base)


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


def print_summary(ui: UI, run: "Run", stages: tuple[str, ...]) -> None:
    ui.console.print(stage_table(run.results, stages))
    table = fio_markdown_of(run)
    if table:
        ui.info(table)
    for line in xfstests_lines(summarize_xfstests({v.name: v.stages for v in run.results})):
        ui.info(line)
    if run.interrupted:
        ui.console.print("[bold magenta]interrupted[/]: the results above are what finished")


def xfstests_lines(summary: dict) -> list[str]:
    """Per fstype: passed/failed/skipped per variant, then the tests whose
    status differs (new failures first)."""
    lines = []
    for fstype, data in summary.items():
        counts = ", ".join(f"{v}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
                           + (f", {c['errors']} errors" if c["errors"] else "")
                           for v, c in data["variants"].items())
        lines.append(f"xfstests on {fstype}: {counts}")
        for d in data["differences"]:
            tag = ("NEW FAILURE in " + ", ".join(d["new_failures"]) if d["new_failures"] else
                   "fixed in " + ", ".join(d["fixed"]) if d["fixed"] else "differs")
            states = " ".join(f"{v}={st}" for v, st in d["statuses"].items())
            lines.append(f"  {d['test']}: {tag} ({states})")
    return lines
