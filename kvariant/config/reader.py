"""Reading one table of the TOML: typed keys, durations, numbers within
their documented ranges (checks.RANGES), paths relative to the config
file.  Every failure is a ConfigError naming the file, the key and what
was expected."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import checks
from .schema import VMCONFIGS

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


class Reader:
    """Takes keys out of a table, checking type and recording what was used."""

    def __init__(self, path: Path, table: dict, prefix: str):
        self.path, self.table, self.prefix = path, dict(table), prefix

    def fail(self, key: str, expected: str, got: Any = dataclasses.MISSING):
        shown = "" if got is dataclasses.MISSING else f", got {got!r}"
        raise ConfigError(self.path, f"{self.prefix}{key}", f"expected {expected}{shown}")

    def take(self, key: str, default: Any, kind: type | tuple, expected: str) -> Any:
        if key not in self.table:
            return default
        value = self.table.pop(key)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            self.fail(key, expected, value)
        return value

    def done(self) -> None:
        for key in self.table:
            raise ConfigError(self.path, f"{self.prefix}{key}", "unknown key")


def parse_duration(text: str | int | float) -> float | None:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) if text >= 0 else None
    m = DURATION.match(str(text))
    if not m:
        return None
    return float(m.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def path_from(root: Path, text: str) -> Path:
    """*text* as a path: relative ones start at *root*."""
    p = Path(text).expanduser()
    return p if p.is_absolute() else (root / p)


def take_positive(r: Reader, key: str, default: int) -> int:
    v = r.take(key, default, int, "a positive integer")
    if v < 1:
        r.fail(key, "a positive integer", v)
    return v


def take_whole(r: Reader, key: str, default: int) -> int:
    """A whole number within its documented range (checks.RANGES)."""
    expected = checks.expected_number(r.prefix + key)
    value = r.take(key, default, int, expected)
    if not checks.in_range(r.prefix + key, value):
        r.fail(key, expected, value)
    return value


def take_seconds(r: Reader, key: str, default: float, zero_ok: bool = False) -> float:
    """A duration (300, "90s", "15m", "3h") within its documented range."""
    expected = checks.expected_number(r.prefix + key, zero_ok)
    raw = r.take(key, default, (int, float, str), expected)
    value = parse_duration(raw)
    if value is None or not checks.in_range(r.prefix + key, value, zero_ok):
        r.fail(key, expected, raw)
    return value


def take_fragments(r: Reader, key: str, default: list[str]) -> tuple[Path, ...]:
    items = r.take(key, default, list, "a list of kconfig fragment files")
    out = []
    for i, text in enumerate(items):
        if not isinstance(text, str):
            r.fail(f"{key}[{i}]", "a file name", text)
        p = path_from(r.path.parent, text)
        if "/" not in text and not p.exists() and (VMCONFIGS / f"{text}.config").is_file():
            p = VMCONFIGS / f"{text}.config"  # a profile of the project's: "debug"
        if not p.is_file():
            known = ", ".join(sorted(f.stem for f in VMCONFIGS.glob("*.config")))
            r.fail(f"{key}[{i}]", f"an existing kconfig fragment file or one of {known}", text)
        out.append(p.resolve())
    return tuple(out)
