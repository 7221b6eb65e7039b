"""xfstests results: result.xml (with check.log, check.time and the
per-test files as fallback when a hung guest cut it short), as TestOutcome
and as JUnit stage results.  Pure functions over files."""

from __future__ import annotations

import dataclasses
import difflib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ...model import StageResult, Status
from ...testcase import TestcaseId
from ...splats import find_splats, INTENDED_KINDS
from .config import DIFF_LINES


# Results


@dataclasses.dataclass
class TestOutcome:
    """One test's result as xfstests reported it, plus our kernel log scan."""

    __test__ = False  # not a pytest class

    name: str  # "generic/001"
    status: str  # "pass", "fail", "notrun"
    seconds: float = 0.0
    message: str = ""
    diff: str = ""  # excerpt of the .out.bad diff against the golden output
    dmesg: str = ""  # excerpt: the splats of the test's kernel log
    splats: list[str] = dataclasses.field(default_factory=list)
    runs: int = 1  # with -L N: how many times it ran
    flaky: bool = False  # it failed, then passed when run again (-L N)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _testcases_from_xml(text: str) -> list[ET.Element]:
    """The testcase elements; of a truncated document, those complete in it."""
    try:
        root = ET.fromstring(text)
        return [e for e in root.iter() if _local(e.tag) == "testcase"]
    except ET.ParseError:
        pass
    cases = []
    starts = [m.start() for m in re.finditer(r"<testcase\b", text)] + [len(text)]
    for a, b in zip(starts, starts[1:]):
        chunk = text[a:b]
        end = chunk.find("</testcase>")
        head_end = chunk.find(">")
        if end >= 0:
            chunk = chunk[:end + len("</testcase>")]
        elif head_end > 0 and chunk[head_end - 1] == "/":
            chunk = chunk[:head_end + 1]
        else:
            continue
        try:
            cases.append(ET.fromstring(chunk))
        except ET.ParseError:
            continue
    return cases


def _outcome_from_case(case: ET.Element) -> TestOutcome:
    name = case.get("name", "")
    try:
        seconds = float(case.get("time") or 0)
    except ValueError:
        seconds = 0.0
    out = TestOutcome(name, "pass", seconds)
    for child in case:
        tag, text = _local(child.tag), (child.text or "").lstrip("\n").rstrip()
        if tag == "failure":
            out.status = "fail"
            out.message = child.get("message") or "failed"
        elif tag == "skipped" and out.status != "fail":
            out.status = "notrun"
            out.message = child.get("message") or "not run"
        elif tag == "system-err":
            out.diff = text
        elif tag == "kernel-log":
            out.dmesg = text
    return out


def _merge_runs(outcomes: list[TestOutcome]) -> TestOutcome:
    """With -L N a failing test has one testcase per run."""
    if len(outcomes) == 1:
        return outcomes[0]
    failed = [o for o in outcomes if o.status == "fail"]
    passed = [o for o in outcomes if o.status == "pass"]
    first = failed[0] if failed else outcomes[0]
    merged = dataclasses.replace(first, seconds=sum(o.seconds for o in outcomes),
                                 runs=len(outcomes))
    if failed and passed:  # a failure that did not come back: flaky, not a failure
        merged = dataclasses.replace(passed[0], seconds=merged.seconds, runs=len(outcomes), flaky=True,
                                     splats=[s for o in outcomes for s in o.splats],
                                     dmesg=next((o.dmesg for o in outcomes if o.dmesg), ""),
                                     diff=first.diff)
        merged.message = (f"flaky: failed {len(failed)} of {len(outcomes)} runs "
                          f"({_first_line(first.message) or 'no message'})")
    elif failed:
        merged.message = f"{first.message} (failed {len(failed)} of {len(outcomes)} runs)"
    return merged


