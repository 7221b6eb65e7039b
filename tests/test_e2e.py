"""The pipeline end to end on the default config (baseline + parallel-dio),
with short fio runs: JUnit per variant, the second build incremental, the
user's tree unchanged, no qemu left."""
import json
import re
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
    for key, value in (("runtime", "3"), ("ramp_time", "1"), ("size", '"64M"'), ("repeat", "2"),
                       ("numjobs", "[2]")):
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
    text = text.replace("\nrepeat = 2\n", "\nrepeat = 2\nboots = 2\n")  # two guests measure fio
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
        for name in ("apply", "build", "boot", "storage", "fio/xfs/randwrite-4k-nj2",
                     "fio/fuse-passthrough/randwrite-4k-nj2"):
            assert name in cases, (variant, name)
            assert cases[name].find("failure") is None and cases[name].find("error") is None
        suites = {s.get("name"): s for s in root.iter("testsuite")}
        for target in ("xfs", "fuse-passthrough"):
            props = {p.get("name"): p.get("value")
                     for p in suites[f"kvariant.{variant}.fio.{target}"].iter("property")}
            assert float(props["randwrite-4k-nj2.iops"]) > 1000
        # the data took the passthrough path: the server saw no READ/WRITE
        assert props["randwrite-4k-nj2.server_write_requests"] == "0"
        assert props["randwrite-4k-nj2.kernel_data_requests"] == "0"  # the kernel's count agrees
        assert int(props["randwrite-4k-nj2.passthrough_opens_granted"]) >= 2
        # in each of two guests two rounds, each target's run beside the other's,
        # the order turned in round 2
        runs = sorted((run_dir / variant / "fio").glob("*/randwrite-*.json"), key=lambda f: f.stat().st_mtime)
        assert [f"{f.parent.name}/{f.stem}" for f in runs] == [
            f"{t}/randwrite-4k-nj2-r{r}" for r in (1, 2, 3, 4)
            for t in (("fuse-passthrough", "xfs") if r % 2 else ("xfs", "fuse-passthrough"))]
        assert props["randwrite-4k-nj2.iops_boots"] == "1,1,2,2"
        assert "Linux version" in (run_dir / variant / "console-boot1.log").read_text()
    by_name = {v["name"]: v for v in summary["variants"]}
    assert len(by_name["parallel-dio"]["info"]["patches"]) == 2
    # the patched variant is built incrementally from the baseline's build
    # directory (or reused whole when an earlier run built it)
    info = by_name["parallel-dio"]["info"]
    assert info["build_reused"] or info["build_seconds"] < 300, info
    report = (run_dir / "report.md").read_text()
    assert "| numjobs | baseline fuse-passthrough | parallel-dio fuse-passthrough | Δ fuse-passthrough |" in report
    assert "data:image/png;base64," in (run_dir / "report.html").read_text()
    report_json = json.loads((run_dir / "report.json").read_text())
    assert report_json["reference"] == "baseline"
    # judged with each variant's guests as the units; the two variants'
    # guests were up together, their runs alternating (baseline first in
    # odd rounds, parallel-dio in even ones)
    methods = {(p["target"], d["method"]) for p in report_json["fio"] for d in p["deltas"]}
    assert methods == {("fuse-passthrough", "ratio of the guests' means, guests as the units"),
                       ("xfs", "ratio of the guests' means, guests as the units")}
    def when(variant, r):
        return (run_dir / variant / "fio" / "xfs" / f"randwrite-4k-nj2-r{r}.json").stat().st_mtime
    assert [when("baseline", r) < when("parallel-dio", r) for r in (1, 2, 3, 4)] == [True, False, True, False]
    for variant in ("baseline", "parallel-dio"):
        props = {p.get("name"): p.get("value") for p in ET.parse(run_dir / variant / "junit.xml").getroot()
                 .iter("property")}
        assert props["randwrite-4k-nj2.together"] == "baseline,parallel-dio"
        assert props["randwrite-4k-nj2.iops_rounds"] == "1,2,3,4"
    assert "kernels: " in proc.stderr
    assert tree_state(cfg.kernel.tree) == before
    assert qemu_pids("kv-e2e-") == []
