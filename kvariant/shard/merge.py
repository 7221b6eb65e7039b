"""Shard runs merged into one run directory of the same form as a run
without shards: summary.json, a junit.xml per variant, the reports.

Each shard's summary.json carries its ``shard`` record: K of N, the plan
(and its digest) and the kernel store's digest.  Shards of different
configs, plans or stores are refused.  Every planned testcase comes from
the shards; one that no shard reported (a shard missing or cut short)
becomes an error naming the shard that should have run it, never
silently absent.  The stages every shard runs for a variant (apply,
build, boot, storage, dmesg) keep the worst of the shards', named by
shard when not a pass.  Each shard's files of a variant are kept under
``<variant>/shard-K/`` (the testcases' logs point there)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from ..errors import ConfigError
from ..files import write_result, writing
from ..junit import write_junit
from ..model import StageResult, Status, VariantInfo, VariantResult
from ..testcase import TestcaseId
from ..summary import RunSummary
from .plan import Plan

RANK = {Status.PASS: 0, Status.SKIP: 1, Status.FAIL: 2, Status.ERROR: 3}


@dataclasses.dataclass(frozen=True)
class Shard:
    k: int
    summary: RunSummary


def load_shards(dirs: list[Path]) -> tuple[list[Shard], Plan]:
    """The shards' summaries, sorted by K, and their plan; ConfigError (one
    line) for a run that is no shard, or shards that do not belong together."""
    shards = []
    for d in dirs:
        s = RunSummary.load(d)
        if s.shard is None or s.shard.get("k") is None:
            what = "no shard record" if s.shard is None else "a merged run"
            raise ConfigError(Path(d) / "summary.json", "shard",
                              f"expected the run of one shard (run --shard K/N), got {what}")
        shards.append(Shard(s.shard["k"], s))
    shards.sort(key=lambda s: s.k)
    first = shards[0].summary
    for sh in shards[1:]:
        for key, what in (("config_sha256", "config"), ("plan_digest", "plan"), ("store", "kernel store")):
            mine = sh.summary.config_sha256 if key == "config_sha256" else sh.summary.shard[key]
            theirs = first.config_sha256 if key == "config_sha256" else first.shard[key]
            if mine != theirs:
                raise ConfigError(sh.summary.path / "summary.json", key if key == "config_sha256" else
                                  f"shard.{key}", f"expected the {what} of {first.path} "
                                  f"({theirs[:12]}), got another ({mine[:12]}): not shards of one run")
    ks = [s.k for s in shards]
    if len(set(ks)) != len(ks):
        dup = next(k for k in ks if ks.count(k) > 1)
        raise ConfigError("merge", "RUN", f"expected each shard once, got shard {dup} twice")
    return shards, plan_of(first)


def plan_of(summary: RunSummary) -> Plan:
    path = summary.path / "summary.json"
    try:
        plan = Plan.from_dict(summary.shard["plan"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(path, "shard.plan", f"expected a plan of units and shards ({e})") from None
    if plan.digest != summary.shard["plan_digest"] or plan.n != summary.shard["n"]:
        raise ConfigError(path, "shard.plan", "expected the plan its digest names (edited?)")
    return plan


def relogged(stage: StageResult, k: int) -> StageResult:
    """*stage* with its log where the merge keeps shard K's files."""
    return dataclasses.replace(stage, log=f"shard-{k}/{stage.log}" if stage.log else "")


def covered(name: str, names: set[str]) -> bool:
    """Whether the testcases *names* account for the planned *name*: itself,
    a testcase for a whole it belongs to (``xfstests`` skipped, an
    ``xfstests/fuse`` set-up error), or its parts."""
    parts = name.split("/")
    return (any("/".join(parts[:i]) in names for i in range(1, len(parts) + 1))
            or any(n.startswith(name + "/") for n in names))


def missing_case(name: str, k: int, n: int, present: set[int]) -> StageResult:
    why = "did not report it" if k in present else "is missing from the merge"
    return StageResult(name, Status.ERROR, message=f"not run: shard {k}/{n} {why}", suite=TestcaseId.parse(name).suite)


def pick(a: tuple[int, StageResult] | None, b: tuple[int, StageResult]) -> tuple[int, StageResult]:
    """Of two shards' testcases of one name, the worse (the earlier shard on a tie)."""
    return b if a is None or RANK[b[1].status] > RANK[a[1].status] else a


