"""pipeline.toml -> frozen dataclasses.

Every key has a default except the variants.  Relative paths are relative to
the config file.  Anything wrong stops here, before any work, with a
ConfigError naming the file, the key and what was expected.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

from . import checks
from .errors import ConfigError
from .fuse.servers import SERVERS
from .paths import default_tree, run_dir_clash
from .tree import is_git_repo, patch_files, resolve_rev
from .workloads.xfstests import XfstestsConfig, xfstests_config_from_table

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
FIO_TARGETS = ("xfs", "fuse-passthrough", "fuse")
VMCONFIGS = Path(__file__).resolve().parent.parent / "vmconfigs"
DEFAULT_FRAGMENT = VMCONFIGS / "fuse-xfs-nullblk.config"
DEBUG_FRAGMENT = VMCONFIGS / "debug.config"


@dataclasses.dataclass(frozen=True)
class PatchSpec:
    text: str  # as written in the config
    path: Path | None = None  # file or directory
    ref: str | None = None  # for "git:REF"


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    patches: tuple[PatchSpec, ...] = ()
    fragments: tuple[Path, ...] = ()  # added to [kernel].fragments
    bisect: bool = False  # check that each patch of the series applies and builds
    fuse_server: str | None = None  # overrides [fuse] server for this variant


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    tree: Path
    base: str
    base_commit: str
    fragments: tuple[Path, ...]
    jobs: int


@dataclasses.dataclass(frozen=True)
class VmConfig:
    cpus: int = 2
    memory: str = "4G"
    accel: str = "auto"
    boot_retries: int = 1  # boots after a failed one (TCG flakes); 0: none


@dataclasses.dataclass(frozen=True)
class NullBlkConfig:
    gb: int = 4
    bs: int = 4096


@dataclasses.dataclass(frozen=True)
class FioConfig:
    targets: tuple[str, ...] = ("xfs",)
    numjobs: tuple[int, ...] = (1, 2)
    rw: str = "randwrite"
    bs: str = "4k"
    iodepth: int = 64
    ioengine: str = "libaio"
    size: str = "1G"
    runtime: float = 10.0
    ramp_time: float = 2.0
    repeat: int = 1

    def __post_init__(self):
        # point names, and so the fio JSON files, are made of rw and bs:
        # never of anything fio would not take (the loader says which key)
        if checks.fio_rw_problem(self.rw) or checks.fio_bytes(self.bs) is None:
            raise ValueError(f"fio rw {self.rw!r} or bs {self.bs!r} is not one fio takes")


@dataclasses.dataclass(frozen=True)
class FuseConfig:
    """The FUSE server of the fuse targets and its open policy."""
    server: str = "kvariant"  # a name in kvariant.fuse.servers.SERVERS
    parallel_direct_writes: bool = True
    direct_io: bool = False
    threads: int = 4


@dataclasses.dataclass(frozen=True)
class Timeouts:
    build: float = 3 * 3600.0
    boot: float = 300.0  # until SSH answers
    kvm_probe: float = 60.0  # a KVM boot that does not reach SSH by then falls back to TCG
    command: float = 300.0  # any guest command without a deadline of its own
    storage: float = 180.0  # null_blk, mkfs.xfs, mount
    prefill: float = 600.0  # the sequential write that makes fio's file
    fio: float = 0.0  # per fio job; 0: runtime + ramp + 120 s


@dataclasses.dataclass(frozen=True)
class Config:
    path: Path
    kernel: KernelConfig
    vm: VmConfig
    null_blk: NullBlkConfig
    fio: FioConfig
    fuse: FuseConfig
    timeouts: Timeouts
    xfstests: "XfstestsConfig | None"  # None: no [xfstests] section, no stage
    variants: tuple[Variant, ...]

    @property
    def root(self) -> Path:
        return self.path.parent

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def fuse_for(self, variant: Variant) -> FuseConfig:
        """[fuse] with the variant's own server, if it names one."""
        if variant.fuse_server is None:
            return self.fuse
        return dataclasses.replace(self.fuse, server=variant.fuse_server)


