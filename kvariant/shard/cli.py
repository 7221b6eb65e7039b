"""The command line of a run spread over CI runners: ``build`` (the kernel
store).  kvariant.cli adds it to its
parser and turns their errors into one line and an exit code; these
functions return 0 (all passed), 2 (a variant failed) or 130
(interrupted)."""

from __future__ import annotations

from pathlib import Path

from .. import config as config_mod
from ..cli import DEFAULT_CONFIG, _log_to
from ..errors import ConfigError, ResultsUnwritable


def add_build(sub) -> None:
    b = sub.add_parser(
        "build", help="apply and build every variant into a kernel store",
        description="Apply and build every variant of the config (the series checks too) and "
                    "copy each kernel into DIR/<variant>/ (bzImage, modules, config, "
                    "metadata.json): a store another host can boot from.  DIR/_build/ holds "
                    "the JUnit and logs of apply and build.  Exit code 0 when every variant "
                    "built, 2 when one failed (it is in the store as failed; the others go on).")
    b.add_argument("--config", type=Path, metavar="FILE",
                   help=f"the pipeline TOML (default: {DEFAULT_CONFIG.name} beside pipeline.py)")
    b.add_argument("--kernels", type=Path, metavar="DIR", required=True,
                   help="the kernel store to write (made if missing)")
    b.add_argument("--variant", action="append", metavar="NAME",
                   help="build only this variant (repeatable; default: all)")


def cmd_build(args) -> int:
    """``build --kernels DIR``: the kernel store (kvariant.shard.store)."""
    from ..ui import UI, print_summary
    from .store import build_store, fresh_run_dir

    cfg = config_mod.select_variants(config_mod.load(args.config or DEFAULT_CONFIG), args.variant)
    store = writable_dir("--kernels", args.kernels.expanduser().resolve())
    _log_to(fresh_run_dir(store) / "run.log")
    print(store, flush=True)
    ui = UI()
    done = build_store(cfg, store, ui)
    print_summary(ui, done.run.results, ("apply", "build"), None, interrupted=done.run.interrupted)
    for m in done.metadata:
        ui.info(f"{m['variant']:<16} {m['status']}: " + (
            f"{m['kernel_release']} ({m['cache_key']})" if m["status"] == "built" else m["message"]))
    print(store, flush=True)
    if done.run.interrupted:
        return 130
    return 0 if done.ok else 2


def writable_dir(option: str, path: Path) -> Path:
    """*path* made if missing and written to once: a file there is bad
    input (1); a directory that cannot be written, a host problem (3)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(option, "", f"expected a directory, got {path}, which is or lies "
                                      f"under a file") from None
    except OSError as e:
        raise ResultsUnwritable(f"{option}: {path} is not writable (cannot make that directory: "
                                f"{e.strerror})") from None
    try:
        probe = path / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ResultsUnwritable(f"{option}: {path} is not writable: {e.strerror}") from None
    return path


COMMANDS = {"build": cmd_build}
