"""The cover-letter table and the passthrough proof, as pure functions."""
from kvariant.compare import change, cover_letter_table, fmt_iops
from kvariant.config import FuseConfig
from kvariant.model import StageResult, Status, VariantResult
from kvariant.workloads.targets import make_target


def point(target, nj, iops, lo=None, hi=None, repeats=3):
    return StageResult(f"fio/{target}/randwrite-4k-nj{nj}", Status.PASS, suite=f"fio.{target}",
                       figures={"iops": iops, "iops_min": lo or iops, "iops_max": hi or iops,
                                "repeats": repeats})


def test_table_rows_columns_and_change():
    base = VariantResult("baseline", stages=[
        point("fuse-passthrough", 1, 53000, 52000, 54000), point("fuse-passthrough", 2, 53000, 51000, 55000),
        point("xfs", 1, 82000, 81000, 83000), point("xfs", 2, 82000, 80000, 84000)])
    patched = VariantResult("parallel-dio", stages=[
        point("fuse-passthrough", 1, 54000, 52500, 56000), point("fuse-passthrough", 2, 70000, 68000, 72000),
        point("xfs", 1, 82500, 81000, 84000), point("xfs", 2, 84000, 82000, 86000)])
    lines = cover_letter_table([base, patched], ["fuse-passthrough", "xfs"]).splitlines()
    assert lines[0] == ("| numjobs | baseline fuse-passthrough | parallel-dio fuse-passthrough | "
                        "Δ fuse-passthrough | baseline xfs | parallel-dio xfs | Δ xfs |")
    nj1, nj2 = lines[2], lines[3]
    assert nj2.startswith("| 2 | 53.0K ±2.0K | 70.0K ±2.0K | +32.1% |")
    assert "+1.9% ~" in nj1  # overlapping ranges: not a win
    assert nj2.endswith("| 82.0K ±2.0K | 84.0K ±2.0K | +2.4% ~ |")


def test_single_runs_are_never_significant():
    assert change({"iops": 100.0}, {"iops": 200.0}).endswith("~")
    assert fmt_iops(1_707_000) == "1.71M" and fmt_iops(470_000) == "470.0K" and fmt_iops(999) == "999"


def test_missing_points_and_empty():
    base = VariantResult("baseline", stages=[point("xfs", 1, 1000, repeats=1)])
    broken = VariantResult("broken", stages=[StageResult("build", Status.FAIL)])
    assert "| 1 | 1.0K | - | - |" in cover_letter_table([base, broken])
    assert cover_letter_table([broken]) == ""


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
