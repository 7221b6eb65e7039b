"""The readers of the sections of pipeline.toml: a table in, a checked
dataclass of kvariant.config.schema out."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..fuse.servers import SERVERS
from ..paths import default_tree, run_dir_clash
from ..tree import is_git_repo, patch_files, resolve_rev
from ..workloads.targets import TARGETS
from . import checks
from .known import check_known_failures
from .reader import Reader, path_from, take_fragments, take_positive, take_seconds, take_whole
from .schema import (DEFAULT_FRAGMENT, SLUG, XFSTESTS_FSTYPES, CorrectnessConfig, FioConfig, FuseConfig, KernelConfig,
                     KernelSource, NullBlkConfig, PatchSpec, Timeouts, Variant, VmConfig, XfstestsConfig)

XFSTESTS_KEYS = ("dir", "fstypes", "tests", "groups", "exclude", "exclude_file", "test_timeout",
                 "loop_failures", "required", "known_failures")
TEST_NAME = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_.*?\[\]-]+$")
GROUP_NAME = re.compile(r"^(?:[A-Za-z0-9_-]+/)?[A-Za-z0-9_-]+$")


def read_kernel(path: Path, table: dict, source: KernelSource = KernelSource()) -> KernelConfig:
    r = Reader(path, table, "kernel.")
    tree = path_from(path.parent, r.take("tree", str(default_tree()), str, "a path to a kernel git tree"))
    if source.tree is not None:
        tree = Path(source.tree).expanduser().resolve()
    base = r.take("base", "v7.2.13", str, "a commit-ish of the tree")
    if source.base_commit is not None:  # a kernel store's: the tree is not needed
        commit = source.base_commit
    else:
        if not is_git_repo(tree):
            if source.tree is not None:
                raise ConfigError(source.origin, "", f"expected a kernel git tree, got {tree}, "
                                                     f"which is not a git repository")
            hint = " (run ./setup.sh to fetch the default tree)" if tree == default_tree() else ""
            r.fail("tree", f"a git repository{hint}", str(tree))
        commit = resolve_rev(tree, base)
        if commit is None:
            r.fail("base", f"a commit-ish that exists in {tree}", base)
    if "fragments" in r.table:
        fragments = take_fragments(r, "fragments", [])
    else:  # the project's own fragment, wherever the config file is
        fragments = (DEFAULT_FRAGMENT,)
    jobs = take_whole(r, "jobs", 0) if "jobs" in r.table else 0
    r.done()
    return KernelConfig(tree=tree, base=base, base_commit=commit, fragments=fragments, jobs=jobs)


def read_vm(path: Path, table: dict) -> VmConfig:
    r = Reader(path, table, "vm.")
    # checked against the host when given: the defaults are ours to keep small
    cpus = take_positive(r, "cpus", 2)
    problem = checks.cpus_problem(cpus, checks.host_cpus())
    if "cpus" in table and problem:
        r.fail("cpus", problem, cpus)
    host_mib = checks.host_memory_mib()
    expected = checks.memory_problem("", host_mib)  # what any wrong value is told
    memory = r.take("memory", "4G", str, expected)
    if "memory" in table and checks.memory_problem(memory, host_mib):
        r.fail("memory", expected, memory)
    accel = r.take("accel", "auto", str, "auto, kvm or tcg")
    if accel not in ("auto", "kvm", "tcg"):
        r.fail("accel", "auto, kvm or tcg", accel)
    retries = take_whole(r, "boot_retries", 1)
    r.done()
    return VmConfig(cpus=cpus, memory=memory, accel=accel, boot_retries=retries)


def read_null_blk(path: Path, table: dict) -> NullBlkConfig:
    r = Reader(path, table, "null_blk.")
    gb = take_whole(r, "gb", 4)
    bs = r.take("bs", 4096, int, "512, 1024, 2048 or 4096")
    if bs not in (512, 1024, 2048, 4096):
        r.fail("bs", "512, 1024, 2048 or 4096", bs)
    r.done()
    return NullBlkConfig(gb=gb, bs=bs)


def read_fio_targets(r: Reader, default: tuple[str, ...]) -> tuple[str, ...]:
    """fio.targets: names in the fio targets' registry (TARGETS), each once."""
    names = ", ".join(TARGETS)
    targets = r.take("targets", list(default), list, f"a non-empty list of {names}")
    if not targets:
        r.fail("targets", f"a non-empty list of {names}", targets)
    for i, t in enumerate(targets):
        if not isinstance(t, str) or t not in TARGETS:
            r.fail(f"targets[{i}]", f"one of {names}", t)
    return tuple(dict.fromkeys(targets))


