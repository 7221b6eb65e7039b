"""summary.json read back: the one reader that checks what a run directory
claims before ``compare``, ``--against`` or ``--resume`` use it.

A summary is data from disk, possibly edited, truncated or hostile: every
value that becomes a path (the run id, variant names), a number in a
verdict (IOPS) or a key lookup (``info``, ``figures``) is checked here, and
anything else is a ConfigError naming the file, the key and what was
expected.  IOPS that are not finite and non-negative mean a corrupt run.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .model import Status, VariantResult

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a directory name, never a path
VARIANT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")  # config.SLUG
FIO_POINT = re.compile(r"^fio/[^/]+/.+$")
TEXT_FIELDS = ("name", "message", "detail", "reproduce", "log", "suite")
STATUSES = tuple(s.value for s in Status)


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
    if FIO_POINT.match(s.get("name", "")):
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
    if isinstance(runs, str):
        items: list[Any] = [x.strip() for x in runs.split(",")]
        try:
            items = [float(x) for x in items]
        except ValueError:
            raise ConfigError(path, f"{key}.iops_runs", corrupt + repr(runs)) from None
    elif isinstance(runs, list):
        items = runs
    else:
        raise ConfigError(path, f"{key}.iops_runs", corrupt + repr(runs))
    if not items or not all(_is_iops(x) for x in items):
        raise ConfigError(path, f"{key}.iops_runs", corrupt + repr(runs))


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
