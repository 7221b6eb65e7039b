"""The xfstests workload's constants, and whether a directory is a built
xfstests tree.  The [xfstests] section itself (XfstestsConfig and its
reader) belongs to kvariant.config, like every section."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...config import XFSTESTS_FSTYPES

FSTYPES = XFSTESTS_FSTYPES  # what [xfstests] fstypes takes: the guest layouts of guest.py
HELPER_NAME = "kvariant"  # mount.fuse.kvariant, FUSE_SUBTYP=.kvariant
GUEST_ROOT = "/tmp/kvariant/xfstests"
DEVICES = ("nullb1", "nullb2")  # test, scratch; nullb0 belongs to the fio stage
DEFAULT_GROUPS = ("quick",)  # when neither tests nor groups are configured
CHECK_OVERHEAD = 180.0  # s: check's own mounts, scratch mkfs, fs checks (TCG)
KILL_GRACE = 30  # s between the guest's SIGTERM and SIGKILL of ./check
DIFF_LINES = 40
SPLAT_LINES = 30  # kernel log lines kept per splat in an excerpt
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
BUILT_FILES = ("ltp/fsstress", "ltp/fsx", "src/fill")  # made by `make`


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

