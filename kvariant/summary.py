"""summary.json: the one writer and the one checked reader of a run's
summary (:class:`RunSummary`), which ``compare``, ``--against`` and
``--resume`` load and a run rewrites after every stage.

A summary is data from disk, possibly edited, truncated or hostile: every
value that becomes a path (the run id, variant names), a number in a
verdict (IOPS) or a key lookup (``info``, ``figures``) is checked here, and
anything else is a ConfigError naming the file, the key and what was
expected.  IOPS that are not finite and non-negative mean a corrupt run.
Summaries carry ``schema``: a layout number; those written before it
existed have the first layout and load as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigError
from .files import write_result
from .fuse.servers import get_server
from .model import Status, VariantResult
from .tally import summarize as summarize_xfstests
from .testcase import TestcaseId

SCHEMA = 1  # summary.json's layout; a summary without the key has layout 1
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a directory name, never a path
VARIANT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")  # config.SLUG
TEXT_FIELDS = ("name", "message", "detail", "reproduce", "log", "suite")
STATUSES = tuple(s.value for s in Status)


@dataclasses.dataclass(frozen=True)
class AccelInfo:
    """The accelerator the guests ran under: KVM, TCG, or unknown (None)."""

    kvm: bool | None
    reason: str = ""

    @property
    def name(self) -> str:
        return "?" if self.kvm is None else ("kvm" if self.kvm else "tcg")


class RunState(Protocol):
    """What a run in progress tells its summary."""

    run_id: str
    config: Any  # kvariant.config.Config
    accel: Any  # .kvm, .reason
    resumed: list[float]
    started: float  # time.time() at its start, less the seconds of the runs it resumes
    interrupted: bool
    results: list[VariantResult]


@dataclasses.dataclass
class RunSummary:
    """One run's summary.json.  ``finished`` is None when a summary does not
    say; ``status`` and ``xfstests`` follow from the variants."""

    run_id: str
    variants: list[VariantResult]
    config: str = ""
    config_sha256: str = ""
    fio_setup: str = ""  # the fio job and the guest, in words (the top of report.md)
    setup: dict[str, Any] = dataclasses.field(default_factory=dict)  # see setup_record
    planned_variants: list[str] = dataclasses.field(default_factory=list)
    resumed: list[float] = dataclasses.field(default_factory=list)  # seconds of each earlier part
    debug: bool = False
    started: str = ""
    seconds: float = 0.0
    finished: bool | None = None
    interrupted: bool = False
    accel: AccelInfo = AccelInfo(None)
    shard: dict[str, Any] | None = None  # a shard's or a merged run's record (kvariant.shard)
    path: Path = Path()  # the run directory (not written)

    @classmethod
    def of_run(cls, run: RunState, final: bool) -> "RunSummary":
        cfg = run.config
        return cls(run_id=run.run_id, variants=run.results, config=str(cfg.path),
                   config_sha256=config_digest(cfg.path), fio_setup=fio_setup(cfg, run.accel.kvm),
                   setup=setup_record(cfg, run.accel.kvm),
                   planned_variants=[v.name for v in cfg.variants], resumed=run.resumed,
                   debug=any(f.name == "debug.config" for f in cfg.kernel.fragments),
                   started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.started)),
                   seconds=round(time.time() - run.started, 1),
                   finished=final and not run.interrupted, interrupted=run.interrupted,
                   accel=AccelInfo(run.accel.kvm, run.accel.reason), shard=getattr(run, "shard", None))

    @property
    def status(self) -> str:
        if not self.variants:
            return "pending"
        return (Status.FAIL if any(r.status != Status.PASS for r in self.variants) else Status.PASS).value

    @property
    def records_setup(self) -> bool:
        return len(self.setup) > 1  # older summaries: the accelerator alone

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "run_id": self.run_id, "config": self.config,
                "config_sha256": self.config_sha256, "fio_setup": self.fio_setup, "setup": self.setup,
                "planned_variants": self.planned_variants, "resumed": self.resumed,
                "debug": self.debug, "started": self.started, "seconds": self.seconds,
                "finished": self.finished, "interrupted": self.interrupted,
                "accel": {"kvm": self.accel.kvm, "reason": self.accel.reason},
                "status": self.status, "variants": [v.to_dict() for v in self.variants],
                "xfstests": summarize_xfstests({v.name: v.stages for v in self.variants}),
                **({"shard": self.shard} if self.shard is not None else {})}

    def write(self, run_dir: Path) -> None:
        """RUN_DIR/summary.json, replaced atomically."""
        write_result(Path(run_dir) / "summary.json", json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> "RunSummary":
        """RUN_DIR/summary.json, checked (see the module): a missing directory
        or file, invalid JSON, a summary without variants, a run id or
        variant name that is not a plain name, figures of the wrong type or
        IOPS that are not finite and >= 0 raise ConfigError naming the file
        and the key."""
        run_dir = Path(run_dir)
        path = run_dir / "summary.json"
        if not run_dir.is_dir():
            raise ConfigError(run_dir, "", "no such run directory")
        if not path.is_file():
            raise ConfigError(path, "", "not found: not a kvariant run directory")
        return cls.from_dict(path, read_summary(path))

    @classmethod
    def from_dict(cls, path: Path, data: dict[str, Any]) -> "RunSummary":
        """The summary *data* read from *path*, checked."""
        _check_schema(path, data)
        variants = variants_of(path, data)
        run_id = run_id_of(path, data, path.parent.resolve().name)
        resume_fields(path, data)
        accel = data.get("accel") if isinstance(data.get("accel"), dict) else {}
        kvm = accel.get("kvm")
        return cls(run_id=run_id, variants=variants, config=data.get("config", ""),
                   config_sha256=data.get("config_sha256", ""), fio_setup=str(data.get("fio_setup", "")),
                   setup=setup_of(path, data), planned_variants=data.get("planned_variants", []),
                   resumed=data.get("resumed", []), debug=bool(data.get("debug", False)),
                   started=str(data.get("started", "")), seconds=data.get("seconds", 0),
                   finished=None if "finished" not in data else bool(data["finished"]),
                   interrupted=bool(data.get("interrupted", False)),
                   accel=AccelInfo(None if kvm is None else bool(kvm), str(accel.get("reason", ""))),
                   shard=shard_of(path, data), path=path.parent)


def config_digest(path) -> str:
    """The config file's SHA-256: --resume refuses a config that changed."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _check_schema(path: Path, data: dict[str, Any]) -> None:
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= SCHEMA:
        raise ConfigError(path, "schema", f"expected a summary layout from 1 to {SCHEMA} (a newer "
                          f"kvariant wrote it?), got {schema!r}")


