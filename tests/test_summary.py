"""summary.json through RunSummary: what the current release wrote loads,
what RunSummary writes loads back the same, and the per-repeat IOPS have
one parser."""
import json
import shutil

import pytest

from conftest import FIXTURES
from kvariant.model import BootInfo, BuildInfo, VariantInfo, VariantResult
from kvariant.summary import SCHEMA, RunSummary, repeat_iops

RUNS = FIXTURES / "runs"


@pytest.mark.parametrize("name", ["run-a", "run-b"])
def test_a_summary_of_the_current_release_loads_and_writes_back(tmp_path, name):
    before = RunSummary.load(RUNS / name)
    raw = json.loads((RUNS / name / "summary.json").read_text())
    assert "schema" not in raw and before.run_id == raw["run_id"] and before.finished is True
    assert before.accel.name == "tcg" and [v.name for v in before.variants] == [v["name"] for v in raw["variants"]]
    shutil.copytree(RUNS / name, tmp_path / name)
    before.write(tmp_path / name)
    written = json.loads((tmp_path / name / "summary.json").read_text())
    assert written["schema"] == SCHEMA
    # every key the release wrote is written again with the same value, but
    # those that follow from the stages (the fixtures were trimmed by hand)
    assert holds(written, raw, skip=("status", "xfstests"))
    after = RunSummary.load(tmp_path / name)
    assert after.to_dict() == before.to_dict()


def holds(new, old, skip=()):
    """Every key of *old* is in *new* with the same value, recursively."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and holds(new[k], v, skip)
                                             for k, v in old.items() if k not in skip)
    if isinstance(old, list) and old and isinstance(old[0], dict):
        return len(new) == len(old) and all(holds(n, o, skip) for n, o in zip(new, old))
    return new == old


def test_a_summary_that_does_not_say_whether_it_finished(tmp_path):
    shutil.copytree(RUNS / "run-a", tmp_path / "r")
    data = json.loads((tmp_path / "r" / "summary.json").read_text())
    del data["finished"], data["accel"]
    (tmp_path / "r" / "summary.json").write_text(json.dumps(data))
    s = RunSummary.load(tmp_path / "r")
    assert s.finished is None and s.accel.name == "?"


def test_repeat_iops_reads_the_junit_text_and_a_list():
    assert repeat_iops("25240,15800, 21382") == [25240.0, 15800.0, 21382.0]
    assert repeat_iops([1, 2.5]) == [1.0, 2.5]
    for bad in ("1,,2", "a", [True], ["1"], 5):
        with pytest.raises((TypeError, ValueError)):
            repeat_iops(bad)


def test_the_repeats_are_numbers_in_memory_and_the_junit_text_on_disk(tmp_path):
    raw = json.loads((RUNS / "run-a" / "summary.json").read_text())
    text = {s["name"]: s["figures"]["iops_runs"] for v in raw["variants"] for s in v["stages"]
            if "iops_runs" in s.get("figures", {})}
    assert text and all(isinstance(t, str) for t in text.values())
    run = RunSummary.load(RUNS / "run-a")
    loaded = {s.name: s.figures["iops_runs"] for v in run.variants for s in v.stages
              if "iops_runs" in s.figures}
    assert loaded == {name: [float(x) for x in t.split(",")] for name, t in text.items()}
    run.variants[0].stages[-1].figures["iops_runs"] = [25240, 15800.5, 21382.0]
    run.write(tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["variants"][0]["stages"][-1]["figures"]["iops_runs"] == "25240,15800.5,21382"
    again = RunSummary.load(tmp_path)
    assert again.variants[0].stages[-1].figures["iops_runs"] == [25240.0, 15800.5, 21382.0]


@pytest.mark.parametrize("name", ["run-a", "run-b"])
def test_the_info_of_each_variant_loads_typed_and_writes_back_as_it_was(tmp_path, name):
    raw = json.loads((RUNS / name / "summary.json").read_text())
    run = RunSummary.load(RUNS / name)
    for v, d in zip(run.variants, raw["variants"]):
        assert json.dumps(v.info.to_dict()) == json.dumps(d["info"])  # the same keys, in their order
        assert (v.info.base, v.info.commit) == (d["info"]["base"], d["info"]["commit"])
        assert v.info.boot.accel == "tcg" and v.info.patches == d["info"]["patches"]
        assert v.info.build.build_reused == d["info"].get("build_reused")
    run.write(tmp_path)
    once = (tmp_path / "summary.json").read_bytes()
    RunSummary.load(tmp_path).write(tmp_path)
    assert (tmp_path / "summary.json").read_bytes() == once  # load + write changes nothing


def test_a_run_writes_the_info_in_the_order_it_records_it():
    info = VariantInfo(base="v7.2.13", base_commit="4a20", commit="35b4", patches=[],
                       build=BuildInfo("7.2.13+", "/k", "/b", 12.5, False, "gcc 14"),
                       boot=BootInfo(1, "vng --run /k", 2222, "tcg", "accel = tcg"),
                       xfstests_fuse_policy="passthrough", complete=True)
    assert list(info.to_dict()) == [
        "base", "base_commit", "commit", "patches", "kernel_release", "kernel_dir", "build_dir",
        "build_seconds", "build_reused", "toolchain", "boot_attempts", "vng", "ssh_port", "accel",
        "accel_reason", "xfstests_fuse_policy", "complete"]
    assert VariantInfo.from_dict(info.to_dict()) == info
    assert VariantInfo(base="v1").to_dict() == {"base": "v1"}  # what was not recorded is not written


def test_an_info_of_older_or_newer_kvariant_loads_and_keeps_what_it_does_not_know():
    d = {"accel": "kvm", "future_key": {"x": [1]}, "commit": "abc", "build": "a key of that name"}
    info = VariantInfo.from_dict(d)
    assert info.boot.accel == "kvm" and info.commit == "abc" and info.build == BuildInfo()
    assert info.extra == {"future_key": {"x": [1]}, "build": "a key of that name"}
    assert json.dumps(info.to_dict()) == json.dumps(d)
    assert VariantInfo.from_dict({}) == VariantInfo() and VariantResult.from_dict({"name": "a"}).info == VariantInfo()


def test_the_reports_name_the_fuse_server_of_each_variant(tmp_path, small_tree):
    from kvariant import config
    from kvariant.summary import fio_setup
    conf = tmp_path / "p.toml"
    text = f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n[[variant]]\nname = "ours"\n'
    conf.write_text(text)
    assert "FUSE targets: kvariant's passthrough server over" in fio_setup(config.load(conf), False)
    conf.write_text(text + '[[variant]]\nname = "hp"\nfuse_server = "passthrough_hp"\n')
    assert ("FUSE targets: each variant's server (ours: kvariant's passthrough server, "
            "hp: libfuse 3.18.3's passthrough_hp) over") in fio_setup(config.load(conf), False)