def parse_check_log(text: str) -> dict[str, str]:
    """name -> "pass"/"fail"/"notrun" from check.log (appended to by every
    ./check call; later calls win).  In an interrupted call the last test it
    tried has no result and is left out."""
    status: dict[str, str] = {}
    for block in re.split(r"^Kernel version:.*$", text, flags=re.M)[1:]:
        ran, notrun, bad, interrupted = [], set(), set(), False
        for line in block.splitlines():
            key, _, rest = line.partition(":")
            if key == "Ran":
                ran = rest.split()
            elif key == "Not run":
                notrun = set(rest.split())
            elif key == "Failures":
                bad = set(rest.split())
            elif line.strip() == "Interrupted!":
                interrupted = True
        for i, name in enumerate(ran):
            if name in bad:
                status[name] = "fail"
            elif name in notrun:
                status[name] = "notrun"
            elif interrupted and i == len(ran) - 1:
                status.pop(name, None)
            else:
                status[name] = "pass"
    return status


def parse_check_time(text: str) -> dict[str, float]:
    times = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                times[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return times


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _diff_excerpt(result_dir: Path, name: str, tree: Path | None) -> str:
    bad = _read(result_dir / f"{name}.out.bad")
    if bad is None:
        return ""
    golden = _read(tree / "tests" / f"{name}.out") if tree is not None else None
    if golden is None:
        return f"{name}.out.bad:\n{bad}"
    return "".join(difflib.unified_diff(golden.splitlines(True), bad.splitlines(True),
                                        f"tests/{name}.out", f"{name}.out.bad"))


def _fallback_outcome(result_dir: Path, name: str, status: str, seconds: float,
                      tree: Path | None) -> TestOutcome:
    out = TestOutcome(name, status, seconds)
    if status == "notrun":
        out.message = (_read(result_dir / f"{name}.notrun") or "not run").strip()
    elif status == "fail":
        out.diff = _diff_excerpt(result_dir, name, tree)
        out.message = (f"output mismatch (see {name}.out.bad)"
                       if (result_dir / f"{name}.out.bad").is_file()
                       else f"failed (see check.log and {name}.full)")
    return out


def _add_kernel_log(out: TestOutcome, result_dir: Path) -> None:
    """Splats of one test.  xfstests' own log (<test>.dmesg, kept for every
    test with KEEP_DMESG) went through the test's dmesg filters: every kind
    counts.  Ours (<test>.kmsg, the whole kernel log of its ./check call)
    also holds what a test filtered or provoked on purpose (error injection
    warnings), so only kinds no test provokes count there; so does the
    <kernel-log> of result.xml when neither file exists."""
    sources = [(_read(result_dir / f"{out.name}.dmesg"), None),
               (_read(result_dir / f"{out.name}.kmsg"), INTENDED_KINDS)]
    if not any(text for text, _ in sources):
        sources = [(out.dmesg, None)]
    splats, excerpt = [], []
    for text, skip in sources:
        for s in find_splats(text or ""):
            if skip and s.kind in skip:
                continue
            if s.first_line not in splats:
                splats.append(s.first_line)
                excerpt += text.splitlines()[s.start:s.end]
    out.splats = splats
    out.dmesg = "\n".join(excerpt[:80])


_PASSED = re.compile(r"(?:^|\s)(\d+)s$")


def outcome_from_line(result_dir: Path, name: str, line: str, seconds: float,
                      tree: Path | None = None) -> TestOutcome:
    """One test's outcome from the line ./check printed for it (without
    ``-R xunit``) and its files: it passed when the line ends with its time
    (``13s ...  12s``), was not run with ``[not run] ...``, and failed
    otherwise (``- output mismatch``, ``[failed, exit status 1]``,
    ``_check_dmesg: something found``, a failed file system check with no
    time).  *seconds* is the time when the line has none.  Pure."""
    result_dir = Path(result_dir)
    passed = _PASSED.search(line)
    status = "notrun" if "[not run]" in line else "pass" if passed else "fail"
    out = _fallback_outcome(result_dir, name, status, float(passed.group(1)) if passed else seconds,
                            tree)
    said = re.sub(r"^(?:\d+s \.\.\.)?\s*", "", line).strip()
    if status == "fail" and said:
        out.message = said
    _add_kernel_log(out, result_dir)
    return out


def parse_results(result_dir: Path, tree: Path | None = None,
                  only: str | None = None) -> list[TestOutcome]:
    """Outcomes of the tests in an xfstests RESULT_BASE (or a copy of it).

    Reads result.xml and xunit/*.xml (one per ./check call when tests run
    one at a time); a test none of them has (the file is missing, or was cut
    short by a hung guest) comes from check.log, with its time from
    check.time.  Diffs come from result.xml or, given the xfstests *tree*,
    from <test>.out.bad against the golden output.  *only*: just that test,
    from result.xml and check.log (the runner, after each ./check call).
    Pure: reads files only.
    """
    result_dir = Path(result_dir)
    files = [result_dir / "result.xml"]
    if only is None:
        files += sorted((result_dir / "xunit").glob("*.xml"))
    by_name: dict[str, list[TestOutcome]] = {}
    for f in files:
        text = _read(f)
        if not text:
            continue
        cases = _testcases_from_xml(text)
        per_file: dict[str, list[TestOutcome]] = {}
        for case in cases:
            o = _outcome_from_case(case)
            per_file.setdefault(o.name, []).append(o)
        for name, runs in per_file.items():
            by_name.setdefault(name, runs)
    outcomes = {name: _merge_runs(runs) for name, runs in by_name.items()
                if name and only in (None, name)}
    times = parse_check_time(_read(result_dir / "check.time") or "")
    for name, status in parse_check_log(_read(result_dir / "check.log") or "").items():
        if name not in outcomes and only in (None, name):
            outcomes[name] = _fallback_outcome(result_dir, name, status,
                                               times.get(name, 0.0), tree)
    for out in outcomes.values():
        if not out.seconds and out.name in times:
            out.seconds = times[out.name]
        if out.status == "fail" and not out.diff:
            out.diff = _diff_excerpt(result_dir, out.name, tree)
        _add_kernel_log(out, result_dir)
    return list(outcomes.values())


def _first_line(text: str) -> str:
    line = next((l for l in text.splitlines() if l.strip()), "").strip()
    return line[2:] if line.startswith("- ") else line


def outcome_to_stage(outcome: TestOutcome, fstype: str, known: str | None = None) -> StageResult:
    """A splat fails the test even when xfstests passed it.  *known*: the
    reason the test is known to fail on the base kernel (config/known.py):
    a failure xfstests reports, without a kernel splat, is then skipped,
    and a pass is flagged as maybe fixed."""
    status = {"pass": Status.PASS, "fail": Status.FAIL, "notrun": Status.SKIP}.get(
        outcome.status, Status.ERROR)
    message = _first_line(outcome.message)
    if outcome.splats and status != Status.FAIL:
        status = Status.FAIL
        message = f"kernel splat: {outcome.splats[0]}"
    detail = []
    if outcome.status == "fail" and outcome.diff:
        detail.append("\n".join(outcome.diff.splitlines()[:DIFF_LINES]))
    if outcome.splats:
        detail.append("kernel log:\n" + (outcome.dmesg or "\n".join(outcome.splats)))
    figures = {"runs": outcome.runs} if outcome.runs > 1 else {}
    if outcome.flaky:
        figures["flaky"] = True
        if outcome.diff:
            detail.insert(0, "the failed run:\n" + "\n".join(outcome.diff.splitlines()[:DIFF_LINES]))
    tid = TestcaseId.xfstests(fstype, outcome.name)
    stage = StageResult(name=str(tid), status=status, seconds=outcome.seconds, message=message,
                        detail="\n\n".join(detail), figures=figures, suite=tid.suite)
    if known:
        _as_known(stage, outcome, known)
    return stage


def _as_known(stage: StageResult, outcome: TestOutcome, reason: str) -> None:
    """A known failure stays visible without failing the job: skipped (as
    pytest reports an expected failure in JUnit), its reason and
    xfstests' message in the message, the diff in the body.  One that
    passes is flagged "fixed?"."""
    if stage.status == Status.FAIL and not outcome.splats:
        stage.status = Status.SKIP
        stage.message = f"known failure: {reason} (xfstests: {stage.message or 'failed'})"
        stage.figures = {**stage.figures, "known_failure": reason}
    elif stage.status == Status.PASS:
        stage.message = f"fixed? passed, but known to fail: {reason}" + (
            f" ({stage.message})" if stage.message else "")
        stage.figures = {**stage.figures, "known_failure": reason, "fixed": True}
