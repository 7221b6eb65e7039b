"""The command line of a run spread over CI runners: ``build`` (the kernel
store), ``merge`` (shard runs into one) and ``plan`` (what a night would
take on N runners).  kvariant.cli adds them to its
parser and turns their errors into one line and an exit code; these
functions return 0 (all passed), 2 (a variant failed) or 130
(interrupted)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from .. import config as config_mod
from .. import rundirs
from ..rundirs import DEFAULT_CONFIG
from ..errors import ConfigError, ResultsUnwritable
from ..model import Status
from .plan import MAX_SHARDS

if TYPE_CHECKING:
    from ..summary import RunSummary


def add_build(sub) -> None:
    b = sub.add_parser(
        "build", help="apply and build every variant into a kernel store",
        description="Apply and build every variant of the config (the series checks too) and "
                    "copy each kernel into DIR/<variant>/ (bzImage, modules, config, vmlinux, "
                    "metadata.json): a store another host can boot from.  DIR/_build/ holds "
                    "the JUnit and logs of apply and build.  Exit code 0 when every variant "
                    "built, 2 when one failed (it is in the store as failed; the others go on).")
    b.add_argument("--config", type=Path, metavar="FILE",
                   help=f"the pipeline TOML (default: {DEFAULT_CONFIG.name} beside pipeline.py)")
    b.add_argument("--kernels", type=Path, metavar="DIR", required=True,
                   help="the kernel store to write (made if missing)")
    b.add_argument("--variant", action="append", metavar="NAME",
                   help="build only this variant (repeatable; default: all)")
    b.add_argument("--tree", type=Path, metavar="DIR",
                   help="the kernel git tree, instead of the config's [kernel] tree "
                        "(default: $KVARIANT_TREE when set)")
    b.add_argument("--plan-times", nargs="+", type=Path, metavar="RUN_DIR",
                   help="earlier runs (or merged runs) whose test times the store carries to the "
                        "shards: every shard plans on them, so that xfstests tests are spread by "
                        "time, not by count (default: $KVARIANT_PLAN_TIMES, run directories "
                        "separated by ':', when set and not empty)")


def cmd_build(args) -> int:
    """``build --kernels DIR``: the kernel store (kvariant.shard.store)."""
    from ..ui import UI, print_summary
    from .store import build_store, fresh_run_dir

    source = config_mod.tree_source(args.tree, os.environ)
    cfg = config_mod.select_variants(config_mod.load(args.config or DEFAULT_CONFIG, source), args.variant)
    times = read_plan_times(args.plan_times, os.environ)  # bad runs: refused before the build
    store = writable_dir("--kernels", args.kernels.expanduser().resolve())
    rundirs.log_to(fresh_run_dir(store) / "run.log")
    print(store, flush=True)
    ui = UI()
    if times is not None:
        ui.info(f"plan times: {len(times['tests'])} testcases from {', '.join(times['runs'])}")
    done = build_store(cfg, store, ui, times)
    print_summary(ui, done.run.results, ("apply", "build"), None, interrupted=done.run.interrupted)
    for m in done.metadata:
        ui.info(f"{m['variant']:<16} {m['status']}: " + (
            f"{m['kernel_release']} ({m['cache_key']})" if m["status"] == "built" else m["message"]))
    print(store, flush=True)
    if done.run.interrupted:
        return 130
    return 0 if done.ok else 2


PLAN_TIMES_ENV = "KVARIANT_PLAN_TIMES"


def read_plan_times(option: list[Path] | None, env) -> dict | None:
    """The store's plan_times from --plan-times, else $KVARIANT_PLAN_TIMES
    (':'-separated), else None (the shards spread tests by count)."""
    from .projection import read_timings
    from .store import plan_times_record

    dirs = option or [Path(d) for d in (env.get(PLAN_TIMES_ENV) or "").split(":") if d.strip()]
    if not dirs:
        return None
    timings = read_timings(Path(d).expanduser().resolve() for d in dirs)
    return plan_times_record(list(timings.runs), {t: dict(by) for t, by in timings.tests.items()})


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


def add_merge(sub, fraction) -> None:
    m = sub.add_parser(
        "merge", help="merge the run directories of a run's shards into one run",
        description="Merge the run directories of the shards of one run (one config, plan and "
                    "kernel store) into one run directory of the same form as a run without "
                    "shards: summary.json, a junit.xml per variant, the reports.  A planned "
                    "testcase that no shard reported is an error naming the shard that should "
                    "have run it.  Exit code 0 when every variant passed, 2 when any failed or "
                    "regressed (--against).")
    m.add_argument("runs", nargs="+", metavar="RUN", help="a shard's run directory")
    m.add_argument("--out", type=Path, metavar="DIR", required=True,
                   help="the merged run's directory (new, or empty)")
    m.add_argument("--against", metavar="RUN|VARIANT|last",
                   help="regression verdict as run --against ('last': the newest finished run of "
                        "the same config beside DIR)")
    m.add_argument("--threshold", type=fraction, default=0.05, metavar="FRACTION",
                   help="smallest IOPS change called better or worse (default 0.05 = 5%%)")
    m.add_argument("--force", action="store_true",
                   help="with --against RUN: judge IOPS changes even when that run's setup differs")


@dataclasses.dataclass
class MergedRun:
    """What the reports and --against need of a run (kvariant.report.FinishedRun)."""

    summary: "RunSummary"
    threshold: float
    force: bool

    @property
    def run_id(self) -> str:
        return self.summary.run_id

    @property
    def run_dir(self) -> Path:
        return self.summary.path

    @property
    def results(self):
        return self.summary.variants

    def save(self, final: bool = False) -> None:
        self.summary.write(self.run_dir)


def cmd_merge(args) -> int:
    """``merge RUN... --out DIR`` (kvariant.shard.merge), then the reports
    and --against's verdicts as at the end of a run."""
    from ..report import apply_regressions, write_run_reports
    from ..ui import UI, print_summary
    from .merge import load_shards, merged_summary, write_merged

    shards, plan = load_shards([Path(d).expanduser().resolve() for d in args.runs])
    out = new_dir("--out", args.out.expanduser().resolve())
    run = MergedRun(merged_summary(shards, plan, out), args.threshold, args.force)
    against_dir, against_variant = against(args.against, run.summary, out)
    write_merged(shards, run.summary, out)
    print(out, flush=True)
    regs = apply_regressions(run, against_dir, against_variant) if (
        against_dir is not None or against_variant is not None) else []
    comparison = write_run_reports(run, against_dir, against_variant)
    ui = UI()
    print_summary(ui, run.results, ("apply", "build", "boot", "storage"), comparison)
    for k in run.summary.shard["missing"]:
        ui.info(f"shard {k}/{plan.n} is missing: its testcases are errors")
    for r in regs:
        ui.info(f"REGRESSION {r.variant} {r.testcase}: {r.message}")
    print(out, flush=True)
    return 0 if all(r.status == Status.PASS for r in run.results) else 2


