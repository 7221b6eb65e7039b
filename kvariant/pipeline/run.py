"""One run: every variant of the config through its stages and workloads
(variant.py).  With ``[fio] together`` (the default) every variant is
built first, then their guests are up at once and their fio runs
alternate; otherwise one variant after the other.  A variant that fails
never stops the next; an interrupt ends the run with what it has
recorded; --resume keeps the variants an interrupted run finished."""

from __future__ import annotations

import time
from pathlib import Path

from ..config import Config
from ..config.checks import host_memory_mib, memory_mib
from ..model import VariantResult
from ..summary import RunSummary
from ..tree import Mirror
from ..ui import UI
from ..errors import RunInterrupted, check_interrupt
from .boot import Accel
from .recorder import Recorder
from .stages import STAGES, Stage, Workload
from .variant import WORKLOADS, VariantRun


class Run:
    def __init__(self, config: Config, run_dir: Path, run_id: str, ui: UI,
                 previous: dict | None = None, stages: tuple[Stage, ...] = STAGES,
                 workloads: tuple[Workload, ...] = WORKLOADS):
        self.config = config
        self.stages = stages  # build: apply and build alone, no guest
        self.workloads = workloads
        self.run_dir = run_dir
        self.run_id = run_id
        self.ui = ui
        self.mirror = Mirror(config.kernel.tree)
        self.accel = Accel.choose(config.vm.accel)
        self.results: list[VariantResult] = []
        self.started = time.time()
        self.interrupted = False
        self.threshold = 0.05  # smallest IOPS change the reports call better or worse
        self.force = False  # --force: verdicts against an earlier run with another setup
        self.recorder = Recorder(run_dir, ui, lambda final: RunSummary.of_run(self, final))
        # --resume: the summary.json of the interrupted run this one finishes
        self.previous = previous
        self.resumed = list(previous.get("resumed", [])) + [previous.get("seconds", 0)] if previous else []
        if previous:
            self.started -= previous.get("seconds", 0)

    def execute(self) -> list[VariantResult]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        before = {v["name"]: VariantResult.from_dict(v) for v in (self.previous or {}).get("variants", [])}
        self.save()
        try:
            todo = []
            for variant in self.config.variants:
                prev = before.get(variant.name)
                if prev is not None and prev.info.complete:
                    self.results.append(prev)  # finished before the interrupt: kept as it was
                    self.ui.info(f"{variant.name:<16} kept from the interrupted run ({prev.status.value})")
                else:
                    todo.append((variant, prev))
            if self.together(len(todo)):
                self.execute_together(todo)
            else:
                for variant, prev in todo:
                    check_interrupt()
                    self.variant_run(variant, prev).execute()
        except (RunInterrupted, KeyboardInterrupt):
            self.interrupted = True
        finally:
            self.save(final=True)
        return self.results

    def variant_run(self, variant, prev: VariantResult | None) -> VariantRun:
        result = VariantResult(variant.name)
        self.results.append(result)
        return VariantRun(self, variant, result, previous=prev)

    def together(self, variants: int) -> bool:
        """Whether the variants' guests are up at once for fio ([fio]
        together, more than one variant to run, a fio workload with
        points, and a guest stage)."""
        fio = self.workloads[:1]
        if not (self.config.fio.together and variants > 1 and bool(fio)
                and hasattr(fio[0], "run_together") and bool(fio[0].names(self.config))
                and any(s.name == "boot" for s in self.stages)):
            return False
        need, host = variants * (memory_mib(self.config.vm.memory) or 0), host_memory_mib()
        if host is not None and need > host * 0.8:
            self.ui.info(f"[fio] together: {variants} guests of {self.config.vm.memory} need {need} MiB, "
                         f"more than 80% of this host's {host} MiB: the variants run one after the other")
            return False
        return True

    def execute_together(self, todo: list) -> None:
        """Every variant applied and built first; then their guests booted
        and up at once, their fio runs alternating (fio_workload.run_fio);
        then each variant's other workloads, one variant after the other.
        A variant that fails leaves the others going; an interrupt marks
        what each had still to come; every guest is torn down."""
        first = [i for i, s in enumerate(self.stages) if s.name == "boot"][0]
        before_boot, guest = self.stages[:first], self.stages[first:]
        runs: list[VariantRun] = []
        try:
            built = []
            for variant, prev in todo:
                check_interrupt()
                vr = self.variant_run(variant, prev)
                runs.append(vr)
                vr.begin()
                if vr.run_stages(before_boot, later=guest):
                    built.append(vr)
            up = [vr for vr in built if vr.run_stages(guest)]
            if up:
                self.workloads[0].run_together(up)
            for vr in up:
                if vr.gone:
                    vr.skip_missing(f"skipped: {vr.gone}")
                else:
                    vr.run_workloads(self.workloads[1:])
                vr.finish()
                vr.teardown()
        except (KeyboardInterrupt, RunInterrupted):
            for vr in runs:
                if not (vr.result.info.complete or vr.ended):
                    vr.mark_interrupted()
            raise RunInterrupted() from None
        finally:
            for vr in runs:
                vr.teardown()

    def save(self, final: bool = False) -> None:
        self.recorder.save(final)
