"""xfstests: configuration, guest scripts, ``./check`` argv builders, the
result parser, and the runner that drives them in a guest.

Two file system types.  ``xfs``: XFS on two null_blk devices (test and
scratch), the reference.  ``fuse``: our passthrough server (kvariant.fuse)
over directories of XFS mounts on the same two devices, mounted by xfstests
itself through a ``mount.fuse.kvariant`` helper installed in the guest's RAM
overlay: ``FSTYP=fuse FUSE_SUBTYP=.kvariant`` makes xfstests run ``mount -t
fuse.kvariant SRC MNT -o OPTS``, mount(8) runs the helper, and the helper
starts the server in daemon mode on SRC's source directory with ``--fsname
SRC``.  The server mounts plain type ``fuse`` (xfstests compares the type
``df -T`` shows with FSTYP) and the mount source is SRC exactly (xfstests
finds its mounts with ``findmnt -S $TEST_DEV``).  TEST_DEV and SCRATCH_DEV
are tags (``kvariant-test``), not the directories themselves: xfstests
unmounts with ``umount $SCRATCH_DEV``, and umount(8) takes an existing
directory for a mount point ("not mounted"); the helper maps each tag to its
directory (upstream's README.fuse uses tags and ``-o source=DIR`` the same
way; the helper takes that too).

Tests run one ``./check`` call each, under ``timeout`` in the guest and a
deadline on the host: a test that hangs is an ERROR, the mounts are torn
down (FUSE connections aborted), and the next test goes on; results already
fetched stay on the host when the guest dies.  The kernel log of each test
is scanned for splats (warnings, oopses, lockdep, KASAN, hung tasks, RCU
stalls): one fails the test even when its output matched.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import shlex
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StageError
from ..fuse.server import server_argv
from ..model import StageResult, Status

FSTYPES = ("xfs", "fuse")
HELPER_NAME = "kvariant"  # mount.fuse.kvariant, FUSE_SUBTYP=.kvariant
GUEST_ROOT = "/tmp/kvariant/xfstests"
DEVICES = ("nullb1", "nullb2")  # test, scratch; nullb0 belongs to the fio stage
DEFAULT_GROUPS = ("quick",)  # when neither tests nor groups are configured
CHECK_OVERHEAD = 180.0  # s: check's own mounts, scratch mkfs, fs checks (TCG)
KILL_GRACE = 30  # s between the guest's SIGTERM and SIGKILL of ./check
DIFF_LINES = 40
SPLAT_LINES = 30  # kernel log lines kept per splat in an excerpt
KEYS = ("dir", "fstypes", "tests", "groups", "exclude", "exclude_file", "test_timeout",
        "loop_failures", "required")
TEST_NAME = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_.*?\[\]-]+$")
GROUP_NAME = re.compile(r"^(?:[A-Za-z0-9_-]+/)?[A-Za-z0-9_-]+$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
BUILT_FILES = ("ltp/fsstress", "ltp/fsx", "src/fill")  # made by `make`


# Configuration


@dataclasses.dataclass(frozen=True)
class XfstestsConfig:
    dir: Path | None = None  # a built xfstests tree on the host
    fstypes: tuple[str, ...] = FSTYPES
    tests: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # neither tests nor groups: DEFAULT_GROUPS
    exclude: tuple[str, ...] = ()
    exclude_file: Path | None = None
    test_timeout: float = 900.0
    loop_failures: int = 0
    required: bool = False


def _names(table: dict, key: str, where, one: str, *, pattern: re.Pattern | None = None,
           allowed: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A list of strings, each matching *pattern* or one of *allowed*."""
    value = table[key]
    if not isinstance(value, list):
        raise ConfigError(where, f"xfstests.{key}", f"expected a list of {one}s, got {value!r}")
    for i, item in enumerate(value):
        ok = isinstance(item, str) and (item in allowed if allowed else bool(pattern.match(item)))
        if not ok:
            raise ConfigError(where, f"xfstests.{key}[{i}]", f"expected {one}, got {item!r}")
    return tuple(dict.fromkeys(value))


def xfstests_config_from_table(table: dict, where, base: Path) -> XfstestsConfig:
    """The [xfstests] table, checked.  *where* names the file in errors,
    relative paths are relative to *base*.  The tree itself is checked when
    the stage runs (tree_problem), so a missing tree skips the stage only."""
    from ..config import parse_duration  # config.py imports this module

    def fail(key: str, expected: str, got: Any) -> None:
        raise ConfigError(where, f"xfstests.{key}", f"expected {expected}, got {got!r}")

    def path(key: str) -> Path | None:
        if key not in table:
            return None
        if not isinstance(table[key], str) or not table[key]:
            fail(key, "a path", table[key])
        p = Path(table[key]).expanduser()
        return p if p.is_absolute() else base / p

    for key in table:
        if key not in KEYS:
            raise ConfigError(where, f"xfstests.{key}", f"unknown key (expected one of {', '.join(KEYS)})")
    d = XfstestsConfig()
    values: dict[str, Any] = {"dir": path("dir"), "exclude_file": path("exclude_file")}
    if values["exclude_file"] is not None and not values["exclude_file"].is_file():
        fail("exclude_file", "an existing file", table["exclude_file"])
    if "fstypes" in table:
        values["fstypes"] = _names(table, "fstypes", where, f"one of {', '.join(FSTYPES)}",
                                   allowed=FSTYPES)
        if not values["fstypes"]:
            fail("fstypes", f"a non-empty list of {', '.join(FSTYPES)}", table["fstypes"])
    for key, pattern, one in (("tests", TEST_NAME, 'a test like "generic/001"'),
                              ("groups", GROUP_NAME, 'a group like "quick"'),
                              ("exclude", TEST_NAME, 'a test like "generic/001"')):
        if key in table:
            values[key] = _names(table, key, where, one, pattern=pattern)
    if "test_timeout" in table:
        raw = table["test_timeout"]
        seconds = None if isinstance(raw, bool) else parse_duration(raw)
        if not seconds:
            fail("test_timeout", 'a positive duration like 900, "90s" or "15m"', raw)
        values["test_timeout"] = seconds
    if "loop_failures" in table:
        raw = table["loop_failures"]
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            fail("loop_failures", "an integer >= 0", raw)
        values["loop_failures"] = raw
    if "required" in table:
        if not isinstance(table["required"], bool):
            fail("required", "true or false", table["required"])
        values["required"] = table["required"]
    return dataclasses.replace(d, **values)


