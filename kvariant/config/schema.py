"""The configuration's frozen dataclasses: one per section of
pipeline.toml, and Config, the whole of it.  The defaults here are the
documented defaults of the keys."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ..paths import PROJECT
from . import checks

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")  # a variant's name: it names a directory
VMCONFIGS = PROJECT / "vmconfigs"
DEFAULT_FRAGMENT = VMCONFIGS / "fuse-xfs-nullblk.config"
KNOWN_FAILURES = VMCONFIGS / "xfstests"  # known.py's lists
DEBUG_FRAGMENT = VMCONFIGS / "debug.config"
XFSTESTS_FSTYPES = ("xfs", "fuse")  # XFS itself, and our FUSE server over XFS


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
class KernelSource:
    """Where the kernel comes from, besides the config's [kernel] table.

    *tree*: the tree to use instead of ``[kernel] tree`` (``--tree``,
    ``KVARIANT_TREE``); *origin* names it in errors.  *base_commit*: the
    base's commit as a kernel store recorded it (``run --kernels``): the
    tree is then neither needed nor read, and ``git:REF`` patches are not
    resolved (the store's kernels are built already)."""

    tree: Path | None = None
    origin: str = ""
    base_commit: str | None = None


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
    repeat: int = 1  # rounds in each guest
    boots: int = 1  # guests per variant that measure fio, one after the other
    normalise: bool = False  # FUSE verdicts on runs divided by the xfs run beside them
    together: bool = True  # the variants' guests up at once, their runs alternating
    contention: bool = False  # one short traced run per point: who waited on which lock

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
class XfstestsConfig:
    dir: Path | None = None  # a built xfstests tree on the host
    fstypes: tuple[str, ...] = XFSTESTS_FSTYPES
    tests: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # neither tests nor groups: the workload's default groups
    exclude: tuple[str, ...] = ()
    exclude_file: Path | None = None
    test_timeout: float = 900.0
    loop_failures: int = 0
    required: bool = False
    known_failures: Path = KNOWN_FAILURES  # a directory of known failure lists (config/known.py)


@dataclasses.dataclass(frozen=True)
class CorrectnessConfig:
    """The correctness workloads: ``endwrite`` turns on the check of the
    FUSE inode's size and data against the backing file under concurrent
    extending O_DIRECT writers, truncates, readers and stat."""
    endwrite: bool = False
    rounds: int = 4  # each: a busy part and a quiet tail, then the check
    writers: int = 4  # O_DIRECT writers, half appending, half extending
    seconds: float = 8.0  # per round: the busy part, then a tail of a third of it


@dataclasses.dataclass(frozen=True)
class Config:
    path: Path
    kernel: KernelConfig
    vm: VmConfig
    null_blk: NullBlkConfig
    fio: FioConfig
    fuse: FuseConfig
    timeouts: Timeouts
    xfstests: XfstestsConfig | None  # None: no [xfstests] section, no stage
    variants: tuple[Variant, ...]
    correctness: CorrectnessConfig = CorrectnessConfig()

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
