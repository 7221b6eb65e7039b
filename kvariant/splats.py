"""Kernel splats in console and dmesg text: warnings, oopses, BUG, lockdep,
KASAN, UBSAN, hung tasks, RCU stalls.  Pure functions over text, in the
kernel's own formats."""

from __future__ import annotations

import dataclasses
import re

SPLAT_LINES = 60  # kernel log lines kept per splat in an excerpt (a hung-task report is ~55)


# Kernel log


_PREFIX = re.compile(r"^\s*(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[CT]\d+\]\s*)?")
_SPLATS = [  # (kind, pattern); matched against a line without its timestamp
    ("lockdep", re.compile(r"^WARNING: (possible (circular|recursive) locking|inconsistent lock state"
                           r"|suspicious RCU usage|bad unlock balance|lock held when returning"
                           r"|held lock freed|possible irq lock inversion)")),
    # "WARNING: CPU: 1 PID: 411 at fs/x.c:74 f+0x1/0x2" (older kernels) or
    # "WARNING: fs/x.c:74 at f+0x1/0x2, CPU#1: fio/411" (Linux 7.2)
    ("warning", re.compile(r"^WARNING: (CPU: |at |\S+:\d+ at )")),
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
# Reports after which the running workload cannot finish or the guest cannot
# be trusted: the writer oopsed (its locks and iocbs are never released), a
# task is blocked or a CPU spins, memory was corrupted, a deadlock is
# predicted, or the kernel panicked.  A WARNING, a UBSAN report or an RCU
# stall (TCG's slow vCPUs print those now and then) lets the workload go on.
FATAL_KINDS = ("oops", "bug", "kasan", "lockdep", "lockup", "hung")
# "BUG:" lines that are warnings in all but name: the kernel goes on
_NOT_FATAL = re.compile(r"BUG: (sleeping function called from invalid context"
                        r"|using (smp_processor_id|__this_cpu_\w+)\(\) in preemptible)")
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


def fatal(splat: Splat) -> bool:
    """Whether *splat* leaves the workload unable to finish or the guest
    unusable: the stage that sees it ends at once."""
    return splat.kind in FATAL_KINDS and not _NOT_FATAL.search(splat.first_line)


def first_fatal(text: str) -> Splat | None:
    """The first report in *text* that ends a stage (see fatal()), or None."""
    return next((s for s in find_splats(text) if fatal(s)), None)


def scan_splats(text: str) -> list[str]:
    """The first line of each kernel splat in a kernel log (timestamps
    removed): warnings, BUG/Oops, lockdep reports, KASAN/UBSAN reports, hung
    tasks, soft lockups and RCU stalls."""
    return [s.first_line for s in find_splats(text)]


def splat_excerpt(text: str, max_lines: int = 80) -> str:
    lines = text.splitlines()
    out: list[str] = []
    done = 0  # reports printed by two CPUs at once overlap: each line once
    for s in find_splats(text):
        out += lines[max(s.start, done):s.end]
        done = max(done, s.end)
        if len(out) >= max_lines:
            break
    return "\n".join(out[:max_lines])