def tree_problem(dir: Path) -> str | None:
    """Why *dir* is not a built xfstests tree, or None."""
    dir = Path(dir)
    if not dir.exists():
        return f"{dir} does not exist"
    if not dir.is_dir():
        return f"{dir} is not a directory"
    if not (dir / "check").is_file() or not (dir / "common" / "rc").is_file():
        return f"{dir} is not an xfstests tree (no check script or common/rc)"
    for rel in BUILT_FILES:
        if not os.access(dir / rel, os.X_OK) or not (dir / rel).is_file():
            return f"{dir} is not built: {rel} is missing (run make in {dir})"
    if not (dir / "tests" / "generic" / "group.list").is_file():
        return f"{dir} is not built: tests/generic/group.list is missing (run make in {dir})"
    return None


# Guest layout and scripts


@dataclasses.dataclass(frozen=True)
class GuestLayout:
    """Where one file system type's run lives in the guest."""

    fstype: str
    base: str
    tree: str  # an overlay of the host's tree, writable
    config: str  # local.config (HOST_OPTIONS)
    results: str  # RESULT_BASE
    test_dev: str
    test_dir: str
    scratch_dev: str
    scratch_mnt: str
    backing: tuple[str, ...] = ()  # fuse: the XFS mounts the sources live on
    sources: tuple[str, ...] = ()  # fuse: the directories behind test_dev, scratch_dev
    server_logs: str = ""


def guest_layout(fstype: str) -> GuestLayout:
    _check_fstype(fstype)
    base = f"{GUEST_ROOT}/{fstype}"
    common = dict(fstype=fstype, base=base, tree=f"{GUEST_ROOT}/tree",
                  config=f"{base}/local.config", results=f"{base}/results",
                  test_dir=f"{base}/test", scratch_mnt=f"{base}/scratch")
    if fstype == "xfs":
        return GuestLayout(test_dev=f"/dev/{DEVICES[0]}", scratch_dev=f"/dev/{DEVICES[1]}",
                           **common)
    backing = (f"{base}/test-xfs", f"{base}/scratch-xfs")
    return GuestLayout(test_dev=f"{HELPER_NAME}-test", scratch_dev=f"{HELPER_NAME}-scratch",
                       backing=backing, sources=tuple(f"{b}/src" for b in backing),
                       server_logs=f"{base}/server", **common)


def _check_fstype(fstype: str) -> None:
    if fstype not in FSTYPES:
        raise ValueError(f"unknown xfstests file system type {fstype!r}")


