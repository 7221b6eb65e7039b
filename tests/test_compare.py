"""The passthrough proof, and comparisons of runs on disk (statistics,
deltas, the reports), as pure functions."""
from kvariant.comparison import fmt_iops
from kvariant.config import FuseConfig
from kvariant.model import StageResult, Status, VariantResult
from kvariant.workloads.targets import make_target


def test_fmt_iops():
    assert fmt_iops(1_707_000) == "1.71M" and fmt_iops(470_000) == "470.0K" and fmt_iops(999) == "999"


def test_passthrough_proof():
    t = make_target("fuse-passthrough", FuseConfig())
    before = {"write_requests": 3, "read_requests": 0, "passthrough_opens_granted": 1}
    ok = {"write_requests": 3, "read_requests": 0, "passthrough_opens_granted": 3, "protocol": "7.40",
          "passthrough_negotiated": True}
    figures, why = t.check(before, ok)
    assert why == "" and figures["passthrough_opens_granted"] == 2 and figures["server_write_requests"] == 0
    _, why = t.check(before, {**ok, "write_requests": 900})
    assert "897 READ/WRITE" in why
    _, why = t.check(before, {**ok, "passthrough_opens_granted": 1})
    assert "no open was granted" in why
    # without passthrough, data through the server is expected
    _, why = make_target("fuse", FuseConfig()).check(before, {**ok, "write_requests": 900})
    assert why == ""
    argv = t.argv()
    assert "--passthrough" in argv and "--parallel-direct-writes" in argv and "--daemon" in argv


# ./pipeline.py compare: runs from disk, statistics, deltas, reports

import base64  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from kvariant.compare import compare_runs, load_run, patch_change, xfstests_delta  # noqa: E402
from kvariant.comparison import Comparison, Patch, regressions  # noqa: E402
from kvariant.errors import ConfigError, KvariantError  # noqa: E402
from kvariant.render import write_reports  # noqa: E402
from kvariant import cli  # noqa: E402

from conftest import FIXTURES, PROJECT  # noqa: E402

RUN_A = FIXTURES / "runs" / "run-a"  # the real run 20261121-220102, trimmed
RUN_B = FIXTURES / "runs" / "run-b"  # a later run derived from it (see its summary)


def verdicts(c, a, b):
    return {(p.target, p.numjobs): p.delta(a, b).verdict for p in c.points if p.delta(a, b)}


def test_load_run():
    run = load_run(RUN_A)
    assert run.run_id == "20261121-220102" and run.accel.name == "tcg"
    assert [v.name for v in run.variants] == ["baseline", "parallel-dio"]
    assert run.started.startswith("2026-11-21T22:01")


def test_load_run_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such run directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}/summary.json: not found")):
        load_run(tmp_path)
    (tmp_path / "summary.json").write_text('{"variants": [')
    with pytest.raises(ConfigError) as e:
        load_run(tmp_path)
    assert str(e.value).startswith(f"{tmp_path}/summary.json: not valid JSON (line 1")
    assert "\n" not in str(e.value) and isinstance(e.value, KvariantError)
    (tmp_path / "summary.json").write_text('{"run_id": "x"}')
    with pytest.raises(ConfigError, match="summary.json: variants: expected a list"):
        load_run(tmp_path)
    (tmp_path / "summary.json").write_text('{"variants": [{"stages": []}]}')
    with pytest.raises(ConfigError, match=r"variants\[0\]: expected a variant result"):
        load_run(tmp_path)


def test_real_run_statistics_and_verdicts():
    c = compare_runs([load_run(RUN_A)])
    assert c.reference == "baseline" and c.labels == ["baseline", "parallel-dio"]
    p = next(p for p in c.points if p.testcase == "fio/fuse-passthrough/randwrite-4k-nj4")
    a, b = p.samples["baseline"], p.samples["parallel-dio"]
    assert a.runs == (10529, 15077, 26200) and a.median == 15077
    assert a.mean == pytest.approx((10529 + 15077 + 26200) / 3)
    assert b.mean == pytest.approx((34653 + 41935 + 41245) / 3)
    d = p.delta("baseline", "parallel-dio")
    assert d.difference.change_pct == pytest.approx(127.45, abs=0.01)
    assert (round(d.difference.ci_low_pct), round(d.difference.ci_high_pct)) == (30, 224)
    assert verdicts(c, "baseline", "parallel-dio") == {
        ("fuse-passthrough", 1): "inconclusive", ("fuse-passthrough", 2): "inconclusive",
        ("fuse-passthrough", 4): "better",
        ("xfs", 1): "inconclusive", ("xfs", 2): "worse", ("xfs", 4): "inconclusive"}
    assert p.notes == ["numjobs 4 > 2 vCPUs"]
    assert any(n.startswith("The spread is too large to conclude at 4 of 6 comparisons") for n in c.notes)
    assert any("xfs target runs without FUSE" in n for n in c.notes)


