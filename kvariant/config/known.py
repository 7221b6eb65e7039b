"""Lists of xfstests tests known to fail on the base kernel, each with its
reason, as kdevops keeps expunge lists: one file per FUSE server and file
system type in a directory (the project's ``vmconfigs/xfstests/``):

    # comments and blank lines are ignored
    generic/003   # atime follows the backing XFS under passthrough

``<server>-fuse.txt`` for the ``fuse`` fstype served by ``<server>``
(``kvariant-fuse.txt``, ``passthrough_hp-fuse.txt``) and ``xfs.txt`` for
``xfs``, where no FUSE server takes part.  A missing file lists nothing.
Unlike an expunge list, the tests still run: the workload reports a known
failure as such and flags one that passes."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError
from ..fuse.servers import SERVERS

_LINE = re.compile(r"^(?P<test>[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+)\s+#\s*(?P<reason>\S.*?)\s*$")
EXPECTED = "a test like generic/003, then '#' and why it fails on the base kernel"
REVIEW = "REVIEW:"  # the reason of a proposed line (known-failures RUN) no person has written yet


def list_name(server: str, fstype: str) -> str:
    """The file that lists the known failures of *fstype* served by *server*."""
    return "xfs.txt" if fstype == "xfs" else f"{server}-{fstype}.txt"


def list_names() -> tuple[str, ...]:
    return ("xfs.txt", *(list_name(s, "fuse") for s in SERVERS))


def read_known_failures(path: Path) -> dict[str, str]:
    """test -> reason from one list; {} when *path* does not exist.  A bad
    line is a ConfigError naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, "", f"cannot read a known failure list: {getattr(e, 'strerror', None) or e}")
    known: dict[str, str] = {}
    where: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line.strip())
        if m is None:
            raise ConfigError(path, f"line {n}", f"expected {EXPECTED}, got {line.strip()!r}")
        test = m.group("test")
        if m.group("reason").startswith(REVIEW):
            raise ConfigError(path, f"line {n}", f"expected why {test} fails on the base kernel, got the "
                                                 f"proposal's {m.group('reason')[:60]!r} (write the reason "
                                                 f"in place of {REVIEW})")
        if test in known:
            raise ConfigError(path, f"line {n}", f"{test} is listed twice (first on line {where[test]})")
        known[test], where[test] = m.group("reason"), n
    return known


def check_known_failures(directory: Path) -> None:
    """Every list in *directory* reads; a ``.txt`` file of another name is
    a typo (it would list nothing for any run)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.txt")):
        if path.name not in list_names():
            raise ConfigError(path, "", f"not a known failure list: expected one of "
                                        f"{', '.join(list_names())}")
        read_known_failures(path)