def read_fio(path: Path, table: dict, null_blk: NullBlkConfig) -> FioConfig:
    r = Reader(path, table, "fio.")
    d = FioConfig()
    targets = read_fio_targets(r, d.targets)
    lo, hi = checks.RANGES["fio.numjobs"]
    expected = f"a non-empty list of at most {checks.MAX_NUMJOBS_POINTS} whole numbers in {lo}..{hi}"
    numjobs = r.take("numjobs", list(d.numjobs), list, expected)
    if not 0 < len(numjobs) <= checks.MAX_NUMJOBS_POINTS or not all(
            isinstance(n, int) and checks.in_range("fio.numjobs", n) for n in numjobs):
        r.fail("numjobs", expected, numjobs)
    strings = {key: r.take(key, getattr(d, key), str, what) for key, what in (
        ("rw", f"one of {', '.join(checks.FIO_RW)}"), ("bs", 'a block size like "4k"'),
        ("ioengine", f"one of {', '.join(checks.FIO_ENGINES)}"), ("size", 'a file size like "1g"'))}
    for key, problem in (
            ("rw", checks.fio_rw_problem(strings["rw"])),
            ("ioengine", checks.fio_engine_problem(strings["ioengine"])),
            ("bs", checks.fio_bs_problem(strings["bs"], null_blk.bs)),
            ("size", checks.fio_size_problem(strings["size"], checks.fio_bytes(strings["bs"]),
                                             null_blk.gb, len(targets)))):
        if problem:
            r.fail(key, problem, strings[key])
    fio = FioConfig(
        targets=targets,
        numjobs=tuple(dict.fromkeys(numjobs)),
        rw=strings["rw"],
        bs=strings["bs"].lower(),
        iodepth=take_whole(r, "iodepth", d.iodepth),
        ioengine=strings["ioengine"],
        size=strings["size"],
        runtime=take_seconds(r, "runtime", d.runtime),
        ramp_time=take_seconds(r, "ramp_time", d.ramp_time),
        repeat=take_whole(r, "repeat", d.repeat),
        boots=take_whole(r, "boots", d.boots),
        normalise=r.take("normalise", d.normalise, bool, "true or false"),
        together=r.take("together", d.together, bool, "true or false"),
        contention=r.take("contention", d.contention, bool, "true or false"),
    )
    r.done()
    return fio


def read_fuse(path: Path, table: dict) -> FuseConfig:
    r = Reader(path, table, "fuse.")
    d = FuseConfig()
    fuse = FuseConfig(
        parallel_direct_writes=r.take("parallel_direct_writes", d.parallel_direct_writes, bool, "true or false"),
        direct_io=r.take("direct_io", d.direct_io, bool, "true or false"),
        threads=take_whole(r, "threads", d.threads),
    )
    fuse = dataclasses.replace(fuse, server=read_fuse_server(r, "server", d.server, fuse))
    r.done()
    return fuse


def read_fuse_server(r: Reader, key: str, default: str | None, policy: FuseConfig) -> str | None:
    """A FUSE server's name, one that can apply the open *policy*."""
    server = r.take(key, default, str, f"one of {', '.join(SERVERS)}")
    if server is None:
        return None
    if server not in SERVERS:
        r.fail(key, f"one of {', '.join(SERVERS)}", server)
    refused = SERVERS[server].refuse(policy.parallel_direct_writes, policy.direct_io)
    if refused:
        r.fail(key, f"a server that can apply fuse.parallel_direct_writes = "
                    f"{str(policy.parallel_direct_writes).lower()} ({server}: {refused})", server)
    return server


def read_correctness(path: Path, table: dict) -> CorrectnessConfig:
    r = Reader(path, table, "correctness.")
    d = CorrectnessConfig()
    out = CorrectnessConfig(
        endwrite=r.take("endwrite", d.endwrite, bool, "true or false"),
        rounds=take_whole(r, "rounds", d.rounds),
        writers=take_whole(r, "writers", d.writers),
        seconds=take_seconds(r, "seconds", d.seconds),
    )
    r.done()
    return out


def read_timeouts(path: Path, table: dict) -> Timeouts:
    r = Reader(path, table, "timeouts.")
    values = {f.name: take_seconds(r, f.name, f.default, zero_ok=f.name == "fio")
              for f in dataclasses.fields(Timeouts)}
    r.done()
    return Timeouts(**values)


def read_patch_spec(r: Reader, key: str, text: Any, tree: Path, base: str,
                    resolve: bool = True) -> PatchSpec:
    if not isinstance(text, str) or not text:
        r.fail(key, 'a patch file, a directory of patches, an mbox, or "git:REF"', text)
    if text.startswith("git:"):
        ref = text[4:]
        if not ref or (resolve and resolve_rev(tree, ref) is None):
            r.fail(key, f"a ref that exists in {tree}", text)
        return PatchSpec(text=text, ref=ref)
    p = path_from(r.path.parent, text)
    if not p.exists():
        r.fail(key, "an existing patch file, directory or mbox", text)
    if p.is_dir() and not patch_files(p):
        r.fail(key, "a directory holding .patch, .diff or .mbox files", text)
    return PatchSpec(text=text, path=p.resolve())