def test_threshold_changes_verdicts():
    c = compare_runs([load_run(RUN_A)], threshold=0.30)
    v = verdicts(c, "baseline", "parallel-dio")
    assert v[("xfs", 2)] == "not significant"  # -24%: significant, but within ±30%
    assert v[("fuse-passthrough", 4)] == "better"
    with pytest.raises(ConfigError, match="--threshold"):
        compare_runs([load_run(RUN_A)], threshold=5)


def test_reference_selection():
    a = load_run(RUN_A)
    c = compare_runs([a], reference="parallel-dio")
    assert c.reference == "parallel-dio"
    assert [(p.a, p.b, p.kind) for p in c.pairs] == [("parallel-dio", "baseline", "reference")]
    assert verdicts(c, "parallel-dio", "baseline")[("fuse-passthrough", 4)] == "worse"
    b = load_run(RUN_B)
    with pytest.raises(ConfigError, match="'baseline' is in several runs .* RUNID:baseline"):
        compare_runs([a, b], reference="baseline")
    with pytest.raises(ConfigError, match="no variant 'v9'"):
        compare_runs([a, b], reference="v9")
    v3 = compare_runs([a, b], reference="v3")  # its build failed: no fio figures
    assert v3.reference == "20261122-091500:v3" and all(not p.deltas for p in v3.points if
                                                         all(d.a == v3.reference for d in p.deltas))
    assert any(n.startswith("The reference 20261122-091500:v3 has no fio figures") for n in v3.notes)
    assert compare_runs([a, b], reference="20261122-091500:baseline").reference == "20261122-091500:baseline"
    with pytest.raises(ConfigError, match="given twice"):
        compare_runs([a, load_run(RUN_A)])


def test_two_runs_labels_pairs_and_same_name_deltas():
    c = compare_runs([load_run(RUN_A), load_run(RUN_B)])
    A, B = "20261121-220102", "20261122-091500"
    assert c.labels == [f"{A}:baseline", f"{A}:parallel-dio", f"{B}:baseline", f"{B}:parallel-dio", f"{B}:v3"]
    assert c.reference == f"{A}:baseline"
    assert [(p.a, p.b, p.kind) for p in c.pairs] == [
        (f"{A}:baseline", f"{A}:parallel-dio", "reference"),
        (f"{A}:baseline", f"{B}:baseline", "reference"),
        (f"{A}:baseline", f"{B}:parallel-dio", "reference"),
        (f"{A}:baseline", f"{B}:v3", "reference"),
        (f"{B}:baseline", f"{B}:parallel-dio", "in-run"),
        (f"{B}:baseline", f"{B}:v3", "in-run"),
        (f"{A}:parallel-dio", f"{B}:parallel-dio", "same-name")]
    # yesterday's parallel-dio against today's: nj2 fell from 44.6K to 31.8K
    d = next(p for p in c.points if p.testcase == "fio/fuse-passthrough/randwrite-4k-nj2").delta(
        f"{A}:parallel-dio", f"{B}:parallel-dio")
    assert d.verdict == "worse" and d.difference.change_pct == pytest.approx(
        ((38000 + 30500 + 27000) / 3 - (40703 + 47235 + 45995) / 3) / ((40703 + 47235 + 45995) / 3) * 100)
    # within run B, xfs nj1 is measured tightly enough to call it no change
    assert verdicts(c, f"{B}:baseline", f"{B}:parallel-dio")[("xfs", 1)] == "no change"
    # v3 failed to build: no fio points, its stages say why
    v3 = c.variant(f"{B}:v3")
    assert v3.stages == {"apply": "pass", "build": "fail", "boot": "skip", "storage": "skip"}
    assert v3.failed[0].name == "build" and "implicit declaration" in v3.failed[0].message
    assert all(f"{B}:v3" not in p.samples for p in c.points)


