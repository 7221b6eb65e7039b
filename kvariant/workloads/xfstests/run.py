"""Driving xfstests in a guest, one ./check per test under a deadline the
host enforces."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Callable

from ...config import XfstestsConfig
from ...errors import KernelReport, StageError
from ...model import StageResult, Status
from ...testcase import TestcaseId
from .config import CHECK_OVERHEAD, KILL_GRACE
from .guest import (GuestLayout, _release_steps, guest_layout, guest_setup_script,
                    guest_teardown_script, list_argv, parse_test_list, single_test_argv)
from .results import outcome_to_stage, parse_results


# Runner


def _check_command(lay: GuestLayout, argv: list[str], deadline: float | None = None) -> str:
    timeout = f"timeout -k {KILL_GRACE} {deadline:.0f} " if deadline else ""
    return (f"cd {shlex.quote(lay.tree)} && HOST_OPTIONS={shlex.quote(lay.config)} "
            f"{timeout}{shlex.join(argv)}")


def _kmsg_capture(lay: GuestLayout, test: str, marker: str) -> str:
    """Our kernel log of one ./check call: everything after its marker (the
    whole log if the marker has left the ring buffer)."""
    dest = shlex.quote(f"{lay.results}/{test}.kmsg")
    return (f"mkdir -p {shlex.quote(os.path.dirname(f'{lay.results}/{test}'))}; "
            f"dmesg | awk -v m={shlex.quote(marker)} 'index($0, m) {{found=1}} found' > {dest}; "
            f"[ -s {dest} ] || dmesg | tail -n 2000 > {dest}")


def test_command(lay: GuestLayout, cfg: XfstestsConfig, test: str, deadline: float,
                 marker: str) -> str:
    """One test in the guest: a kernel log marker, ./check under timeout,
    our kernel log slice; exits with check's (or timeout's 124/137) code."""
    return (f"rm -f {shlex.quote(lay.results)}/result.xml; "
            f"echo {shlex.quote(marker)} > /dev/kmsg; "
            f"{_check_command(lay, single_test_argv(cfg, test), deadline)}; rc=$?; "
            f"{_kmsg_capture(lay, test, marker)}; exit $rc")


def _fetch(guest, lay: GuestLayout, test: str, outdir: Path) -> None:
    """result.xml, check.log, check.time and <test>.* (out.bad, full,
    dmesg, notrun, kmsg, loop copies) into outdir; result.xml is also kept
    as xunit/<test>.xml since the next call rewrites it."""
    res = guest.run(f"cd {shlex.quote(lay.results)} && ls -1d result.xml check.log check.time "
                    f"{shlex.quote(test)}.* 2>/dev/null; true", timeout=60)
    names = [n for n in (line.strip() for line in res.tail.splitlines())
             if n in ("result.xml", "check.log", "check.time")
             or (n.startswith(f"{test}.") and "/" not in n[len(test):])]
    (outdir / "result.xml").unlink(missing_ok=True)
    for name in names:
        guest.get(f"{lay.results}/{name}", outdir / name, missing_ok=True)
    if (outdir / "result.xml").is_file():
        keep = outdir / "xunit" / (test.replace("/", "-") + ".xml")
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outdir / "result.xml", keep)


def _recover(guest, lay: GuestLayout, test: str, marker: str, log: Path) -> bool:
    """After a timeout: keep the kernel log, abort our FUSE connections,
    unmount.  False when the guest no longer answers."""
    script = _kmsg_capture(lay, test, marker) + "\n" + "\n".join(_release_steps(lay))
    try:
        res = guest.run(f"sh -c {shlex.quote(script)}", timeout=120, log=log)
    except StageError:
        return False
    return not res.timed_out


def _error(fstype: str, what: str, message: str, detail: str = "", reproduce: str = "",
           status: Status = Status.ERROR, seconds: float = 0.0) -> StageResult:
    tid = TestcaseId.xfstests(fstype, what)
    return StageResult(name=str(tid), status=status, seconds=seconds,
                       message=message, detail=detail, reproduce=reproduce, suite=tid.suite)


def _list_tests(guest, cfg, fstype, lay, outdir: Path, log) -> tuple[list[str], StageResult | None]:
    """The selected tests, from ``./check -n`` (its output goes through a
    file: a quick group lists more than a command's kept tail)."""
    cmd = _check_command(lay, list_argv(cfg, fstype))
    listing = f"{lay.base}/tests.txt"
    res = guest.run(f"{cmd} > {listing} 2>&1; rc=$?; tail -n 40 {listing}; exit $rc",
                    timeout=900, log=log)
    tests = []
    if not res.timed_out and guest.get(listing, outdir / "tests.txt", missing_ok=True):
        tests = parse_test_list((outdir / "tests.txt").read_text(errors="replace"))
    if not tests:
        why = "timed out" if res.timed_out else f"exit code {res.returncode}"
        return [], _error(fstype, "list", f"./check -n selected no test ({why})",
                          detail=res.tail, reproduce=cmd)
    return tests, None


def run_xfstests(guest, cfg: XfstestsConfig, fstype: str, *, policy: dict, outdir: Path,
                 python: str, project_dir: str, timeout_per_test: float, log: Path,
                 size_mb: int = 2048,
                 on_result: Callable[[StageResult], None] | None = None,
                 done: dict[str, StageResult] | None = None) -> list[StageResult]:
    """Set up one fstype in the guest, then run the selected tests one
    ./check call each; *on_result* sees each test's result as it comes.  *timeout_per_test* is a test's own deadline (0:
    cfg.test_timeout); check's setup and checks get CHECK_OVERHEAD more.
    Returns one StageResult per test (or one ERROR for a failed setup);
    files come back to *outdir* after every test.  Tests in *done* (by
    testcase name, from an interrupted run) are not run again."""
    lay = guest_layout(fstype)
    outdir.mkdir(parents=True, exist_ok=True)
    if cfg.dir is None:
        return [_error(fstype, "setup", "no xfstests tree configured (xfstests.dir)",
                       status=Status.SKIP)]
    setup = guest_setup_script(fstype, xfstests_dir=str(cfg.dir), python=python,
                               project_dir=project_dir, policy=policy, size_mb=size_mb)
    (outdir / "setup.sh").write_text(setup)
    res = guest.run(f"sh -c {shlex.quote(setup)}", timeout=900, log=log)
    if not res.ok:
        return [_error(fstype, "setup", "xfstests setup failed in the guest", res.tail,
                       f"sh {outdir / 'setup.sh'}  # in the guest")]
    guest.get(lay.config, outdir / "local.config", missing_ok=True)  # kept with the results
    tests, problem = _list_tests(guest, cfg, fstype, lay, outdir, log)
    if problem:
        return [problem]
    per_test = (timeout_per_test or cfg.test_timeout) * (1 + cfg.loop_failures)
    results: list[StageResult] = []

    def add(stage: StageResult) -> None:
        results.append(stage)
        if on_result is not None:
            on_result(stage)

    lost = ""
    for n, test in enumerate(tests):
        kept = (done or {}).get(str(TestcaseId.xfstests(fstype, test)))
        if kept is not None:
            add(kept)
            continue
        if lost:
            add(_error(fstype, test, f"not run: {lost}", status=Status.SKIP))
            continue
        stage, lost = _run_one(guest, cfg, lay, test, n, per_test, outdir, log)
        add(stage)
        _write_summary(outdir, results)
    if not lost:
        guest.run_quiet(f"sh -c {shlex.quote(guest_teardown_script(fstype))}", timeout=120)
    if fstype == "fuse" and not lost:
        _fetch_server_logs(guest, lay, outdir)
    return results


def _run_one(guest, cfg, lay: GuestLayout, test: str, n: int, per_test: float,
             outdir: Path, log: Path) -> tuple[StageResult, str]:
    """(result, why the guest is lost or "")."""
    marker = f"kvariant: xfstests {lay.fstype} {test} #{n}"
    deadline = per_test + CHECK_OVERHEAD
    cmd = test_command(lay, cfg, test, deadline, marker)
    reproduce = _check_command(lay, single_test_argv(cfg, test))
    start = time.monotonic()
    try:
        res = guest.run(cmd, timeout=deadline + KILL_GRACE + 60, log=log)
    except StageError as e:
        lost = (f"{e.message} during {test}" if isinstance(e, KernelReport)
                else f"the guest's SSH connection was lost during {test}")
        return _error(lay.fstype, test, lost, e.detail, reproduce,
                      seconds=time.monotonic() - start), lost
    timed_out = res.timed_out or res.returncode in (124, 137)
    lost = ""
    if timed_out and not _recover(guest, lay, test, marker, log):
        lost = f"the guest stopped answering after {test} hung"
    if not lost:
        try:
            _fetch(guest, lay, test, outdir)
        except StageError as e:
            lost = f"could not fetch results after {test}: {e}"
    found = next(iter(parse_results(outdir, tree=cfg.dir, only=test)), None)
    if found is not None and not timed_out:
        stage = outcome_to_stage(found, lay.fstype)
    else:
        elapsed = time.monotonic() - start
        stage = _error(lay.fstype, test, f"no result after {elapsed:.0f} s", res.tail,
                       reproduce, seconds=elapsed)
        if not timed_out:
            stage.message += f" (./check exited {res.returncode})"
    stage.reproduce = reproduce
    return stage, lost


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
