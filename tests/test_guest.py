"""Guest commands over a real SSH server (a private sshd on loopback,
standing in for the guest's): a deadline comes back as timed out, and
abandon() from another thread ends the command under way at once."""
import os
import shutil
import subprocess
import threading
import time

import pytest

from kvariant.errors import KernelReport
from kvariant.guest import Guest
from kvariant.vm import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("sshd", path="/usr/sbin:/usr/bin"),
                                reason="needs root and sshd for a private SSH server")


@pytest.fixture
def guest(tmp_path):
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    port = free_port()
    conf = tmp_path / "sshd_config"
    conf.write_text(f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {tmp_path / 'host'}\n"
                    f"AuthorizedKeysFile {tmp_path / 'client.pub'}\nPermitRootLogin yes\n"
                    f"StrictModes no\nUsePAM no\nPidFile {tmp_path / 'sshd.pid'}\n")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    sshd = subprocess.Popen([shutil.which("sshd", path="/usr/sbin:/usr/bin"), "-D", "-e", "-f", str(conf)],
                            stderr=subprocess.PIPE)
    try:
        g = Guest.connect(port, key=tmp_path / "client", deadline=time.monotonic() + 30,
                          alive=lambda: sshd.poll() is None, default_timeout=30)
        yield g
        g.close()
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)


def test_a_command_past_its_deadline_is_timed_out(guest):
    assert guest.run("echo hello").stdout.strip().endswith("hello")
    start = time.monotonic()
    slow = guest.run("sleep 30", timeout=2)
    assert slow.timed_out and slow.returncode is None and not slow.ok
    assert time.monotonic() - start < 10


def test_abandon_ends_the_command_under_way(guest):
    why = "ended at once by the kernel's report"
    threading.Timer(1.0, guest.abandon, [why]).start()  # as the console watch does
    start = time.monotonic()
    with pytest.raises(KernelReport, match=why) as e:
        guest.run("sleep 60", timeout=120)
    assert time.monotonic() - start < 10  # not the command's 60 s, nor its deadline
    assert e.value.reproduce == guest.reproduce("sleep 60")  # the ssh line, not the bare command
    assert e.value.reproduce.startswith("ssh -F /dev/null -p ")
    start = time.monotonic()
    with pytest.raises(KernelReport):  # and every command after it, without waiting
        guest.run("true")
    assert time.monotonic() - start < 1


def test_no_guest_command_starts_once_the_run_was_interrupted(monkeypatch):
    """The signal handler's mark is a checkpoint: even if the exception it
    raised was lost inside a library, the next guest command raises it
    again, before touching the connection."""
    from kvariant import errors
    from kvariant.guest import Guest

    class NoConnection:
        def __getattr__(self, name):
            raise AssertionError(f"the connection was used: {name}")

    g = Guest.__new__(Guest)
    g.conn, g.default_timeout, g.abandoned = NoConnection(), 10, ""
    monkeypatch.setattr(errors, "_interrupt_requested", False)
    errors.check_interrupt()  # nothing requested: nothing raised
    errors.request_interrupt()
    with pytest.raises(errors.RunInterrupted):
        g.run("true")
    with pytest.raises(errors.RunInterrupted):
        g.get("/tmp/x", __import__("pathlib").Path("/tmp/kvariant-never"))
