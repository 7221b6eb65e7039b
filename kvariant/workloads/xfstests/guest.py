"""xfstests in the guest: layout, the mount.fuse helper for our server,
set-up and teardown scripts, ./check command lines."""

from __future__ import annotations

import dataclasses
import re
import shlex

from ...config import XfstestsConfig
from ...fuse.servers import MountSpec, get_server
from .config import DEFAULT_GROUPS, DEVICES, ENV_NAME, FSTYPES, GUEST_ROOT, HELPER_NAME


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


_POLICY_KEYS = ("server", "passthrough", "parallel_direct_writes", "direct_io", "threads",
                "timeout", "killpriv_v2")
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
    """The ``mount.fuse.kvariant`` helper: starts the FUSE server named by
    *policy*'s ``server`` (default ours) as a daemon with the open *policy*
    (passthrough, parallel_direct_writes, direct_io; optional threads, and
    for our server timeout and killpriv_v2), the mount source SOURCE as its
    fsname, and mount(8)'s -o options.  The directory it serves is
    ``-o source=DIR``, else ``sources[SOURCE]``, else SOURCE itself.  A
    remount goes to mount(2) directly (``mount -i``)."""
    unknown = set(policy) - set(_POLICY_KEYS)
    if unknown:
        raise ValueError(f"unknown FUSE policy keys: {', '.join(sorted(unknown))}")
    options = dict(policy)
    server = get_server(options.pop("server", "kvariant"))
    spec = MountSpec("@DIR@", "@MNT@", fsname="@SRC@", log="@LOG@", stats="@STATS@", **options)
    argv = server.argv(spec, python)
    command = " ".join(_shell_word(a) for a in argv)
    known = "".join(f"\t{_case_word(tag)}) dir={shlex.quote(path)} ;;\n"
                    for tag, path in (sources or {}).items())
    head = _HELPER_HEAD.format(name=HELPER_NAME, log_dir=shlex.quote(log_dir),
                               project=shlex.quote(project_dir), known=known)
    return head + f'exec {command} "$@"\n'


def _shell_word(arg: str) -> str:
    """*arg* as one shell word, its placeholders (also inside it, as in
    ``fsname=@SRC@``) turned into the helper's variables."""
    parts = re.split(r"(@[A-Z]+@)", arg)
    return "".join(_PLACEHOLDERS.get(p, shlex.quote(p) if p else "") for p in parts) or "''"


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


def batch_argv(cfg: XfstestsConfig, tests: list[str]) -> list[str]:
    """Tests already selected by list_argv, in one ./check call.  Without
    ``-R xunit`` unless failures loop (-L: the reruns are testcases of
    result.xml): with it check rewrites result.xml before every test,
    some 70 processes, 30-50 s a test under TCG on a busy host; the line
    check prints for each test and its files tell the same
    (results.outcome_from_line)."""
    report = ["-R", "xunit", *_loop(cfg)] if cfg.loop_failures else []
    return ["./check", *report, *tests]


_LISTED = re.compile(r"^([A-Za-z0-9_-]+/[A-Za-z0-9_.-]+)\s*$")


def parse_test_list(text: str) -> list[str]:
    """Test names from ``./check -n`` output; expunged tests (printed with
    "[expunged]") and unknown ones ("- unknown test, ignored") are left out."""
    return list(dict.fromkeys(m.group(1) for line in text.splitlines()
                              if (m := _LISTED.match(line))))


