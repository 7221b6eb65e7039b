"""The one writer of a run's results: each variant's junit.xml and the
run's summary.json, rewritten atomically after every testcase, so a run
that is killed keeps what it had.  A write that fails is
ResultsUnwritable (kvariant.files): the run stops, exit 3."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..junit import write_junit
from ..model import StageResult, VariantResult
from ..summary import RunSummary
from ..ui import UI


class Recorder:
    def __init__(self, run_dir: Path, ui: UI, summary: Callable[[bool], RunSummary]):
        self.run_dir = run_dir
        self.ui = ui
        self.summary = summary  # the run's summary as it stands: final or not

    def record(self, result: VariantResult, stage: StageResult) -> StageResult:
        """*stage* ends: shown, and in the variant's JUnit and the summary."""
        result.stages.append(stage)
        self.ui.stage(result.name, stage)
        self.junit(result)
        self.save()
        return stage

    def junit(self, result: VariantResult) -> None:
        write_junit(result, self.run_dir / result.name / "junit.xml")

    def save(self, final: bool = False) -> None:
        self.summary(final).write(self.run_dir)
