"""fio argv builders and the JSON parser, on real fio 3.33 output."""
import pytest

from conftest import FIXTURES
from kvariant.config import FioConfig
from kvariant.pipeline.fio_workload import summarize_runs
from kvariant.workloads import fio, storage
from kvariant.config import NullBlkConfig


def test_parse_real_outputs():
    nj1 = fio.parse_fio_json((FIXTURES / "fio" / "xfs-randwrite-nj1.json").read_text())
    assert nj1.version == "fio-3.33" and nj1.error == 0 and nj1.numjobs == 1
    assert nj1.iops == pytest.approx(41155.6, abs=0.1)
    assert nj1.bw_kib == 164654
    assert nj1.p99_us == pytest.approx(2899.968)
    nj2 = fio.parse_fio_json((FIXTURES / "fio" / "xfs-randwrite-nj2.json").read_text())
    assert nj2.numjobs == 2 and nj2.iops == pytest.approx(35370.3, abs=0.1)
    pre = fio.parse_fio_json((FIXTURES / "fio" / "prefill.json").read_text())
    assert pre.jobname == "prefill" and pre.bw_kib == 544997


def test_parse_skips_warnings_before_json():
    text = "fio: some warning\n" + (FIXTURES / "fio" / "xfs-randwrite-nj1.json").read_text()
    assert fio.parse_fio_json(text).iops > 0
    with pytest.raises(ValueError):
        fio.parse_fio_json("fio: file:filesetup.c: No such file\n")


def test_job_shares_one_prefilled_file():
    cfg = FioConfig(numjobs=(1, 2), runtime=8, ramp_time=2)
    argv = fio.job_argv("/x/fio.dat", cfg, 2)
    for opt in ("--filename=/x/fio.dat", "--overwrite=1", "--rw=randwrite", "--bs=4k", "--direct=1",
                "--ioengine=libaio", "--iodepth=64", "--numjobs=2", "--group_reporting",
                "--time_based", "--runtime=8", "--ramp_time=2", "--output-format=json"):
        assert opt in argv
    assert fio.point_name(cfg, 2) == "randwrite-4k-nj2"
    pre = fio.prefill_argv("/x/fio.dat", cfg)
    assert "--rw=write" in pre and "--bs=1M" in pre and "--filename=/x/fio.dat" in pre


def test_summary_of_repeats_is_median_and_spread():
    runs = [fio.parse_fio_json((FIXTURES / "fio" / f).read_text())
            for f in ("xfs-randwrite-nj1.json", "xfs-randwrite-nj2.json", "xfs-randwrite-nj1.json")]
    s = summarize_runs(runs)
    assert s["iops"] == pytest.approx(41155.6, abs=0.1)
    assert s["iops_min"] == pytest.approx(35370.3, abs=0.1) and s["repeats"] == 3
    assert s["iops_runs"] == [41156, 35370, 41156]  # numbers; the JUnit writes them as text


def test_null_blk_script():
    script = storage.setup_script(NullBlkConfig(gb=4, bs=4096), cpus=2)
    assert "modprobe null_blk nr_devices=1 gb=4 bs=4096 memory_backed=1" in script
    assert "echo none > /sys/block/nullb0/queue/scheduler" in script
    assert "mkfs.xfs -f -q /dev/nullb0" in script and script.startswith("set -e")


def test_rounds_alternate_the_targets():
    from kvariant.pipeline.fio_workload import round_order
    names = ["fuse-passthrough", "xfs"]
    order = [t for rnd in (1, 2, 3) for t in round_order(names, rnd)]
    assert order == ["fuse-passthrough", "xfs", "xfs", "fuse-passthrough", "fuse-passthrough", "xfs"]
    assert names == ["fuse-passthrough", "xfs"]  # not reversed in place


def test_rounds_alternate_the_variants():
    from kvariant.pipeline.fio_workload import variant_order
    vs = ["a", "b", "c"]
    assert [variant_order(vs, r) for r in (1, 2, 3)] == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]
    assert vs == ["a", "b", "c"]


