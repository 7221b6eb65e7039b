"""calibrate: A/A noise and false calls, and power, from runs on disk
(summaries written and read back through RunSummary; figures checked
against values computed here independently, with numpy and scipy)."""
import dataclasses
import itertools
import json
import math
import shlex
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sp

from conftest import PROJECT
from kvariant import calibrate as cal
from kvariant.render import calibration as calwords
from kvariant.errors import ConfigError
from kvariant.model import StageResult, Status, VariantInfo, VariantResult
from kvariant.summary import RunSummary

A_COMMIT, B_COMMIT = "a" * 40, "b" * 40
SETUP = {"accel": "tcg", "fio.bs": "4k", "fio.runtime": 6}
POINT = "fio/fuse-passthrough/randwrite-4k-nj2"


def variant(name, commit, points, boot_s=30.0, storage_s=2.0, point_s=24.0):
    """A variant whose guest measured *points* (stage name -> runs)."""
    stages = [StageResult("boot", Status.PASS, boot_s), StageResult("storage", Status.PASS, storage_s)]
    for point, runs in points.items():
        stages.append(StageResult(point, Status.PASS, point_s, figures={
            "iops": float(np.mean(runs)), "iops_runs": ",".join(f"{x:g}" for x in runs),
            "repeats": len(runs)}, suite="fio"))
    return VariantResult(name, stages, VariantInfo(commit=commit, base="v7.2.13"))


def write_run(root, run_id, variants, setup=SETUP):
    """RunSummary written to ROOT/RUN_ID and loaded back, as compare loads it."""
    d = root / run_id
    d.mkdir()
    RunSummary(run_id=run_id, variants=variants, setup=dict(setup), finished=True).write(d)
    return d


def load(*dirs):
    return [RunSummary.load(d) for d in dirs]


# Four guests of one kernel in two runs; guest (r2, b) ran fast.
BOOTS = {("r1", "a"): [100, 104, 96], ("r1", "b"): [101, 99, 103],
         ("r2", "a"): [98, 102, 100], ("r2", "b"): [150, 154, 146]}


@pytest.fixture
def aa_runs(tmp_path):
    dirs = []
    for run in ("r1", "r2"):
        dirs.append(write_run(tmp_path, run, [variant(v, A_COMMIT, {POINT: BOOTS[run, v]})
                                              for v in ("a", "b")]))
    return dirs


def welch_word(a, b, threshold=0.05):
    """Today's verdict by scipy: Welch's interval of mean(b) - mean(a) in % of mean(a)."""
    ci = sp.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    lo, hi = ci.low / np.mean(a) * 100, ci.high / np.mean(a) * 100
    c = (np.mean(b) - np.mean(a)) / np.mean(a) * 100
    if (lo > 0 or hi < 0) and abs(c) > threshold * 100:
        return "better" if c > 0 else "worse"
    return "not called"


def clopper_pearson(k, n):
    lo = 0.0 if k == 0 else sp.beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else sp.beta.ppf(0.975, k + 1, n - k)
    return lo, hi


def test_aa_components_costs_and_repetitions_by_hand(aa_runs):
    c = cal.calibrate(load(*aa_runs))
    assert c.mode == cal.AA and [k.label for k in c.kernels] == ["a"]
    (p,) = c.points
    (n,) = p.noise
    groups = np.array(list(BOOTS.values()), dtype=float)
    mean = groups.mean()
    msw = ((groups - groups.mean(axis=1, keepdims=True)) ** 2).sum() / (12 - 4)
    msb = 3 * ((groups.mean(axis=1) - mean) ** 2).sum() / 3
    boot_var = (msb - msw) / 3
    assert n.boots == 4 and n.runs == 12
    assert n.run_cv == pytest.approx(math.sqrt(msw) / mean)
    assert n.boot_cv == pytest.approx(math.sqrt(boot_var) / mean)
    lo, hi = n.run_cv_ci
    assert lo == pytest.approx(math.sqrt(8 * msw / sp.chi2.ppf(0.975, 8)) / mean)
    assert hi == pytest.approx(math.sqrt(8 * msw / sp.chi2.ppf(0.025, 8)) / mean)
    assert lo < n.run_cv < hi
    flat = groups.ravel()
    assert n.spread == pytest.approx((flat.max() - flat.min()) / np.median(flat))
    # a boot costs its boot and storage stages, a run the point's seconds over its repeats
    assert n.boot_seconds == 32.0 and n.run_seconds == 8.0
    assert n.optimal_runs == math.ceil(math.sqrt(32 / 8 * msw / boot_var))


