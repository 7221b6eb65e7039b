"""./pipeline.py try: a one-patch mbox and a three-patch series, end to end
(baseline against the patches, quick profile, the series checked patch by
patch), and the naming of a patch that breaks the build in the middle of a
series."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import FIXTURES, PROJECT
from kvariant.vm import qemu_pids

CONFIG = FIXTURES / "try.toml"
V2 = PROJECT / "patches" / "fuse-passthrough-parallel-dio-v2"


def try_(tmp_path, *args):
    return subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "try", "--config", str(CONFIG),
                           "--results", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=3 * 3600)


def cases(run_dir, variant):
    root = ET.parse(run_dir / variant / "junit.xml").getroot()
    return {c.get("name"): next((x.tag for x in c if x.tag in ("failure", "error", "skipped")), "pass")
            for c in root.iter("testcase")}


@pytest.mark.e2e
def test_try_a_one_patch_mbox(tmp_path):
    mbox = tmp_path / "assert.mbox"
    mbox.write_text((V2 / "0003-fuse-passthrough-assert-the-inode-lock-in-the-end_wr.patch").read_text())
    p = try_(tmp_path, str(mbox), "--run-id", "one")
    assert p.returncode == 0, p.stderr[-3000:]
    run_dir = tmp_path / "one"
    got = cases(run_dir, "patched")
    for name in ("apply", "build", "boot", "storage", "fio/xfs/randwrite-4k-nj1", "fio/xfs/randwrite-4k-nj2",
                 "dmesg"):
        assert got[name] == "pass", name
    assert not [n for n in got if n.startswith("series/")]  # one patch: nothing to bisect
    summary = json.loads((run_dir / "summary.json").read_text())
    fio = [s for s in summary["variants"][1]["stages"] if s["name"] == "fio/xfs/randwrite-4k-nj2"][0]
    assert fio["figures"]["repeats"] == 3  # the quick profile
    # a verdict per stage, then the table, on the console
    assert "patched          boot" in p.stderr and "| numjobs | baseline xfs | patched xfs | Δ xfs |" in p.stderr
    assert (run_dir / "report.md").exists() and (run_dir / "report.html").exists()
    assert qemu_pids("kv-one-") == []


@pytest.mark.e2e
def test_try_a_three_patch_series(tmp_path):
    p = try_(tmp_path, str(V2), "--run-id", "three", "--name", "v2")
    assert p.returncode == 0, p.stderr[-3000:]
    got = cases(tmp_path / "three", "v2")
    series = sorted(n for n in got if n.startswith("series/"))
    assert series == ["series/01-fuse-keep-FOPEN_PARALLEL_DIRECT_WRITES-for-passthrough-opens",
                      "series/02-fuse-take-the-inode-lock-shared-for-parallel-passthrough-O_DIREC",
                      "series/03-fuse-passthrough-assert-the-inode-lock-in-the-end_write-callback"]
    assert all(got[n] == "pass" for n in series)
    assert all(got[n] == "pass" for n in ("apply", "build", "boot", "fio/xfs/randwrite-4k-nj2"))
    summary = json.loads((tmp_path / "three" / "summary.json").read_text())
    build = summary["variants"][1]["info"]
    assert build["build_reused"]  # the series check built the last patch already
    report = (tmp_path / "three" / "report.md").read_text()
    assert "fuse: passthrough: assert the inode lock in the end_write callback" in report
    assert qemu_pids("kv-three-") == []


def test_a_patch_that_breaks_the_build_mid_series_is_named(tmp_path, small_tree, cache, monkeypatch):
    """The per-patch check names the patch; the ones after it still run."""
    from kvariant import config
    from kvariant.errors import StageError
    from kvariant.model import VariantResult
    from kvariant.ui import UI
    from kvariant.pipeline.run import Run
    from kvariant.pipeline import stages
    from kvariant.pipeline.variant import VariantRun

    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n'
                    '[[variant]]\nname = "series"\nbisect = true\npatches = ["git:topic"]\n')
    cfg = config.load(conf)
    run = Run(cfg, tmp_path / "r", "r", UI())
    vr = VariantRun(run, cfg.variants[0], VariantResult("series"))
    vr.dir.mkdir(parents=True)
    stages.apply(vr)
    built = []

    def build(mirror, commit, fragments, log, jobs=None, timeout=0, show=None):
        built.append(commit)
        if len(built) == 1:
            raise StageError("build failed: fs/fuse/file.c:10:1: error: expected ';'")
        from kvariant.build import BuildResult
        return BuildResult(tmp_path, tmp_path, "1.0", 12.0)
    monkeypatch.setattr("kvariant.pipeline.stages.build_kernel", build)
    stages.check_series(vr)
    first, second = vr.result.stages
    assert first.name == "series/01-fuse-topic-change-1" and first.status.value == "fail"
    assert first.message == ("patch 1/2 breaks the build: fuse: topic change 1: "
                             "build failed: fs/fuse/file.c:10:1: error: expected ';'")
    assert second.status.value == "pass" and second.message == "patch 2/2 applies and builds (built in 12 s)"
    assert built == [p["commit"] for p in vr.result.info.patches]
