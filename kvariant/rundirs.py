"""Where runs live, for the commands that start, resume and merge them:
the default config, a new run's directory (claimed once, even by two runs
started in the same second), --against checked before a run starts and
'last' looked up after, and the run's log file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from . import config as config_mod
from .errors import ConfigError, ResultsUnwritable
from .paths import PROJECT

DEFAULT_CONFIG = PROJECT / "pipeline.toml"


def against(value: str | None, cfg, results_root: Path) -> tuple[Path | None, str | None]:
    """--against, checked before the run starts: (an earlier run's
    directory, or a variant of this run); "last" is looked up at the end."""
    if value is None or value == "last":
        return None, None
    if value in {v.name for v in cfg.variants}:
        return None, value
    from .compare import load_run, resolve_run_dir
    try:
        found = resolve_run_dir(value, results_root)
    except ConfigError:
        raise ConfigError("--against", "", f"expected a variant of the config, 'last', or an earlier "
                          f"run (an id under {results_root}, or a directory), got {value!r}") from None
    load_run(found)  # a readable summary, or one line saying why not
    return found, None


def last_run(results_root: Path, config: Path, exclude: Path) -> Path | None:
    """The newest finished run of *config* under *results_root*: the same
    file, or a file with the same content (a CI job's checkout may move).
    Runs whose summary does not load (malformed, corrupt) are passed over."""
    from .summary import RunSummary, config_digest
    digest = config_digest(config)
    best = None
    for d in results_root.iterdir():
        if d == exclude or not (d / "summary.json").is_file():
            continue
        try:
            s = RunSummary.load(d)
        except ConfigError as e:
            logging.getLogger(__name__).warning("--against last: passed over %s: %s", d, e)
            continue
        if not (s.finished and (s.config == str(config) or s.config_sha256 == digest)):
            continue
        key = (s.started, d.stat().st_mtime)
        if best is None or key > best[0]:
            best = (key, d)
    return best[1] if best else None


def new_run_dir(results_root: Path, run_id: str | None) -> Path:
    """Make this run's directory.  mkdir is the claim: two runs started in
    the same second get different directories (-2, -3...), never one."""
    if run_id is not None and (not config_mod.SLUG.match(run_id.lower()) or "/" in run_id):
        raise ConfigError("--run-id", "", f"expected a name usable as a directory, got {run_id!r}")
    try:
        results_root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a directory was meant: bad input
        raise ConfigError("--results", "", f"expected a directory, got {results_root}, "
                                           f"which is or lies under a file") from None
    except OSError as e:  # read-only, no permission, disk full: the host cannot do the work
        raise ResultsUnwritable(f"--results: {results_root} is not writable (cannot make that "
                                f"directory: {e.strerror})") from None
    base = run_id or time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 100):
        run_dir = results_root / (base if n == 1 else f"{base}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            if run_id is not None:
                raise ConfigError("--run-id", "", f"{run_dir} already holds a run; choose another id")
        except OSError as e:
            raise ResultsUnwritable(f"--results: {results_root} is not writable: {e.strerror}") from None
    raise ConfigError("--results", "", f"{results_root}: no free run directory for {base}")


def log_to(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    for noisy in ("paramiko", "invoke", "fabric", "git", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # paramiko logs a traceback for every refused SSH banner while a guest
    # boots; Guest.connect retries and reports what matters.
    logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)
