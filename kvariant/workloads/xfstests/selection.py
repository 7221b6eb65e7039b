"""The tests a selection names, read on the host from a built tree's
``tests/<dir>/group.list`` files, as ``./check -n`` would list them: the
groups' tests and the named ones (globs expanded, unknown names dropped),
less the exclusions.  A sharded run's plan is made of this list."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ...config import XfstestsConfig
from .config import DEFAULT_GROUPS, tree_problem

GLOB = set("*?[")


def parse_group_list(text: str, directory: str) -> dict[str, set[str]]:
    """``group.list`` ("001 rw auto quick" per line): test -> its groups."""
    out = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            out[f"{directory}/{words[0]}"] = set(words[1:])
    return out


def tree_groups(tree: Path, fstype: str) -> dict[str, set[str]]:
    """Every test ./check knows for *fstype* (generic, shared, and the
    fstype's own directory) and its groups."""
    out: dict[str, set[str]] = {}
    for directory in ("generic", "shared", fstype):
        path = Path(tree) / "tests" / directory / "group.list"
        if path.is_file():
            out.update(parse_group_list(path.read_text(errors="replace"), directory))
    return out


def excluded(cfg: XfstestsConfig) -> set[str]:
    names = set(cfg.exclude)
    if cfg.exclude_file is not None and Path(cfg.exclude_file).is_file():
        for line in Path(cfg.exclude_file).read_text(errors="replace").splitlines():
            name = line.split("#", 1)[0].strip()
            if name:
                names.add(name)
    return names


def select(known: dict[str, set[str]], cfg: XfstestsConfig) -> list[str]:
    """The selection of *cfg* among *known* (test -> groups), sorted."""
    groups = set(cfg.groups or (() if cfg.tests else DEFAULT_GROUPS))
    chosen = {t for t, g in known.items() if g & groups}
    for name in cfg.tests:
        if GLOB & set(name):
            chosen |= set(fnmatch.filter(known, name))
        elif name in known:
            chosen.add(name)
    return sorted(chosen - excluded(cfg))


def host_selection(cfg: XfstestsConfig | None) -> dict[str, list[str]] | None:
    """fstype -> the selected tests, or None when the host has no built
    tree to read them from."""
    if cfg is None or cfg.dir is None or tree_problem(cfg.dir):
        return None
    return {fstype: select(tree_groups(cfg.dir, fstype), cfg) for fstype in cfg.fstypes}
