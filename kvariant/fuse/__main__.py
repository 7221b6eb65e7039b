"""python3 -m kvariant.fuse SOURCE MOUNTPOINT [options]: the passthrough FUSE server."""

from __future__ import annotations

import argparse
import logging
import sys

from .server import FuseServerError, ServerOptions, serve

log = logging.getLogger("kvariant.fuse")

# -o options a mount helper may pass on; anything else is logged and ignored.
_FLAG_OPTIONS = {"passthrough": ("passthrough", True), "no_passthrough": ("passthrough", False),
                 "parallel_direct_writes": ("parallel_direct_writes", True),
                 "direct_io": ("direct_io", True), "ro": ("read_only", True),
                 "rw": ("read_only", False)}


def parse_mount_options(texts: list[str]) -> tuple[dict, list[str]]:
    """(ServerOptions overrides, ignored options) from mount(8)-style -o lists."""
    overrides, ignored = {}, []
    for text in texts:
        for opt in filter(None, text.split(",")):
            key, sep, value = opt.partition("=")
            if key == "fsname" and sep:
                overrides["fsname"] = value
            elif opt in _FLAG_OPTIONS:
                name, flag = _FLAG_OPTIONS[opt]
                overrides[name] = flag
            else:
                ignored.append(opt)
    return overrides, ignored


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python3 -m kvariant.fuse",
                                 description="Mirror SOURCE at MOUNTPOINT through FUSE, "
                                             "with passthrough I/O by default.")
    ap.add_argument("source")
    ap.add_argument("mountpoint")
    ap.add_argument("--fsname", help="mount source shown by findmnt -S/df (default: SOURCE)")
    ap.add_argument("--passthrough", action=argparse.BooleanOptionalAction, default=True,
                    help="reply FOPEN_PASSTHROUGH with a backing id on opens (default: on)")
    ap.add_argument("--parallel-direct-writes", action="store_true",
                    help="add FOPEN_PARALLEL_DIRECT_WRITES to opens")
    ap.add_argument("--direct-io", action="store_true", help="add FOPEN_DIRECT_IO to opens")
    ap.add_argument("--killpriv-v2", action=argparse.BooleanOptionalAction, default=True,
                    help="negotiate FUSE_HANDLE_KILLPRIV_V2: the server drops setuid bits on "
                         "writes; without it each write first asks the server for "
                         "security.capability (default: on)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--foreground", dest="daemon", action="store_false", default=False,
                      help="stay in the foreground (default)")
    mode.add_argument("--daemon", dest="daemon", action="store_true",
                      help="return once mounted and serve in the background")
    ap.add_argument("--stats", metavar="FILE", help="counters as JSON (SIGUSR1, ~1 s, exit)")
    ap.add_argument("--log", metavar="FILE", help="log file (default: stderr)")
    ap.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    ap.add_argument("--timeout", type=float, default=1.0,
                    help="entry/attribute cache timeout in seconds (default 1)")
    ap.add_argument("--max-write", type=int, default=1 << 20, help="bytes (default 1 MiB)")
    ap.add_argument("--debug", action="store_true", help="log every failed request")
    ap.add_argument("-o", dest="options", action="append", default=[], metavar="OPTS",
                    help="mount-style options: fsname=X, ro, rw, passthrough, "
                         "no_passthrough, parallel_direct_writes, direct_io")
    return ap


def setup_logging(path: str | None, debug: bool, daemon: bool) -> None:
    """To the log file, else stderr (only warnings when daemonizing: a mount
    helper's caller expects silence on success)."""
    handler = logging.FileHandler(path) if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    if daemon and not path and not debug:
        handler.setLevel(logging.WARNING)
    root = logging.getLogger("kvariant.fuse")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides, ignored = parse_mount_options(args.options)
    try:
        setup_logging(args.log, args.debug, args.daemon)
        if ignored:
            log.info("ignoring mount options: %s", ",".join(ignored))
        options = ServerOptions(
            source=args.source, mountpoint=args.mountpoint,
            fsname=overrides.get("fsname", args.fsname),
            passthrough=overrides.get("passthrough", args.passthrough),
            parallel_direct_writes=overrides.get("parallel_direct_writes",
                                                 args.parallel_direct_writes),
            direct_io=overrides.get("direct_io", args.direct_io),
            read_only=overrides.get("read_only", False), daemon=args.daemon,
            stats=args.stats, log=args.log, threads=args.threads, timeout=args.timeout,
            max_write=args.max_write, killpriv_v2=args.killpriv_v2)
        return serve(options)
    except (FuseServerError, OSError) as e:
        print(f"kvariant.fuse: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