def read_summary(path: Path) -> dict[str, Any]:
    """The JSON object in *path*; ConfigError when it cannot be read, is not
    JSON, or is not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, "", f"cannot be read: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(path, "", f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(path, "", f"expected a JSON object (a run summary), got {_kind(data)}")
    return data


def run_id_of(path: Path, data: dict[str, Any], default: str) -> str:
    """The summary's run id, a name usable as one directory (reports are
    written to ``compare-<run ids>/``); *default* (the directory's own
    name) when it has none."""
    if "run_id" not in data:
        return default
    run_id = data["run_id"]
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise ConfigError(path, "run_id", "expected a run id usable as a directory name "
                          f"(letters, digits, '.', '_', '-'), got {run_id!r}")
    return run_id


def variants_of(path: Path, data: dict[str, Any]) -> list[VariantResult]:
    """The variant results of a summary, each checked (see the module)."""
    items = data.get("variants")
    if not isinstance(items, list):
        raise ConfigError(path, "variants", f"expected a list of variant results, got {_kind(items)}")
    out = []
    for i, v in enumerate(items):
        _check_variant(path, f"variants[{i}]", v)
        try:
            out.append(VariantResult.from_dict(v))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(path, f"variants[{i}]", f"expected a variant result ({e})") from None
    return out


def resume_fields(path: Path, data: dict[str, Any]) -> None:
    """What ``--resume`` reads of a summary besides its variants: the
    config's path and digest, the planned variants, the seconds spent."""
    variants_of(path, data)
    for key in ("config", "config_sha256"):
        if not isinstance(data.get(key, ""), str):
            raise ConfigError(path, key, f"expected a string, got {_kind(data[key])}")
    planned = data.get("planned_variants", [])
    if not isinstance(planned, list) or not all(isinstance(n, str) for n in planned):
        raise ConfigError(path, "planned_variants", f"expected a list of variant names, got {_kind(planned)}")
    if not _is_number(data.get("seconds", 0)) or data.get("seconds", 0) < 0:
        raise ConfigError(path, "seconds", f"expected a number of seconds, got {data['seconds']!r}")
    resumed = data.get("resumed", [])
    if not isinstance(resumed, list) or not all(_is_number(x) for x in resumed):
        raise ConfigError(path, "resumed", f"expected a list of seconds, got {_kind(resumed)}")


