"""xfstests configuration: [xfstests] in the pipeline TOML, and whether a
directory is a built xfstests tree."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from ...config import checks
from ...errors import ConfigError

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
    from ...config import parse_duration  # kvariant.config imports this module

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
        if not checks.in_range("xfstests.test_timeout", seconds):
            fail("test_timeout", checks.expected_number("xfstests.test_timeout"), raw)
        values["test_timeout"] = seconds
    if "loop_failures" in table:
        raw = table["loop_failures"]
        if not isinstance(raw, int) or not checks.in_range("xfstests.loop_failures", raw):
            fail("loop_failures", checks.expected_number("xfstests.loop_failures"), raw)
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


