"""SIGTERM to a run with a guest up: what finished is written, the summary
says interrupted, the VM is torn down, no qemu is left."""
import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import PROJECT
from kvariant.vm import qemu_pids

pytestmark = pytest.mark.vm


def test_sigterm_after_boot(tmp_path):
    conf = tmp_path / "p.toml"
    conf.write_text('[fio]\ntargets = ["xfs"]\nnumjobs = [1]\nruntime = 120\nsize = "128M"\n'
                    '[[variant]]\nname = "baseline"\n[[variant]]\nname = "second"\n')
    run_dir = tmp_path / "results" / "intr"
    p = subprocess.Popen([sys.executable, str(PROJECT / "pipeline.py"), "run", "--config", str(conf),
                          "--run-id", "intr"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    booted = False
    while time.monotonic() < deadline and p.poll() is None:
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
            # both guests are up together (the default [fio] together)
            booted = sum(s["name"] == "storage" and s["status"] == "pass"
                         for v in summary["variants"] for s in v["stages"]) == 2
        except (OSError, ValueError):
            pass
        if booted:
            break
        time.sleep(1)
    assert booted, "the guests never came up"
    assert qemu_pids("kv-intr-baseline") and qemu_pids("kv-intr-second")
    time.sleep(40)  # set-up, prefill, then fio (120 s) is running in baseline's guest
    sent = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=180)
    # the run does not wait for the guest's command to end (invoke would
    # forward a KeyboardInterrupt and keep waiting): teardown only
    assert time.monotonic() - sent < 90
    assert p.returncode == 130, err[-2000:]
    assert qemu_pids("kv-intr-") == []
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] and not summary["finished"]
    assert [v["name"] for v in summary["variants"]] == ["baseline", "second"]
    for variant in ("baseline", "second"):  # each guest's point was still to be recorded
        cases = {c.get("name"): c for c in ET.parse(run_dir / variant / "junit.xml").getroot().iter("testcase")}
        assert cases["boot"].find("failure") is None
        assert cases["fio/xfs/randwrite-4k-nj1"].find("error").get("message") == "interrupted"
    assert out.strip().splitlines()[-1] == str(run_dir)
