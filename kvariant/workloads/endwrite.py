"""The end_write check: the guest side is endwrite_guest.py (concurrent
extending and appending O_DIRECT writers on one FUSE passthrough file,
truncates, buffered readers and stat, in rounds; after each round the FUSE
inode's cached size and the data against the backing file's).  Here: its
command line, and its JSON report read into a verdict and figures (pure).

The testcase is ``correctness/fuse-passthrough/endwrite``; its reason is
the review of the parallel passthrough DIO series, which doubted that the
end_write callback (fuse_write_update_attr) is right without the exclusive
inode lock."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import CorrectnessConfig

TARGET = "fuse-passthrough"
NAME = f"correctness/{TARGET}/endwrite"
SCRIPT = Path(__file__).with_name("endwrite_guest.py")
FILE = "endwrite.dat"
TAIL_SHARE = 1 / 3  # of a round: the quiet tail (writers and truncates alone)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the guest's report says: the problems found (none: pass), a
    one-line message, figures for the JUnit."""

    problems: tuple[str, ...]
    message: str
    figures: dict


def command(python: str, fuse_dir: str, backing_dir: str, cfg: CorrectnessConfig, seed: int = 1) -> str:
    busy = cfg.seconds * (1 - TAIL_SHARE)
    argv = [python, str(SCRIPT), f"{fuse_dir}/{FILE}", f"{backing_dir}/{FILE}",
            "--rounds", str(cfg.rounds), "--writers", str(cfg.writers),
            "--busy", f"{busy:.1f}", "--tail", f"{cfg.seconds - busy:.1f}", "--seed", str(seed)]
    return shlex.join(argv)


def timeout(cfg: CorrectnessConfig) -> float:
    """The guest command's deadline: the rounds, and a check of a few
    MiB per round under TCG, with room to spare."""
    return cfg.rounds * (cfg.seconds + 60) + 120


def verdict(stdout: str) -> Verdict:
    """The report's last JSON line read; ValueError when there is none."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError("the check printed no report")
    report = json.loads(lines[-1])
    rounds, problems = report["rounds"], tuple(report["problems"])
    ops: dict[str, int] = {}
    for r in rounds:
        for kind, n in r["ops"].items():
            ops[kind] = ops.get(kind, 0) + n
    figures = {"rounds": len(rounds), **{f"ops_{k}": n for k, n in sorted(ops.items())},
               "size_mismatches": sum(r["fuse_cached_size"] != r["backing_size"] for r in rounds),
               "bad_blocks": sum(r["bad_blocks"] for r in rounds),
               "final_size": rounds[-1]["backing_size"] if rounds else 0}
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = problems[0] + more
    else:
        writes = ops.get("appender", 0) + ops.get("extender", 0)
        message = (f"size and data match the backing file after {len(rounds)} rounds "
                   f"({writes} O_DIRECT writes, {ops.get('truncater', 0)} truncates)")
    return Verdict(problems, message, figures)
