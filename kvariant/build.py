"""Kernel configuration and build.

One build directory (``make O=``) per kernel tree and configuration, kept in
the cache across variants and runs; one source worktree per tree.  A variant
is built by checking its commit out in the worktree (git rewrites only the
files that differ, so their mtimes move and make rebuilds only what they
feed) and running make in that build directory.  N variants of one base cost
one cold build and N incremental ones.

A built kernel is exported (bzImage, modules, .config) to a directory named
by the hash of everything that went into it, which is what the VM boots.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable

from . import decode, proc
from .buildprogress import BuildProgress, expected_objects, record_full_build
from .errors import StageError
from .paths import cache_dir, locked, short_hash
from .tree import Mirror

log = logging.getLogger(__name__)

COLD_BUILD_TIMEOUT = 3 * 3600


@dataclasses.dataclass
class BuildResult:
    kernel_dir: Path  # holds bzImage and lib/modules/<release>
    build_dir: Path
    release: str
    seconds: float
    reused: bool = False
    configured: bool = False
    toolchain: str = ""


def virtme_version() -> str:
    try:
        from importlib.metadata import version
        return version("virtme-ng")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


_TOOLCHAIN: str | None = None


def toolchain() -> str:
    """The compiler and linker a kernel is built with (their --version
    lines): part of an exported kernel's key, so a new toolchain rebuilds."""
    global _TOOLCHAIN
    if _TOOLCHAIN is None:
        lines = []
        for tool in ("gcc", "ld"):
            res = proc.run([tool, "--version"], cwd=Path("/"), timeout=30)
            lines.append(res.tail.splitlines()[0] if res.ok and res.tail else f"{tool}: unknown")
        _TOOLCHAIN = "; ".join(lines)
    return _TOOLCHAIN


_OPTION_LINE = re.compile(r"^(CONFIG_\w+=.*|# CONFIG_\w+ is not set)$")


def fragment_options(text: str) -> str:
    """What of a fragment kconfig reads: its option lines (``CONFIG_X=...``
    and ``# CONFIG_X is not set``, from the first column, as kconfig reads
    them), in order, without comments or blank lines."""
    return "\n".join(m.group(1) for line in text.splitlines() if (m := _OPTION_LINE.match(line)))


def config_key(fragments: list[Path]) -> str:
    """Names the build directory: the fragments' options and virtme-ng's
    version (which supplies the minimal config).  A comment rewritten in a
    fragment keeps the key, and with it the build directory: no cold
    build for a change kconfig never sees."""
    parts: list[bytes | str] = ["kvariant-config-v2", virtme_version(), os.uname().machine]
    parts += [fragment_options(Path(f).read_text()) for f in fragments]
    return short_hash(*parts)


def build_dir(mirror: Mirror, fragments: list[Path]) -> Path:
    return cache_dir() / "build" / mirror.key / config_key(fragments)


def worktree_of(mirror: Mirror, outdir: Path) -> Path:
    """The source worktree a build directory is built from, one per build
    directory, so that builds of different configurations (the debug
    profile beside the default) neither wait for nor disturb each other.  A
    build directory keeps the worktree it was configured from: Kbuild
    records source paths, and another one would mean a cold build."""
    recorded = outdir / ".kvariant-worktree"
    if recorded.exists():
        return Path(recorded.read_text().strip())
    if (outdir / ".kvariant-configured").exists():  # configured by an earlier version: one worktree
        return mirror.src
    return mirror.src.with_name(f"{mirror.key}-{outdir.name}")


def configkernel_argv(fragments: list[Path], outdir: Path) -> list[str]:
    argv = ["virtme-configkernel", "--defconfig"]
    for f in fragments:
        argv += ["--custom", str(f)]
    return argv + [f"O={outdir}"]


def make_argv(src: Path, outdir: Path, jobs: int, *targets: str) -> list[str]:
    return ["make", "-C", str(src), f"O={outdir}", f"-j{jobs}", *targets]


def missing_options(config_text: str, fragments: list[Path]) -> list[str]:
    """Options a fragment sets to y/m that the final .config does not have
    (Kconfig drops what it cannot satisfy, silently), and options a fragment
    turns off (``# CONFIG_X is not set``) that are on all the same (another
    option selects them)."""
    have = {}
    for line in config_text.splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)", line)
        if m:
            have[m.group(1)] = m.group(2)
    missing = []
    for f in fragments:
        for line in fragment_options(Path(f).read_text()).splitlines():
            m = re.match(r"(CONFIG_\w+)=([ym])\s*$", line)
            if m and have.get(m.group(1)) not in ("y", "m"):
                missing.append(f"{m.group(1)}={m.group(2)} ({Path(f).name})")
            off = re.match(r"# (CONFIG_\w+) is not set$", line)
            if off and have.get(off.group(1)) in ("y", "m"):
                missing.append(f"{off.group(1)} off, but it is {have[off.group(1)]} ({Path(f).name})")
    return missing


def configure(src: Path, outdir: Path, fragments: list[Path], logfile: Path) -> bool:
    """Write outdir/.config from virtme-ng's defconfig plus the fragments,
    unless it is already there.  Returns True when it (re)configured."""
    stamp = outdir / ".kvariant-configured"
    if (outdir / ".config").exists() and stamp.exists():
        return False
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / ".config").unlink(missing_ok=True)
    res = proc.run(configkernel_argv(fragments, outdir), cwd=src, timeout=600,
                   env=proc.virtme_path(), log=logfile)
    res.check("virtme-configkernel")
    missing = missing_options((outdir / ".config").read_text(), fragments)
    if missing:
        raise StageError("kconfig did not keep options as the fragments ask",
                         detail="\n".join(missing), reproduce=res.cmdline)
    stamp.write_text(res.cmdline + "\n")
    return True


