"""``run --kernels DIR --shard K/N``: shard K of the plan, booting the
kernels of a store (kvariant.shard.store) without the kernel tree.

The config is checked against the store (the same file, by its digest;
every variant in the store; each built kernel's bzImage as recorded).
Each variant's apply and build testcases (and its series checks) are the
store's, replayed from its metadata.json with their logs; a variant the
store has as failed is not booted.  The shard runs only its units: the
fio unit is every fio point, an xfstests unit its test (or its fstype).
A shard with no unit boots nothing: its variants have their apply and
build testcases alone.  The run's summary.json carries the ``shard``
record that ``merge`` reads: K of N, the plan and its digest, the store's
digest."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from ..config import Config, KernelSource
from .. import config as config_mod
from ..errors import ConfigError
from ..model import BuildInfo, StageResult, Status
from ..pipeline.fio_workload import FioWorkload
from ..pipeline.run import Run
from ..pipeline.stages import STAGES, Stage, Workload
from ..pipeline.xfstests_workload import XfstestsWorkload
from ..summary import config_digest
from ..ui import UI
from .plan import Plan, Unit, make_plan
from .spec import ShardSpec
from .store import INDEX, RUN_DIR, file_digest, plan_times, read_index, store_digest


@dataclasses.dataclass(frozen=True)
class Store:
    """A kernel store read and checked: its directory, index and each
    variant's metadata.json."""

    path: Path
    index: dict[str, Any]
    metadata: dict[str, dict[str, Any]]
    plan_times: dict[str, dict[str, float]]  # the earlier runs' times the shards plan on ({}: by count)

    @property
    def digest(self) -> str:
        return self.index["digest"]

    @property
    def plan_runs(self) -> list[str]:
        """The runs those times came from."""
        return list((self.index.get("plan_times") or {}).get("runs") or [])


def read_metadata(store: Path, variant: str) -> dict[str, Any]:
    path = store / variant / "metadata.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "", f"not found: expected variant {variant} in the kernel store "
                                    f"(pipeline.py build --kernels {store} with this config)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(path, "", f"cannot be read as a variant's metadata: {e}") from None
    if not isinstance(meta, dict) or meta.get("status") not in ("built", "failed") or \
            not isinstance(meta.get("testcases"), list):
        raise ConfigError(path, "status", "expected a variant's metadata (status built or failed, "
                                          "its testcases)")
    return meta


def open_store(store: Path, config_path: Path, variants: list[str] | None) -> tuple[Store, Config]:
    """The store and the config as the store's build saw it (its base
    commit; no tree needed), with the variants --variant keeps.  Any
    mismatch between them is a ConfigError naming the store's file."""
    index = read_index(store)
    config_path = config_path.expanduser().resolve()
    if not config_path.is_file():
        raise ConfigError(config_path, "", "no such file")
    mine = config_digest(config_path)
    if index.get("config_sha256") != mine:
        raise ConfigError(store / INDEX, "config_sha256",
                          f"expected a store built from {config_path} (sha256 {mine[:12]}), "
                          f"got one built from {index.get('config')} "
                          f"({str(index.get('config_sha256'))[:12]})")
    names = list(index.get("variants") or {})
    metadata = {v: read_metadata(store, v) for v in names}
    if store_digest(list(metadata.values())) != index["digest"]:
        raise ConfigError(store / INDEX, "digest", "expected the digest of the variants' metadata.json "
                                                   "(a store changed or copied in part)")
    base = next((m["base_commit"] for m in metadata.values() if m.get("base_commit")), None)
    if base is None:
        raise ConfigError(store / INDEX, "variants", "expected at least one variant with its base commit")
    cfg = config_mod.select_variants(config_mod.load(config_path, KernelSource(base_commit=base)), variants)
    times = plan_times(index, store)  # bad times: refused before anything runs
    for v in cfg.variants:
        if v.name not in metadata:
            raise ConfigError(store / INDEX, "variants", f"expected variant {v.name} of {config_path.name} "
                                                         f"(the store has {', '.join(names) or 'none'})")
        check_kernel(store, metadata[v.name])
    return Store(store, index, metadata, times), cfg


