"""The command line.  The only place that prints errors and picks exit codes:
0 every variant passed, 1 bad input, 2 a variant failed, 3 the host cannot
do the work, 130 interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import config as config_mod
from . import rundirs
from .errors import ConfigError, KvariantError, ResultsUnwritable, RunInterrupted, request_interrupt
from .model import Status
from .paths import PROJECT, run_dir_clash
from .rundirs import DEFAULT_CONFIG

if TYPE_CHECKING:
    from .summary import RunSummary


class _Parser(argparse.ArgumentParser):
    """Bad arguments are bad input: exit code 1, as every other one (2
    means that a variant failed)."""

    def error(self, message):
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pipeline.py",
        description="Build, boot and test kernel patch variants side by side: each variant's "
                    "patches applied in a worktree of our own, the kernel built incrementally, "
                    "booted with virtme-ng, fio run on XFS over null_blk; JUnit per variant.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    _add_run(sub)
    _add_try(sub)
    _add_compare(sub)
    _add_calibrate(sub)
    from .shard import cli as shard_cli
    shard_cli.add_build(sub)
    shard_cli.add_merge(sub, _fraction)
    shard_cli.add_plan(sub)
    from . import knownfailures
    knownfailures.add_parser(sub)
    return p


def _add_run(sub) -> None:
    run = sub.add_parser(
        "run", help="run the pipeline on a config",
        description="Run every variant of the config through apply, build, boot, storage and "
                    "fio.  Results go to RESULTS/RUN-ID/: junit.xml, logs and fio JSON per "
                    "variant, summary.json for the run.  Exit code 0 when every variant passed, "
                    "2 when any failed, 1 on a bad config.")
    run.add_argument("--config", type=Path, metavar="FILE",
                     help=f"the pipeline TOML (default: {DEFAULT_CONFIG.name} beside pipeline.py; "
                          "with --resume: the interrupted run's)")
    run.add_argument("--results", type=Path, metavar="DIR",
                     help="where runs are written (default: results/ beside the config)")
    run.add_argument("--run-id", metavar="ID",
                     help="name of this run's directory (default: date and time, e.g. 20261121-210500)")
    run.add_argument("--variant", action="append", metavar="NAME",
                     help="run only this variant (repeatable; default: all)")
    run.add_argument("--resume", metavar="RUN-ID",
                     help="finish an interrupted run (a run id under RESULTS, or its directory): "
                          "variants that ended are kept, and of the others only the fio points "
                          "and xfstests tests that did not end are run")
    run.add_argument("--against", metavar="RUN|VARIANT|last",
                     help="regression verdict: fail the testcases that got worse (a significant "
                          "IOPS drop beyond the threshold, a new xfstests failure) against an "
                          "earlier run (its id or directory; 'last': the newest finished run of "
                          "this config in RESULTS), or against a variant of this run")
    run.add_argument("--threshold", type=_fraction, default=0.05, metavar="FRACTION",
                     help="smallest IOPS change called better or worse (default 0.05 = 5%%)")
    run.add_argument("--force", action="store_true",
                     help="with --against RUN: judge IOPS changes even when that run's setup differs "
                          "(fio job, guest, accelerator, FUSE policy, kconfig fragments)")
    run.add_argument("--debug", action="store_true",
                     help="build every variant with vmconfigs/debug.config too (lockdep, KASAN, "
                          "UBSAN, hung-task detection): slower, for correctness runs")
    add_tree(run)
    run.add_argument("--kernels", type=Path, metavar="DIR",
                     help="boot the kernels of this store (made by build --kernels DIR) instead of "
                          "applying and building: no kernel tree needed; runs one shard of the "
                          "plan (--shard; default 1/1, the whole run)")
    run.add_argument("--shard", metavar="K/N",
                     help="with --kernels: run shard K of N (1-based).  Default: GitLab's "
                          "CI_NODE_INDEX/CI_NODE_TOTAL, else a Kubernetes JOB_COMPLETION_INDEX "
                          "(0-based) with --shard-total, else 1/1")
    run.add_argument("--shard-total", metavar="N",
                     help="with --kernels and JOB_COMPLETION_INDEX: the number of shards")


def add_tree(cmd) -> None:
    cmd.add_argument("--tree", type=Path, metavar="DIR",
                     help="the kernel git tree, instead of the config's [kernel] tree "
                          "(default: $KVARIANT_TREE when set)")


def _add_try(sub) -> None:
    tr = sub.add_parser(
        "try", help="one patch or series against the configured base, quickly",
        description="Does my patch hold up?  Runs the config's base (variant baseline) against "
                    "the base plus PATCH... (variant NAME) with the quick profile "
                    "(vmconfigs/quick.toml: fio numjobs 1 and 2, 3 short repeats, 2 xfstests) "
                    "unless --full.  A series is also checked patch by patch: each must apply "
                    "and build (one testcase per patch; a patch that breaks the build is named).  "
                    "Prints a verdict per stage and the table; exit code 0 when everything "
                    "passed, 2 when anything failed.")
    tr.add_argument("patches", nargs="+", metavar="PATCH",
                    help="a patch file, a directory of them, an mbox (git format-patch, b4 am), "
                         "or git:REF (the commits base..REF of the config's tree)")
    tr.add_argument("--config", type=Path, metavar="FILE",
                    help=f"where the tree, base, VM and workloads come from (default: {DEFAULT_CONFIG.name})")
    tr.add_argument("--name", default="patched", type=_slug, metavar="NAME",
                    help="the patched variant's name (default: patched)")
    tr.add_argument("--full", action="store_true", help="the config's own fio and xfstests, not the quick profile")
    tr.add_argument("--results", type=Path, metavar="DIR", help="where runs are written (default: results/)")
    tr.add_argument("--run-id", metavar="ID", help="name of this run's directory")
    tr.add_argument("--against", metavar="RUN|VARIANT|last",
                    help="also fail what regressed against an earlier run or a variant (see run --against)")
    tr.add_argument("--threshold", type=_fraction, default=0.05, metavar="FRACTION",
                    help="smallest IOPS change called better or worse (default 0.05 = 5%%)")
    tr.add_argument("--force", action="store_true",
                    help="with --against RUN: judge IOPS changes even when that run's setup differs")
    tr.add_argument("--debug", action="store_true", help="build with vmconfigs/debug.config too")
    add_tree(tr)


def _add_compare(sub) -> None:
    cmp = _runs_on_disk(
        sub, "compare", "compare variants of runs already on disk",
        "Compare the variants of one run, or the same variants across runs "
        "(yesterday's v1 against today's v2), from their summary.json: nothing is "
        "run again.  Writes report.md (the cover-letter table), report.html (with "
        "plots) and report.json.  Each fio point's repeats give a mean with a 95%% "
        "confidence interval; a change is significant only when Welch's interval "
        "excludes 0 and it exceeds the threshold.",
        force="give better/worse verdicts across runs whose setups differ (fio job, "
              "guest, accelerator, FUSE policy, kconfig fragments); without it the "
              "report's first lines say what differs and those changes are 'not compared'",
        out="where the reports go (default: the run's directory; for several runs, "
            "compare-<ids>/ in the last one)")
    cmp.add_argument("--reference", metavar="VARIANT",
                     help="what the others are compared against: VARIANT or RUN-ID:VARIANT "
                          "(default: the first variant of the first run)")
    cmp.add_argument("--normalise", action="store_true",
                     help="judge FUSE points on their runs each divided by the xfs run beside it "
                          "(runs measured in rounds), as [fio] normalise = true does")
    cmp.add_argument("--paired", action="store_true",
                     help="judge points whose variants' guests were up together pair by pair "
                          "(run i of one beside run i of the other: t on the log ratios)")


def _add_calibrate(sub) -> None:
    _runs_on_disk(
        sub, "calibrate", "noise and false calls of runs already on disk (A/A), or power",
        "From runs on disk, each variant's guest a boot and its repeats the runs: per "
        "fio point the run and boot CVs, Kalibera-Jones' optimal runs per boot, the "
        "boots a ±15%% interval would take, and the verdicts over every pair of boots "
        "(today's Welch on runs, and the two-level ratio of means).  One kernel (one "
        "commit as several variants): the A/A false-call rate.  Two kernels: power, "
        "the rate of 'better' (B against the first run's first kernel).  Writes "
        "calibrate.md and calibrate.json.",
        force="calibrate across runs whose setups differ",
        out="where calibrate.md and calibrate.json go (default: the run's directory; "
            "for several runs, calibrate-<ids>/ in the last one)"
    ).add_argument("--variants", metavar="NAME,...", type=lambda t: [x for x in t.split(",") if x],
                   help="only these variants of each run (e.g. the A/A pair of a run that "
                        "also measured a series)")


def _runs_on_disk(sub, name: str, summary: str, description: str, force: str, out: str):
    """A command that reads runs already on disk, with the arguments they share."""
    cmd = sub.add_parser(name, help=summary, description=description)
    cmd.add_argument("runs", nargs="+", metavar="RUN", help="a run directory, or a run id under RESULTS")
    cmd.add_argument("--results", type=Path, metavar="DIR",
                     help="where run ids are looked up (default: results/ beside pipeline.py)")
    cmd.add_argument("--threshold", type=_fraction, default=0.05, metavar="FRACTION",
                     help="smallest change called better or worse (default 0.05 = 5%%)")
    cmd.add_argument("--force", action="store_true", help=force)
    cmd.add_argument("--out", type=Path, metavar="DIR", help=out)
    return cmd


def _slug(text: str) -> str:
    """try --name: a variant name, like the config's (see config._variants)."""
    if not config_mod.SLUG.match(text) or text == "baseline":
        raise argparse.ArgumentTypeError(f"expected a slug other than baseline (lower-case letters, "
                                         f"digits, '.', '_', '-'), got {text!r}")
    clash = run_dir_clash(text)
    if clash:
        raise argparse.ArgumentTypeError(f"expected {clash}, got {text!r}")
    return text


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05 or 5%, got {text!r}")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def _on_signal(signum, frame):
    """The first SIGINT/SIGTERM stops the run; later ones are ignored so that
    the teardown (bounded: VM.stop waits at most ~35 s) is never cut short
    and leaves no qemu behind.  Open guest connections are closed first: a
    command waiting on one (a long ./check) returns at once."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    request_interrupt()
    from .guest import close_all
    close_all()
    raise RunInterrupted()


def tree_source(args) -> "config_mod.KernelSource":
    return config_mod.tree_source(args.tree, os.environ)


def cmd_run(args) -> int:
    previous = None
    if args.kernels is not None:
        return _shard_run(args)
    for option in ("shard", "shard_total"):
        if getattr(args, option) is not None:
            raise ConfigError(f"--{option.replace('_', '-')}", "", "expected --kernels DIR too: a shard "
                              "boots the kernels of a store (pipeline.py build --kernels DIR)")
    if args.resume:
        run_dir, previous, cfg = _resumable(args)
        against = rundirs.against(args.against, cfg, run_dir.parent)
    else:
        cfg = config_mod.select_variants(config_mod.load(args.config or DEFAULT_CONFIG, tree_source(args)),
                                         args.variant)
        cfg, run_dir, against = _start(args, cfg)
    return _execute(args, cfg, run_dir, against, previous)


NOT_WITH_KERNELS = {  # run's options a shard refuses, and what to do instead
    "--resume": "run the shard again",
    "--debug": "build the store with the debug fragment",
    "--tree": "the store's kernels are built: no tree is read",
    "--against": "give it to merge",
}


def _shard_run(args) -> int:
    """``run --kernels DIR [--shard K/N]`` (kvariant.shard.runner)."""
    from .shard.runner import ShardRun, open_store, shard_plan
    from .shard.spec import shard_spec

    for option, instead in NOT_WITH_KERNELS.items():
        if getattr(args, option.lstrip("-")):
            raise ConfigError(option, "", f"expected no {option} with --kernels ({instead})")
    spec = shard_spec(args.shard, args.shard_total, os.environ)
    store_dir = args.kernels.expanduser().resolve()
    store, cfg = open_store(store_dir, args.config or DEFAULT_CONFIG, args.variant)
    plan = shard_plan(cfg, spec, store)
    results_root = (args.results or cfg.root / "results").expanduser().resolve()
    run_dir = rundirs.new_run_dir(results_root, args.run_id)

    def make(cfg, run_dir, run_id, ui):
        ui.info(f"shard {spec} ({spec.origin}) of plan {plan.digest[:12]}: "
                f"{', '.join(u.name for u in plan.units_of(spec.k)) or 'no unit: nothing to boot'}; "
                f"kernels from {store_dir}; " + (
                    f"balanced by the times of {', '.join(store.plan_runs)}" if store.plan_times
                    else "tests spread by count (no --plan-times in the store's build)"))
        return ShardRun(cfg, run_dir, run_id, ui, store, spec, plan)
    return _execute(args, cfg, run_dir, (None, None), None, make)


def _start(args, cfg):
    """A new run of *cfg*: --debug applied, --against checked, its
    directory claimed."""
    if args.debug:
        cfg = config_mod.with_fragment(cfg, config_mod.DEBUG_FRAGMENT)
    results_root = (args.results or cfg.root / "results").expanduser().resolve()
    against = rundirs.against(args.against, cfg, results_root)
    return cfg, rundirs.new_run_dir(results_root, args.run_id), against


def cmd_try(args) -> int:
    """``try PATCH...``: the configured base against it, quick profile."""
    config_path = (args.config or DEFAULT_CONFIG).expanduser()
    data = config_mod.read_toml(config_path)
    specs = [p if p.startswith("git:") else str(Path(p).expanduser().resolve()) for p in args.patches]
    data["variant"] = [{"name": "baseline"}, {"name": args.name, "patches": specs, "bisect": True}]
    if not args.full:
        data = config_mod.with_profile(data, config_mod.VMCONFIGS / "quick.toml", config_path)
    try:
        cfg = config_mod.load_data(config_path, data, tree_source(args))
    except ConfigError as e:  # name the command-line argument, not the generated table
        if e.key.startswith("variant[1]"):
            raise ConfigError("try", "PATCH", e.expected) from None
        raise
    cfg, run_dir, against = _start(args, cfg)
    return _execute(args, cfg, run_dir, against, None)


def _execute(args, cfg, run_dir: Path, against: tuple, previous: "RunSummary | None",
             make=None) -> int:
    from .report import apply_regressions, write_run_reports
    from .pipeline.run import Run
    from .testcase import STAGES
    from .ui import UI, print_summary

    run_id = run_dir.name
    against_dir, against_variant = against
    try:
        probe = run_dir / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ResultsUnwritable(f"--results: {run_dir} is not writable: {e.strerror}") from None
    rundirs.log_to(run_dir / "run.log")
    print(run_dir, flush=True)
    ui = UI()
    if make is None:
        run = Run(cfg, run_dir, run_id, ui, previous=previous.to_dict() if previous else None)
        ui.info(f"kernel {cfg.kernel.tree} at {cfg.kernel.base}; accelerator: {run.accel.reason}")
    else:
        run = make(cfg, run_dir, run_id, ui)
        ui.info(f"accelerator: {run.accel.reason}")
    run.threshold = args.threshold
    run.force = args.force
    results = run.execute()
    if args.against == "last":  # the newest finished run before this one
        against_dir = rundirs.last_run(run_dir.parent, cfg.path, exclude=run_dir)
        if against_dir is None:
            ui.info(f"--against last: no earlier finished run of {cfg.path.name} in {run_dir.parent}; "
                    "no regression verdict this time")
    comparison, regs = None, []
    try:
        if not run.interrupted and (against_dir is not None or against_variant is not None):
            regs = apply_regressions(run, against_dir, against_variant)
        comparison = write_run_reports(run, against_dir, against_variant)
    except KvariantError:
        raise
    except Exception:  # a bug in the reports must not hide the run's results
        logging.getLogger(__name__).exception("writing the reports")
        ui.info("kvariant: could not write the reports (see run.log); the JUnit files and summary.json are complete")
    print_summary(ui, run.results, STAGES, comparison, interrupted=run.interrupted)
    for r in regs:
        ui.info(f"REGRESSION {r.variant} {r.testcase}: {r.message}")
    print(run_dir, flush=True)
    if run.interrupted:
        return 130
    return 0 if all(r.status == Status.PASS for r in results) else 2


def cmd_compare(args) -> int:
    """``compare RUN [RUN...]``: RUN is a run directory or a run id under
    --results.  Writes the three reports, prints where they went and the
    table.  Bad input raises KvariantError (one line, exit code 1)."""
    from .compare import compare_runs, load_run, resolve_run_dir
    from .files import writing
    from .render import write_reports
    from .render.text import setup_lines
    from .ui import comparison_lines

    root = (args.results or PROJECT / "results").expanduser()
    dirs = [resolve_run_dir(d, root) for d in args.runs]
    runs = [load_run(d) for d in dirs]
    c = compare_runs(runs, threshold=args.threshold, reference=args.reference, force=args.force,
                     normalise=args.normalise, paired=args.paired)
    # one run: its own directory; several: compare-<the others' ids> in the last one
    out = args.out or (dirs[0] if len(dirs) == 1 else
                       dirs[-1] / ("compare-" + "+".join(r.run_id for r in runs[:-1])))
    with writing(f"{out}: cannot write the reports"):  # read-only, full: exit 3
        paths = write_reports(c, out)
    for line in [*setup_lines(c), *map(str, paths), *comparison_lines(c)]:
        print(line)
    return 0


def cmd_calibrate(args) -> int:
    """``calibrate RUN...``: writes calibrate.md and calibrate.json, prints
    where they went and the short table."""
    import json

    from .calibrate import calibrate, only_variants
    from .render.calibration import markdown, summary_lines
    from .compare import load_run, resolve_run_dir
    from .files import write_atomic, writing

    root = (args.results or PROJECT / "results").expanduser()
    dirs = [resolve_run_dir(d, root) for d in args.runs]
    runs = only_variants([load_run(d) for d in dirs], args.variants)
    c = calibrate(runs, threshold=args.threshold, force=args.force)
    out = args.out or (dirs[0] if len(dirs) == 1 else
                       dirs[-1] / ("calibrate-" + "+".join(r.run_id for r in runs[:-1])))
    files = [(out / "calibrate.md", markdown(c)),
             (out / "calibrate.json", json.dumps(c.to_dict(), indent=2) + "\n")]
    with writing(f"{out}: cannot write the calibration"):
        for path, text in files:
            write_atomic(path, text)
    for line in [*(str(p) for p, _ in files), *summary_lines(c)]:
        print(line)
    return 0


def _resumable(args) -> tuple[Path, "RunSummary", "config_mod.Config"]:
    """The interrupted run's directory, its summary and its config, checked."""
    from .summary import RunSummary, config_digest

    given = Path(args.resume).expanduser()
    if given.is_dir():
        run_dir = given.resolve()
    else:
        root = args.results or (args.config or DEFAULT_CONFIG).parent / "results"
        run_dir = (root.expanduser() / args.resume).resolve()
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        raise ConfigError("--resume", "", f"{summary_file} does not exist: expected the id or "
                                          f"directory of an earlier run")
    summary = RunSummary.load(run_dir)
    if summary.finished:
        raise ConfigError("--resume", "", f"run {run_dir.name} finished; there is nothing to resume")
    cfg_path = Path(args.config or summary.config)
    cfg = config_mod.load(cfg_path, tree_source(args))
    if summary.config_sha256 and config_digest(cfg.path) != summary.config_sha256:
        raise ConfigError(cfg.path, "", f"changed since run {run_dir.name} began; "
                                        f"--resume needs the config it ran with")
    planned = summary.planned_variants or [v.name for v in summary.variants]
    if args.variant:
        raise ConfigError("--variant", "", "not with --resume: the run's own variants are resumed")
    cfg = config_mod.select_variants(cfg, planned)
    if summary.debug:
        cfg = config_mod.with_fragment(cfg, config_mod.DEBUG_FRAGMENT)
    return run_dir, summary, cfg


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
        if args.command == "try":
            return cmd_try(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "calibrate":
            return cmd_calibrate(args)
        if args.command == "known-failures":
            from .knownfailures import cmd_known_failures
            return cmd_known_failures(args)
        if args.command in ("build", "merge", "plan"):
            from .shard import cli as shard_cli
            return shard_cli.COMMANDS[args.command](args)
    except KvariantError as e:
        print(f"kvariant: error: {e}", file=sys.stderr)
        return e.exit_code
    except (KeyboardInterrupt, RunInterrupted):
        print("kvariant: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