def compiler_errors(log_text: str, limit: int = 40) -> str:
    """The compiler's and linker's error lines (with the line before each),
    not just make's last words."""
    out: list[str] = []
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        if re.search(r"(: (fatal )?error: |: undefined reference to |Error \d+$|^ERROR: )", line):
            if i and lines[i - 1] not in out and "In function" in lines[i - 1]:
                out.append(lines[i - 1])
            out.append(line)
            # the source excerpt gcc prints after the error
            for follow in lines[i + 1:i + 3]:
                if follow.startswith(" ") and "|" in follow:
                    out.append(follow)
        if len(out) >= limit:
            break
    return "\n".join(out)


def kernel_release(outdir: Path) -> str:
    return (outdir / "include" / "config" / "kernel.release").read_text().strip()


def build_kernel(mirror: Mirror, commit: str, fragments: list[Path], logfile: Path,
                 jobs: int | None = None, timeout: float = COLD_BUILD_TIMEOUT,
                 show: Callable[[str], None] | None = None) -> BuildResult:
    """Build *commit* with *fragments*; reuse an exported kernel when one of
    the same inputs exists.  *show* gets the build's progress as it goes
    (buildprogress)."""
    fragments = [Path(f).resolve() for f in fragments]
    key = short_hash(commit, config_key(fragments), toolchain())
    kernel_dir = cache_dir() / "kernels" / key
    outdir = build_dir(mirror, fragments)

    def reuse() -> BuildResult | None:
        # a kernel exported before it carried what decodes its reports is built again
        if not all((kernel_dir / name).exists() for name in ("bzImage", "release", *decode.FILES)):
            return None
        logfile.parent.mkdir(parents=True, exist_ok=True)
        logfile.write_text(f"kvariant: reused kernel {kernel_dir} (same commit and config)\n")
        return BuildResult(kernel_dir, outdir, (kernel_dir / "release").read_text().strip(),
                           0.0, reused=True)

    if (found := reuse()) is not None:
        return found
    jobs = jobs or os.cpu_count() or 1
    start = time.monotonic()
    worktree = worktree_of(mirror, outdir)
    with locked(f"build-{outdir.parent.name}-{outdir.name}"):
        # another run may have built it while this one waited for the lock
        if (found := reuse()) is not None:
            return found
        src = mirror.checkout(commit, worktree)
        (outdir / ".kvariant-worktree").parent.mkdir(parents=True, exist_ok=True)
        (outdir / ".kvariant-worktree").write_text(f"{src}\n")
        cold = not (outdir / "vmlinux").exists()
        progress = BuildProgress(expected_objects(outdir), show)
        configured = configure(src, outdir, fragments, logfile)
        res = proc.run(make_argv(src, outdir, jobs, "bzImage", "modules"), cwd=src,
                       timeout=timeout, log=logfile, on_line=progress.line)
        with open(logfile, "a") as f:
            f.write(f"kvariant: {progress.objects:,} objects compiled in "
                    f"{time.monotonic() - progress.start:.0f} s\n")
        if not res.ok:
            errors = compiler_errors(Path(logfile).read_text(errors="replace"))
            first = next((line for line in errors.splitlines()
                          if re.search(r": (fatal )?error: |undefined reference", line)), "")
            first = first.replace(f"{src}/", "")
            raise StageError(
                (f"build failed: {first}" if first else "build failed") if not res.timed_out
                else f"build timed out after {timeout:.0f} s",
                detail=(errors + "\n\n--- last lines of make ---\n" if errors else "") + res.tail[-3000:],
                reproduce=res.cmdline,
            )
        if cold:
            record_full_build(outdir, progress.objects)
        release = kernel_release(outdir)
        export_kernel(src, outdir, kernel_dir, jobs, logfile, release)
    return BuildResult(kernel_dir, outdir, release, time.monotonic() - start, configured=configured)


def export_kernel(src: Path, outdir: Path, kernel_dir: Path, jobs: int, logfile: Path,
                  release: str) -> None:
    """bzImage, .config and an installed module tree, in the layout
    ``vng --run DIR/bzImage`` finds modules in (DIR/lib/modules/<release>),
    and vmlinux with the scripts that decode a report (decode.py)."""
    tmp = kernel_dir.with_name(kernel_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    proc.run(make_argv(src, outdir, jobs, "modules_install", f"INSTALL_MOD_PATH={tmp}",
                       "INSTALL_MOD_STRIP=1", "DEPMOD=/sbin/depmod"),
             cwd=src, timeout=600, log=logfile).check("make modules_install")
    for link in (tmp / "lib" / "modules").glob("*/build"):
        link.unlink()
    shutil.copy2(outdir / "arch" / "x86" / "boot" / "bzImage", tmp / "bzImage")
    shutil.copy2(outdir / ".config", tmp / "config")
    # what decodes a report to file:line (decode.py): the vmlinux, its line
    # tables compressed, and the tree's own scripts
    proc.run(["objcopy", "--compress-debug-sections=zlib", str(outdir / "vmlinux"), str(tmp / "vmlinux")],
             cwd=outdir, timeout=600, log=logfile).check("objcopy vmlinux")
    for script in decode.SCRIPTS:
        shutil.copy2(src / "scripts" / script, tmp / script)
    (tmp / "release").write_text(release + "\n")  # last: it marks the export complete
    shutil.rmtree(kernel_dir, ignore_errors=True)
    tmp.rename(kernel_dir)