def test_patch_changes():
    P = Patch
    a = [P("fuse: one", "11"), P("fuse: two", "22"), P("fuse: three", "33"), P("fuse: four", "44")]
    b = [P("fuse: one", "11"), P("fuse: two", "2b"), P("fuse: 3 reworded", "33"), P("fuse: five", "55")]
    ch = patch_change("v1", "v2", a, b)
    assert [p.subject for p in ch.unchanged] == ["fuse: one"]
    assert [(r.subject, r.old_patch_id, r.patch_id) for r in ch.changed] == [("fuse: two", "22", "2b")]
    assert [(r.old_subject, r.subject) for r in ch.reworded] == [("fuse: three", "fuse: 3 reworded")]
    assert [p.subject for p in ch.added] == ["fuse: five"]
    assert [p.subject for p in ch.removed] == ["fuse: four"]
    assert not ch.same and patch_change("v1", "v1b", a, list(a)).same


def test_patch_changes_between_real_revisions():
    c = compare_runs([load_run(RUN_A), load_run(RUN_B)])
    A, B = "20261121-220102", "20261122-091500"
    by = {(ch.a, ch.b): ch for ch in c.patch_changes}
    first = by[(f"{A}:baseline", f"{A}:parallel-dio")]
    assert [p.patch_id[:12] for p in first.added] == ["d78d9af2bf54", "137de1b4f8e1"]
    rev = by[(f"{A}:parallel-dio", f"{B}:parallel-dio")]
    assert [(r.old_patch_id[:12], r.patch_id[:12]) for r in rev.changed] == [("137de1b4f8e1", "5e1f0c3a9b7d")]
    assert [r.subject for r in rev.reworded] == ["fuse: keep FOPEN_PARALLEL_DIRECT_WRITES on passthrough opens"]
    assert [p.subject for p in rev.added] == ["fuse: document parallel direct writes on passthrough files"]
    assert rev.removed == [] and rev.unchanged == []
    v3 = by[(f"{B}:parallel-dio", f"{B}:v3")]
    assert len(v3.unchanged) == 2 and [p.subject for p in v3.added] == ["fuse: drop the exclusive lock fallback"]
    # a reference without patches adds nothing to say beyond each variant's list
    assert (f"{A}:baseline", f"{B}:parallel-dio") not in by


def test_xfstests_deltas():
    c = compare_runs([load_run(RUN_A), load_run(RUN_B)])
    B = "20261122-091500"
    assert c.xfstests_counts == {"xfs": {
        f"{B}:baseline": {"passed": 3, "failed": 1, "skipped": 1, "errors": 0},
        f"{B}:parallel-dio": {"passed": 3, "failed": 1, "skipped": 1, "errors": 0}}}
    # run A has no xfstests: it is not compared (its tests would all look new)
    assert [(x.a, x.b) for x in c.xfstests] == [(f"{B}:baseline", f"{B}:parallel-dio")]
    x = c.xfstests[0]
    assert [(t.test, t.a, t.b) for t in x.new_failures] == [("generic/002", "pass", "fail")]
    assert x.new_failures[0].message.startswith("kernel splat: WARNING")
    assert [(t.test, t.a, t.b) for t in x.fixed] == [("generic/003", "fail", "pass")]
    assert [(t.test, t.a, t.b) for t in x.now_run] == [("generic/108", "skip", "pass")]
    assert [(t.test, t.a, t.b) for t in x.no_longer_run] == [("generic/013", "pass", "skip")]
    assert x.other == []


def test_xfstests_delta_classes():
    ta = {"g/1": ("fail", "a"), "g/2": ("pass", ""), "g/3": ("pass", ""), "g/5": ("error", "e")}
    tb = {"g/1": ("error", "b"), "g/3": ("skip", "why"), "g/4": ("fail", "new"), "g/5": ("skip", "")}
    x = xfstests_delta("xfs", "a", "b", "reference", ta, tb)
    assert [(t.test, t.a, t.b) for t in x.new_failures] == [("g/4", "missing", "fail")]
    assert [(t.test, t.a, t.b) for t in x.no_longer_run] == [
        ("g/2", "pass", "missing"), ("g/3", "pass", "skip"), ("g/5", "error", "skip")]
    assert [(t.test, t.a, t.b) for t in x.other] == [("g/1", "fail", "error")]
    assert x.fixed == [] and x.now_run == []