def local_config(fstype: str, *, test_dev: str, test_dir: str, scratch_dev: str,
                 scratch_mnt: str, results_base: str, extra: dict | None = None) -> str:
    """xfstests' local.config for one file system type.  KEEP_DMESG keeps
    each test's kernel log (RESULT_BASE/<test>.dmesg) for the splat scan."""
    _check_fstype(fstype)
    values = {"FSTYP": fstype}
    if fstype == "fuse":
        values["FUSE_SUBTYP"] = f".{HELPER_NAME}"
    values.update(TEST_DEV=test_dev, TEST_DIR=test_dir, SCRATCH_DEV=scratch_dev,
                  SCRATCH_MNT=scratch_mnt, RESULT_BASE=results_base, KEEP_DMESG="yes")
    for key, value in (extra or {}).items():
        if not ENV_NAME.match(key):
            raise ValueError(f"not a shell variable name: {key!r}")
        values[key] = str(value)
    lines = [f"# xfstests configuration written by kvariant ({fstype})"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


_POLICY_KEYS = ("passthrough", "parallel_direct_writes", "direct_io", "threads", "timeout",
                "killpriv_v2")
_PLACEHOLDERS = {"@SRC@": '"$src"', "@DIR@": '"$dir"', "@MNT@": '"$mnt"', "@LOG@": '"$log"',
                 "@STATS@": '"$stats"'}

_HELPER_HEAD = """\
#!/bin/sh
# mount.fuse.{name}: mount(8) helper for kvariant's FUSE passthrough server,
# written for an xfstests run into the guest's RAM overlay.
# mount(8) calls: mount.fuse.{name} SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTS] [-t TYPE]
# The mount source (findmnt -S, df) is SOURCE exactly: --fsname SOURCE.
me=mount.fuse.{name}
if [ $# -lt 2 ]; then echo "usage: $me SOURCE MOUNTPOINT [-o OPTIONS]" >&2; exit 1; fi
src=$1
mnt=$2
shift 2
opts=
fake=
while [ $# -gt 0 ]; do
	case $1 in
	-o|-t|-N)
		if [ $# -lt 2 ]; then echo "$me: $1 needs a value" >&2; exit 1; fi
		[ "$1" = -o ] && opts=${{opts:+$opts,}}$2
		shift 2 ;;
	-o?*) opts=${{opts:+$opts,}}${{1#-o}}; shift ;;
	-t?*|-N?*) shift ;;
	-*) case $1 in *f*) fake=1 ;; esac; shift ;;
	*) echo "$me: unexpected argument: $1" >&2; exit 1 ;;
	esac
done
[ -z "$fake" ] || exit 0
case ,$opts, in
*,remount,*) exec mount -i -t fuse -o "$opts" "$mnt" ;;
esac
# the directory served: -o source=DIR, else the one known for SOURCE, else SOURCE
dir=
kept=
set -f
oldifs=$IFS
IFS=,
for o in $opts; do
	case $o in
	source=*) dir=${{o#source=}} ;;
	*) kept=${{kept:+$kept,}}$o ;;
	esac
done
IFS=$oldifs
set +f
opts=$kept
if [ -z "$dir" ]; then
	case $src in
{known}	*) dir=$src ;;
	esac
fi
if [ ! -d "$dir" ]; then echo "$me: $src: no source directory ($dir)" >&2; exit 32; fi
tag=$(printf '%s' "$src" | tr -c 'A-Za-z0-9._-' '_')
logdir={log_dir}
mkdir -p "$logdir"
log=$logdir/$tag.log
stats=$logdir/$tag-stats.json
if [ -n "$opts" ]; then set -- -o "$opts"; else set --; fi
export PYTHONPATH={project}${{PYTHONPATH:+:$PYTHONPATH}}
"""


def mount_helper_script(python: str, project_dir: str, policy: dict, log_dir: str,
                        sources: dict[str, str] | None = None) -> str:
    """The ``mount.fuse.kvariant`` helper: starts our server as a daemon
    with the open *policy* (passthrough, parallel_direct_writes, direct_io;
    optional threads, timeout, killpriv_v2), the mount source SOURCE as its
    fsname, and mount(8)'s -o options.  The directory it serves is
    ``-o source=DIR``, else ``sources[SOURCE]``, else SOURCE itself.  A
    remount goes to mount(2) directly (``mount -i``)."""
    unknown = set(policy) - set(_POLICY_KEYS)
    if unknown:
        raise ValueError(f"unknown FUSE policy keys: {', '.join(sorted(unknown))}")
    argv = server_argv("@DIR@", "@MNT@", daemon=True, fsname="@SRC@", log="@LOG@",
                       stats="@STATS@", python=python, **policy)
    command = " ".join(_PLACEHOLDERS.get(a, shlex.quote(a)) for a in argv)
    known = "".join(f"\t{_case_word(tag)}) dir={shlex.quote(path)} ;;\n"
                    for tag, path in (sources or {}).items())
    head = _HELPER_HEAD.format(name=HELPER_NAME, log_dir=shlex.quote(log_dir),
                               project=shlex.quote(project_dir), known=known)
    return head + f'exec {command} "$@"\n'


def _case_word(text: str) -> str:
    """*text* as a literal case pattern."""
    return re.sub(r"([^A-Za-z0-9_./-])", r"\\\1", text)


def _null_blk_steps(size_mb: int) -> list[str]:
    """nullb1 and nullb2 through configfs: the fio stage may have loaded
    null_blk with nr_devices=1 (nullb0), and module parameters cannot add
    devices to a loaded module.  The configfs directory name is the disk
    name; an existing /dev/nullbN is reused."""
    steps = [
        "[ -d /sys/module/null_blk ] || modprobe null_blk nr_devices=0",
        "mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config",
    ]
    for dev in DEVICES:
        c = f"/sys/kernel/config/nullb/{dev}"
        attrs = {"size": size_mb, "blocksize": 4096, "memory_backed": 1, "discard": 1,
                 "queue_mode": 2, "irqmode": 0, "hw_queue_depth": 256}
        writes = "; ".join(f"echo {v} > {c}/{k}" for k, v in attrs.items())
        steps += [
            f"if [ ! -b /dev/{dev} ]; then mkdir -p {c}; {writes}; echo 1 > {c}/power; fi",
            f"for i in $(seq 100); do [ -b /dev/{dev} ] && break; sleep 0.1; done; [ -b /dev/{dev} ]",
            f"echo none > /sys/block/{dev}/queue/scheduler 2>/dev/null || true",
        ]
    return steps


def _release_steps(lay: GuestLayout) -> list[str]:
    """Unmount TEST_DIR and SCRATCH_MNT, aborting their FUSE connections
    first so a hung server cannot block the unmount (after a timeout)."""
    mounts = " ".join(shlex.quote(m) for m in (lay.test_dir, lay.scratch_mnt))
    return [
        "mountpoint -q /sys/fs/fuse/connections || "
        "mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true",
        f"for m in {mounts}; do "
        "c=$(findmnt -rn -o MAJ:MIN,FSTYPE --mountpoint \"$m\" | awk '$2 == \"fuse\" {print $1}'); "
        "[ -n \"$c\" ] && echo 1 2>/dev/null > /sys/fs/fuse/connections/${c#0:}/abort; "
        "findmnt -rn --mountpoint \"$m\" >/dev/null && "
        "{ umount \"$m\" 2>/dev/null || umount -l \"$m\"; }; done; true",
    ]


def _unmount_steps(lay: GuestLayout) -> list[str]:
    """Leave nothing mounted under the fstype directories or on our devices:
    an earlier fstype's run in the same guest may hold them."""
    return _release_steps(lay) + [
        f"findmnt -rn -o TARGET | grep -E '^{GUEST_ROOT}/({'|'.join(FSTYPES)})(/|$)' | sort -r | "
        "while read -r m; do umount \"$m\" 2>/dev/null || umount -l \"$m\"; done; true",
        *(f"findmnt -rn -o TARGET -S /dev/{d} | while read -r m; do umount \"$m\" 2>/dev/null "
          "|| umount -l \"$m\"; done; true" for d in DEVICES),
    ]


def _heredoc(path_sh: str, text: str, mode: str = "644") -> str:
    """Write *text* to the file *path_sh* (a shell word, already quoted)."""
    return f"cat > {path_sh} <<'KVARIANT_EOF'\n{text}KVARIANT_EOF\nchmod {mode} {path_sh}"


def guest_setup_script(fstype: str, *, xfstests_dir: str, python: str, project_dir: str,
                       policy: dict | None = None, size_mb: int = 2048) -> str:
    """A ``set -e`` shell script that prepares one fstype's run: the two
    null_blk devices, XFS on them, the writable tree overlay, xfstests'
    users, local.config, and for ``fuse`` the XFS mounts holding the source
    directories and the mount helper."""
    lay = guest_layout(fstype)
    q = shlex.quote
    steps = ["set -e", f"mkdir -p {q(lay.results)} {q(lay.test_dir)} {q(lay.scratch_mnt)}"]
    steps += _null_blk_steps(size_mb)
    steps += _unmount_steps(lay)
    rw = f"{GUEST_ROOT}/tree-rw"
    steps += [
        f"if ! mountpoint -q {lay.tree}; then mkdir -p {lay.tree} {rw}; "
        f"mountpoint -q {rw} || mount -t tmpfs tmpfs {rw}; mkdir -p {rw}/upper {rw}/work; "
        f"mount -t overlay overlay -o lowerdir={q(xfstests_dir)},upperdir={rw}/upper,"
        f"workdir={rw}/work {lay.tree} || mount --bind {q(xfstests_dir)} {lay.tree}; fi",
        f"[ -x {lay.tree}/check ]",
        # users some tests need; /etc is a RAM overlay in the guest
        "getent group fsgqa >/dev/null || groupadd fsgqa || true",
        "for u in fsgqa fsgqa2 123456-fsgqa; do id -u \"$u\" >/dev/null 2>&1 || "
        "useradd -m \"$u\" >/dev/null 2>&1 || useradd --badname -m \"$u\" >/dev/null 2>&1 "
        "|| true; done",
        f"mkfs.xfs -f -q /dev/{DEVICES[0]}",
    ]
    if fstype == "fuse":
        helper = mount_helper_script(python, project_dir, policy or {}, lay.server_logs,
                                     dict(zip((lay.test_dev, lay.scratch_dev), lay.sources)))
        steps += [f"mkfs.xfs -f -q /dev/{DEVICES[1]}"]
        for dev, mnt, src in zip(DEVICES, lay.backing, lay.sources):
            steps += [f"mkdir -p {q(mnt)}", f"mount -t xfs /dev/{dev} {q(mnt)}", f"mkdir -p {q(src)}"]
        steps += [
            f"mkdir -p {q(lay.server_logs)}",
            # /sbin is a link to the RAM overlay's /usr/sbin on merged-/usr hosts
            "dest=/usr/sbin; [ -L /sbin ] || dest=/sbin",
            _heredoc(f'"$dest/mount.fuse.{HELPER_NAME}"', helper, "755"),
            f"[ -x /sbin/mount.fuse.{HELPER_NAME} ] || "
            f"{{ echo 'kvariant: /sbin/mount.fuse.{HELPER_NAME} is not visible' >&2; exit 1; }}",
        ]
    config = local_config(fstype, test_dev=lay.test_dev, test_dir=lay.test_dir,
                          scratch_dev=lay.scratch_dev, scratch_mnt=lay.scratch_mnt,
                          results_base=lay.results)
    steps += [_heredoc(q(lay.config), config),
              f"findmnt -rn -o SOURCE,TARGET,FSTYPE | grep {GUEST_ROOT} || true"]
    return "\n".join(steps) + "\n"


def guest_teardown_script(fstype: str) -> str:
    """Unmount everything of one fstype's run and remove the helper."""
    steps = _unmount_steps(guest_layout(fstype))
    if fstype == "fuse":
        steps.append(f"rm -f /usr/sbin/mount.fuse.{HELPER_NAME} /sbin/mount.fuse.{HELPER_NAME}"
                     " 2>/dev/null; true")
    return "\n".join(steps) + "\n"


# ./check command lines


def _selection(cfg: XfstestsConfig) -> list[str]:
    groups = cfg.groups or (() if cfg.tests else DEFAULT_GROUPS)
    argv = ["-g", ",".join(groups)] if groups else []
    if cfg.exclude:
        argv += ["-e", ",".join(cfg.exclude)]
    if cfg.exclude_file is not None:
        argv += ["-E", str(cfg.exclude_file)]
    return argv


def _loop(cfg: XfstestsConfig) -> list[str]:
    return ["-L", str(cfg.loop_failures)] if cfg.loop_failures else []


def check_argv(cfg: XfstestsConfig, fstype: str) -> list[str]:
    """One ``./check`` call for the whole selection (FSTYP comes from
    local.config).  check wants every option before the first test name
    ("Arguments before tests, please!"); tests and groups together select
    their union, exclusions apply to both; with neither it would run the
    whole ``auto`` group, so DEFAULT_GROUPS is given instead."""
    _check_fstype(fstype)
    return ["./check", "-R", "xunit", *_loop(cfg), *_selection(cfg), *cfg.tests]


def list_argv(cfg: XfstestsConfig, fstype: str) -> list[str]:
    """``./check -n``: the tests check_argv would run, exclusions applied,
    globs expanded, unknown names dropped."""
    _check_fstype(fstype)
    return ["./check", "-n", *_selection(cfg), *cfg.tests]


def single_test_argv(cfg: XfstestsConfig, test: str) -> list[str]:
    """One test (already selected by list_argv) in its own ./check call."""
    return ["./check", "-R", "xunit", *_loop(cfg), test]


_LISTED = re.compile(r"^([A-Za-z0-9_-]+/[A-Za-z0-9_.-]+)\s*$")


def parse_test_list(text: str) -> list[str]:
    """Test names from ``./check -n`` output; expunged tests (printed with
    "[expunged]") and unknown ones ("- unknown test, ignored") are left out."""
    return list(dict.fromkeys(m.group(1) for line in text.splitlines()
                              if (m := _LISTED.match(line))))


# Kernel log


_PREFIX = re.compile(r"^\s*(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[CT]\d+\]\s*)?")
_SPLATS = [  # (kind, pattern); matched against a line without its timestamp
    ("lockdep", re.compile(r"^WARNING: (possible (circular|recursive) locking|inconsistent lock state"
                           r"|suspicious RCU usage|bad unlock balance|lock held when returning"
                           r"|held lock freed|possible irq lock inversion)")),
    ("warning", re.compile(r"^WARNING: (CPU: |at )")),
    ("kasan", re.compile(r"^(BUG: )?KASAN: ")),
    ("ubsan", re.compile(r"^UBSAN: ")),
    ("lockup", re.compile(r"\bBUG: (soft|hard) lockup\b|^Watchdog detected hard LOCKUP")),
    ("bug", re.compile(r"^kernel BUG at |\bBUG: (?!MAX_LOCK|MAX_STACK_TRACE)")),
    ("oops", re.compile(r"^(Oops|general protection fault|Kernel panic - not syncing)")),
    ("hung", re.compile(r"^INFO: task \S+ blocked for more than \d+ seconds")),
    ("stall", re.compile(r"^(rcu: )?INFO: rcu_\w+ (self-)?detected (stalls|stall)")),
]
_FOLLOW_ON = ("oops",)  # an Oops line right after a BUG line belongs to it
INTENDED_KINDS = ("warning",)  # tests provoke WARN()s on purpose, never the other kinds
_END = re.compile(r"---\[ end (trace|Kernel panic)")


@dataclasses.dataclass
class Splat:
    kind: str
    first_line: str
    start: int  # line index in the text
    end: int  # one past its last line kept in an excerpt


def find_splats(text: str) -> list[Splat]:
    lines = text.splitlines()
    splats: list[Splat] = []
    open_splat: Splat | None = None
    for i, raw in enumerate(lines):
        line = _PREFIX.sub("", raw, count=1).strip()
        if open_splat is not None and _END.search(line):
            open_splat.end = i + 1
            open_splat = None
            continue
        kind = next((k for k, p in _SPLATS if p.search(line)), None)
        if kind is None:
            continue
        if kind in _FOLLOW_ON and open_splat is not None and i - open_splat.start < 60:
            continue
        open_splat = Splat(kind, line, i, min(len(lines), i + SPLAT_LINES))
        splats.append(open_splat)
    return splats


def scan_splats(text: str) -> list[str]:
    """The first line of each kernel splat in a kernel log (timestamps
    removed): warnings, BUG/Oops, lockdep reports, KASAN/UBSAN reports, hung
    tasks, soft lockups and RCU stalls."""
    return [s.first_line for s in find_splats(text)]


def splat_excerpt(text: str, max_lines: int = 80) -> str:
    lines = text.splitlines()
    out: list[str] = []
    for s in find_splats(text):
        out += lines[s.start:s.end]
        if len(out) >= max_lines:
            break
    return "\n".join(out[:max_lines])


# Results


@dataclasses.dataclass
class TestOutcome:
    """One test's result as xfstests reported it, plus our kernel log scan."""

    __test__ = False  # not a pytest class

    name: str  # "generic/001"
    status: str  # "pass", "fail", "notrun"
    seconds: float = 0.0
    message: str = ""
    diff: str = ""  # excerpt of the .out.bad diff against the golden output
    dmesg: str = ""  # excerpt: the splats of the test's kernel log
    splats: list[str] = dataclasses.field(default_factory=list)
    runs: int = 1  # with -L N: how many times it ran


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _testcases_from_xml(text: str) -> list[ET.Element]:
    """The testcase elements; of a truncated document, those complete in it."""
    try:
        root = ET.fromstring(text)
        return [e for e in root.iter() if _local(e.tag) == "testcase"]
    except ET.ParseError:
        pass
    cases = []
    starts = [m.start() for m in re.finditer(r"<testcase\b", text)] + [len(text)]
    for a, b in zip(starts, starts[1:]):
        chunk = text[a:b]
        end = chunk.find("</testcase>")
        head_end = chunk.find(">")
        if end >= 0:
            chunk = chunk[:end + len("</testcase>")]
        elif head_end > 0 and chunk[head_end - 1] == "/":
            chunk = chunk[:head_end + 1]
        else:
            continue
        try:
            cases.append(ET.fromstring(chunk))
        except ET.ParseError:
            continue
    return cases


def _outcome_from_case(case: ET.Element) -> TestOutcome:
    name = case.get("name", "")
    try:
        seconds = float(case.get("time") or 0)
    except ValueError:
        seconds = 0.0
    out = TestOutcome(name, "pass", seconds)
    for child in case:
        tag, text = _local(child.tag), (child.text or "").lstrip("\n").rstrip()
        if tag == "failure":
            out.status = "fail"
            out.message = child.get("message") or "failed"
        elif tag == "skipped" and out.status != "fail":
            out.status = "notrun"
            out.message = child.get("message") or "not run"
        elif tag == "system-err":
            out.diff = text
        elif tag == "kernel-log":
            out.dmesg = text
    return out


def _merge_runs(outcomes: list[TestOutcome]) -> TestOutcome:
    """With -L N a failing test has one testcase per run."""
    if len(outcomes) == 1:
        return outcomes[0]
    failed = [o for o in outcomes if o.status == "fail"]
    first = failed[0] if failed else outcomes[0]
    merged = dataclasses.replace(first, seconds=sum(o.seconds for o in outcomes),
                                 runs=len(outcomes))
    if failed:
        merged.message = f"{first.message} (failed {len(failed)} of {len(outcomes)} runs)"
    return merged


def parse_check_log(text: str) -> dict[str, str]:
    """name -> "pass"/"fail"/"notrun" from check.log (appended to by every
    ./check call; later calls win).  In an interrupted call the last test it
    tried has no result and is left out."""
    status: dict[str, str] = {}
    for block in re.split(r"^Kernel version:.*$", text, flags=re.M)[1:]:
        ran, notrun, bad, interrupted = [], set(), set(), False
        for line in block.splitlines():
            key, _, rest = line.partition(":")
            if key == "Ran":
                ran = rest.split()
            elif key == "Not run":
                notrun = set(rest.split())
            elif key == "Failures":
                bad = set(rest.split())
            elif line.strip() == "Interrupted!":
                interrupted = True
        for i, name in enumerate(ran):
            if name in bad:
                status[name] = "fail"
            elif name in notrun:
                status[name] = "notrun"
            elif interrupted and i == len(ran) - 1:
                status.pop(name, None)
            else:
                status[name] = "pass"
    return status


def parse_check_time(text: str) -> dict[str, float]:
    times = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                times[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return times


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _diff_excerpt(result_dir: Path, name: str, tree: Path | None) -> str:
    bad = _read(result_dir / f"{name}.out.bad")
    if bad is None:
        return ""
    golden = _read(tree / "tests" / f"{name}.out") if tree is not None else None
    if golden is None:
        return f"{name}.out.bad:\n{bad}"
    return "".join(difflib.unified_diff(golden.splitlines(True), bad.splitlines(True),
                                        f"tests/{name}.out", f"{name}.out.bad"))


def _fallback_outcome(result_dir: Path, name: str, status: str, seconds: float,
                      tree: Path | None) -> TestOutcome:
    out = TestOutcome(name, status, seconds)
    if status == "notrun":
        out.message = (_read(result_dir / f"{name}.notrun") or "not run").strip()
    elif status == "fail":
        out.diff = _diff_excerpt(result_dir, name, tree)
        out.message = (f"output mismatch (see {name}.out.bad)"
                       if (result_dir / f"{name}.out.bad").is_file()
                       else f"failed (see check.log and {name}.full)")
    return out


def _add_kernel_log(out: TestOutcome, result_dir: Path) -> None:
    """Splats of one test.  xfstests' own log (<test>.dmesg, kept for every
    test with KEEP_DMESG) went through the test's dmesg filters: every kind
    counts.  Ours (<test>.kmsg, the whole kernel log of its ./check call)
    also holds what a test filtered or provoked on purpose (error injection
    warnings), so only kinds no test provokes count there; so does the
    <kernel-log> of result.xml when neither file exists."""
    sources = [(_read(result_dir / f"{out.name}.dmesg"), None),
               (_read(result_dir / f"{out.name}.kmsg"), INTENDED_KINDS)]
    if not any(text for text, _ in sources):
        sources = [(out.dmesg, None)]
    splats, excerpt = [], []
    for text, skip in sources:
        for s in find_splats(text or ""):
            if skip and s.kind in skip:
                continue
            if s.first_line not in splats:
                splats.append(s.first_line)
                excerpt += text.splitlines()[s.start:s.end]
    out.splats = splats
    out.dmesg = "\n".join(excerpt[:80])


def parse_results(result_dir: Path, tree: Path | None = None,
                  only: str | None = None) -> list[TestOutcome]:
    """Outcomes of the tests in an xfstests RESULT_BASE (or a copy of it).

    Reads result.xml and xunit/*.xml (one per ./check call when tests run
    one at a time); a test none of them has (the file is missing, or was cut
    short by a hung guest) comes from check.log, with its time from
    check.time.  Diffs come from result.xml or, given the xfstests *tree*,
    from <test>.out.bad against the golden output.  *only*: just that test,
    from result.xml and check.log (the runner, after each ./check call).
    Pure: reads files only.
    """
    result_dir = Path(result_dir)
    files = [result_dir / "result.xml"]
    if only is None:
        files += sorted((result_dir / "xunit").glob("*.xml"))
    by_name: dict[str, list[TestOutcome]] = {}
    for f in files:
        text = _read(f)
        if not text:
            continue
        cases = _testcases_from_xml(text)
        per_file: dict[str, list[TestOutcome]] = {}
        for case in cases:
            o = _outcome_from_case(case)
            per_file.setdefault(o.name, []).append(o)
        for name, runs in per_file.items():
            by_name.setdefault(name, runs)
    outcomes = {name: _merge_runs(runs) for name, runs in by_name.items()
                if name and only in (None, name)}
    times = parse_check_time(_read(result_dir / "check.time") or "")
    for name, status in parse_check_log(_read(result_dir / "check.log") or "").items():
        if name not in outcomes and only in (None, name):
            outcomes[name] = _fallback_outcome(result_dir, name, status,
                                               times.get(name, 0.0), tree)
    for out in outcomes.values():
        if not out.seconds and out.name in times:
            out.seconds = times[out.name]
        if out.status == "fail" and not out.diff:
            out.diff = _diff_excerpt(result_dir, out.name, tree)
        _add_kernel_log(out, result_dir)
    return list(outcomes.values())


def _first_line(text: str) -> str:
    line = next((l for l in text.splitlines() if l.strip()), "").strip()
    return line[2:] if line.startswith("- ") else line


def outcome_to_stage(outcome: TestOutcome, fstype: str) -> StageResult:
    """A splat fails the test even when xfstests passed it."""
    status = {"pass": Status.PASS, "fail": Status.FAIL, "notrun": Status.SKIP}.get(
        outcome.status, Status.ERROR)
    message = _first_line(outcome.message)
    if outcome.splats and status != Status.FAIL:
        status = Status.FAIL
        message = f"kernel splat: {outcome.splats[0]}"
    detail = []
    if outcome.status == "fail" and outcome.diff:
        detail.append("\n".join(outcome.diff.splitlines()[:DIFF_LINES]))
    if outcome.splats:
        detail.append("kernel log:\n" + (outcome.dmesg or "\n".join(outcome.splats)))
    figures = {"runs": outcome.runs} if outcome.runs > 1 else {}
    return StageResult(name=f"xfstests/{fstype}/{outcome.name}", status=status,
                       seconds=outcome.seconds, message=message, detail="\n\n".join(detail),
                       figures=figures, suite=f"xfstests.{fstype}")


# Runner


def _check_command(lay: GuestLayout, argv: list[str], deadline: float | None = None) -> str:
    timeout = f"timeout -k {KILL_GRACE} {deadline:.0f} " if deadline else ""
    return (f"cd {shlex.quote(lay.tree)} && HOST_OPTIONS={shlex.quote(lay.config)} "
            f"{timeout}{shlex.join(argv)}")


def _kmsg_capture(lay: GuestLayout, test: str, marker: str) -> str:
    """Our kernel log of one ./check call: everything after its marker (the
    whole log if the marker has left the ring buffer)."""
    dest = shlex.quote(f"{lay.results}/{test}.kmsg")
    return (f"mkdir -p {shlex.quote(os.path.dirname(f'{lay.results}/{test}'))}; "
            f"dmesg | awk -v m={shlex.quote(marker)} 'index($0, m) {{found=1}} found' > {dest}; "
            f"[ -s {dest} ] || dmesg | tail -n 2000 > {dest}")


def test_command(lay: GuestLayout, cfg: XfstestsConfig, test: str, deadline: float,
                 marker: str) -> str:
    """One test in the guest: a kernel log marker, ./check under timeout,
    our kernel log slice; exits with check's (or timeout's 124/137) code."""
    return (f"rm -f {shlex.quote(lay.results)}/result.xml; "
            f"echo {shlex.quote(marker)} > /dev/kmsg; "
            f"{_check_command(lay, single_test_argv(cfg, test), deadline)}; rc=$?; "
            f"{_kmsg_capture(lay, test, marker)}; exit $rc")


def _fetch(guest, lay: GuestLayout, test: str, outdir: Path) -> None:
    """result.xml, check.log, check.time and <test>.* (out.bad, full,
    dmesg, notrun, kmsg, loop copies) into outdir; result.xml is also kept
    as xunit/<test>.xml since the next call rewrites it."""
    res = guest.run(f"cd {shlex.quote(lay.results)} && ls -1d result.xml check.log check.time "
                    f"{shlex.quote(test)}.* 2>/dev/null; true", timeout=60)
    names = [n for n in (line.strip() for line in res.tail.splitlines())
             if n in ("result.xml", "check.log", "check.time")
             or (n.startswith(f"{test}.") and "/" not in n[len(test):])]
    (outdir / "result.xml").unlink(missing_ok=True)
    for name in names:
        guest.get(f"{lay.results}/{name}", outdir / name, missing_ok=True)
    if (outdir / "result.xml").is_file():
        keep = outdir / "xunit" / (test.replace("/", "-") + ".xml")
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outdir / "result.xml", keep)


def _recover(guest, lay: GuestLayout, test: str, marker: str, log: Path) -> bool:
    """After a timeout: keep the kernel log, abort our FUSE connections,
    unmount.  False when the guest no longer answers."""
    script = _kmsg_capture(lay, test, marker) + "\n" + "\n".join(_release_steps(lay))
    try:
        res = guest.run(f"sh -c {shlex.quote(script)}", timeout=120, log=log)
    except StageError:
        return False
    return not res.timed_out


def _error(fstype: str, what: str, message: str, detail: str = "", reproduce: str = "",
           status: Status = Status.ERROR, seconds: float = 0.0) -> StageResult:
    return StageResult(name=f"xfstests/{fstype}/{what}", status=status, seconds=seconds,
                       message=message, detail=detail, reproduce=reproduce,
                       suite=f"xfstests.{fstype}")


def _list_tests(guest, cfg, fstype, lay, outdir: Path, log) -> tuple[list[str], StageResult | None]:
    """The selected tests, from ``./check -n`` (its output goes through a
    file: a quick group lists more than a command's kept tail)."""
    cmd = _check_command(lay, list_argv(cfg, fstype))
    listing = f"{lay.base}/tests.txt"
    res = guest.run(f"{cmd} > {listing} 2>&1; rc=$?; tail -n 40 {listing}; exit $rc",
                    timeout=900, log=log)
    tests = []
    if not res.timed_out and guest.get(listing, outdir / "tests.txt", missing_ok=True):
        tests = parse_test_list((outdir / "tests.txt").read_text(errors="replace"))
    if not tests:
        why = "timed out" if res.timed_out else f"exit code {res.returncode}"
        return [], _error(fstype, "list", f"./check -n selected no test ({why})",
                          detail=res.tail, reproduce=cmd)
    return tests, None


def run_xfstests(guest, cfg: XfstestsConfig, fstype: str, *, policy: dict, outdir: Path,
                 python: str, project_dir: str, timeout_per_test: float, log: Path,
                 size_mb: int = 2048) -> list[StageResult]:
    """Set up one fstype in the guest, then run the selected tests one
    ./check call each.  *timeout_per_test* is a test's own deadline (0:
    cfg.test_timeout); check's setup and checks get CHECK_OVERHEAD more.
    Returns one StageResult per test (or one ERROR for a failed setup);
    files come back to *outdir* after every test."""
    lay = guest_layout(fstype)
    outdir.mkdir(parents=True, exist_ok=True)
    if cfg.dir is None:
        return [_error(fstype, "setup", "no xfstests tree configured (xfstests.dir)",
                       status=Status.SKIP)]
    setup = guest_setup_script(fstype, xfstests_dir=str(cfg.dir), python=python,
                               project_dir=project_dir, policy=policy, size_mb=size_mb)
    (outdir / "setup.sh").write_text(setup)
    res = guest.run(f"sh -c {shlex.quote(setup)}", timeout=900, log=log)
    if not res.ok:
        return [_error(fstype, "setup", "xfstests setup failed in the guest", res.tail,
                       f"sh {outdir / 'setup.sh'}  # in the guest")]
    tests, problem = _list_tests(guest, cfg, fstype, lay, outdir, log)
    if problem:
        return [problem]
    per_test = (timeout_per_test or cfg.test_timeout) * (1 + cfg.loop_failures)
    results: list[StageResult] = []
    lost = ""
    for n, test in enumerate(tests):
        if lost:
            results.append(_error(fstype, test, f"not run: {lost}", status=Status.SKIP))
            continue
        stage, lost = _run_one(guest, cfg, lay, test, n, per_test, outdir, log)
        results.append(stage)
        _write_summary(outdir, results)
    if not lost:
        guest.run_quiet(f"sh -c {shlex.quote(guest_teardown_script(fstype))}", timeout=120)
    if fstype == "fuse" and not lost:
        _fetch_server_logs(guest, lay, outdir)
    return results


def _run_one(guest, cfg, lay: GuestLayout, test: str, n: int, per_test: float,
             outdir: Path, log: Path) -> tuple[StageResult, str]:
    """(result, why the guest is lost or "")."""
    marker = f"kvariant: xfstests {lay.fstype} {test} #{n}"
    deadline = per_test + CHECK_OVERHEAD
    cmd = test_command(lay, cfg, test, deadline, marker)
    reproduce = _check_command(lay, single_test_argv(cfg, test))
    start = time.monotonic()
    try:
        res = guest.run(cmd, timeout=deadline + KILL_GRACE + 60, log=log)
    except StageError as e:
        lost = f"the guest's SSH connection was lost during {test}"
        return _error(lay.fstype, test, lost, e.detail, reproduce,
                      seconds=time.monotonic() - start), lost
    timed_out = res.timed_out or res.returncode in (124, 137)
    lost = ""
    if timed_out and not _recover(guest, lay, test, marker, log):
        lost = f"the guest stopped answering after {test} hung"
    if not lost:
        try:
            _fetch(guest, lay, test, outdir)
        except StageError as e:
            lost = f"could not fetch results after {test}: {e}"
    found = next(iter(parse_results(outdir, tree=cfg.dir, only=test)), None)
    if found is not None and not timed_out:
        stage = outcome_to_stage(found, lay.fstype)
    else:
        elapsed = time.monotonic() - start
        stage = _error(lay.fstype, test, f"no result after {elapsed:.0f} s", res.tail,
                       reproduce, seconds=elapsed)
        if not timed_out:
            stage.message += f" (./check exited {res.returncode})"
    stage.reproduce = reproduce
    return stage, lost


def _fetch_server_logs(guest, lay: GuestLayout, outdir: Path) -> None:
    try:
        res = guest.run(f"ls -1 {shlex.quote(lay.server_logs)} 2>/dev/null; true", timeout=30)
        for name in res.tail.splitlines():
            if name.endswith((".log", ".json")) and "/" not in name:
                guest.get(f"{lay.server_logs}/{name}", outdir / "server" / name, missing_ok=True)
    except StageError:
        pass


def _write_summary(outdir: Path, results: list[StageResult]) -> None:
    tmp = outdir / "results.json.tmp"
    tmp.write_text(json.dumps([r.to_dict() for r in results], indent=1))
    os.replace(tmp, outdir / "results.json")


# Run summary


_BAD = ("fail", "error")


def summarize(results_by_variant: dict[str, list[StageResult]]) -> dict:
    """Per fstype: passed/failed/skipped/errors per variant, and the tests
    whose status differs between variants, new failures against the first
    variant first, then fixes, then the rest."""
    table: dict[str, dict[str, dict[str, str]]] = {}  # fstype -> test -> variant -> status
    for variant, stages in results_by_variant.items():
        for s in stages:
            parts = s.name.split("/", 2)
            if parts[0] != "xfstests" or len(parts) != 3:
                continue
            table.setdefault(parts[1], {}).setdefault(parts[2], {})[variant] = s.status.value
    variants = list(results_by_variant)
    out: dict[str, Any] = {}
    for fstype, tests in table.items():
        counts = {v: {"passed": 0, "failed": 0, "skipped": 0, "errors": 0} for v in variants}
        key = {"pass": "passed", "fail": "failed", "skip": "skipped", "error": "errors"}
        for statuses in tests.values():
            for v, st in statuses.items():
                counts[v][key[st]] += 1
        diffs = []
        for test, statuses in sorted(tests.items()):
            row = {v: statuses.get(v, "missing") for v in variants}
            if len(set(row.values())) < 2:
                continue
            ref = row[variants[0]]
            new = [v for v in variants[1:] if row[v] in _BAD and ref not in _BAD]
            fixed = [v for v in variants[1:] if ref in _BAD and row[v] == "pass"]
            diffs.append({"test": test, "statuses": row, "new_failures": new, "fixed": fixed})
        diffs.sort(key=lambda d: (not d["new_failures"], not d["fixed"], d["test"]))
        out[fstype] = {"variants": counts, "differences": diffs}
    return out