def shard_of(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """The ``shard`` record of a shard's run (``k`` of ``n``) or of a merged
    run (``k`` null), checked as far as the summary goes: the plan itself
    is read by kvariant.shard.  Summaries without one: None."""
    record = data.get("shard")
    if record is None:
        return None
    if not isinstance(record, dict):
        raise ConfigError(path, "shard", f"expected an object, got {_kind(record)}")
    n, k = record.get("n"), record.get("k")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(path, "shard.n", f"expected a number of shards >= 1, got {n!r}")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n):
        raise ConfigError(path, "shard.k", f"expected a shard in 1..{n} (or null: merged), got {k!r}")
    for key in ("plan_digest", "store"):
        if not isinstance(record.get(key), str):
            raise ConfigError(path, f"shard.{key}", f"expected a string, got {_kind(record.get(key))}")
    if not isinstance(record.get("plan"), dict):
        raise ConfigError(path, "shard.plan", f"expected the plan (an object), got {_kind(record.get('plan'))}")
    return record


def _check_variant(path: Path, key: str, v: Any) -> None:
    if not isinstance(v, dict) or "name" not in v:
        raise ConfigError(path, key, "expected a variant result (an object with a name)")
    if not isinstance(v["name"], str) or not VARIANT.match(v["name"]):
        raise ConfigError(path, f"{key}.name", "expected a variant name (a slug: lower-case letters, "
                          f"digits, '.', '_', '-'), got {v['name']!r}")
    if not isinstance(v.get("info", {}), dict):
        raise ConfigError(path, f"{key}.info", f"expected an object, got {_kind(v['info'])}")
    patches = v.get("info", {}).get("patches")
    if patches is not None and not isinstance(patches, list):
        raise ConfigError(path, f"{key}.info.patches", f"expected a list, got {_kind(patches)}")
    stages = v.get("stages", [])
    if not isinstance(stages, list):
        raise ConfigError(path, f"{key}.stages", f"expected a list of testcases, got {_kind(stages)}")
    for j, s in enumerate(stages):
        _check_stage(path, f"{key}.stages[{j}]", s)


def _check_stage(path: Path, key: str, s: Any) -> None:
    if not isinstance(s, dict):
        raise ConfigError(path, key, f"expected a testcase (an object), got {_kind(s)}")
    for field in TEXT_FIELDS:
        if not isinstance(s.get(field, ""), str):
            raise ConfigError(path, f"{key}.{field}", f"expected a string, got {_kind(s[field])}")
    if s.get("status") not in STATUSES:
        raise ConfigError(path, f"{key}.status", f"expected one of {', '.join(STATUSES)}, "
                          f"got {s.get('status')!r}")
    if not _is_number(s.get("seconds", 0.0)):
        raise ConfigError(path, f"{key}.seconds", f"expected a number, got {s['seconds']!r}")
    figures = s.get("figures", {})
    if not isinstance(figures, dict):
        raise ConfigError(path, f"{key}.figures", f"expected an object, got {_kind(figures)}")
    if TestcaseId.parse(s.get("name", "")).target:
        _check_iops(path, f"{key}.figures", figures)


def _check_iops(path: Path, key: str, figures: dict[str, Any]) -> None:
    """``iops`` and ``iops_runs`` ("25240,15800,21382" or a list): each
    figure finite and >= 0, or the run is corrupt."""
    corrupt = "expected IOPS as a finite number >= 0 (a corrupt run?), got "
    if "iops" in figures and figures["iops"] is not None and not _is_iops(figures["iops"]):
        raise ConfigError(path, f"{key}.iops", corrupt + repr(figures["iops"]))
    runs = figures.get("iops_runs")
    if runs is None or runs == "":
        return
    try:
        items = repeat_iops(runs)
    except (TypeError, ValueError):
        raise ConfigError(path, f"{key}.iops_runs", corrupt + repr(runs)) from None
    if not items or not all(_is_iops(x) for x in items):
        raise ConfigError(path, f"{key}.iops_runs", corrupt + repr(runs))


def point_runs(figures: dict[str, Any]) -> list[float]:
    """The per-repeat IOPS of a fio point: its ``iops_runs``, else the one
    figure ``iops``."""
    runs = figures.get("iops_runs")
    return repeat_iops(runs) if runs else [float(figures["iops"])]


