"""``pipeline.py known-failures RUN``: the known-failure lists a run of the
base kernel proposes (kvariant.workloads.xfstests.proposal), written for a
person to review before they replace vmconfigs/xfstests/."""

from __future__ import annotations

from pathlib import Path

from .config.known import read_known_failures
from .config.schema import KNOWN_FAILURES
from .errors import ConfigError
from .files import write_result, writing
from .paths import PROJECT


def add_parser(sub) -> None:
    k = sub.add_parser(
        "known-failures", help="propose the xfstests known-failure lists from a run of the base kernel",
        description="From the xfstests testcases of the base kernel's variant in RUN, write a "
                    "known-failure list per FUSE server and fstype that ran: the listed tests that "
                    "failed again keep their reasons, the ones that passed are left out (a comment "
                    "says 'fixed?'), and each new failure gets a line whose reason is 'REVIEW: "
                    "<what xfstests said>'.  The lists refuse REVIEW reasons: write why each test "
                    "fails, then copy the file over the list.  Runs nothing.")
    k.add_argument("run", metavar="RUN", help="a run directory, or a run id under RESULTS")
    k.add_argument("--results", type=Path, metavar="DIR",
                   help="where run ids are looked up (default: results/ beside pipeline.py)")
    k.add_argument("--variant", metavar="NAME",
                   help="the variant that ran the base kernel (default: the first with no patch)")
    k.add_argument("--lists", type=Path, metavar="DIR", default=KNOWN_FAILURES,
                   help=f"the lists in force (default: {KNOWN_FAILURES.relative_to(PROJECT)})")
    k.add_argument("--out", type=Path, metavar="DIR",
                   help="where the proposed lists go (default: RUN/known-failures/)")


def cmd_known_failures(args) -> int:
    from .compare import resolve_run_dir
    from .summary import RunSummary
    from .workloads.xfstests.proposal import base_variant, propose

    run_dir = resolve_run_dir(args.run, (args.results or PROJECT / "results").expanduser())
    summary = RunSummary.load(run_dir)
    if args.variant is not None:
        result = next((r for r in summary.variants if r.name == args.variant), None)
        if result is None:
            raise ConfigError("--variant", "", f"expected a variant of {run_dir} "
                                               f"({', '.join(r.name for r in summary.variants)}), "
                                               f"got {args.variant!r}")
    else:
        result = base_variant(summary.variants)
        if result is None:
            raise ConfigError("--variant", "", f"expected the variant that ran the base kernel: no "
                                               f"variant of {run_dir} is without patches")
    lists_dir = args.lists.expanduser()
    proposals = propose(result, lambda name: read_known_failures(lists_dir / name),
                        f"run {summary.run_id}, variant {result.name}")
    if not proposals:
        raise ConfigError(run_dir / "summary.json", result.name,
                          "expected xfstests testcases of that variant (the run ran no xfstests test)")
    out = (args.out or run_dir / "known-failures").expanduser()
    with writing(f"{out}: cannot write the proposed lists"):
        out.mkdir(parents=True, exist_ok=True)
        for p in proposals:
            write_result(out / p.name, p.text)
    for p in proposals:
        print(f"{p.line()} -> {out / p.name}")
    return 0