def boots_for(rel_var, half_width=0.15):
    """Independently: the least b with t(2b-2) sqrt(2 V / b) <= half_width."""
    return next(b for b in range(2, 201)
                if sp.t.ppf(0.975, 2 * b - 2) * math.sqrt(2 * rel_var / b) <= half_width)


def test_aa_boots_needed_for_15_percent(aa_runs):
    (n,) = cal.calibrate(load(*aa_runs)).points[0].noise
    run_var = (n.run_cv * n.mean) ** 2
    boot_var = (n.boot_cv * n.mean) ** 2
    assert n.boots_needed_now == boots_for((boot_var + run_var / 3) / n.mean ** 2)
    assert n.boots_needed_optimal == boots_for((boot_var + run_var / n.optimal_runs) / n.mean ** 2)


def test_aa_false_calls_over_every_pair_of_boots(aa_runs):
    c = cal.calibrate(load(*aa_runs))
    (p,) = c.points
    boots = list(BOOTS.values())
    words = [welch_word(a, b) for a, b in itertools.combinations(boots, 2)]
    k = len(words) - words.count("not called")
    assert p.pairs == 6 == len(words) and k == 3  # the fast guest against each of the others
    assert (p.today.called.k, p.today.called.n) == (k, 6)
    assert (p.today.called.ci_low, p.today.called.ci_high) == pytest.approx(clopper_pearson(k, 6))
    # the two-level verdict, each run a unit: Welch on log runs, in % of A
    two = 0
    for a, b in itertools.combinations(boots, 2):
        la, lb = np.log(a), np.log(b)
        ci = sp.ttest_ind(lb, la, equal_var=False).confidence_interval(0.95)
        lo, hi = np.expm1(ci.low) * 100, np.expm1(ci.high) * 100
        change = (np.exp(lb.mean() - la.mean()) - 1) * 100
        two += (lo > 0 or hi < 0) and abs(change) > 5
    assert p.twolevel.called.k == two == 3
    assert c.today.called.n == 6 and c.twolevel.called.n == 6


def test_power_counts_better_per_point(tmp_path):
    fuse, xfs = POINT, "fio/xfs/randwrite-4k-nj2"
    dirs = []
    for i, (base, series) in enumerate([(100, 200), (110, 150), (90, 95)]):
        dirs.append(write_run(tmp_path, f"r{i}", [
            variant("baseline", A_COMMIT, {fuse: [base, base + 2, base - 2], xfs: [300, 305, 295]}),
            variant("parallel-dio", B_COMMIT, {fuse: [series, series + 3, series - 3],
                                               xfs: [301, 296, 304]})]))
    c = cal.calibrate(load(*dirs))
    assert c.mode == cal.POWER and [k.label for k in c.kernels] == ["baseline", "parallel-dio"]
    by = {p.label: p for p in c.points}
    f = by["fuse-passthrough nj2"]
    series = {0: 200, 1: 150, 2: 95}
    words = [welch_word([b, b + 2, b - 2], [s, s + 3, s - 3])
             for b in (100, 110, 90) for s in series.values()]
    # 110 -> 95 is worse; 100 -> 95 and 90 -> 95 are not called (small, or not shown)
    assert f.pairs == 9 and f.today.better.k == words.count("better") == 6
    assert f.today.worse.k == words.count("worse") == 1 and f.today.better.rate == pytest.approx(6 / 9)
    x = by["xfs nj2"]
    assert x.today.better.k == x.today.worse.k == 0
    assert len(f.noise) == 2 and {n.kernel for n in f.noise} == {"baseline", "parallel-dio"}
    assert "power calibration" in " ".join(c.notes)
    assert "## Variance components" in calwords.markdown(c) and "| better | worse |" in calwords.markdown(c)


def test_a_variant_without_a_commit_is_named_and_three_kernels_are_refused(tmp_path):
    d = write_run(tmp_path, "r1", [variant("a", A_COMMIT, {POINT: [1, 2, 3]}),
                                   variant("b", "", {POINT: [1, 2, 3]})])
    c = cal.calibrate(load(d))
    assert c.mode == cal.POWER and any("r1:b records no commit" in n for n in c.notes)
    d2 = write_run(tmp_path, "r2", [variant("a", A_COMMIT, {POINT: [1, 2, 3]}),
                                    variant("c", B_COMMIT, {POINT: [1, 2, 3]})])
    with pytest.raises(ConfigError, match="expected one kernel .A/A. or two .power., got 3"):
        cal.calibrate(load(d, d2))


