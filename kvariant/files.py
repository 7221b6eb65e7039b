"""Writing results: every file of a run directory and every report is
written atomically, and a write that fails stops the run as
ResultsUnwritable (exit 3) naming what could not be written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import ResultsUnwritable


def write_atomic(path: Path, text: str) -> None:
    """Write *text* to *path* through a temporary file and rename, so a
    reader or a crash never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextlib.contextmanager
def writing(what: str):
    """A failed write in the block is ResultsUnwritable: "WHAT: reason"."""
    try:
        yield
    except OSError as e:
        raise ResultsUnwritable(f"{what}: {e.strerror or e}") from None


def write_result(path: Path, text: str) -> None:
    """*path* written atomically, or ResultsUnwritable "cannot write PATH"."""
    with writing(f"cannot write {path}"):
        write_atomic(Path(path), text)
