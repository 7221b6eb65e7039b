"""The kernel store: every variant applied and built once (the pipeline's
own apply and build stages, series checks included), its kernel copied
out of the cache so that the store can travel to another host as a CI
artifact::

    DIR/<variant>/bzImage, config, release, lib/modules/<release>/,
                  vmlinux and decode_stacktrace.sh (reports decoded to file:line)
    DIR/<variant>/metadata.json   commit, patches, cache key, toolchain...
    DIR/_store.json               the config, the variants and the store's digest;
                                  with --plan-times, the earlier runs' test times
                                  every shard plans on (kvariant.shard.plan)
    DIR/_build/                   the build's run directory (JUnit, logs, summary.json)

A variant that does not apply or build is in the store as failed (its
metadata.json alone, with the reason); the others go on.  Each variant's
directory is replaced whole (a temporary directory renamed), each JSON
file atomically.  Names starting with ``_`` are no variant's (a variant's
name is a slug)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..files import write_result, writing
from ..model import Status, VariantResult
from ..summary import config_digest
from ..ui import UI
from ..pipeline.run import Run
from ..pipeline.stages import STAGES

BUILD_STAGES = tuple(s for s in STAGES if s.name in ("apply", "build"))
INDEX = "_store.json"
RUN_DIR = "_build"
LAYOUT = 1


@dataclasses.dataclass
class StoreBuild:
    """What ``build`` did: the run of apply and build, and each variant's
    metadata as written."""

    run: Run
    metadata: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.run.interrupted and all(m["status"] == "built" for m in self.metadata)


def fresh_run_dir(store: Path) -> Path:
    """DIR/_build/, emptied: the record of an earlier build of the store
    goes with the kernels it described."""
    run_dir = store / RUN_DIR
    with writing(f"--kernels: cannot write {run_dir}"):
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
    return run_dir


def build_store(config: Config, store: Path, ui: UI, plan_times: dict[str, Any] | None = None) -> StoreBuild:
    """Apply and build every variant of *config* into *store* (see the
    module), recording the run in DIR/_build/ (fresh_run_dir).
    *plan_times*: what the index keeps for the shards' plan (plan_times_record)."""
    run = Run(config, store / RUN_DIR, RUN_DIR, ui, stages=BUILD_STAGES, workloads=())
    run.execute()
    metadata = [store_variant(store, config, r) for r in run.results]
    write_index(store, config, metadata, plan_times)
    return StoreBuild(run, metadata)


def plan_times_record(runs: list[str], tests: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The index's ``plan_times``: the runs they came from, and per
    workload testcase and variant the seconds (kvariant.shard.plan.Times)."""
    return {"runs": list(runs),
            "tests": {t: {v: round(float(s), 3) for v, s in sorted(by.items())} for t, by in sorted(tests.items())}}


def plan_times(index: dict[str, Any], where: Path) -> dict[str, dict[str, float]]:
    """The times a store's index gives the shards' plan ({} when it was
    built without --plan-times), or ConfigError naming the index."""
    record = index.get("plan_times")
    if record is None:
        return {}
    tests = record.get("tests") if isinstance(record, dict) else None
    if not isinstance(tests, dict) or not all(
            isinstance(by, dict) and all(isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0
                                         for s in by.values()) for by in tests.values()):
        raise ConfigError(where / INDEX, "plan_times", "expected {runs, tests: {testcase: {variant: "
                                                       "seconds}}} as build --plan-times writes it")
    return {str(t): {str(v): float(s) for v, s in by.items()} for t, by in tests.items()}


def variant_metadata(config: Config, result: VariantResult) -> dict[str, Any]:
    """A variant's metadata.json, its kernel not yet copied."""
    info, build = result.info, result.stage("build")
    built = build is not None and build.status == Status.PASS and info.build.kernel_dir is not None
    failed = next((s for s in result.stages if s.status != Status.PASS), None)
    return {
        "layout": LAYOUT, "variant": result.name, "status": "built" if built else "failed",
        "message": "" if built else (f"{failed.name}: {failed.message}" if failed else "not built"),
        "base": info.base or config.kernel.base, "base_commit": config.kernel.base_commit,
        "commit": info.commit or "",
        "patches": [{k: p.get(k) for k in ("subject", "patch_id", "commit", "source")}
                    for p in info.patches or []],
        "cache_key": Path(info.build.kernel_dir).name if built else "",
        "kernel_release": info.build.kernel_release or "", "toolchain": info.build.toolchain or "",
        "build_seconds": info.build.build_seconds or 0.0, "build_reused": bool(info.build.build_reused),
        "fragments": [p.name for p in config.kernel.fragments] +
                     [p.name for p in config.variant(result.name).fragments],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "testcases": [s.to_dict() for s in result.stages],  # apply, series, build: for a shard's JUnit
    }


def store_variant(store: Path, config: Config, result: VariantResult) -> dict[str, Any]:
    """*result*'s kernel and metadata.json as DIR/<variant>/, replacing what
    was there (a failed variant keeps no kernel)."""
    meta = variant_metadata(config, result)
    target = store / result.name
    tmp = store / f"_{result.name}.tmp"
    with writing(f"--kernels: cannot write {target}"):
        shutil.rmtree(tmp, ignore_errors=True)
        if meta["status"] == "built":
            shutil.copytree(result.info.build.kernel_dir, tmp, symlinks=True)
            meta["bzimage_sha256"] = file_digest(tmp / "bzImage")
        else:
            tmp.mkdir(parents=True)
        write_result(tmp / "metadata.json", json.dumps(meta, indent=2) + "\n")
        old = store / f"_{result.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    return meta


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_digest(metadata: list[dict[str, Any]]) -> str:
    """SHA-256 over each variant's status, commit, cache key and bzImage:
    shards that booted the same kernels agree on it."""
    key = {m["variant"]: [m["status"], m["commit"], m["cache_key"], m.get("bzimage_sha256", "")]
           for m in metadata}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def write_index(store: Path, config: Config, metadata: list[dict[str, Any]],
                plan_times: dict[str, Any] | None = None) -> None:
    index = {"layout": LAYOUT, "config": str(config.path), "config_sha256": config_digest(config.path),
             "variants": {m["variant"]: m["status"] for m in metadata},
             "digest": store_digest(metadata)}
    if plan_times is not None:
        index["plan_times"] = plan_times
    write_result(store / INDEX, json.dumps(index, indent=2) + "\n")


def read_index(store: Path) -> dict[str, Any]:
    """DIR/_store.json, or ConfigError naming it."""
    path = Path(store) / INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "", "not found: not a kernel store (made by pipeline.py build --kernels)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(path, "", f"cannot be read as a kernel store index: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("digest"), str):
        raise ConfigError(path, "digest", "expected a kernel store index with its digest")
    return data
