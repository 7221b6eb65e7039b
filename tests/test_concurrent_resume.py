"""Two runs at the same time on one machine do not collide (run
directories, guests' ports and names, worktrees and build directories, which
are locked); a run killed with SIGTERM and resumed with --resume ends with
the same testcases and verdicts as a run that was never interrupted, and
runs again only what had not ended."""
import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import PROJECT, tree_state
from kvariant import config
from kvariant.vm import qemu_pids

pytestmark = pytest.mark.e2e

CONFIG = f"""
[kernel]
fragments = ["{PROJECT}/vmconfigs/fuse-xfs-nullblk.config"]
[fio]
targets = ["xfs"]
numjobs = [1, 2]
size = "64M"
ramp_time = 1
runtime = 3
[[variant]]
name = "baseline"
[[variant]]
name = "parallel-dio"
patches = ["{PROJECT}/patches/fuse-passthrough-parallel-dio"]
"""


def pipeline(*args):
    return subprocess.Popen([sys.executable, str(PROJECT / "pipeline.py"), "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def verdicts(run_dir):
    """(variant, testcase) -> junit verdict, from the JUnit files."""
    out = {}
    for junit in sorted(run_dir.glob("*/junit.xml")):
        for case in ET.parse(junit).getroot().iter("testcase"):
            kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "pass")
            out[(junit.parent.name, case.get("name"))] = kind
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Two uninterrupted runs of CONFIG, started at the same time."""
    tmp = tmp_path_factory.mktemp("concurrent")
    conf = tmp / "p.toml"
    conf.write_text(CONFIG)
    tree = config.load(conf).kernel.tree
    before = tree_state(tree)
    runs = [pipeline("--config", str(conf)) for _ in range(2)]
    outs = [p.communicate(timeout=3600) for p in runs]
    return {"runs": runs, "outs": outs, "results": tmp / "results", "conf": conf,
            "tree": tree, "before": before}


def test_two_runs_at_once_do_not_collide(reference):
    dirs = []
    for p, (out, err) in zip(reference["runs"], reference["outs"]):
        assert p.returncode == 0, err[-3000:]
        dirs.append(out.strip().splitlines()[-1])
    assert len(set(dirs)) == 2 and all(d.startswith(str(reference["results"])) for d in dirs)
    ports = set()
    for d in dirs:
        summary = json.loads((reference["results"] / d / "summary.json").read_text())
        assert summary["finished"] and summary["status"] == "pass"
        for v in summary["variants"]:
            ports.add(v["info"]["ssh_port"])
            assert f"--ssh {v['info']['ssh_port']} " in v["info"]["vng"]
    assert len(ports) == 4  # every guest had its own port
    assert verdicts(reference["results"] / dirs[0]) == verdicts(reference["results"] / dirs[1])
    assert tree_state(reference["tree"]) == reference["before"]
    assert all(qemu_pids(f"kv-{Path(d).name}-") == [] for d in dirs)


def test_killed_run_resumed_ends_as_an_uninterrupted_one(reference):
    """One variant after the other ([fio] together = false), so that the
    cut falls between a variant that ended and one that had not."""
    results = reference["results"]
    conf = reference["conf"].with_name("one-by-one.toml")
    conf.write_text(CONFIG.replace("runtime = 3\n", "runtime = 3\ntogether = false\n"))
    run_dir = results / "killed"
    p = pipeline("--config", str(conf), "--run-id", "killed")
    deadline = time.monotonic() + 1800
    cut = False
    while time.monotonic() < deadline and p.poll() is None:
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
            # parallel-dio's guest is up: its fio rounds are running, the
            # baseline's points are recorded (a point is recorded when the
            # variant's rounds end)
            cut = any(v["name"] == "parallel-dio" and any(s["name"] == "storage" for s in v["stages"])
                      for v in summary["variants"])
        except (OSError, ValueError):
            pass
        if cut:
            p.send_signal(signal.SIGTERM)
            break
        time.sleep(0.3)
    assert cut, "the run never reached parallel-dio's fio rounds"
    p.communicate(timeout=300)
    assert p.returncode == 130
    before = json.loads((run_dir / "summary.json").read_text())
    assert before["interrupted"] and not before["finished"]
    kept = next(s for s in before["variants"][0]["stages"] if s["name"] == "fio/xfs/randwrite-4k-nj1")
    assert qemu_pids("kv-killed-") == []

    r = pipeline("--resume", "killed", "--results", str(results))
    out, err = r.communicate(timeout=3600)
    assert r.returncode == 0, err[-3000:]
    after = json.loads((run_dir / "summary.json").read_text())
    assert after["finished"] and not after["interrupted"] and after["resumed"]
    assert after["status"] == "pass"
    # the points that had ended were kept as they were, not measured again
    again = next(s for s in after["variants"][0]["stages"] if s["name"] == "fio/xfs/randwrite-4k-nj1")
    assert again == kept
    assert (run_dir / "parallel-dio" / "console-interrupted1.log").exists()
    assert not (run_dir / "baseline" / "console-interrupted1.log").exists()
    # the kernels of an unchanged config are reused: nothing is built again
    assert all(v["info"]["build_reused"] for v in after["variants"])
    assert "kernels: 0 built (0 s of building), 2 reused" in err
    reference_dir = results / reference["outs"][0][0].strip().splitlines()[-1]
    assert verdicts(run_dir) == verdicts(reference_dir)
    assert qemu_pids("kv-killed-") == []