def repeat_iops(runs: str | list) -> list[float]:
    """A fio point's per-repeat IOPS (its ``iops_runs``): a list of numbers,
    or as a summary on disk holds it, the JUnit property's comma-separated
    text ("25240,15800,21382").  ValueError/TypeError when it is neither."""
    if isinstance(runs, str):
        return [float(x) for x in runs.split(",")]
    if isinstance(runs, list) and all(_is_number(x) for x in runs):
        return [float(x) for x in runs]
    raise TypeError(f"expected IOPS, got {runs!r}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_iops(x: Any) -> bool:
    return _is_number(x) and x >= 0


def _kind(x: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "nothing",
             bool: "a boolean", int: "a number", float: "a number"}
    shown = f" ({x!r:.60})" if isinstance(x, (str, int, float)) and not isinstance(x, bool) else ""
    return names.get(type(x), type(x).__name__) + shown


# The setup a run's figures were measured with

SETUP_KEYS = ("accel", "vm.cpus", "vm.memory", "null_blk.gb", "null_blk.bs", "fio.rw", "fio.bs",
              "fio.ioengine", "fio.iodepth", "fio.size", "fio.runtime", "fio.ramp_time",
              "fuse.server", "fuse.parallel_direct_writes", "fuse.direct_io", "fuse.threads",
              "kernel.fragments")


def setup_record(config, kvm: bool) -> dict[str, Any]:
    """What a fio figure depends on besides the patches (summary.json's
    ``setup``): the accelerator, the guest, null_blk, the fio job, the FUSE
    server's policy and the run-wide kconfig fragments (--debug among them).
    The points themselves (target, numjobs) and the repeats are not setup:
    points are matched by name, and the intervals allow for the repeats."""
    f, vm, nb, fuse = config.fio, config.vm, config.null_blk, config.fuse
    return {"accel": "kvm" if kvm else "tcg", "vm.cpus": vm.cpus, "vm.memory": vm.memory,
            "null_blk.gb": nb.gb, "null_blk.bs": nb.bs, "fio.rw": f.rw, "fio.bs": f.bs,
            "fio.ioengine": f.ioengine, "fio.iodepth": f.iodepth, "fio.size": f.size,
            "fio.runtime": f.runtime, "fio.ramp_time": f.ramp_time,
            "fuse.server": fuse.server, "fuse.parallel_direct_writes": fuse.parallel_direct_writes,
            "fuse.direct_io": fuse.direct_io, "fuse.threads": fuse.threads,
            "kernel.fragments": [p.name for p in config.kernel.fragments]}


def setup_of(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """A summary's setup record.  Older summaries have none: of them only
    the accelerator is known (``accel.kvm``)."""
    setup = data.get("setup")
    if setup is None:
        kvm = data.get("accel", {}).get("kvm") if isinstance(data.get("accel"), dict) else None
        return {} if not isinstance(kvm, bool) else {"accel": "kvm" if kvm else "tcg"}
    if not isinstance(setup, dict):
        raise ConfigError(path, "setup", f"expected an object, got {_kind(setup)}")
    for key, value in setup.items():
        plain = isinstance(value, (str, int, float, bool)) or (
            isinstance(value, list) and all(isinstance(x, str) for x in value))
        if not plain:
            raise ConfigError(path, f"setup.{key}", f"expected a value or a list of names, got {_kind(value)}")
    return setup


def setup_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys both records hold with different values."""
    return [k for k in a if k in b and a[k] != b[k]]


def describe_differences(setups: dict[str, dict[str, Any]]) -> list[str]:
    """``fio.bs: 4k in run-a, 64k in run-b`` per key on which the runs'
    records differ (*setups*: run id -> record)."""
    keys = [k for k in dict.fromkeys(k for s in setups.values() for k in s)
            if len({repr(s[k]) for s in setups.values() if k in s}) > 1]
    return [f"{k}: " + ", ".join(f"{_shown(s[k])} in {run}" for run, s in setups.items() if k in s)
            for k in keys]


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(value) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def fio_setup(config, kvm: bool) -> str:
    """The fio job and the guest in words, for the top of report.md (kept in
    summary.json as ``fio_setup``)."""
    f, vm, nb, fuse = config.fio, config.vm, config.null_blk, config.fuse
    return "\n".join([
        f"fio {f.rw} {f.bs}, O_DIRECT, {f.ioengine}, iodepth {f.iodepth}, "
        f"numjobs {'/'.join(map(str, f.numjobs))}, all jobs on one shared file of "
        f"{f.size} prefilled by a sequential write; ramp {f.ramp_time:g} s, "
        f"runtime {f.runtime:g} s, {f.repeat} run(s) per point.",
        f"Guest: {'KVM' if kvm else 'TCG'}, {vm.cpus} vCPUs, {vm.memory}; XFS on null_blk "
        f"({nb.gb} GB, bs {nb.bs}, memory_backed, scheduler none); kernel {config.kernel.base} "
        f"+ each variant's patches.",
        f"FUSE targets: {fuse_servers(config)} over a directory of that XFS; open policy "
        f"parallel_direct_writes={str(fuse.parallel_direct_writes).lower()}, "
        f"direct_io={str(fuse.direct_io).lower()}; `fuse` is the same server without passthrough.",
    ])


def fuse_servers(config) -> str:
    """The FUSE server of the run, or of each variant when they differ."""
    by = {v.name: get_server(config.fuse_for(v).server).title for v in config.variants}
    if len(set(by.values())) <= 1:
        return next(iter(by.values()), get_server(config.fuse.server).title)
    return "each variant's server (" + ", ".join(f"{v}: {t}" for v, t in by.items()) + ")"