def check_kernel(store: Path, meta: dict[str, Any]) -> None:
    """A built variant's bzImage is there and is the one its metadata names."""
    if meta["status"] != "built":
        return
    image = store / meta["variant"] / "bzImage"
    if not image.is_file() or file_digest(image) != meta.get("bzimage_sha256"):
        raise ConfigError(image, "", "expected the kernel the store's metadata.json records "
                                     "(missing or changed: copy the whole store)")


# -- the stages: the store's apply and build, then boot and storage ---------

def stored(v, name: str) -> StageResult | None:
    meta = v.run.store.metadata[v.variant.name]
    return next((StageResult.from_dict(t) for t in meta["testcases"] if t.get("name") == name), None)


def copy_log(v, name: str) -> None:
    """The build run's log of the variant, beside the shard's own files."""
    src = v.run.store.path / RUN_DIR / v.variant.name / name
    if src.is_file():
        shutil.copyfile(src, v.dir / name)


def replay_apply(v) -> StageResult:
    meta = v.run.store.metadata[v.variant.name]
    v.commit = meta.get("commit") or v.commit
    v.result.info.commit = v.commit
    v.result.info.patches = [{"author": "", **p} for p in meta.get("patches", [])]
    copy_log(v, "apply.log")
    return stored(v, "apply") or StageResult("apply", Status.ERROR, message=f"not in the kernel store: "
                                                                           f"{meta.get('message', '')}")


def replay_build(v) -> StageResult:
    meta = v.run.store.metadata[v.variant.name]
    for t in meta["testcases"]:
        if str(t.get("name", "")).startswith("series/"):
            v.record(StageResult.from_dict(t))
    copy_log(v, "build.log")
    result = stored(v, "build") or StageResult("build", Status.ERROR, message=f"not in the kernel store: "
                                                                             f"{meta.get('message', '')}")
    if meta["status"] == "built" and result.status == Status.PASS:
        kernel = v.run.store.path / v.variant.name
        v.kernel_image = kernel / "bzImage"
        v.result.info.build = BuildInfo(
            kernel_release=meta.get("kernel_release"), kernel_dir=str(kernel), build_dir="",
            build_seconds=meta.get("build_seconds"), build_reused=meta.get("build_reused"),
            toolchain=meta.get("toolchain"))
    return result


STORE_STAGES: tuple[Stage, ...] = (
    Stage("apply", "apply.log", replay=replay_apply),
    Stage("build", "build.log", replay=replay_build),
    *(s for s in STAGES if s.name not in ("apply", "build")),
)


def workloads(units: list[Unit]) -> tuple[Workload, ...]:
    """What a shard's units run: the fio round, and the xfstests tests by
    fstype (None: the fstype's whole selection)."""
    out: list[Workload] = []
    if any(u.kind == "fio" for u in units):
        out.append(FioWorkload())
    only: dict[str, tuple[str, ...] | None] = {}
    for u in (u for u in units if u.kind == "xfstests"):
        parts = u.name.split("/", 2)  # xfstests/<fstype>[/<test>]
        if len(parts) == 2:
            only[parts[1]] = None
        elif only.get(parts[1], ()) is not None:
            only[parts[1]] = (*(only.get(parts[1]) or ()), parts[2])
    if only:
        out.append(XfstestsWorkload(only))
    return tuple(out)


class ShardRun(Run):
    """A run of shard *spec* of *plan*, booting *store*'s kernels."""

    def __init__(self, config: Config, run_dir: Path, run_id: str, ui: UI, store: Store,
                 spec: ShardSpec, plan: Plan):
        units = plan.units_of(spec.k)
        stages = STORE_STAGES if units else STORE_STAGES[:2]  # no unit: no guest
        super().__init__(config, run_dir, run_id, ui, stages=stages, workloads=workloads(units))
        self.store = store
        self.shard = {"k": spec.k, "n": spec.n, "plan_digest": plan.digest, "plan": plan.to_dict(),
                      "store": store.digest}


def shard_plan(config: Config, spec: ShardSpec, store: Store) -> Plan:
    """The plan every shard makes: the config and the times the store
    carries (none: tests spread by count), so that every host that has the
    store agrees."""
    return make_plan(config, spec.n, times=store.plan_times)
