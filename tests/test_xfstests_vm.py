"""xfstests for real: a few tests on our FUSE passthrough server and on XFS in
a guest, through the pipeline.  Needs a built xfstests tree on the host named
by KVARIANT_XFSTESTS (its source is in no package registry: build it from
upstream yourself, see README); skipped, saying why, otherwise."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import PROJECT
from kvariant.vm import qemu_pids
from kvariant.workloads.xfstests import tree_problem

pytestmark = pytest.mark.vm
TREE = os.environ.get("KVARIANT_XFSTESTS", "")
TESTS = ["generic/002", "generic/005"]


@pytest.mark.skipif(not TREE, reason="KVARIANT_XFSTESTS does not name a built xfstests tree")
def test_xfstests_on_fuse_and_xfs(tmp_path):
    problem = tree_problem(Path(TREE))
    assert problem is None, f"KVARIANT_XFSTESTS={TREE}: {problem}"
    conf = tmp_path / "p.toml"
    conf.write_text(f"""
[kernel]
tree = "~/.cache/kvariant/linux-7.2"
base = "v7.2.13"

[fio]                   # the least fio there is: [fio] takes no empty target list
targets = ["xfs"]
numjobs = [1]
runtime = 1
ramp_time = 0
size = "16M"

[xfstests]
dir = "{TREE}"
fstypes = ["fuse", "xfs"]
tests = {json.dumps(TESTS)}
test_timeout = "10m"

[[variant]]
name = "baseline"
""")
    p = subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "run", "--config", str(conf),
                        "--run-id", "xfst"], capture_output=True, text=True, timeout=3600)
    run_dir = tmp_path / "results" / "xfst"
    root = ET.parse(run_dir / "baseline" / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    for fstype in ("fuse", "xfs"):
        for test in TESTS:
            case = cases.get(f"xfstests/{fstype}/{test}")
            assert case is not None, (fstype, test, sorted(cases))
            assert case.find("failure") is None and case.find("error") is None, ET.tostring(case)
        assert "FSTYP" in (run_dir / "baseline" / "xfstests" / fstype / "local.config").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["xfstests"]["fuse"]["variants"]["baseline"]["passed"] == len(TESTS)
    assert p.returncode == 0, p.stderr[-3000:]
    assert qemu_pids("kv-xfst-") == []

