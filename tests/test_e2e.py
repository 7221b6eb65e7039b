"""The pipeline end to end on the default config (baseline + parallel-dio),
with short fio runs: JUnit per variant, the second build incremental, the
user's tree unchanged, no qemu left."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import PROJECT, tree_state
from kvariant import config
from kvariant.vm import qemu_pids

pytestmark = pytest.mark.e2e


def test_default_pipeline(tmp_path):
    cfg = config.load(PROJECT / "pipeline.toml")
    text = (PROJECT / "pipeline.toml").read_text()
    text = text.replace('"vmconfigs/', f'"{PROJECT}/vmconfigs/').replace('"patches/', f'"{PROJECT}/patches/')
    text = text.replace("runtime = 8", "runtime = 3").replace("ramp_time = 2", "ramp_time = 1")
    text = text.replace('size = "512M"', 'size = "256M"')
    conf = tmp_path / "pipeline.toml"
    conf.write_text(text)
    before = tree_state(cfg.kernel.tree)
    proc = subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "run", "--config", str(conf),
                           "--run-id", "e2e"], capture_output=True, text=True, timeout=3 * 3600)
    run_dir = tmp_path / "results" / "e2e"
    out = proc.stdout.strip().splitlines()
    assert out[0] == str(run_dir) and out[-1] == str(run_dir), proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["finished"] and summary["status"] == "pass"
    for variant in ("baseline", "parallel-dio"):
        root = ET.parse(run_dir / variant / "junit.xml").getroot()
        cases = {c.get("name"): c for c in root.iter("testcase")}
        for name in ("apply", "build", "boot", "storage", "fio/xfs/randwrite-4k-nj1",
                     "fio/xfs/randwrite-4k-nj2"):
            assert name in cases, (variant, name)
            assert cases[name].find("failure") is None and cases[name].find("error") is None
        props = {p.get("name"): float(p.get("value")) for p in root.iter("property")
                 if p.get("name").endswith(".iops")}
        assert props["randwrite-4k-nj1.iops"] > 1000
    by_name = {v["name"]: v for v in summary["variants"]}
    assert len(by_name["parallel-dio"]["info"]["patches"]) == 2
    # the patched variant is built incrementally from the baseline's build
    # directory (or reused whole when an earlier run built it)
    info = by_name["parallel-dio"]["info"]
    assert info["build_reused"] or info["build_seconds"] < 300, info
    assert tree_state(cfg.kernel.tree) == before
    assert qemu_pids("kv-e2e-") == []
