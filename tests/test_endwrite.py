"""The end_write check (kvariant.workloads.endwrite and its guest side,
endwrite_guest.py): the guest script itself run on this host's filesystem
(a file that is its own backing file passes; a backing file that is not
the file fails), its block check on real blocks, the verdict read from
its report, the config and the workload's testcase (no VM)."""
import json
import subprocess
import sys

import pytest

from conftest import PROJECT
from kvariant import config
from kvariant.config import CorrectnessConfig
from kvariant.pipeline.correctness_workload import CorrectnessWorkload
from kvariant.pipeline.variant import WORKLOADS
from kvariant.testcase import Kind, TestcaseId
from kvariant.workloads import endwrite
from kvariant.workloads import endwrite_guest as g

SHORT = CorrectnessConfig(endwrite=True, rounds=2, writers=2, seconds=2)


def run_guest(file, backing, cfg=SHORT) -> subprocess.CompletedProcess:
    cmd = endwrite.command(sys.executable, "/FUSE", "/BACKING", cfg)
    cmd = cmd.replace(f"/FUSE/{endwrite.FILE}", str(file)).replace(f"/BACKING/{endwrite.FILE}", str(backing))
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)


def test_a_file_that_is_its_own_backing_file_passes(tmp_path):
    """Every kind of worker ran, every round checked, nothing found."""
    f = tmp_path / "f"
    p = run_guest(f, f)
    assert p.returncode == 0, p.stderr
    found = endwrite.verdict(p.stdout)
    assert found.problems == ()
    assert found.message.startswith("size and data match the backing file after 2 rounds (")
    for kind in ("appender", "extender", "truncater", "reader", "stater"):
        assert found.figures[f"ops_{kind}"] > 0, kind
    assert found.figures["size_mismatches"] == 0 and found.figures["rounds"] == 2


def test_a_backing_file_that_differs_fails(tmp_path):
    """The same run judged against another file: the sizes and the data
    differ, and the message names the round and both sizes."""
    other = tmp_path / "other"
    other.write_bytes(b"\x01" * 4096)
    p = run_guest(tmp_path / "f", other)
    found = endwrite.verdict(p.stdout)
    assert found.problems and found.figures["size_mismatches"] == 2
    assert found.message.startswith("round 1: the FUSE inode's size is ")
    assert "the backing file's 4096" in found.message and found.message.endswith("more)")
    assert any("neither zeros nor a stamped block" in x for x in found.problems)


def test_blocks_are_zeros_or_whole_stamps_at_their_offset():
    block = g.stamp(8192, 3, 7)
    assert len(block) == g.BLOCK
    assert g.block_problem(block, 8192) == ""
    assert g.block_problem(bytes(g.BLOCK), 0) == ""
    assert g.block_problem(g.stamp(g.APPENDED, 1, 2), 40960) == ""
    assert g.block_problem(block, 4096) == "block at 4096: written for offset 8192 (writer 3, write 7)"
    torn = block[:2048] + g.stamp(8192, 4, 7)[2048:]
    assert g.block_problem(torn, 8192) == "block at 8192: torn (writer 3, write 7)"
    assert "neither zeros" in g.block_problem(b"x" * g.BLOCK, 0)


def test_the_cached_size_is_read_without_a_refresh(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"y" * 12345)
    import os
    fd = os.open(f, os.O_RDONLY)
    try:
        assert g.cached_size(fd) == 12345
    finally:
        os.close(fd)


def test_no_report_is_an_error_of_its_own():
    with pytest.raises(ValueError, match="no report"):
        endwrite.verdict("Traceback (most recent call last):\n")


def test_the_command_and_its_deadline_follow_the_config():
    cmd = endwrite.command("/usr/bin/python3", "/mnt/f", "/xfs/src", CorrectnessConfig(
        endwrite=True, rounds=3, writers=6, seconds=9))
    assert cmd.startswith(f"/usr/bin/python3 {PROJECT}/kvariant/workloads/endwrite_guest.py "
                          "/mnt/f/endwrite.dat /xfs/src/endwrite.dat ")
    assert "--rounds 3 --writers 6 --busy 6.0 --tail 3.0" in cmd
    assert endwrite.timeout(CorrectnessConfig(rounds=3, seconds=9)) == 3 * 69 + 120


def test_the_testcase_is_its_own_and_only_when_turned_on(tmp_path, small_tree):
    tid = TestcaseId.parse(endwrite.NAME)
    assert (tid.kind, tid.scope, tid.suite) == (Kind.CORRECTNESS, "fuse-passthrough",
                                                "correctness.fuse-passthrough")
    assert any(isinstance(w, CorrectnessWorkload) for w in WORKLOADS)
    p = tmp_path / "p.toml"
    p.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n[[variant]]\nname = "b"\n')
    off = config.load(p)
    assert off.correctness == CorrectnessConfig() and not off.correctness.endwrite
    assert CorrectnessWorkload().names(off) == []
    p.write_text(p.read_text() + '[correctness]\nendwrite = true\nrounds = 100\nwriters = 32\nseconds = "1h"\n')
    on = config.load(p)
    assert on.correctness == CorrectnessConfig(endwrite=True, rounds=100, writers=32, seconds=3600)
    assert CorrectnessWorkload().names(on) == [endwrite.NAME]
    debug = config.with_fragment(on, config.DEBUG_FRAGMENT)  # --debug: the same testcase
    assert config.DEBUG_FRAGMENT in debug.kernel.fragments
    assert CorrectnessWorkload().names(debug) == [endwrite.NAME]


def test_the_fault_matrix_runs_the_check():
    c = config.load(PROJECT / "tests" / "fixtures" / "fault-matrix.toml")
    assert c.correctness.endwrite
    assert "endwrite-unlocked" in [v.name for v in c.variants]
