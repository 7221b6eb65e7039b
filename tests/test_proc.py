"""Long-lived host processes (proc.spawn): real process groups, stopped as
a whole, whatever state they are in."""
import os
import subprocess
import time

import pytest

from kvariant import proc
from kvariant.proc import spawn


def group_members(pgid: int) -> list[str]:
    """The live (not zombie) processes of process group *pgid*, as ps
    names them."""
    out = subprocess.run(["ps", "-e", "-o", "pgid=,stat=,args="], capture_output=True, text=True,
                         check=True).stdout
    rows = (line.split(None, 2) for line in out.splitlines())
    return [row[2] for row in rows if len(row) == 3 and int(row[0]) == pgid and not row[1].startswith("Z")]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("script, grace, seconds", [
    ("sleep 100 & sleep 100", 5, (0, 5)),  # SIGTERM is enough: no need to wait out the grace
    ("trap '' TERM; sleep 100 & sleep 100", 0.5, (0.5, 10)),  # SIGKILL after the grace
], ids=["sigterm", "sigterm-ignored"])
def test_stop_kills_the_whole_group(tmp_path, script, grace, seconds):
    p = spawn(["sh", "-c", script], cwd=tmp_path)
    try:
        assert wait_for(lambda: group_members(p.pid).count("sleep 100") == 2)
        assert p.alive() and p.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):  # as Popen's: runner.py relies on it
            p.wait(timeout=0.1)
        start = time.monotonic()
        p.stop(grace=grace)
        assert seconds[0] <= time.monotonic() - start < seconds[1]
        assert not p.alive() and p.returncode is not None
        assert wait_for(lambda: not group_members(p.pid), timeout=5)
    finally:
        p.stop(grace=0)


def test_stop_after_the_leader_exited_kills_what_it_left(tmp_path):
    p = spawn(["sh", "-c", "sleep 100 & exit 3"], cwd=tmp_path)
    try:
        assert p.wait(timeout=10) == 3 and not p.alive()
        # the background sleep outlives its shell (once its fork has exec'd)
        assert wait_for(lambda: group_members(p.pid) == ["sleep 100"], timeout=5)
        p.stop()
        assert wait_for(lambda: not group_members(p.pid), timeout=5)
    finally:
        p.stop(grace=0)


def test_stop_of_an_exited_process_is_fine(tmp_path):
    p = spawn(["true"], cwd=tmp_path)
    assert p.wait(timeout=10) == 0
    p.stop()
    p.stop()  # idempotent
    assert p.returncode == 0 and not p.alive()


def test_output_is_appended_to_the_file(tmp_path):
    out = tmp_path / "console.log"
    out.write_text("earlier\n")
    p = spawn(["sh", "-c", "echo out; echo err >&2; echo $LANG; pwd"], cwd=tmp_path, output=out)
    assert p.wait(timeout=10) == 0
    assert out.read_text() == f"earlier\nout\nerr\nC\n{os.path.realpath(tmp_path)}\n"
    assert p.argv[0] == "sh"


def test_a_missing_program_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        spawn([str(tmp_path / "no-such-program")], cwd=tmp_path, output=tmp_path / "out")


def test_run_returns_the_exit_code_the_tail_and_logs_the_command(tmp_path):
    log = tmp_path / "logs" / "x.log"
    r = proc.run(["sh", "-c", "echo one; echo two >&2; exit 3"], cwd=tmp_path, timeout=30, log=log)
    assert (r.returncode, r.timed_out, r.ok) == (3, False, False)
    assert r.tail.splitlines() == ["one", "two"] or sorted(r.tail.splitlines()) == ["one", "two"]
    text = log.read_text()
    assert text.startswith(f"$ cd {tmp_path} && sh -c ") and "one\n" in text
    assert proc.run(["true"], cwd="/", timeout=30).ok  # without a log file too


def test_run_kills_what_passes_its_deadline(tmp_path):
    log = tmp_path / "t.log"
    r = proc.run(["sh", "-c", "sleep 100 & sleep 100"], cwd=tmp_path, timeout=1, log=log)
    assert r.timed_out and r.returncode is None and r.duration < 15
    assert log.read_text().endswith("kvariant: killed after 1 s\n")


def test_run_hands_each_line_to_on_line(tmp_path):
    seen = []
    r = proc.run(["printf", "a\\nb\\n"], cwd=tmp_path, timeout=30, on_line=seen.append)
    assert r.ok and seen == ["a", "b"]


def test_the_log_follows_the_command_as_it_runs(tmp_path):
    """A line is in the log while the command still runs (tail -f on a
    build log), not only when a buffer fills or the command ends."""
    import threading
    log = tmp_path / "b.log"
    gate = tmp_path / "gate"
    t = threading.Thread(target=lambda: proc.run(
        ["sh", "-c", f"echo '  CC      a.o'; while [ ! -e {gate} ]; do sleep 0.1; done"],
        cwd=tmp_path, timeout=60, log=log))
    t.start()
    try:
        deadline = time.monotonic() + 20
        while "  CC      a.o\n" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the line never reached the log while the command ran"
            time.sleep(0.05)
        assert t.is_alive()
    finally:
        gate.touch()
        t.join()