def test_witness_counts_add_up_over_runs():
    from kvariant.pipeline.fio_workload import add_counters
    one = {"server_write_requests": 0, "passthrough_opens_granted": 2, "fuse_protocol": "7.40",
           "passthrough_negotiated": True}
    two = add_counters(add_counters({}, one), {**one, "passthrough_opens_granted": 3,
                                               "fuse_protocol": "7.41"})
    assert two == {"server_write_requests": 0, "passthrough_opens_granted": 5,
                   "fuse_protocol": "7.41", "passthrough_negotiated": True}


def test_a_point_the_dead_guest_never_ran_is_left_to_be_skipped():
    """The guest died during another point's run: a point with no run is
    not recorded (the variant skips it, naming why); one with some of its
    runs is skipped with them; one with all its runs passes."""
    from types import SimpleNamespace

    from kvariant.config import FioConfig
    from kvariant.model import StageResult, Status
    from kvariant.pipeline.fio_workload import Point, finish_point
    from kvariant.workloads.fio import FioFigures

    recorded = []
    v = SimpleNamespace(config=SimpleNamespace(fio=FioConfig(repeat=2), vm=SimpleNamespace(cpus=2)),
                        gone="the kernel failed during fio/fuse-passthrough/randwrite-4k-nj2",
                        record=recorded.append)
    target = SimpleNamespace(name="xfs", policy=dict)
    run = FioFigures(version="fio-3.33", jobname="j", error=0, iops=1000.0, bw_kib=4000.0,
                     p99_us=10.0, iops_mean=1000.0, iops_stddev=1.0, runtime_ms=3000, numjobs=2)

    def point(runs):
        return Point(target, "/d", 2, StageResult("fio/xfs/randwrite-4k-nj2", Status.PASS),
                     runs=[run] * runs, boots=[1] * runs)

    finish_point(v, point(0))
    assert recorded == []
    finish_point(v, point(1))
    assert recorded[-1].status == Status.SKIP and "after 1 of 2 runs" in recorded[-1].message
    finish_point(v, point(2))
    assert recorded[-1].status == Status.PASS and recorded[-1].figures["repeats"] == 2


def test_the_traced_run_runs_while_its_target_is_mounted(monkeypatch, tmp_path):
    """With [fio] contention, each point's traced run comes after the
    measured runs and before the targets are stopped (unmounted): on a
    stopped FUSE target fio would write to the plain directory beneath."""
    import contextlib
    from types import SimpleNamespace

    from kvariant.config import FioConfig
    from kvariant.model import StageResult, Status
    from kvariant.pipeline import fio_workload
    from kvariant.workloads import contention

    events = []
    target = SimpleNamespace(name="fuse-passthrough", mounted=False)

    def set_up(v, name, boot, points, targets):
        target.mounted = True
        targets.append(target)
        points[(name, 2)] = fio_workload.Point(target, "/mnt", 2, StageResult("p", Status.PASS))

    def stop_targets(v, targets):
        target.mounted = False
        events.append("stop")

    def traced_run(guest, directory, cfg, numjobs, outdir, timeout):
        events.append(("traced", target.mounted))
        return {"contention_fuse_write_waits_per_s": 1.0}

    monkeypatch.setattr(fio_workload, "set_up", set_up)
    monkeypatch.setattr(fio_workload, "measure_rounds", lambda going, boot: events.append("measured"))
    monkeypatch.setattr(fio_workload, "stop_targets", stop_targets)
    monkeypatch.setattr(fio_workload, "finish_point",
                        lambda v, p, together="": events.append(("finished", p.counters)))
    monkeypatch.setattr(contention, "traced_run", traced_run)

    class Variant(SimpleNamespace):  # a variant's run: the workload keys its points by it
        __hash__ = object.__hash__

    v = Variant(config=SimpleNamespace(fio=FioConfig(targets=("fuse-passthrough",), numjobs=(2,),
                                                             contention=True),
                                               timeouts=SimpleNamespace(fio=None)),
                        gone="", vm=SimpleNamespace(guest=None), dir=tmp_path,
                        measuring=lambda *a, **k: contextlib.nullcontext())
    fio_workload.run_fio([v])
    assert events == ["measured", ("traced", True), "stop",
                      ("finished", {"contention_fuse_write_waits_per_s": 1.0})]
