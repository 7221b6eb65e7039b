"""Results as data.  A failed variant is a StageResult with Status.FAIL,
never an exception that escapes the run."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from .testcase import TestcaseId

REPEATS = ("iops_runs",)  # figures that are lists of numbers, on disk "25240,15800,21382"


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"  # the thing under test failed (patch, build, fio error...)
    ERROR = "error"  # the test could not be carried out (guest died, timeout)
    SKIP = "skip"

    @property
    def ok(self) -> bool:
        return self in (Status.PASS, Status.SKIP)


@dataclasses.dataclass
class StageResult:
    """One JUnit testcase: a stage (apply, build...) or one workload point."""

    name: str  # "build", "fio/xfs/randwrite-4k-nj1"
    status: Status
    seconds: float = 0.0
    message: str = ""
    detail: str = ""  # log tail, rejected hunk, compiler errors
    reproduce: str = ""  # a command that reproduces it
    log: str = ""  # path of the stage log, relative to the variant directory
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    suite: str = "stages"  # the JUnit testsuite it belongs to

    @property
    def id(self) -> TestcaseId:
        return TestcaseId.parse(self.name)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        d["figures"] = {k: figure_text(v) if k in REPEATS and isinstance(v, (list, tuple)) else v
                        for k, v in self.figures.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageResult":
        figures = {k: _numbers(v) if k in REPEATS else v for k, v in d.get("figures", {}).items()}
        return cls(**{**d, "status": Status(d["status"]), "figures": figures})


def figure_text(value: Any) -> str:
    """A figure as the JUnit and summary.json write it: a list of numbers
    (the repeats' IOPS) comma-separated, "25240,15800,21382"."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(int(x)) if float(x).is_integer() else repr(float(x)) for x in value)
    return str(value)


def _numbers(value: Any) -> Any:
    """A list of repeats read back from its text; anything else (text that
    is no list of numbers) as it is, for the summary's checks to judge."""
    if not isinstance(value, str) or not value.strip():
        return value
    try:
        return [float(x) for x in value.split(",")]
    except ValueError:
        return value


@dataclasses.dataclass
class VariantResult:
    name: str
    stages: list[StageResult] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # patches, kernel, accel...

    @property
    def status(self) -> Status:
        if any(s.status == Status.ERROR for s in self.stages):
            return Status.ERROR
        if any(s.status == Status.FAIL for s in self.stages):
            return Status.FAIL
        return Status.PASS

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "info": self.info,
                "stages": [s.to_dict() for s in self.stages]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VariantResult":
        return cls(name=d["name"], info=d.get("info", {}),
                   stages=[StageResult.from_dict(s) for s in d.get("stages", [])])
