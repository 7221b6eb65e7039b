"""Where kvariant keeps what outlives a run (clones, build trees, kernels)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("KVARIANT_CACHE", "~/.cache/kvariant")).expanduser()


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
