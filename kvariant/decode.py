"""Kernel reports' stack traces decoded to file:line.

The kernel's own ``scripts/decode_stacktrace.sh`` reads a report and adds
``(fs/fuse/passthrough.c:74)`` to every frame it can resolve, from the
vmlinux the report came from, and has ``scripts/decodecode`` disassemble
each ``Code:`` line.  An exported kernel carries all three (build.py: the
vmlinux with its line tables, the scripts from its tree), so a report is
decoded wherever the kernel went, a CI runner with a kernel store included.
The build's debug info is reduced (``CONFIG_DEBUG_INFO_REDUCED``: no type
information), which keeps every line table.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from . import proc

log = logging.getLogger(__name__)

DECODE_TIMEOUT = 180.0  # addr2line once per frame: about 0.2 s each
SCRIPT = "decode_stacktrace.sh"
# what an exported kernel carries for it beside bzImage and modules (build.py);
# decodecode disassembles a report's Code: line
SCRIPTS = (SCRIPT, "decodecode")
FILES = ("vmlinux", *SCRIPTS)
# a frame the script resolved: "fuse_passthrough_write_iter (fs/fuse/passthrough.c:74)"
_DECODED = re.compile(r"\(\S+\.[chS]:\d+(?: \(discriminator \d+\))?\)")


def decodable(kernel_dir: Path) -> bool:
    return (kernel_dir / "vmlinux").is_file() and (kernel_dir / SCRIPT).is_file()


def resolved_frames(text: str) -> int:
    """How many lines of *text* carry a source file and line."""
    return sum(1 for line in text.splitlines() if _DECODED.search(line))


def decode(report: str, kernel_dir: Path, workdir: Path) -> str | None:
    """*report* with file:line added to its frames, or None when the kernel
    carries no vmlinux (exported before kernels kept one), the script
    failed, or it resolved nothing.  The script's output and errors are in
    workdir/decode.log."""
    if not report.strip() or not decodable(kernel_dir):
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    given = workdir / "splats.txt"
    given.write_text(report + "\n")
    logfile = workdir / "decode.log"
    logfile.unlink(missing_ok=True)
    res = proc.run(["bash", str(kernel_dir / SCRIPT), str(kernel_dir / "vmlinux"), "auto"],
                   cwd=workdir, timeout=DECODE_TIMEOUT, stdin=given, log=logfile)
    if not res.ok:
        log.warning("decode_stacktrace.sh %s: see %s",
                    "timed out" if res.timed_out else f"exited {res.returncode}", logfile)
        return None
    # the script's own warnings (a module without debug info) go to stderr,
    # merged here: keep the report's lines only
    # the whole output is in the log, after its first line (the command)
    output = logfile.read_text(errors="replace").splitlines()[1:]
    out = "\n".join(line for line in output if not line.startswith("WARNING! "))
    return out if resolved_frames(out) else None