def test_bad_input_is_refused(tmp_path, aa_runs):
    one = write_run(tmp_path, "one", [variant("a", A_COMMIT, {POINT: [1, 2, 3]})])
    with pytest.raises(ConfigError, match="variants: expected at least two variants .*got a$"):
        cal.calibrate(load(one))
    other = write_run(tmp_path, "other", [variant(v, A_COMMIT, {POINT: [1, 2, 3]}) for v in "ab"],
                      setup={**SETUP, "fio.bs": "64k"})
    with pytest.raises(ConfigError, match=r"setups differ \(fio.bs: 4k in r1, 64k in other\); --force"):
        cal.calibrate(load(aa_runs[0], other))
    forced = cal.calibrate(load(aa_runs[0], other), force=True)
    assert forced.forced and forced.setup_differences == ("fio.bs: 4k in r1, 64k in other",)
    with pytest.raises(ConfigError, match="the same run is given twice"):
        cal.calibrate(load(aa_runs[0], aa_runs[0]))
    none = write_run(tmp_path, "none", [variant(v, A_COMMIT, {}) for v in "ab"])
    with pytest.raises(ConfigError, match="no fio point was measured by two boots"):
        cal.calibrate(load(none))


# The command line


def run_cli(*args):
    return subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "calibrate", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def one_line(p, code, *needles):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_cli_writes_both_files_and_prints_the_table(aa_runs, tmp_path):
    out = tmp_path / "out"
    p = run_cli(*aa_runs, "--out", out, "--threshold", "10%")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == [str(out / "calibrate.md"), str(out / "calibrate.json")]
    assert "A/A over 2 run(s), threshold ±10%" in p.stdout
    data = json.loads((out / "calibrate.json").read_text())
    assert data["mode"] == "A/A" and data["threshold"] == 0.1 and data["points"][0]["pairs"] == 6
    md = (out / "calibrate.md").read_text()
    assert md.startswith("# Calibration (A/A") and "| fuse-passthrough nj2 | a | 4 | 12 |" in md
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temporary file left
    # several runs without --out: calibrate-<the others' ids>/ in the last one
    assert run_cli(*aa_runs).returncode == 0
    assert (aa_runs[1] / "calibrate-r1" / "calibrate.json").is_file()


def test_cli_errors_are_one_line(aa_runs, tmp_path):
    one = write_run(tmp_path, "one", [variant("a", A_COMMIT, {POINT: [1, 2, 3]})])
    one_line(run_cli(one), 1, f"{one / 'summary.json'}: variants: expected at least two variants")
    other = write_run(tmp_path, "other", [variant(v, A_COMMIT, {POINT: [1, 2, 3]}) for v in "ab"],
                      setup={**SETUP, "accel": "kvm"})
    one_line(run_cli(aa_runs[0], other), 1, "accel: tcg in r1, kvm in other", "--force")
    assert run_cli(aa_runs[0], other, "--force", "--out", tmp_path / "f").returncode == 0
    one_line(run_cli(tmp_path / "nowhere"), 1, "no such run directory")
    one_line(run_cli(aa_runs[0], "--threshold", "2"), 1, "expected a fraction between 0 and 1")
    one_line(run_cli(aa_runs[0], "--out", "/sys/kvariant-calibrate"), 3,
             "/sys/kvariant-calibrate: cannot write the calibration")


# The benchmark scripts (dry runs only: a real one takes hours of VM time)


@pytest.mark.parametrize("script, config, prefix", [("aa.sh", "benchmarks/aa.toml", "aa"),
                                                    ("power.sh", "pipeline.toml", "power")])