def merge_variant(name: str, shards: list[Shard], plan: Plan) -> VariantResult:
    """One variant's testcases over the shards (see the module)."""
    parts = [(sh.k, r) for sh in shards for r in sh.summary.variants if r.name == name]
    chosen: dict[str, tuple[int, StageResult]] = {}
    for k, r in parts:
        for st in r.stages:
            chosen[st.name] = pick(chosen.get(st.name), (k, relogged(st, k)))
    stages = []
    for k, st in chosen.values():
        if not st.id.scope and st.status != Status.PASS and len(shards) > 1:
            st = dataclasses.replace(st, message=f"shard {k}/{plan.n}: {st.message}")
        stages.append(st)
    names, present = set(chosen), {sh.k for sh in shards}
    stages += [missing_case(t, k, plan.n, present) for t, k in plan.testcases().items()
               if not covered(t, names)]
    info = VariantInfo.from_dict(parts[0][1].info.to_dict()) if parts else VariantInfo()
    info.complete = bool(parts) and all(r.info.complete for _, r in parts) and \
        present == set(range(1, plan.n + 1))
    return VariantResult(name, ordered(stages, list(plan.testcases())), info)


def ordered(stages: list[StageResult], planned: list[str]) -> list[StageResult]:
    """As a run without shards orders them: the stages, the workloads in the
    plan's order (a target's or fstype's own testcases before its points),
    dmesg last."""
    def position(name: str) -> int:
        m = min(2, len(name.split("/")))
        head = name.split("/")[:m]
        return next((i for i, t in enumerate(planned) if t.split("/")[:m] == head), len(planned))

    first = [s for s in stages if not s.id.scope and s.name != "xfstests" and s.name != "dmesg"]
    work = [s for s in stages if s not in first and s.name != "dmesg"]
    work.sort(key=lambda s: (position(s.name), s.name in planned, planned.index(s.name)
                             if s.name in planned else 0))
    return first + work + [s for s in stages if s.name == "dmesg"]


def merged_summary(shards: list[Shard], plan: Plan, out: Path) -> RunSummary:
    """The merged run's summary (its variants in the config's order)."""
    first = shards[0].summary
    planned = first.planned_variants or list(plan.variants)
    present = {sh.k for sh in shards}
    record = {**first.shard, "k": None,
              "merged": [{"k": sh.k, "run_id": sh.summary.run_id, "status": sh.summary.status,
                          "finished": sh.summary.finished, "seconds": sh.summary.seconds} for sh in shards],
              "missing": [k for k in range(1, plan.n + 1) if k not in present]}
    return RunSummary(
        run_id=out.name, variants=[merge_variant(v, shards, plan) for v in planned],
        config=first.config, config_sha256=first.config_sha256, fio_setup=first.fio_setup,
        setup=first.setup, planned_variants=planned, debug=first.debug,
        started=min(sh.summary.started for sh in shards),
        seconds=max(sh.summary.seconds for sh in shards),  # the shards ran side by side
        finished=all(sh.summary.finished for sh in shards) and not record["missing"],
        interrupted=any(sh.summary.interrupted for sh in shards), accel=first.accel,
        shard=record, path=out)


def write_merged(shards: list[Shard], summary: RunSummary, out: Path) -> None:
    """The merged run directory: each shard's variant files under
    <variant>/shard-K/, the shards' run.log one after the other, a
    junit.xml per variant and summary.json.  The reports are the caller's
    (kvariant.report)."""
    logs = []
    with writing(f"--out: cannot write {out}"):
        for sh in shards:
            for v in summary.variants:
                src = sh.summary.path / v.name
                if src.is_dir():
                    shutil.copytree(src, out / v.name / f"shard-{sh.k}", symlinks=True,
                                    ignore=shutil.ignore_patterns("junit.xml"))
            log = sh.summary.path / "run.log"
            text = log.read_text(errors="replace") if log.is_file() else "(no run.log)\n"
            logs.append(f"=== shard {sh.k}/{summary.shard['n']}: {sh.summary.path} ===\n{text}")
    write_result(out / "run.log", "".join(logs))
    for v in summary.variants:
        write_junit(v, out / v.name / "junit.xml")
    summary.write(out)