def read_variants(path: Path, items: Any, kernel: KernelConfig, fuse: FuseConfig,
                  resolve: bool = True) -> tuple[Variant, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(path, "variant", "expected at least one [[variant]] table")
    seen = set()
    out = []
    for i, table in enumerate(items):
        if not isinstance(table, dict):
            raise ConfigError(path, f"variant[{i}]", "expected a [[variant]] table")
        r = Reader(path, table, f"variant[{i}].")
        name = r.take("name", None, str, "a name")
        if name is None:
            r.fail("name", "a name (a slug: lower-case letters, digits, '.', '_', '-')")
        if not SLUG.match(name):
            r.fail("name", "a slug: lower-case letters, digits, '.', '_', '-'", name)
        if run_dir_clash(name):
            r.fail("name", run_dir_clash(name), name)
        if name in seen:
            r.fail("name", "a name no other variant has", name)
        seen.add(name)
        r.prefix = f"variant[{i}] ({name})."
        raw = r.take("patches", [], list, 'a list of patch files, directories, mbox files or "git:REF"')
        patches = tuple(read_patch_spec(r, f"patches[{j}]", t, kernel.tree, kernel.base_commit, resolve)
                        for j, t in enumerate(raw))
        fragments = take_fragments(r, "fragments", [])
        bisect = r.take("bisect", False, bool, "true or false")
        server = read_fuse_server(r, "fuse_server", None, fuse)
        r.done()
        out.append(Variant(name=name, patches=patches, fragments=fragments, bisect=bisect,
                           fuse_server=server))
    return tuple(out)


def _xfstests_names(r: Reader, key: str, default: tuple[str, ...], one: str, *,
                    pattern: re.Pattern | None = None, allowed: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A list of strings, each matching *pattern* or one of *allowed*."""
    value = r.take(key, None, list, f"a list of {one}s")
    if value is None:
        return default
    for i, item in enumerate(value):
        if not (isinstance(item, str) and (item in allowed if allowed else pattern.match(item))):
            r.fail(f"{key}[{i}]", one, item)
    return tuple(dict.fromkeys(value))


def _optional_path(r: Reader, key: str, base: Path) -> Path | None:
    text = r.take(key, None, str, "a path")
    if text == "":
        r.fail(key, "a path", text)
    return None if text is None else path_from(base, text)


def xfstests_config_from_table(table: dict, where, base: Path) -> XfstestsConfig:
    """The [xfstests] table, checked.  *where* names the file in errors,
    relative paths are relative to *base*.  The tree itself is checked when
    the stage runs (the workload's tree_problem), so a missing tree skips
    the stage only."""
    for key in table:
        if key not in XFSTESTS_KEYS:
            raise ConfigError(where, f"xfstests.{key}",
                              f"unknown key (expected one of {', '.join(XFSTESTS_KEYS)})")
    r = Reader(where, table, "xfstests.")
    d = XfstestsConfig()
    directory, exclude_file = _optional_path(r, "dir", base), _optional_path(r, "exclude_file", base)
    if exclude_file is not None and not exclude_file.is_file():
        r.fail("exclude_file", "an existing file", table["exclude_file"])
    known = _optional_path(r, "known_failures", base)
    if known is not None and not known.is_dir():
        r.fail("known_failures", "an existing directory of known failure lists", table["known_failures"])
    known = known or d.known_failures
    check_known_failures(known)
    fstypes = _xfstests_names(r, "fstypes", d.fstypes, f"one of {', '.join(XFSTESTS_FSTYPES)}",
                              allowed=XFSTESTS_FSTYPES)
    if not fstypes:
        r.fail("fstypes", f"a non-empty list of {', '.join(XFSTESTS_FSTYPES)}", table["fstypes"])
    names = {key: _xfstests_names(r, key, getattr(d, key), one, pattern=pattern)
             for key, pattern, one in (("tests", TEST_NAME, 'a test like "generic/001"'),
                                       ("groups", GROUP_NAME, 'a group like "quick"'),
                                       ("exclude", TEST_NAME, 'a test like "generic/001"'))}
    xfstests = XfstestsConfig(
        dir=directory, fstypes=fstypes, exclude_file=exclude_file, **names,
        test_timeout=take_seconds(r, "test_timeout", d.test_timeout),
        loop_failures=take_whole(r, "loop_failures", d.loop_failures),
        required=r.take("required", d.required, bool, "true or false"), known_failures=known,
    )
    r.done()
    return xfstests