def test_benchmark_scripts_print_commands_the_cli_takes(tmp_path, script, config, prefix):
    from kvariant import config as config_mod
    from kvariant.cli import parser
    path = PROJECT / "benchmarks" / script
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    p = subprocess.run([str(path), "-n", "-k", "2", "-t", "0.1", "out"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    commands = [shlex.split(line[2:]) for line in p.stdout.splitlines() if line.startswith("+ ")]
    results = tmp_path / "out"
    assert [c[:2] for c in commands] == [["./pipeline.py", "run"]] * 2 + [["./pipeline.py", "calibrate"]]
    args = [parser().parse_args(c[1:]) for c in commands]
    assert [a.run_id for a in args[:2]] == [f"{prefix}-1", f"{prefix}-2"]
    assert {str(a.results) for a in args[:2]} == {str(results)} and not results.exists()
    assert {str(a.config) for a in args[:2]} == {config}
    assert args[2].runs == [f"{results}/{prefix}-1", f"{results}/{prefix}-2"]
    assert args[2].threshold == 0.1 and args[2].out == results
    cfg = config_mod.load(PROJECT / config)
    assert cfg.fio.targets == ("fuse-passthrough", "xfs") and 1 in cfg.fio.numjobs and 2 in cfg.fio.numjobs


def test_aa_config_is_one_kernel_as_four_variants():
    from kvariant import config as config_mod
    aa, default = config_mod.load(PROJECT / "benchmarks/aa.toml"), config_mod.load(PROJECT / "pipeline.toml")
    assert [v.name for v in aa.variants] == ["a", "b", "c", "d"]
    assert all(not v.patches for v in aa.variants) and aa.kernel.base == default.kernel.base
    assert aa.fio.numjobs == (1, 2)
    assert dataclasses.replace(aa.fio, numjobs=default.fio.numjobs) == default.fio  # the default job


@pytest.mark.parametrize("args, needle", [(["-k", "0"], "-k: expected a number of runs >= 1"),
                                          (["-k", "x"], "-k: expected a number"),
                                          (["-n", "a", "b"], "expected at most one RESULTS-DIR"),
                                          (["-z"], "usage:")])
def test_benchmark_scripts_refuse_bad_arguments(args, needle):
    p = subprocess.run([str(PROJECT / "benchmarks" / "aa.sh"), *args], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1 and needle in p.stderr and not p.stdout


def test_a_variant_that_measured_nothing_is_left_out_and_said(tmp_path, aa_runs):
    broken = VariantResult("c", [StageResult("build", Status.FAIL, 3.0, "make: exit code 2")])
    d = write_run(tmp_path, "r3", [variant("a", A_COMMIT, {POINT: [99, 101, 100]}), broken])
    c = cal.calibrate(load(*aa_runs, d))
    assert c.mode == cal.AA and c.kernels[0].variants[-1] == "r3:a"
    assert "r3:c measured no fio point (fail): left out" in c.notes
    assert c.points[0].pairs == 10  # five guests


def test_interleaved_boots_are_also_judged_normalised(tmp_path):
    """A/A with a fast guest (r2, b): on raw runs a false call, on runs
    normalised by the control beside them (fast on both) none; the
    normalised components are those of target / control, computed here."""
    ctrl = POINT.replace("fuse-passthrough", "xfs")
    dirs = []
    for run in ("r1", "r2"):
        vs = []
        for v in ("a", "b"):
            t = BOOTS[run, v]
            c = [2 * x * (1 + 0.01 * i) for i, x in enumerate(t)]  # the control, beside each run
            var = variant(v, A_COMMIT, {POINT: t, ctrl: c})
            for s in var.stages:
                if s.name.startswith("fio/"):
                    s.figures["interleaved"] = True
            vs.append(var)
        dirs.append(write_run(tmp_path, run, vs))
    c = cal.calibrate(load(*dirs))
    p = next(x for x in c.points if x.target == "fuse-passthrough")
    assert p.today.called.k >= 1 and p.normalised.called.k == 0 and p.normalised.called.n == 6
    assert next(x for x in c.points if x.target == "xfs").normalised is None  # the control itself
    ratios = [[x / (2 * x * (1 + 0.01 * i)) for i, x in enumerate(BOOTS[k])] for k in BOOTS]
    within = np.mean([np.var(r, ddof=1) for r in ratios])
    assert p.noise_normalised[0].run_cv == pytest.approx(math.sqrt(within) / np.mean(ratios))
    assert any(r[1] == "a, normalised" and r[4] == f"{np.mean(ratios):.2f} of xfs"
               for r in calwords.noise_rows(c))
    assert c.normalised.called.n == 6


def test_aa_power_script_calibrates_the_pair_and_the_series(tmp_path):
    from kvariant import config as config_mod
    from kvariant.cli import parser
    path = PROJECT / "benchmarks" / "aa-power.sh"
    p = subprocess.run([str(path), "-n", "-k", "2", "out"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    commands = [shlex.split(line[2:]) for line in p.stdout.splitlines() if line.startswith("+ ")]
    args = [parser().parse_args(c[1:]) for c in commands]
    assert [a.command for a in args] == ["run", "run", "calibrate", "calibrate"]
    results = tmp_path / "out"
    assert args[2].variants == ["a", "b", "c", "d"] and args[2].out == results / "aa"
    assert args[3].variants is None and args[3].out == results / "power"
    assert args[2].runs == args[3].runs == [f"{results}/aap-1", f"{results}/aap-2"]
    cfg = config_mod.load(PROJECT / "benchmarks/aa-power.toml")
    assert [(v.name, bool(v.patches)) for v in cfg.variants] == [
        ("a", False), ("b", False), ("c", False), ("d", False), ("parallel-dio", True)]
    default = config_mod.load(PROJECT / "pipeline.toml")
    assert dataclasses.replace(cfg.fio, numjobs=default.fio.numjobs) == default.fio


def test_cli_variants_picks_the_aa_pair_of_a_power_run(tmp_path):
    d = write_run(tmp_path, "mixed", [variant("a", A_COMMIT, {POINT: [100, 104, 96]}),
                                      variant("b", A_COMMIT, {POINT: [101, 99, 103]}),
                                      variant("p", B_COMMIT, {POINT: [150, 154, 146]})])
    p = run_cli(d, "--variants", "a,b", "--out", tmp_path / "aa")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "aa" / "calibrate.json").read_text())["mode"] == "A/A"
    one_line(run_cli(d, "--variants", "a,zz", "--out", tmp_path / "x"), 1,
             "--variants", "expected variants of the runs (a, b, p), got zz")


def test_each_guest_of_a_variant_is_a_boot(tmp_path):
    """[fio] boots = 2: a variant's runs at a point split by guest; two
    variants of one kernel make four boots, six pairs."""
    vs = [variant(v, A_COMMIT, {POINT: [100, 104, 96, 120, 118, 122]}) for v in "ab"]
    for v in vs:
        v.stages[-1].figures["iops_boots"] = [1, 1, 1, 2, 2, 2]
    c = cal.calibrate(load(write_run(tmp_path, "g", vs)))
    assert c.kernels[0].variants == ("g:a", "g:b") and c.points[0].pairs == 6
    assert c.points[0].noise[0].boots == 4 and c.points[0].noise[0].boot_cv > 0.05


def test_guests_up_together_are_calibrated_paired_by_round(tmp_path):
    """Two runs of a and b measured together: the paired verdict is given
    for the two pairs within a run, not for the pairs across runs; each
    pair's rounds swing together, so the paired calls are none where the
    raw runs are too noisy to tell either."""
    def run(name, shift):
        vs = [variant(v, A_COMMIT, {POINT: [x * k for x in (100, 150, 80)]})
              for v, k in (("a", shift), ("b", shift * 1.01))]
        for v in vs:
            v.stages[-1].figures.update(together="a,b", iops_rounds=[1, 2, 3])
        return write_run(tmp_path, name, vs)

    c = cal.calibrate(load(run("r1", 1.0), run("r2", 1.3)))
    p = c.points[0]
    assert p.pairs == 6 and p.paired.called.n == 2 and p.paired.called.k == 0
    assert p.paired.median_half_width_pct < 5
    assert c.paired.method == cal.PAIRED and c.paired_normalised is None
    assert cal.calibrate(load(run("r3", 1.0))).points[0].paired.called.n == 1


def test_p99_latency_is_a_second_paired_signal(tmp_path):
    """b's runs have a quarter of a's p99 latency, round by round: called
    better on latency, in every pair of guests up together."""
    vs = [variant(v, A_COMMIT, {POINT: [100, 101, 99]}) for v in "ab"]
    for v, p99 in zip(vs, ([170_000, 180_000, 160_000], [41_000, 46_000, 39_000])):
        v.stages[-1].figures.update(together="a,b", iops_rounds=[1, 2, 3], clat_p99_us_runs=p99)
    c = cal.calibrate(load(write_run(tmp_path, "lat", vs)))
    assert c.paired_p99.method == cal.PAIRED_P99
    assert (c.paired_p99.better.k, c.paired_p99.called.n) == (1, 1)


def test_rounds_in_a_burst_can_be_left_out(tmp_path):
    """Round 2 ran while the host's steal time was 30%: b's run then was
    slow; without that round a and b agree; a pair with fewer than 2 quiet
    rounds has no quiet verdict."""
    vs = [variant("a", A_COMMIT, {POINT: [100, 100, 101, 99]}), variant("b", A_COMMIT, {POINT: [100, 40, 100, 100]})]
    for v in vs:
        v.stages[-1].figures.update(together="a,b", iops_rounds=[1, 2, 3, 4],
                                    host_steal_pct_runs=[1.0, 30.0, 2.0, 0.5])
    c = cal.calibrate(load(write_run(tmp_path, "burst", vs)))
    assert c.paired_quiet.method == cal.PAIRED_QUIET and c.paired_quiet.called.k == 0
    assert c.paired_quiet.median_half_width_pct < 5 < c.paired.median_half_width_pct
    for v in vs:
        v.stages[-1].figures["host_steal_pct_runs"] = [20.0, 30.0, 2.0, 40.0]
    assert cal.calibrate(load(write_run(tmp_path, "loud", vs))).paired_quiet is None
