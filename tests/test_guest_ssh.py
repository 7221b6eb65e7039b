"""Guest connections ignore the user's SSH configuration: a hostile
~/.ssh/config (Host * with ForwardAgent, ProxyCommand, IdentityFile,
Hostname, Port, User) in a temporary HOME changes nothing.  First the
connection object, then a real connection to a throwaway sshd on
127.0.0.1 (no VM)."""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from fabric import Connection

from kvariant.guest import Guest, guest_connection, ssh_argv


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, capture_output=True)
    return path


def fingerprint(path: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], check=True, capture_output=True, text=True)
    return out.stdout.split()[1]


@pytest.fixture
def hostile_home(tmp_path, monkeypatch):
    """A HOME whose ~/.ssh/config and ~/.fabric.yaml would reroute, proxy,
    forward the agent and offer another key, if anyone read them."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    hostile_key = keygen(home / ".ssh" / "hostile_key")
    mark = tmp_path / "proxy-was-used"
    (home / ".ssh" / "config").write_text(
        "Host *\n"
        "    Hostname 127.0.0.2\n"
        "    Port 2\n"
        "    User mallory\n"
        "    ForwardAgent yes\n"
        f"    ProxyCommand /bin/sh -c 'touch {mark}; exit 1'\n"
        f"    IdentityFile {hostile_key}\n"
        "    ConnectTimeout 1\n")
    (home / ".fabric.yaml").write_text("forward_agent: true\nuser: mallory\n")
    monkeypatch.setenv("HOME", str(home))
    return {"home": home, "key": hostile_key, "mark": mark}


def test_the_hostile_config_is_effective_on_a_default_connection(hostile_home):
    """The control: fabric's defaults do read it (else the tests below prove nothing)."""
    c = Connection("127.0.0.1", port=2222)
    assert c.host == "127.0.0.2" and c.user == "mallory" and c.forward_agent is True
    assert c.gateway and "proxy-was-used" in c.gateway
    assert str(hostile_home["key"]) in c.connect_kwargs["key_filename"]


def test_guest_connection_ignores_it(hostile_home, tmp_path):
    key = tmp_path / "id_virtme"
    c = guest_connection(2222, key)
    assert (c.host, c.port, c.user) == ("127.0.0.1", 2222, "root")
    assert c.forward_agent is False and not c.gateway
    assert c.connect_kwargs["key_filename"] == [str(key)]
    assert c.connect_kwargs["look_for_keys"] is False and c.connect_kwargs["allow_agent"] is False
    assert c.connect_timeout == 10
    assert dict(c.ssh_config).keys() <= {"hostname"}


def test_reproduce_line_reads_no_ssh_config(tmp_path):
    argv = ssh_argv(2222, tmp_path / "id_virtme", "uname -r")
    assert argv[:3] == ["ssh", "-F", "/dev/null"]
    assert argv[-2:] == ["root@127.0.0.1", "uname -r"] and "IdentitiesOnly=yes" in argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """A throwaway sshd on 127.0.0.1: its own host key, one authorized
    key (the one kvariant would use), debug log; stopped at the end."""
    if os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists():
        pytest.skip("needs root and openssh-server")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    d = tmp_path / "sshd"
    d.mkdir()
    client = keygen(d / "id_virtme")
    shutil.copy(d / "id_virtme.pub", d / "authorized_keys")
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keygen(d / 'host_key')}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile none\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nAllowAgentForwarding yes\nLogLevel DEBUG\n"
        "Subsystem sftp internal-sftp\n")
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(d / "sshd_config"), "-E", str(d / "log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield {"port": port, "key": client, "proc": proc, "log": d / "log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_real_connection_ignores_the_hostile_config(hostile_home, sshd):
    # the control: fabric's defaults in this HOME go through the ProxyCommand
    with pytest.raises(Exception):
        Connection("127.0.0.1", port=sshd["port"], user="root",
                   connect_kwargs={"key_filename": str(sshd["key"])}).open()
    assert hostile_home["mark"].exists()
    hostile_home["mark"].unlink()

    g = Guest.connect(sshd["port"], key=sshd["key"], deadline=time.monotonic() + 30,
                      alive=lambda: sshd["proc"].poll() is None, default_timeout=30)
    try:
        r = g.run('echo "user=$(id -un) agent=${SSH_AUTH_SOCK:-none}"')
    finally:
        g.close()
    assert r.ok and r.stdout.strip() == "user=root agent=none"
    assert not hostile_home["mark"].exists()  # no ProxyCommand, straight to 127.0.0.1
    assert r.argv[:3] == ["ssh", "-F", "/dev/null"]
    log = sshd["log"].read_text(errors="replace")
    assert fingerprint(sshd["key"]) in log  # the log does name offered keys
    assert fingerprint(hostile_home["key"]) not in log


def test_reproduce_line_runs_as_pasted(hostile_home, sshd):
    """A guest result's reproduce line, pasted into a shell, runs the same
    command on the same machine (quotes, $ and spaces intact), reads no
    ssh_config and adds nothing to the output."""
    g = Guest.connect(sshd["port"], key=sshd["key"], deadline=time.monotonic() + 30,
                      alive=lambda: sshd["proc"].poll() is None, default_timeout=30)
    command = """echo "user=$(id -un)" 'two  spaces'; printf '%s\\n' "it's"; exit 3"""
    try:
        r = g.run(command)
    finally:
        g.close()
    assert r.returncode == 3 and r.stdout == "user=root two  spaces\nit's\n"
    assert r.cmdline == g.reproduce(command)
    assert r.cmdline.startswith(f"ssh -F /dev/null -p {sshd['port']} -i {sshd['key']} ")
    assert "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" in r.cmdline
    pasted = subprocess.run(["sh", "-c", r.cmdline], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=60)
    assert (pasted.returncode, pasted.stdout, pasted.stderr) == (3, r.stdout, "")
    assert not hostile_home["mark"].exists()  # no ProxyCommand: ~/.ssh/config was not read


def test_a_missing_guest_file_leaves_no_empty_file_behind(sshd, tmp_path):
    g = Guest.connect(sshd["port"], key=sshd["key"], deadline=time.monotonic() + 30,
                      alive=lambda: sshd["proc"].poll() is None, default_timeout=30)
    try:
        local = tmp_path / "got" / "stats.json"
        assert g.get(str(tmp_path / "nothere.json"), local, missing_ok=True) is False
        assert not local.exists()
        (tmp_path / "there.json").write_text("{}")
        assert g.get(str(tmp_path / "there.json"), local) is True
        assert local.read_text() == "{}"
    finally:
        g.close()