def test_regressions():
    assert regressions(compare_runs([load_run(RUN_A)])) == [
        ("parallel-dio", "fio/xfs/randwrite-4k-nj2",
         "IOPS -24.2% (95% CI -45.9% to -2.4%) against baseline: mean 52.6K -> 39.9K")]
    c = compare_runs([load_run(RUN_A), load_run(RUN_B)])
    B = "20261122-091500"
    got = {(r.variant, r.testcase) for r in regressions(c, run_id=B)}
    assert got == {(f"{B}:parallel-dio", "fio/fuse-passthrough/randwrite-4k-nj2"),
                   (f"{B}:parallel-dio", "xfstests/xfs/generic/002")}
    same = regressions(c, run_id=B, kinds=("same-name",))
    assert [(r.variant, r.testcase) for r in same] == [(f"{B}:parallel-dio", "fio/fuse-passthrough/randwrite-4k-nj2")]
    xfs = next(r for r in regressions(c) if r.testcase.startswith("xfstests/"))
    assert xfs.message == (f"fail ({B}:baseline: pass): kernel splat: WARNING: CPU: 1 PID: 812 at "
                           "fs/fuse/file.c:1423")


def test_reports_of_the_real_run(tmp_path):
    c = compare_runs([load_run(RUN_A)])
    paths = write_reports(c, tmp_path / "out")
    assert [p.name for p in paths] == ["report.md", "report.html", "report.json"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert ("| numjobs | baseline fuse-passthrough | parallel-dio fuse-passthrough | Δ fuse-passthrough "
            "| baseline xfs | parallel-dio xfs | Δ xfs |") in md
    assert "| 4 | 17.3K ±20.0K | 39.3K ±10.0K | +127% (better) | 36.1K ±20.5K | 28.3K ±17.4K | inconclusive |" in md
    assert "| 2 | 25.8K ±23.5K | 44.6K ±8.6K | inconclusive | 52.6K ±7.0K | 39.9K ±13.7K | -24% (worse) |" in md
    assert "mean IOPS of n=3 runs" in md and "Welch" in md and "±5%" in md
    assert "fuse: take the inode lock shared for parallel passthrough O_DIRECT writes (patch-id 137de1b4f8e1)" in md
    assert "No xfstests results" in md and "<" not in md  # no HTML
    html = (tmp_path / "out" / "report.html").read_text()
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pngs) == 2 and all(base64.b64decode(p).startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert not re.search(r'(src|href)="(?!data:)', html) and "<script" not in html
    assert "+127% (better)" in html and "-24% (worse)" in html
    text = (tmp_path / "out" / "report.json").read_text()
    data = json.loads(text)
    assert Comparison.from_dict(data).to_dict() == data
    assert data["fio"][2]["deltas"][0]["verdict"] == "better"
    assert data["regressions"] == [{"variant": "parallel-dio", "testcase": "fio/xfs/randwrite-4k-nj2",
                                    "message": regressions(c)[0].message}]
    assert not list((tmp_path / "out").glob(".*"))  # atomic writes leave no temporary file


def test_reports_of_two_runs_round_trip(tmp_path):
    c = compare_runs([load_run(RUN_A), load_run(RUN_B)])
    write_reports(c, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    back = Comparison.from_dict(data)
    assert back.to_dict() == data and back.labels == c.labels
    assert back.points[0].samples == c.points[0].samples
    md = (tmp_path / "report.md").read_text()
    assert "**fuse-passthrough**" in md  # one table per target: the labels are long
    assert "generic/002 (pass → fail)" in md and "no results (not compared)" in md
    assert ('reworded, same patch-id d78d9af2bf54: "fuse: keep FOPEN_PARALLEL_DIRECT_WRITES for '
            'passthrough opens" → "fuse: keep FOPEN_PARALLEL_DIRECT_WRITES on passthrough opens"') in md
    assert "- 20261122-091500:v3: `build` fail: fs/fuse/file.c:1431:9" in md


def test_single_repeat_points_are_inconclusive():
    run = load_run(RUN_A)
    for v in run.variants:
        for s in v.stages:
            if s.figures.get("iops_runs"):
                s.figures = {"iops": s.figures["iops"], "repeats": 1}
    c = compare_runs([run])
    assert set(verdicts(c, "baseline", "parallel-dio").values()) == {"inconclusive"}
    assert any("single run" in n for n in c.notes)


def test_compare_command(tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(RUN_A, results / "20261121-220102")
    assert cli.main(["compare", "20261121-220102", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    run_dir = results / "20261121-220102"
    assert out.splitlines()[:3] == [str(run_dir / n) for n in ("report.md", "report.html", "report.json")]
    assert "| 4 | 17.3K ±20.0K | 39.3K ±10.0K | +127% (better) |" in out
    assert "regression: parallel-dio fio/xfs/randwrite-4k-nj2" in out
    assert cli.main(["compare", str(RUN_A), str(RUN_B), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "report.html").is_file()
    capsys.readouterr()
    assert cli.main(["compare", "nope", "--results", str(results)]) == 1
    assert "no such run directory, nor a run id" in capsys.readouterr().err


def test_reports_of_one_variant(tmp_path):
    run = load_run(RUN_A)
    run.variants = run.variants[:1]
    c = compare_runs([run])
    assert c.pairs == [] and all(not p.deltas for p in c.points)
    write_reports(c, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# baseline\n") and "| 1 | 20.8K ±11.8K |" in md
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text()


def test_the_host_while_measuring_is_in_the_report(tmp_path):
    """A run whose fio points recorded the host (hoststate.figures): the
    comparison keeps it per variant and report.md sums it up per variant."""

    from kvariant.compare import compare_runs, load_run
    from kvariant.render.markdown import comparison_markdown

    run = tmp_path / "run-a"
    shutil.copytree(RUN_A, run)
    summary = json.loads((run / "summary.json").read_text())
    host = [{"host_steal_pct_runs": "0.5,12.5", "host_busy_pct_runs": "60,99.5", "host_load1_max": 2.1,
             "host_other_qemus_max": 1, "host_own_cpu_pct_max": 0.8, "measure_wait_s": 3.5},
            {"host_steal_pct_runs": "2,3", "host_busy_pct_runs": "70,80", "host_load1_max": 1.0,
             "host_other_qemus_max": 0, "host_own_cpu_pct_max": 1.2}]
    first = summary["variants"][0]
    points = [s for s in first["stages"] if s["name"].startswith("fio/") and "iops" in s["figures"]]
    for s, h in zip(points, host):
        s["figures"].update(h)
    (run / "summary.json").write_text(json.dumps(summary))
    c = compare_runs([load_run(run)])
    label = c.labels[0]
    assert [p.host[label]["host_steal_pct_runs"] for p in c.points if label in p.host][:2] == [[0.5, 12.5], [2, 3]]
    md = comparison_markdown(c)
    assert "## The host while measuring" in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {label} |") and "–" in line)
    assert [x.strip() for x in row.strip("|").split("|")] == [label, "4", "0.5–12.5", "60–99.5", "1", "1.2", "3.5"]
    assert all(not p.host for p in compare_runs([load_run(RUN_A)]).points)  # older runs: none


def _interleaved_run(tmp_path, runs: dict[tuple[str, str], list[int]], mark=True, normalise=True,
                     run_id=None):
    """RUN_A with the given runs per (variant, point), its fio points marked
    as measured in interleaved rounds (and as a run of [fio] normalise)."""
    run = tmp_path / "run"
    shutil.copytree(RUN_A, run)
    d = json.loads((run / "summary.json").read_text())
    d["run_id"] = run_id or d["run_id"]
    for v in d["variants"]:
        for s in v["stages"]:
            if (v["name"], s["name"]) in runs:
                s["figures"]["iops_runs"] = runs[(v["name"], s["name"])]
            if s["name"].startswith("fio/") and mark:
                s["figures"]["interleaved"] = True
            if s["name"].startswith("fio/") and mark and normalise:
                s["figures"]["normalise"] = True
    (run / "summary.json").write_text(json.dumps(d))
    return load_run(run)


def test_interleaved_points_are_judged_on_runs_normalised_by_the_control(tmp_path):
    """A guest whose runs swing together on the target and the control
    beside it: the raw runs cannot tell, the normalised ones can; the
    control itself is judged on its raw runs; a run without the mark
    (measured before rounds existed) keeps Welch on the raw runs."""
    fp, xfs = "fio/fuse-passthrough/randwrite-4k-nj2", "fio/xfs/randwrite-4k-nj2"
    runs = {("baseline", fp): [10_000, 20_000, 14_000], ("baseline", xfs): [20_000, 40_000, 28_000],
            ("parallel-dio", fp): [26_000, 13_000, 19_500], ("parallel-dio", xfs): [40_000, 20_000, 30_000]}
    c = compare_runs([_interleaved_run(tmp_path, runs)])
    point = next(p for p in c.points if (p.target, p.numjobs) == ("fuse-passthrough", 2))
    d = point.delta("baseline", "parallel-dio")
    assert d.method.startswith("normalised") and d.verdict == "better"
    assert d.difference.change_pct == pytest.approx(30.0, abs=0.01)  # 0.65 against 0.5 of the control
    assert point.control_runs["baseline"] == (20_000, 40_000, 28_000)
    control = next(p for p in c.points if (p.target, p.numjobs) == ("xfs", 2))
    assert control.delta("baseline", "parallel-dio").method == "Welch t on runs"
    raw = compare_runs([_interleaved_run(tmp_path / "raw", runs, mark=False)])
    d = next(p for p in raw.points if (p.target, p.numjobs) == ("fuse-passthrough", 2)).delta(
        "baseline", "parallel-dio")
    assert d.method == "Welch t on runs" and d.verdict == "inconclusive"
    again = Comparison.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again.points[1].delta("baseline", "parallel-dio").method.startswith("normalised")


def test_the_report_says_which_changes_are_normalised(tmp_path):
    runs = {("baseline", "fio/fuse-passthrough/randwrite-4k-nj2"): [10_000, 20_000, 14_000],
            ("baseline", "fio/xfs/randwrite-4k-nj2"): [20_000, 40_000, 28_000]}
    c = compare_runs([_interleaved_run(tmp_path, runs)])
    write_reports(c, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "measured in interleaved rounds (fuse-passthrough)" in md
    assert "interleaved rounds" not in _plain_report(tmp_path)


def _plain_report(tmp_path) -> str:
    c = compare_runs([load_run(RUN_A)])
    write_reports(c, tmp_path / "plain")
    return (tmp_path / "plain" / "report.md").read_text()


def test_several_guests_make_the_guests_the_units(tmp_path):
    """[fio] boots = 2: runs labelled by guest; the FUSE point is judged on
    the guests' mean log normalised runs, the control on the guests' means."""
    fp, xfs = "fio/fuse-passthrough/randwrite-4k-nj2", "fio/xfs/randwrite-4k-nj2"
    runs = {("baseline", fp): [10_000, 11_000, 20_000, 21_000],
            ("baseline", xfs): [20_000, 21_000, 40_000, 41_000],
            ("parallel-dio", fp): [15_000, 16_000, 31_000, 29_000],
            ("parallel-dio", xfs): [20_000, 21_000, 40_000, 39_000]}
    run = _interleaved_run(tmp_path, runs)
    for v in run.variants:
        for s in v.stages:
            if s.name in (fp, xfs):
                s.figures["iops_boots"] = [1, 1, 2, 2]
    c = compare_runs([run])
    point = next(p for p in c.points if (p.target, p.numjobs) == ("fuse-passthrough", 2))
    d = point.delta("baseline", "parallel-dio")
    assert d.method == "normalised by the control run beside each run, guests as the units"
    assert point.boots["baseline"] == (1, 1, 2, 2) and d.difference.df is not None
    control = next(p for p in c.points if (p.target, p.numjobs) == ("xfs", 2))
    assert control.delta("baseline", "parallel-dio").method == "ratio of the guests' means, guests as the units"
    assert Comparison.from_dict(json.loads(json.dumps(c.to_dict()))).points[1].boots == point.boots


def test_normalising_is_asked_for_by_the_run_or_by_compare(tmp_path):
    """Rounds without [fio] normalise: raw Welch, unless compare --normalise."""
    fp, xfs = "fio/fuse-passthrough/randwrite-4k-nj2", "fio/xfs/randwrite-4k-nj2"
    runs = {("baseline", fp): [10_000, 20_000, 14_000], ("baseline", xfs): [20_000, 40_000, 28_000],
            ("parallel-dio", fp): [26_000, 13_000, 19_500], ("parallel-dio", xfs): [40_000, 20_000, 30_000]}
    run = _interleaved_run(tmp_path, runs, normalise=False)

    def method(c):
        p = next(p for p in c.points if (p.target, p.numjobs) == ("fuse-passthrough", 2))
        return p.delta("baseline", "parallel-dio").method

    assert method(compare_runs([run])) == "Welch t on runs"
    assert method(compare_runs([run], normalise=True)).startswith("normalised")
    out = tmp_path / "cli"
    p = subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "compare", str(run.path),
                        "--normalise", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    methods = {d["method"] for x in json.loads((out / "report.json").read_text())["fio"]
               for d in x["deltas"] if x["target"] == "fuse-passthrough" and x["numjobs"] == 2}
    assert methods == {"normalised by the control run beside each run"}


def _together(run, rounds=(1, 2, 3), names="baseline,parallel-dio"):
    for v in run.variants:
        for s in v.stages:
            if s.name.startswith("fio/") and s.figures.get("iops") is not None:
                s.figures["together"] = names
                s.figures["iops_rounds"] = list(rounds)
    return run


def test_guests_up_together_are_paired_by_round(tmp_path):
    """Both variants' runs swing round by round (a drift of the host): the
    change of each pair is the same 1.3, so the paired interval is narrow
    and says better, where Welch on the same runs cannot tell; normalised
    pairing when the run asked for it; never paired across two runs."""
    fp = "fio/fuse-passthrough/randwrite-4k-nj2"
    runs = {("baseline", fp): [10_000, 20_000, 14_000],
            ("parallel-dio", fp): [13_100, 25_900, 18_300]}
    together = _together(_interleaved_run(tmp_path, runs, normalise=False))
    unpaired = next(p for p in compare_runs([together]).points
                    if (p.target, p.numjobs) == ("fuse-passthrough", 2)).delta("baseline", "parallel-dio")
    assert unpaired.method == "Welch t on runs"  # pairing is asked for (compare --paired)
    c = compare_runs([together], paired=True)
    point = next(p for p in c.points if (p.target, p.numjobs) == ("fuse-passthrough", 2))
    d = point.delta("baseline", "parallel-dio")
    assert d.method == "paired by round (guests up together), t on log ratios"
    assert d.verdict == "better" and d.difference.change_pct == pytest.approx(30.0, abs=0.5)
    assert d.difference.df == 2
    assert point.rounds["baseline"] == (f"{c.runs[0].run_id}:baseline,parallel-dio", (1, 2, 3))
    welch = compare_runs([_interleaved_run(tmp_path / "w", runs, normalise=False)])
    d = next(p for p in welch.points if (p.target, p.numjobs) == ("fuse-passthrough", 2)).delta(
        "baseline", "parallel-dio")
    assert d.method == "Welch t on runs" and d.verdict == "inconclusive"
    norm = compare_runs([_together(_interleaved_run(tmp_path / "n", runs))], paired=True)
    d = next(p for p in norm.points if (p.target, p.numjobs) == ("fuse-passthrough", 2)).delta(
        "baseline", "parallel-dio")
    assert d.method == "normalised by the control run, paired by round (guests up together), t on log ratios"
    # rounds that differ (one variant lost a run) are not paired
    odd = _together(_interleaved_run(tmp_path / "o", runs, normalise=False))
    for s in odd.variants[1].stages:
        if s.name == fp:
            s.figures["iops_rounds"] = [1, 2, 4]
    d = next(p for p in compare_runs([odd], paired=True).points
             if (p.target, p.numjobs) == ("fuse-passthrough", 2)).delta("baseline", "parallel-dio")
    assert d.method == "Welch t on runs"
    # two runs, each measured together: across them nothing is paired
    other = _together(_interleaved_run(tmp_path / "x", runs, normalise=False, run_id="20261122-000000"))
    both = compare_runs([_together(_interleaved_run(tmp_path / "y", runs, normalise=False)), other], paired=True)
    across = [d for p in both.points for d in p.deltas if d.a.split(":")[0] != d.b.split(":")[0]]
    assert across and all(not d.method.startswith("paired") for d in across)
    again = Comparison.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again.points[1].rounds == c.points[1].rounds
    write_reports(c, tmp_path / "out")
    assert "guests were up together (fuse-passthrough, xfs), their runs took turns round by round" in (
        tmp_path / "out" / "report.md").read_text()
    out = tmp_path / "cli"
    together.write(together.path)  # the figures of guests up together, on disk
    p = subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "compare", str(together.path),
                        "--paired", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert {d["method"] for x in json.loads((out / "report.json").read_text())["fio"] for d in x["deltas"]
            if x["target"] == "fuse-passthrough"} == {"paired by round (guests up together), t on log ratios"}
