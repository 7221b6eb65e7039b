"""The command line.  The only place that prints errors and picks exit codes:
0 every variant passed, 1 bad input, 2 a variant failed, 3 the host cannot
do the work, 130 interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from . import config as config_mod
from .errors import ConfigError, KvariantError, RunInterrupted
from .model import Status

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT / "pipeline.toml"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pipeline.py",
        description="Build, boot and test kernel patch variants side by side: each variant's "
                    "patches applied in a worktree of our own, the kernel built incrementally, "
                    "booted with virtme-ng, fio run on XFS over null_blk; JUnit per variant.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser(
        "run", help="run the pipeline on a config",
        description="Run every variant of the config through apply, build, boot, storage and "
                    "fio.  Results go to RESULTS/RUN-ID/: junit.xml, logs and fio JSON per "
                    "variant, summary.json for the run.  Exit code 0 when every variant passed, "
                    "2 when any failed, 1 on a bad config.")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, metavar="FILE",
                     help=f"the pipeline TOML (default: {DEFAULT_CONFIG.name} beside pipeline.py)")
    run.add_argument("--results", type=Path, metavar="DIR",
                     help="where runs are written (default: results/ beside the config)")
    run.add_argument("--run-id", metavar="ID",
                     help="name of this run's directory (default: date and time, e.g. 20261121-210500)")
    run.add_argument("--variant", action="append", metavar="NAME",
                     help="run only this variant (repeatable; default: all)")
    return p


def _on_signal(signum, frame):
    """The first SIGINT/SIGTERM stops the run; later ones are ignored so that
    the teardown (bounded: VM.stop waits at most ~35 s) is never cut short
    and leaves no qemu behind.  Open guest connections are closed first: a
    command waiting on one (a long ./check) returns at once."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .guest import close_all
    close_all()
    raise RunInterrupted()


def cmd_run(args) -> int:
    from .report import UI, print_summary
    from .runner import STAGES, Run

    cfg = config_mod.select_variants(config_mod.load(args.config), args.variant)
    results_root = (args.results or cfg.root / "results").expanduser().resolve()
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S")
    if not config_mod.SLUG.match(run_id.lower()) or "/" in run_id:
        raise ConfigError("--run-id", "", f"expected a name usable as a directory, got {run_id!r}")
    run_dir = results_root / run_id
    if (run_dir / "summary.json").exists():
        raise ConfigError("--run-id", "", f"{run_dir} already holds a run; choose another id")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError("--results", "", f"{results_root} is not writable: {e.strerror}")
    _log_to(run_dir / "run.log")
    print(run_dir, flush=True)
    ui = UI()
    run = Run(cfg, run_dir, run_id, ui)
    ui.info(f"kernel {cfg.kernel.tree} at {cfg.kernel.base}; accelerator: {run.accel.reason}")
    results = run.execute()
    print_summary(ui, run, STAGES)
    print(run_dir, flush=True)
    if run.interrupted:
        return 130
    return 0 if all(r.status == Status.PASS for r in results) else 2


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    for noisy in ("paramiko", "invoke", "fabric", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # paramiko logs a traceback for every refused SSH banner while a guest
    # boots; Guest.connect retries and reports what matters.
    logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.verbose:
        h = logging.StreamHandler()
        h.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(h)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        if args.command == "run":
            return cmd_run(args)
    except KvariantError as e:
        print(f"kvariant: error: {e}", file=sys.stderr)
        return e.exit_code
    except (KeyboardInterrupt, RunInterrupted):
        print("kvariant: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
