"""Loading pipeline.toml: the file read as TOML, its sections checked and
read, a profile or a fragment laid over it, the variants the command line
keeps."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError
from .schema import Config, KernelSource
from .sections import (read_correctness, read_fio, read_fuse, read_kernel, read_null_blk, read_timeouts,
                       read_variants, read_vm, xfstests_config_from_table)

SECTIONS = ("kernel", "vm", "null_blk", "fio", "fuse", "timeouts", "xfstests", "correctness", "variant")


def read_toml(path: Path | str) -> dict:
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file")
    except OSError as e:
        raise ConfigError(path, "", f"cannot be read: {e.strerror}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:  # TOML is UTF-8: a latin-1 "é" is one byte 0xe9
        line = raw[:e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(path, "", f"not valid TOML: expected UTF-8 text, got byte "
                                    f"0x{raw[e.start]:02x} at line {line}, column {column}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}")


def load(path: Path | str, source: KernelSource = KernelSource()) -> Config:
    return load_data(Path(path).expanduser(), read_toml(path), source)


def tree_source(tree: Path | None, environ: Mapping[str, str]) -> KernelSource:
    """The kernel tree given outside the config: ``--tree``, else the
    environment's ``KVARIANT_TREE`` (when not empty), else none (the
    config's ``[kernel] tree``)."""
    if tree is not None:
        return KernelSource(tree=Path(tree), origin="--tree")
    if environ.get("KVARIANT_TREE"):
        return KernelSource(tree=Path(environ["KVARIANT_TREE"]), origin="KVARIANT_TREE")
    return KernelSource()


def with_profile(data: dict, profile: Path, where: Path) -> dict:
    """*data* (the tables of the config *where*) with the tables of a
    profile laid over it, key by key ([xfstests] only where the config has
    that section)."""
    check_sections(where, data)
    over = read_toml(profile)
    out = dict(data)
    for section, table in over.items():
        if section == "xfstests" and section not in data:
            continue
        if section not in SECTIONS[:-1] or not isinstance(table, dict):
            raise ConfigError(profile, section, f"expected one of the sections {', '.join(SECTIONS[:-1])}")
        out[section] = {**data.get(section, {}), **table}
    return out


def check_sections(path: Path, data: dict) -> None:
    """Only known sections, each a table (``fio = 5`` is not one)."""
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(path, key, f"unknown section (expected {', '.join(SECTIONS)})")
    for key in SECTIONS[:-1]:
        if not isinstance(data.get(key, {}), dict):
            raise ConfigError(path, key, f"expected a table [{key}], got {data[key]!r}")


def load_data(path: Path, data: dict, source: KernelSource = KernelSource()) -> Config:
    """A Config from the tables of a TOML document; *path* is where relative
    paths start and what errors name; *source*: a tree or a base commit
    from elsewhere (KernelSource)."""
    path = path.resolve()
    check_sections(path, data)
    kernel = read_kernel(path, data.get("kernel", {}), source)
    null_blk = read_null_blk(path, data.get("null_blk", {}))
    fuse = read_fuse(path, data.get("fuse", {}))
    return Config(
        path=path,
        kernel=kernel,
        vm=read_vm(path, data.get("vm", {})),
        null_blk=null_blk,
        fio=read_fio(path, data.get("fio", {}), null_blk),
        fuse=fuse,
        timeouts=read_timeouts(path, data.get("timeouts", {})),
        xfstests=(xfstests_config_from_table(data["xfstests"], path, path.parent)
                  if "xfstests" in data else None),
        variants=read_variants(path, data.get("variant"), kernel, fuse,
                               resolve=source.base_commit is None),
        correctness=read_correctness(path, data.get("correctness", {})),
    )


def with_fragment(config: Config, fragment: Path) -> Config:
    """Every variant built with *fragment* too (``--debug``)."""
    if fragment in config.kernel.fragments:
        return config
    kernel = dataclasses.replace(config.kernel, fragments=config.kernel.fragments + (fragment,))
    return dataclasses.replace(config, kernel=kernel)


def select_variants(config: Config, names: list[str] | None) -> Config:
    """Keep the variants named on the command line (--variant), in config order."""
    if not names:
        return config
    known = {v.name for v in config.variants}
    for n in names:
        if n not in known:
            raise ConfigError(config.path, "--variant", f"expected one of {', '.join(sorted(known))}, got {n!r}")
    return dataclasses.replace(config, variants=tuple(v for v in config.variants if v.name in names))
