"""Where kvariant keeps what outlives a run (clones, build trees, kernels)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent  # the repository: pipeline.py, vmconfigs/, patches/

# What a run directory holds beside its variants' directories: a variant
# may not be named like one of these (its directory would take the file's
# place, or the file its directory's).
RUN_FILES = ("summary.json", "run.log", "report.md", "report.html", "report.json")
COMPARE_PREFIX = "compare-"  # compare's reports of several runs, in the last run's directory


def run_dir_clash(name: str) -> str | None:
    """Why *name* cannot name a variant's directory in a run directory, or None."""
    if name in RUN_FILES or name.startswith(COMPARE_PREFIX):
        return (f"a name the run directory does not use for its own files "
                f"({', '.join(RUN_FILES)}, {COMPARE_PREFIX}*)")
    return None


def cache_dir() -> Path:
    """$KVARIANT_CACHE, or ~/.cache/kvariant when it is unset or empty (an
    empty one is not the current directory)."""
    return Path(os.environ.get("KVARIANT_CACHE") or "~/.cache/kvariant").expanduser()


def default_tree() -> Path:
    return cache_dir() / "linux-7.2"


def short_hash(*parts: bytes | str, length: int = 12) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:length]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


@contextlib.contextmanager
def locked(name: str):
    """An exclusive lock under the cache shared by concurrent runs."""
    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
