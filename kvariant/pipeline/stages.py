"""The stages of a variant before its workloads: apply, build, boot and
storage (and, for a series with ``bisect = true``, one build check per
patch).  Each is a function of the variant's run that returns its
testcase's message or raises; variant.py measures and records them."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from ..build import build_kernel, toolchain
from ..config import Config
from ..errors import GuestGone, StageError
from ..model import BuildInfo, StageResult, Status
from .. import testcase
from ..paths import slug
from ..tree import apply_series, patch_files, series_from_ref
from ..workloads import storage as storage_setup
from . import boot as boot_stage

if TYPE_CHECKING:
    from .variant import VariantRun


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stage: its testcase's name, its log (relative to the variant's
    directory), what it does, and what runs before it as testcases of
    their own.  A stage with *replay* gives a testcase recorded elsewhere
    (a kernel store's apply and build) instead of running."""

    name: str
    log: str
    run: Callable[["VariantRun"], str] | None = None
    before: Callable[["VariantRun"], None] | None = None
    replay: Callable[["VariantRun"], StageResult] | None = None


class Workload(Protocol):
    """What runs in a guest once storage is up (fio, xfstests): its
    testcases by name before it runs (to skip them by name), and the run,
    which records each testcase as it ends."""

    def names(self, config: Config) -> list[str]: ...

    def run(self, v: "VariantRun") -> None: ...


def apply(v: "VariantRun") -> str:
    files: list[Path] = []
    kernel = v.config.kernel
    for spec in v.variant.patches:
        if spec.ref:
            files.append(series_from_ref(kernel.tree, kernel.base_commit, spec.ref, v.dir))
        else:
            files += patch_files(spec.path)
    v.run.mirror.fetch(kernel.base_commit)
    applied = apply_series(v.run.mirror, kernel.base_commit, files,
                           identity=f"{v.run.run_id}/{v.variant.name}")
    (v.dir / "apply.log").write_text("".join(
        f"{p.commit} {p.patch_id} {p.subject}  [{p.source}]\n" for p in applied) or "no patches\n")
    if applied:
        v.commit = applied[-1].commit
    v.result.info.commit = v.commit
    v.result.info.patches = [dataclasses.asdict(p) for p in applied]
    return f"{len(applied)} patch(es) on {kernel.base}"


def fragments(v: "VariantRun") -> list[Path]:
    return list(v.config.kernel.fragments) + list(v.variant.fragments)


def check_series(v: "VariantRun") -> None:
    """bisect = true: each patch of the series, on top of the ones before
    it, must build; one testcase per patch (apply already checked that each
    applies).  The last one is the variant's own build, reused by the build
    stage."""
    patches = v.result.info.patches or []
    if not v.variant.bisect or len(patches) < 2:
        return
    for i, p in enumerate(patches, 1):
        name = f"series/{i:02d}-{slug(p['subject'])[:64]}"
        stage = StageResult(name, Status.PASS, suite="series", log=f"build-patch{i:02d}.log")
        with v.measuring(stage):
            try:
                res = build_kernel(v.run.mirror, p["commit"], fragments(v), v.dir / f"build-patch{i:02d}.log",
                                   jobs=v.config.kernel.jobs or None, timeout=v.config.timeouts.build,
                                   show=lambda text, n=name: v.run.ui.update(v.variant.name, n, text))
            except StageError as e:
                e.message = f"patch {i}/{len(patches)} breaks the build: {p['subject']}: {e.message}"
                raise
            stage.message = (f"patch {i}/{len(patches)} applies and builds "
                             f"({'reused' if res.reused else f'built in {res.seconds:.0f} s'})")
            stage.figures = {"commit": p["commit"], "patch_id": p["patch_id"], "build_reused": res.reused}


def build(v: "VariantRun") -> str:
    res = build_kernel(v.run.mirror, v.commit, fragments(v), v.dir / "build.log",
                       jobs=v.config.kernel.jobs or None, timeout=v.config.timeouts.build,
                       show=lambda text: v.run.ui.update(v.variant.name, "build", text))
    v.kernel_image = res.kernel_dir / "bzImage"
    v.result.info.build = BuildInfo(kernel_release=res.release, kernel_dir=str(res.kernel_dir),
                                    build_dir=str(res.build_dir), build_seconds=round(res.seconds, 1),
                                    build_reused=res.reused, toolchain=toolchain())
    how = "reused (same commit and config)" if res.reused else (
        "configured and built" if res.configured else "incremental build")
    return f"{res.release}: {how} in {res.seconds:.0f} s"


def storage(v: "VariantRun") -> str:
    g = v.vm.guest
    script = storage_setup.setup_script(v.config.null_blk, v.config.vm.cpus)
    res = g.run(f"mkdir -p /tmp/kvariant && sh -c {shlex.quote(script)}",
                timeout=v.config.timeouts.storage, log=v.dir / "guest.log")
    if res.timed_out:
        raise GuestGone(f"storage set-up: no answer within its deadline of "
                        f"{v.config.timeouts.storage:.0f} s", detail=res.tail, reproduce=res.cmdline)
    res.check("null_blk + mkfs.xfs + mount")
    return " ".join(res.stdout.split())


STEPS = {  # each stage of testcase.STAGES: its log, what it does, what comes before it
    "apply": ("apply.log", apply, None),
    "build": ("build.log", build, check_series),
    "boot": ("console.log", boot_stage.boot, None),
    "storage": ("guest.log", storage, None),
}
STAGES: tuple[Stage, ...] = tuple(Stage(name, *STEPS[name]) for name in testcase.STAGES)
