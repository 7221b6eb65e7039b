"""Progress of a kernel build read from make's output: kbuild prints one
line per object it compiles (``  CC      fs/fuse/file.o``, ``  CC [M]
...``, ``  AS      ...``).  The count is set against the count of the
last full build of the tree, when one was recorded (a cold build has no
better estimate), and shown on the terminal as it goes and in the build
log every tenth of the way (or every minute without an estimate)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

OBJECT = re.compile(r"^\s+(CC|AS)(\s+\[M\])?\s+\S+\.o$")
RECORD = ".kvariant-objects"  # in a tree's build directories' parent: a full build's count
# a cold build of a tree never built here (a new machine): the objects of a
# cold build of Linux 7.2.13 with the default fragment (counted in its make
# output); another tree or config is near enough for a "~"
FIRST_BUILD_ESTIMATE = 1990


def _minutes(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


class BuildProgress:
    """Feed it make's lines (``line``, as proc.run's *on_line*); it calls
    *show* with a short text at most once a second, and returns a line for
    the build log at each tenth of the expected count (each minute without
    one)."""

    def __init__(self, expected: int | None, show: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.expected = expected if expected and expected > 0 else None
        self.show = show
        self.clock = clock
        self.start = clock()
        self.objects = 0
        self._shown = -1.0
        self._logged = 0  # tenths (with an estimate) or minutes (without) written

    def text(self) -> str:
        took = _minutes(self.clock() - self.start)
        if self.expected is None:
            return f"{self.objects:,} objects compiled, {took}"
        pct = min(99, self.objects * 100 // self.expected)
        return f"{self.objects:,} of ~{self.expected:,} objects ({pct}%), {took}"

    def line(self, text: str) -> str | None:
        if not OBJECT.match(text):
            return None
        self.objects += 1
        now = self.clock()
        if self.show is not None and now - self._shown >= 1.0:
            self._shown = now
            self.show(self.text())
        step = (self.objects * 10 // self.expected if self.expected
                else int((now - self.start) // 60))
        if step > self._logged:
            self._logged = step
            return f"kvariant: {self.text()}"
        return None


def expected_objects(build_dir: Path) -> int | None:
    """The object count of the tree's last full build, for a build
    directory that has not been built (a cold build), or
    FIRST_BUILD_ESTIMATE when none was recorded; None for an incremental
    build (it compiles what changed: no estimate)."""
    if (build_dir / "vmlinux").exists():
        return None
    try:
        return int((build_dir.parent / RECORD).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return FIRST_BUILD_ESTIMATE


def record_full_build(build_dir: Path, objects: int) -> None:
    """Keep a cold build's count for the next cold build of the tree."""
    if objects > 0:
        (build_dir.parent / RECORD).write_text(f"{objects}\n")
