"""One run: every variant of the config through its stages and workloads
(variant.py), one after the other.  A variant that fails never stops the
next; an interrupt ends the run with what it has recorded; --resume keeps
the variants an interrupted run finished."""

from __future__ import annotations

import time
from pathlib import Path

from ..config import Config
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
            for variant in self.config.variants:
                check_interrupt()
                prev = before.get(variant.name)
                if prev is not None and prev.info.complete:
                    self.results.append(prev)  # finished before the interrupt: kept as it was
                    self.ui.info(f"{variant.name:<16} kept from the interrupted run ({prev.status.value})")
                    continue
                result = VariantResult(variant.name)
                self.results.append(result)
                VariantRun(self, variant, result, previous=prev).execute()
        except (RunInterrupted, KeyboardInterrupt):
            self.interrupted = True
        finally:
            self.save(final=True)
        return self.results

    def save(self, final: bool = False) -> None:
        self.recorder.save(final)
