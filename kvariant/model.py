"""Results as data.  A failed variant is a StageResult with Status.FAIL,
never an exception that escapes the run."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from .testcase import TestcaseId

# figures that are lists of numbers, on disk "25240,15800,21382"
REPEATS = ("iops_runs", "iops_boots", "iops_rounds", "clat_p99_us_runs", "host_steal_pct_runs",
           "host_busy_pct_runs")


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
class BuildInfo:
    """The variant's kernel build (None: not built, or an older summary
    that did not record it)."""

    kernel_release: str | None = None
    kernel_dir: str | None = None
    build_dir: str | None = None
    build_seconds: float | None = None
    build_reused: bool | None = None
    toolchain: str | None = None


@dataclasses.dataclass
class BootInfo:
    """The variant's guest: how it booted, and how to boot it by hand."""

    boot_attempts: int | None = None
    vng: str | None = None  # the vng command line
    ssh_port: int | None = None
    accel: str | None = None  # kvm | tcg
    accel_reason: str | None = None


@dataclasses.dataclass
class VariantInfo:
    """What a variant's stages learnt: summary.json's flat ``info`` object
    (and the ``info.*`` properties of its JUnit).  A field that is None was
    not recorded and is not written; keys this version does not know are
    kept in *extra*, and the order of a loaded object's keys is kept."""

    base: str | None = None
    base_commit: str | None = None
    commit: str | None = None
    patches: list[dict[str, Any]] | None = None  # tree.AppliedPatch as dicts
    build: BuildInfo = dataclasses.field(default_factory=BuildInfo)
    boot: BootInfo = dataclasses.field(default_factory=BootInfo)
    xfstests_fuse_policy: str | None = None  # "passthrough,parallel_direct_writes,..."
    complete: bool | None = None  # every testcase ran (--resume keeps the variant)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    order: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        own = _fields(self)  # in the order a run records them: the build and boot in between
        flat = {**{k: own[k] for k in ("base", "base_commit", "commit", "patches")},
                **_fields(self.build), **_fields(self.boot), **own}
        flat = {**{k: v for k, v in flat.items() if v is not None}, **self.extra}
        return {**{k: flat[k] for k in self.order if k in flat}, **flat}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VariantInfo":
        known, build, boot = (set(_fields(x)) for x in (cls(), BuildInfo(), BootInfo()))
        return cls(**{k: v for k, v in d.items() if k in known},
                   build=BuildInfo(**{k: v for k, v in d.items() if k in build}),
                   boot=BootInfo(**{k: v for k, v in d.items() if k in boot}),
                   extra={k: v for k, v in d.items() if k not in known | build | boot},
                   order=tuple(d))


NOT_FLAT = ("build", "boot", "extra", "order")  # VariantInfo's fields that are no key of its own


def _fields(x: Any) -> dict[str, Any]:
    """A dataclass's own scalar fields, in order (not the nested ones)."""
    return {f.name: getattr(x, f.name) for f in dataclasses.fields(x) if f.name not in NOT_FLAT}


@dataclasses.dataclass
class VariantResult:
    name: str
    stages: list[StageResult] = dataclasses.field(default_factory=list)
    info: VariantInfo = dataclasses.field(default_factory=VariantInfo)

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
        return {"name": self.name, "status": self.status.value, "info": self.info.to_dict(),
                "stages": [s.to_dict() for s in self.stages]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VariantResult":
        return cls(name=d["name"], info=VariantInfo.from_dict(d.get("info", {})),
                   stages=[StageResult.from_dict(s) for s in d.get("stages", [])])