def against(value: str | None, summary: "RunSummary", out: Path) -> tuple[Path | None, str | None]:
    """--against of a merged run: an earlier run beside it ('last', an id, a
    directory) or one of its variants."""
    if value == "last":
        return rundirs.last_run(out.parent, Path(summary.config), exclude=out), None
    variants = SimpleNamespace(variants=[SimpleNamespace(name=v.name) for v in summary.variants])
    return rundirs.against(value, variants, out.parent)


def new_dir(option: str, path: Path) -> Path:
    """*path*, a new or empty directory: one that holds anything is refused."""
    if path.is_dir() and any(path.iterdir()):
        raise ConfigError(option, "", f"expected a new or empty directory, got {path}, which holds files")
    return writable_dir(option, path)


def add_plan(sub) -> None:
    p = sub.add_parser(
        "plan", help="what a night would take on N runners, from earlier runs' times",
        description="The plan the shards make of the config (as run --kernels --shard K/N does) "
                    "for each number of runners: each shard's units, its load (the units' "
                    "seconds on every variant) and boots (each variant's boot and storage), the "
                    "balance (longest / mean shard load) and the wall time (the longest shard).  "
                    "Times come from earlier runs' summary.json (--times); a testcase a run did "
                    "not measure on a variant is projected (the mean of the variants that ran "
                    "it, else a stated default), and every line says which figures are measured "
                    "and which projected.  Needs no kernel tree; boots nothing.")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help=f"the pipeline TOML (default: {DEFAULT_CONFIG.name} beside pipeline.py)")
    p.add_argument("--shards", default="1,4,8", metavar="N,...",
                   help=f"numbers of runners, 1 to {MAX_SHARDS} (default: 1,4,8)")
    p.add_argument("--times", nargs="+", type=Path, default=[], metavar="RUN_DIR",
                   help="earlier runs whose measured seconds to project the night from (their means)")
    p.add_argument("--plan-times", nargs="+", type=Path, default=[], metavar="RUN_DIR",
                   help="plan as the shards of a store built with build --plan-times RUN_DIR... "
                        "do: tests spread by these runs' times (default: by count, as a store "
                        "built without it)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON to FILE")


def parse_shards(text: str) -> tuple[int, ...]:
    """--shards "1,4,8": distinct numbers of shards in 1..MAX_SHARDS, sorted."""
    try:
        ns = [int(x) for x in text.split(",")]
    except ValueError:
        ns = []
    if not ns or any(not 1 <= n <= MAX_SHARDS for n in ns):
        raise ConfigError("--shards", "", f"expected numbers of shards from 1 to {MAX_SHARDS} "
                                          f"separated by commas, got {text!r}")
    return tuple(sorted(set(ns)))


def cmd_plan(args) -> int:
    """``plan --config X [--shards 1,4,8] [--times RUN...]``: prints the
    projection of each N (kvariant.shard.projection)."""
    from ..config import KernelSource
    from ..files import write_result
    from .plan import make_plan
    from .projection import document, project, projection_lines, read_timings, timing_lines

    ns = parse_shards(args.shards)
    # the plan reads no tree: the shards' own plan comes from the config alone
    cfg = config_mod.load(args.config or DEFAULT_CONFIG, KernelSource(base_commit="(not read)"))
    timings = read_timings(Path(d).expanduser().resolve() for d in args.times)
    by = read_timings(Path(d).expanduser().resolve() for d in args.plan_times) if args.plan_times else None
    plans = [make_plan(cfg, n, times=by.tests if by else None) for n in ns]
    projections = [(plan, project(plan, cfg, timings)) for plan in plans]
    lines = timing_lines(cfg, plans[0], timings)
    lines.insert(1, f"plan: tests spread by the times of {', '.join(by.runs)}" if by else
                 "plan: tests spread by count (as a store built without --plan-times)")
    for _, p in projections:
        lines += projection_lines(p)
    if args.json is not None:
        doc = {**document(cfg, timings, projections), "plan_times": list(by.runs) if by else None}
        write_result(args.json, json.dumps(doc, indent=2) + "\n")
    print("\n".join(lines), flush=True)
    return 0


COMMANDS = {"build": cmd_build, "merge": cmd_merge, "plan": cmd_plan}