class _Reader:
    """Takes keys out of a table, checking type and recording what was used."""

    def __init__(self, path: Path, table: dict, prefix: str):
        self.path, self.table, self.prefix = path, dict(table), prefix

    def fail(self, key: str, expected: str, got: Any = dataclasses.MISSING):
        shown = "" if got is dataclasses.MISSING else f", got {got!r}"
        raise ConfigError(self.path, f"{self.prefix}{key}", f"expected {expected}{shown}")

    def take(self, key: str, default: Any, kind: type | tuple, expected: str) -> Any:
        if key not in self.table:
            return default
        value = self.table.pop(key)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            self.fail(key, expected, value)
        return value

    def done(self) -> None:
        for key in self.table:
            raise ConfigError(self.path, f"{self.prefix}{key}", "unknown key")


def parse_duration(text: str | int | float) -> float | None:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) if text >= 0 else None
    m = DURATION.match(str(text))
    if not m:
        return None
    return float(m.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def _path(root: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else (root / p)


def _positive(r: _Reader, key: str, default: int) -> int:
    v = r.take(key, default, int, "a positive integer")
    if v < 1:
        r.fail(key, "a positive integer", v)
    return v


def _whole(r: _Reader, key: str, default: int) -> int:
    """A whole number within its documented range (checks.RANGES)."""
    expected = checks.expected_number(r.prefix + key)
    value = r.take(key, default, int, expected)
    if not checks.in_range(r.prefix + key, value):
        r.fail(key, expected, value)
    return value


def _seconds(r: _Reader, key: str, default: float, zero_ok: bool = False) -> float:
    """A duration (300, "90s", "15m", "3h") within its documented range."""
    expected = checks.expected_number(r.prefix + key, zero_ok)
    raw = r.take(key, default, (int, float, str), expected)
    value = parse_duration(raw)
    if value is None or not checks.in_range(r.prefix + key, value, zero_ok):
        r.fail(key, expected, raw)
    return value


def _fragments(r: _Reader, key: str, default: list[str]) -> tuple[Path, ...]:
    items = r.take(key, default, list, "a list of kconfig fragment files")
    out = []
    for i, text in enumerate(items):
        if not isinstance(text, str):
            r.fail(f"{key}[{i}]", "a file name", text)
        p = _path(r.path.parent, text)
        if "/" not in text and not p.exists() and (VMCONFIGS / f"{text}.config").is_file():
            p = VMCONFIGS / f"{text}.config"  # a profile of the project's: "debug"
        if not p.is_file():
            known = ", ".join(sorted(f.stem for f in VMCONFIGS.glob("*.config")))
            r.fail(f"{key}[{i}]", f"an existing kconfig fragment file or one of {known}", text)
        out.append(p.resolve())
    return tuple(out)


def _kernel(path: Path, table: dict) -> KernelConfig:
    r = _Reader(path, table, "kernel.")
    tree = _path(path.parent, r.take("tree", str(default_tree()), str, "a path to a kernel git tree"))
    if not is_git_repo(tree):
        hint = " (run ./setup.sh to fetch the default tree)" if tree == default_tree() else ""
        r.fail("tree", f"a git repository{hint}", str(tree))
    base = r.take("base", "v7.2.13", str, "a commit-ish of the tree")
    commit = resolve_rev(tree, base)
    if commit is None:
        r.fail("base", f"a commit-ish that exists in {tree}", base)
    if "fragments" in r.table:
        fragments = _fragments(r, "fragments", [])
    else:  # the project's own fragment, wherever the config file is
        fragments = (DEFAULT_FRAGMENT,)
    jobs = _whole(r, "jobs", 0) if "jobs" in r.table else 0
    r.done()
    return KernelConfig(tree=tree, base=base, base_commit=commit, fragments=fragments, jobs=jobs)


def _vm(path: Path, table: dict) -> VmConfig:
    r = _Reader(path, table, "vm.")
    # checked against the host when given: the defaults are ours to keep small
    cpus = _positive(r, "cpus", 2)
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
    retries = _whole(r, "boot_retries", 1)
    r.done()
    return VmConfig(cpus=cpus, memory=memory, accel=accel, boot_retries=retries)


def _null_blk(path: Path, table: dict) -> NullBlkConfig:
    r = _Reader(path, table, "null_blk.")
    gb = _whole(r, "gb", 4)
    bs = r.take("bs", 4096, int, "512, 1024, 2048 or 4096")
    if bs not in (512, 1024, 2048, 4096):
        r.fail("bs", "512, 1024, 2048 or 4096", bs)
    r.done()
    return NullBlkConfig(gb=gb, bs=bs)


def _fio(path: Path, table: dict, null_blk: NullBlkConfig) -> FioConfig:
    r = _Reader(path, table, "fio.")
    d = FioConfig()
    targets = r.take("targets", list(d.targets), list, f"a non-empty list of {', '.join(FIO_TARGETS)}")
    if not targets:
        r.fail("targets", f"a non-empty list of {', '.join(FIO_TARGETS)}", targets)
    for i, t in enumerate(targets):
        if t not in FIO_TARGETS:
            r.fail(f"targets[{i}]", f"one of {', '.join(FIO_TARGETS)}", t)
    lo, hi = checks.RANGES["fio.numjobs"]
    expected = f"a non-empty list of at most {checks.MAX_NUMJOBS_POINTS} whole numbers in {lo}..{hi}"
    numjobs = r.take("numjobs", list(d.numjobs), list, expected)
    if not 0 < len(numjobs) <= checks.MAX_NUMJOBS_POINTS or not all(
            isinstance(n, int) and checks.in_range("fio.numjobs", n) for n in numjobs):
        r.fail("numjobs", expected, numjobs)
    targets = tuple(dict.fromkeys(targets))
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
        iodepth=_whole(r, "iodepth", d.iodepth),
        ioengine=strings["ioengine"],
        size=strings["size"],
        runtime=_seconds(r, "runtime", d.runtime),
        ramp_time=_seconds(r, "ramp_time", d.ramp_time),
        repeat=_whole(r, "repeat", d.repeat),
    )
    r.done()
    return fio


def _fuse(path: Path, table: dict) -> FuseConfig:
    r = _Reader(path, table, "fuse.")
    d = FuseConfig()
    fuse = FuseConfig(
        parallel_direct_writes=r.take("parallel_direct_writes", d.parallel_direct_writes, bool, "true or false"),
        direct_io=r.take("direct_io", d.direct_io, bool, "true or false"),
        threads=_whole(r, "threads", d.threads),
    )
    fuse = dataclasses.replace(fuse, server=_fuse_server(r, "server", d.server, fuse))
    r.done()
    return fuse


def _fuse_server(r: _Reader, key: str, default: str | None, policy: FuseConfig) -> str | None:
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


def _timeouts(path: Path, table: dict) -> Timeouts:
    r = _Reader(path, table, "timeouts.")
    values = {f.name: _seconds(r, f.name, f.default, zero_ok=f.name == "fio")
              for f in dataclasses.fields(Timeouts)}
    r.done()
    return Timeouts(**values)


def _patch_spec(r: _Reader, key: str, text: Any, tree: Path, base: str) -> PatchSpec:
    if not isinstance(text, str) or not text:
        r.fail(key, 'a patch file, a directory of patches, an mbox, or "git:REF"', text)
    if text.startswith("git:"):
        ref = text[4:]
        if not ref or resolve_rev(tree, ref) is None:
            r.fail(key, f"a ref that exists in {tree}", text)
        return PatchSpec(text=text, ref=ref)
    p = _path(r.path.parent, text)
    if not p.exists():
        r.fail(key, "an existing patch file, directory or mbox", text)
    if p.is_dir() and not patch_files(p):
        r.fail(key, "a directory holding .patch, .diff or .mbox files", text)
    return PatchSpec(text=text, path=p.resolve())


def _variants(path: Path, items: Any, kernel: KernelConfig, fuse: FuseConfig) -> tuple[Variant, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(path, "variant", "expected at least one [[variant]] table")
    seen = set()
    out = []
    for i, table in enumerate(items):
        if not isinstance(table, dict):
            raise ConfigError(path, f"variant[{i}]", "expected a [[variant]] table")
        r = _Reader(path, table, f"variant[{i}].")
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
        patches = tuple(_patch_spec(r, f"patches[{j}]", t, kernel.tree, kernel.base_commit)
                        for j, t in enumerate(raw))
        fragments = _fragments(r, "fragments", [])
        bisect = r.take("bisect", False, bool, "true or false")
        server = _fuse_server(r, "fuse_server", None, fuse)
        r.done()
        out.append(Variant(name=name, patches=patches, fragments=fragments, bisect=bisect,
                           fuse_server=server))
    return tuple(out)


SECTIONS = ("kernel", "vm", "null_blk", "fio", "fuse", "timeouts", "xfstests", "variant")


def read_toml(path: Path | str) -> dict:
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file")
    except OSError as e:
        raise ConfigError(path, "", f"cannot be read: {e.strerror}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:  # TOML is UTF-8: a latin-1 "é" is one byte 0xe9
        line = raw[:e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(path, "", f"not valid TOML: expected UTF-8 text, got byte "
                                    f"0x{raw[e.start]:02x} at line {line}, column {column}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}")


def load(path: Path | str) -> Config:
    return load_data(Path(path).expanduser(), read_toml(path))


def with_profile(data: dict, profile: Path, where: Path) -> dict:
    """*data* (the tables of the config *where*) with the tables of a
    profile laid over it, key by key ([xfstests] only where the config has
    that section)."""
    check_sections(where, data)
    over = read_toml(profile)
    out = dict(data)
    for section, table in over.items():
        if section == "xfstests" and section not in data:
            continue
        if section not in SECTIONS[:-1] or not isinstance(table, dict):
            raise ConfigError(profile, section, f"expected one of the sections {', '.join(SECTIONS[:-1])}")
        out[section] = {**data.get(section, {}), **table}
    return out


def check_sections(path: Path, data: dict) -> None:
    """Only known sections, each a table (``fio = 5`` is not one)."""
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(path, key, f"unknown section (expected {', '.join(SECTIONS)})")
    for key in SECTIONS[:-1]:
        if not isinstance(data.get(key, {}), dict):
            raise ConfigError(path, key, f"expected a table [{key}], got {data[key]!r}")


def load_data(path: Path, data: dict) -> Config:
    """A Config from the tables of a TOML document; *path* is where relative
    paths start and what errors name."""
    path = path.resolve()
    check_sections(path, data)
    kernel = _kernel(path, data.get("kernel", {}))
    null_blk = _null_blk(path, data.get("null_blk", {}))
    fuse = _fuse(path, data.get("fuse", {}))
    return Config(
        path=path,
        kernel=kernel,
        vm=_vm(path, data.get("vm", {})),
        null_blk=null_blk,
        fio=_fio(path, data.get("fio", {}), null_blk),
        fuse=fuse,
        timeouts=_timeouts(path, data.get("timeouts", {})),
        xfstests=(xfstests_config_from_table(data["xfstests"], path, path.parent)
                  if "xfstests" in data else None),
        variants=_variants(path, data.get("variant"), kernel, fuse),
    )


def with_fragment(config: Config, fragment: Path) -> Config:
    """Every variant built with *fragment* too (``--debug``)."""
    if fragment in config.kernel.fragments:
        return config
    kernel = dataclasses.replace(config.kernel, fragments=config.kernel.fragments + (fragment,))
    return dataclasses.replace(config, kernel=kernel)


def select_variants(config: Config, names: list[str] | None) -> Config:
    """Keep the variants named on the command line (--variant), in config order."""
    if not names:
        return config
    known = {v.name for v in config.variants}
    for n in names:
        if n not in known:
            raise ConfigError(config.path, "--variant", f"expected one of {', '.join(sorted(known))}, got {n!r}")
    return dataclasses.replace(config, variants=tuple(v for v in config.variants if v.name in names))
