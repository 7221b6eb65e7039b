"""Driving xfstests in a guest: set-up, the selection, then the tests in
``./check`` batches under deadlines the host enforces (batches.py)."""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Callable

from ...config import XfstestsConfig
from ...config.known import list_name, read_known_failures
from ...errors import ConfigError, StageError
from ...model import StageResult, Status
from ...testcase import TestcaseId
from .batches import Batches, check_command, test_error
from .guest import GuestLayout, guest_layout, guest_setup_script, guest_teardown_script, list_argv, parse_test_list


# Runner


def _list_tests(guest, cfg, fstype, lay, outdir: Path, log) -> tuple[list[str], StageResult | None]:
    """The selected tests, from ``./check -n`` (its output goes through a
    file: a quick group lists more than a command's kept tail)."""
    cmd = check_command(lay, list_argv(cfg, fstype))
    listing = f"{lay.base}/tests.txt"
    res = guest.run(f"{cmd} > {listing} 2>&1; rc=$?; tail -n 40 {listing}; exit $rc",
                    timeout=900, log=log)
    tests = []
    if not res.timed_out and guest.get(listing, outdir / "tests.txt", missing_ok=True):
        tests = parse_test_list((outdir / "tests.txt").read_text(errors="replace"))
    if not tests:
        why = "timed out" if res.timed_out else f"exit code {res.returncode}"
        return [], test_error(fstype, "list", f"./check -n selected no test ({why})",
                          detail=res.tail, reproduce=cmd)
    return tests, None


def run_xfstests(guest, cfg: XfstestsConfig, fstype: str, *, policy: dict, outdir: Path,
                 python: str, project_dir: str, timeout_per_test: float, log: Path,
                 size_mb: int = 2048,
                 on_result: Callable[[StageResult], None] | None = None,
                 done: dict[str, StageResult] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> list[StageResult]:
    """Set up one fstype in the guest, then run the selected tests in
    ./check batches (batches.Batches); *on_result* sees each test's result
    as it ends, in order.  *timeout_per_test* is a test's own deadline (0:
    cfg.test_timeout); check's start-up and each test's checks get
    CHECK_OVERHEAD more.
    Returns one StageResult per test (or one ERROR for a failed setup);
    files come back to *outdir* after every test.  The tests the known
    failure list of the FUSE server (*policy*'s) and fstype names are
    reported as known failures (results.outcome_to_stage).  Tests in *done* (by
    testcase name, from an interrupted run) are not run again."""
    lay = guest_layout(fstype)
    outdir.mkdir(parents=True, exist_ok=True)
    if cfg.dir is None:
        return [test_error(fstype, "setup", "no xfstests tree configured (xfstests.dir)",
                       status=Status.SKIP)]
    setup = guest_setup_script(fstype, xfstests_dir=str(cfg.dir), python=python,
                               project_dir=project_dir, policy=policy, size_mb=size_mb)
    (outdir / "setup.sh").write_text(setup)
    res = guest.run(f"sh -c {shlex.quote(setup)}", timeout=900, log=log)
    if not res.ok:
        return [test_error(fstype, "setup", "xfstests setup failed in the guest", res.tail,
                       f"sh {outdir / 'setup.sh'}  # in the guest")]
    guest.get(lay.config, outdir / "local.config", missing_ok=True)  # kept with the results
    tests, problem = _list_tests(guest, cfg, fstype, lay, outdir, log)
    if problem:
        return [problem]
    known_list = cfg.known_failures / list_name(policy.get("server", "kvariant"), fstype)
    try:
        known = read_known_failures(known_list)
    except ConfigError as e:
        return [test_error(fstype, "known-failures", str(e))]
    per_test = (timeout_per_test or cfg.test_timeout) * (1 + cfg.loop_failures)
    seq = InOrder(fstype, tests, done or {}, on_result, lambda results: _write_summary(outdir, results))
    batches = Batches(guest, cfg, lay, outdir, log, per_test, seq.emit, clock, known)
    lost = batches.run(seq.to_run())
    seq.finish(lost)
    if not lost:
        guest.run_quiet(f"sh -c {shlex.quote(guest_teardown_script(fstype))}", timeout=120)
    if fstype == "fuse" and not lost:
        _fetch_server_logs(guest, lay, outdir)
    return seq.results


class InOrder:
    """Hands each test's result over as it ends; the tests an interrupted
    run already has (*done*, by testcase name) come from there, in their
    places in the selection; after a lost guest, the rest are skipped."""

    def __init__(self, fstype: str, tests: list[str], done: dict[str, StageResult],
                 on_result: Callable[[StageResult], None] | None,
                 saved: Callable[[list[StageResult]], None] = lambda results: None):
        self.fstype, self.tests, self.done = fstype, tests, done
        self.on_result, self.saved = on_result, saved
        self.results: list[StageResult] = []
        self.handed: set[str] = set()

    def _known(self, test: str) -> StageResult | None:
        return self.done.get(str(TestcaseId.xfstests(self.fstype, test)))

    def to_run(self) -> list[str]:
        return [t for t in self.tests if self._known(t) is None]

    def _add(self, test: str, stage: StageResult) -> None:
        self.handed.add(test)
        self.results.append(stage)
        if self.on_result is not None:
            self.on_result(stage)
        self.saved(self.results)

    def _known_ones(self) -> None:
        """The known tests up to the first one still to run."""
        for test in self.tests:
            if test in self.handed:
                continue
            known = self._known(test)
            if known is None:
                return
            self._add(test, known)

    def emit(self, test: str, stage: StageResult) -> None:
        self._known_ones()
        self._add(test, stage)
        self._known_ones()

    def finish(self, lost: str) -> None:
        """The tests not handed over: known ones, else skipped."""
        for test in self.tests:
            if test not in self.handed:
                self._add(test, self._known(test) or test_error(
                    self.fstype, test, f"not run: {lost or './check did not get to it'}",
                    status=Status.SKIP))


def _fetch_server_logs(guest, lay: GuestLayout, outdir: Path) -> None:
    try:
        res = guest.run(f"ls -1 {shlex.quote(lay.server_logs)} 2>/dev/null; true", timeout=30)
        for name in res.tail.splitlines():
            if name.endswith((".log", ".json")) and "/" not in name:
                guest.get(f"{lay.server_logs}/{name}", outdir / "server" / name, missing_ok=True)
    except StageError:
        pass


def _write_summary(outdir: Path, results: list[StageResult]) -> None:
    tmp = outdir / "results.json.tmp"
    tmp.write_text(json.dumps([r.to_dict() for r in results], indent=1))
    os.replace(tmp, outdir / "results.json")
