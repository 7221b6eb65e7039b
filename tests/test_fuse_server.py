"""The passthrough FUSE server: pure protocol functions, the request handler
driven without a mount, and real mounts on this host (root and /dev/fuse)."""

from __future__ import annotations

import errno
import json
import mmap
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from kvariant.fuse import protocol as p
from kvariant.fuse.__main__ import parse_mount_options
from kvariant.fuse.mount import AT_FDCWD, find_mount, parse_mountinfo, renameat2
from kvariant.fuse.ops import OpenPolicy, PassthroughFS
from kvariant.fuse.server import ServerOptions, read_stats, server_argv
from kvariant.fuse.stats import Stats, write_stats

REPO = Path(__file__).resolve().parents[1]
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
OFFER = (p.WANTED_INIT_FLAGS | p.FUSE_PASSTHROUGH | p.FUSE_WRITEBACK_CACHE
         | p.FUSE_HANDLE_KILLPRIV_V2)


# pure protocol functions


def test_struct_sizes_match_the_kernel_abi():
    assert p.IN_HEADER.size == 40
    assert p.OUT_HEADER.size == 16
    assert p.ATTR.size == 88
    assert p.ENTRY_OUT_SIZE == 128
    assert p.OPEN_OUT.size == 16
    assert p.INIT_OUT.size == 64
    assert p.SETATTR_IN.size == 88
    assert p.READ_IN.size == 40
    assert p.KSTATFS.size == 80
    assert p.BACKING_MAP.size == 16
    assert len(p.pack_open_out(7, p.FOPEN_PASSTHROUGH, 3)) == 16


def _init_reply_fields(reply: bytes) -> tuple:
    return p.INIT_OUT.unpack(reply)


def test_init_negotiates_passthrough_and_never_writeback_cache():
    res = p.negotiate_init(p.InitIn(7, 45, 131072, OFFER), passthrough=True)
    assert len(res.reply) == 64
    major, minor, readahead, flags, _, _, max_write, _, max_pages, _, flags2, depth, _ = \
        _init_reply_fields(res.reply)
    assert (major, minor, res.minor) == (7, 40, 40)
    assert res.passthrough and flags2 & (1 << 5) and depth == 1
    assert flags & p.FUSE_INIT_EXT and not flags & p.FUSE_WRITEBACK_CACHE
    assert (readahead, max_write, max_pages) == (131072, 1 << 20, 256)


def test_init_without_kernel_passthrough_falls_back():
    res = p.negotiate_init(p.InitIn(7, 38, 4096, OFFER & ~p.FUSE_PASSTHROUGH), passthrough=True)
    fields = _init_reply_fields(res.reply)
    assert res.minor == 38 and not res.passthrough
    assert fields[10] & (1 << 5) == 0 and fields[11] == 0  # flags2, max_stack_depth
    not_asked = p.negotiate_init(p.InitIn(7, 45, 4096, OFFER), passthrough=False)
    assert not not_asked.passthrough and _init_reply_fields(not_asked.reply)[11] == 0


def test_init_without_init_ext_has_no_flags2():
    res = p.negotiate_init(p.InitIn(7, 31, 4096, OFFER & 0xFFFFFFFF & ~p.FUSE_INIT_EXT),
                           passthrough=True)
    assert res.flags >> 32 == 0 and not res.passthrough
    with pytest.raises(ValueError):
        p.negotiate_init(p.InitIn(8, 0, 0, 0), passthrough=True)


def test_parse_init_in_reads_flags2():
    kin = p.parse_init_in(p.pack_init_in(7, 45, OFFER))
    assert kin == p.InitIn(7, 45, 131072, OFFER)


@pytest.mark.parametrize("namelen", range(1, 18))
def test_dirents_are_8_byte_aligned(namelen):
    name = b"n" * namelen
    rec = p.pack_dirent(42, 3, 8, name)
    assert len(rec) % 8 == 0 and len(rec) == p.dirent_size(namelen) >= 24 + namelen
    plus = p.pack_direntplus(p.pack_entry_out(0, None, 0), 42, 3, 8, name)
    assert len(plus) % 8 == 0 and len(plus) == p.direntplus_size(namelen)
    assert p.parse_dirents(rec + rec) == [(42, 3, 8, name)] * 2
    assert p.parse_dirents(plus, plus=True) == [(42, 3, 8, name)]


def test_rdev_round_trip():
    for major, minor in ((1, 3), (8, 17), (259, 0x12345), (4095, 0xFFFFF)):
        dev = os.makedev(major, minor)
        assert p.decode_rdev(p.encode_rdev(dev)) == dev
    assert p.encode_rdev(os.makedev(8, 1)) == 0x801


def test_cstrings_and_headers():
    assert p.split_cstrings(b"old\0new\0", 2) == [b"old", b"new"]
    with pytest.raises(ValueError):
        p.split_cstrings(b"no-nul", 1)
    req = p.pack_request(p.Op.LOOKUP, 9, 1, b"x\0")
    hdr = p.parse_in_header(req)
    assert (hdr.opcode, hdr.unique, hdr.nodeid, bytes(p.request_body(req, hdr))) == \
        (p.Op.LOOKUP, 9, 1, b"x\0")
    with pytest.raises(ValueError):
        p.parse_in_header(req[:30])
    with pytest.raises(ValueError):
        p.parse_in_header(req + b"extra")
    assert p.pack_out_header(9, -errno.ENOENT, 0) == p.OUT_HEADER.pack(16, -2, 9)
    assert len(p.pack_notify_inval_inode(5)) == 40


def test_attr_handles_times_before_1970(tmp_path):
    f = tmp_path / "old"
    f.write_bytes(b"abc")
    os.utime(f, ns=(-1_500_000_000, 2_000_000_001))
    fields = p.ATTR.unpack(p.pack_attr(os.lstat(f)))
    assert fields[0] == os.lstat(f).st_ino and fields[1] == 3
    assert (fields[3], fields[6]) == (-2, 500_000_000)  # atime, atimensec
    assert (fields[4], fields[7]) == (2, 1)


def test_mountinfo_parsing_unescapes():
    text = ("36 25 0:32 / /tmp/a\\040b rw,relatime - fuse /src\\011x rw,user_id=0\n"
            "37 25 0:33 / /mnt rw shared:1 - ext4 /dev/vda rw\n")
    mounts = parse_mountinfo(text)
    assert mounts[0] == {"id": 36, "mountpoint": "/tmp/a b", "fstype": "fuse",
                         "source": "/src\tx"}
    assert mounts[1]["fstype"] == "ext4"


def test_server_argv_and_mount_options():
    argv = server_argv("/s", "/m", passthrough=False, parallel_direct_writes=True,
                       daemon=True, stats="/st.json", fsname="/dev/x", python="py")
    assert argv[:5] == ["py", "-m", "kvariant.fuse", "/s", "/m"]
    for flag in ("--no-passthrough", "--parallel-direct-writes", "--daemon"):
        assert flag in argv
    assert argv[argv.index("--stats") + 1] == "/st.json"
    assert argv[argv.index("--fsname") + 1] == "/dev/x"
    assert "--direct-io" not in argv and "--log" not in argv
    assert "--foreground" in server_argv("/s", "/m")
    overrides, ignored = parse_mount_options(["rw,fsname=/dev/sdb,no_passthrough", "noatime"])
    assert overrides == {"read_only": False, "fsname": "/dev/sdb", "passthrough": False}
    assert ignored == ["noatime"]
    with pytest.raises(Exception):
        ServerOptions("/s", "/m", threads=0)


def test_stats_written_atomically(tmp_path):
    path = tmp_path / "s.json"
    stats = Stats(passthrough_requested=True)
    stats.count_request("LOOKUP")
    stats.count_io("write", 4096)
    write_stats(str(path), stats.snapshot(backing_ids_open=0))
    data = read_stats(path)
    assert data["requests"] == {"LOOKUP": 1} and data["write_requests"] == 1
    assert data["write_bytes"] == 4096 and data["passthrough_requested"] is True
    assert [x.name for x in tmp_path.iterdir()] == ["s.json"]


# the request handler, without a mount


class FakeBacking:
    def __init__(self):
        self.open_ids, self.closed, self.next = [], [], 100

    def open(self, dev_fd, fd):
        self.next += 1
        self.open_ids.append(self.next)
        return self.next

    def close(self, dev_fd, backing_id):
        self.closed.append(backing_id)


class Driver:
    """Feeds requests to a PassthroughFS and decodes the replies."""

    def __init__(self, root: Path, *, passthrough=True, offer=OFFER):
        self.backing = FakeBacking()
        self.stats = Stats()
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
        self.fs = PassthroughFS(self.root_fd, -1, OpenPolicy(passthrough), self.stats,
                                backing_calls=(self.backing.open, self.backing.close))
        self.unique = 0
        assert self.call(p.Op.INIT, 0, p.pack_init_in(7, 45, offer))[0] == 0

    def raw(self, buf: bytes):
        reply = self.fs.handle(memoryview(buf))
        return None if reply is None else p.parse_reply(b"".join(reply))

    def call(self, opcode, nodeid, body=b"", **kw) -> tuple[int, bytes]:
        self.unique += 1
        unique, error, payload = self.raw(p.pack_request(opcode, self.unique, nodeid, body, **kw))
        assert unique == self.unique
        return error, payload

    def lookup(self, name: bytes, parent=p.ROOT_ID) -> int:
        error, payload = self.call(p.Op.LOOKUP, parent, name + b"\0")
        assert error == 0, error
        return p.ENTRY_OUT_HEAD.unpack_from(payload)[0]

    def open(self, nodeid, flags=os.O_RDWR) -> tuple[int, int, int]:
        error, payload = self.call(p.Op.OPEN, nodeid, p.OPEN_IN.pack(flags, 0))
        assert error == 0, error
        return p.OPEN_OUT.unpack(payload)

    def release(self, fh):
        assert self.call(p.Op.RELEASE, 1, p.RELEASE_IN.pack(fh, 0, 0, 0))[0] == 0


@pytest.fixture
def driver(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "file").write_bytes(b"hello")
    (root / "dir").mkdir()
    d = Driver(root)
    yield d
    d.fs.handles.close_all()
    d.fs.nodes.close_all()
    os.close(d.root_fd)


def test_handler_lookup_getattr_read(driver, tmp_path):
    nodeid = driver.lookup(b"file")
    assert nodeid != p.ROOT_ID and driver.lookup(b"file") == nodeid
    error, payload = driver.call(p.Op.GETATTR, nodeid, p.GETATTR_IN.pack(0, 0, 0))
    attr = p.ATTR.unpack_from(payload, p.ATTR_OUT_HEAD.size)
    assert error == 0 and attr[0] == os.stat(tmp_path / "src/file").st_ino and attr[1] == 5
    assert driver.call(p.Op.LOOKUP, 1, b"missing\0")[0] == -errno.ENOENT
    # a passthrough open is not read through us, but READ still works on the handle
    fh, _, _ = driver.open(nodeid, os.O_RDONLY)
    error, data = driver.call(p.Op.READ, nodeid, p.READ_IN.pack(fh, 1, 100, 0, 0, 0, 0))
    assert (error, data) == (0, b"ello")
    driver.release(fh)
    assert driver.raw(p.pack_request(p.Op.FORGET, 99, nodeid, p.FORGET_IN.pack(2))) is None
    assert len(driver.fs.nodes) == 1


def test_handler_readdir_and_readdirplus_offsets(driver):
    error, payload = driver.call(p.Op.OPENDIR, 1, p.OPEN_IN.pack(0, 0))
    fh = p.OPEN_OUT.unpack(payload)[0]
    error, payload = driver.call(p.Op.READDIR, 1, p.READ_IN.pack(fh, 0, 4096, 0, 0, 0, 0))
    entries = p.parse_dirents(payload)
    assert sorted(e[3] for e in entries) == [b".", b"..", b"dir", b"file"]
    assert [e[1] for e in entries] == [1, 2, 3, 4]
    # continue after the second entry, with READDIRPLUS: only real entries count lookups
    error, payload = driver.call(p.Op.READDIRPLUS, 1, p.READ_IN.pack(fh, 2, 4096, 0, 0, 0, 0))
    plus = p.parse_dirents(payload, plus=True)
    assert [e[3] for e in plus] == [e[3] for e in entries[2:]]
    assert len(driver.fs.nodes) == 3
    # a buffer too small for one record gives an empty reply, not an error
    assert driver.call(p.Op.READDIR, 1, p.READ_IN.pack(fh, 0, 10, 0, 0, 0, 0)) == (0, b"")
    assert driver.call(p.Op.RELEASEDIR, 1, p.RELEASE_IN.pack(fh, 0, 0, 0))[0] == 0


def test_handler_survives_malformed_requests(driver):
    assert driver.call(p.Op.LOOKUP, 1, b"no-nul")[0] == -errno.EINVAL
    assert driver.call(p.Op.GETATTR, 1, b"\0\0")[0] == -errno.EINVAL
    assert driver.call(p.Op.SETLK, 1, b"")[0] == -errno.ENOSYS
    assert driver.call(999, 1, b"")[0] == -errno.ENOSYS
    assert driver.call(p.Op.GETATTR, 12345, p.GETATTR_IN.pack(0, 0, 0))[0] == -errno.ESTALE
    assert driver.call(p.Op.READ, 1, p.READ_IN.pack(777, 0, 1, 0, 0, 0, 0))[0] == -errno.EBADF
    # a header whose length disagrees with what was read: EIO to its unique
    bad = bytearray(p.pack_request(p.Op.LOOKUP, 55, 1, b"x\0"))
    bad[0] += 8
    assert driver.raw(bytes(bad))[:2] == (55, -errno.EIO)
    assert driver.raw(b"short") is None
    assert driver.raw(p.pack_request(p.Op.FORGET, 56, 1, b"")) is None  # never answered
    assert driver.stats.counters["malformed_requests"] == 5
    assert driver.lookup(b"file")  # still serving


def test_handler_shares_one_backing_id_per_inode(driver):
    nodeid = driver.lookup(b"file")
    opens = [driver.open(nodeid) for _ in range(3)]
    assert {o[2] for o in opens} == {101} and all(o[1] & p.FOPEN_PASSTHROUGH for o in opens)
    assert driver.fs.backing.count == 1
    for fh, _, _ in opens:
        driver.release(fh)
    assert driver.backing.closed == [101] and driver.fs.backing.count == 0
    assert driver.stats.counters["passthrough_opens_granted"] == 3
    # directories never get passthrough
    dir_fh, flags, backing_id = driver.open(driver.lookup(b"dir"), os.O_RDONLY)
    assert (flags, backing_id) == (0, 0)
    driver.release(dir_fh)


def test_handler_refuses_passthrough_not_negotiated(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    d = Driver(tmp_path, offer=OFFER & ~p.FUSE_PASSTHROUGH)
    nodeid = d.lookup(b"f")
    fh, flags, backing_id = d.open(nodeid)
    assert (flags & p.FOPEN_PASSTHROUGH, backing_id) == (0, 0)
    assert d.stats.counters["passthrough_opens_refused"] == 1
    assert d.stats.info["passthrough_negotiated"] is False
    # the server does the I/O then
    error, payload = d.call(p.Op.WRITE, nodeid, p.WRITE_IN.pack(fh, 1, 2, 0, 0, 0, 0) + b"yz")
    assert (error, p.WRITE_OUT.unpack(payload)[0]) == (0, 2)
    assert (tmp_path / "f").read_bytes() == b"xyz" and d.stats.counters["write_requests"] == 1
    d.release(fh)
    d.fs.nodes.close_all()
    os.close(d.root_fd)


# real mounts


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to mount"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    return None


needs_fuse = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _is_fuse_mounted(mnt: Path) -> bool:
    found = find_mount(str(mnt))
    return bool(found) and found["fstype"] == "fuse"


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Mount:
    def __init__(self, tmp: Path, name: str):
        self.src, self.mnt = tmp / f"{name}-src", tmp / f"{name}-mnt"
        self.stats_path, self.log = tmp / f"{name}-stats.json", tmp / f"{name}.log"
        self.src.mkdir()
        self.mnt.mkdir()
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "LANG": "C"}

    def argv(self, **kw) -> list[str]:
        return server_argv(self.src, self.mnt, stats=self.stats_path, log=self.log,
                           python=sys.executable, **kw)

    def start(self, **kw) -> "Mount":
        self.proc = subprocess.Popen(self.argv(**kw), env=self.env, stdin=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)

        def mounted():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: "
                                     f"{self.proc.stderr.read().decode()}")
            return _is_fuse_mounted(self.mnt)
        _wait(mounted, 10, "the mount")
        _wait(self.stats_path.exists, 10, "the first stats (written after INIT)")
        return self

    def stats(self, predicate=lambda s: True, timeout: float = 5.0) -> dict:
        """Fresh stats (SIGUSR1) that satisfy predicate."""
        def fresh():
            before = time.time()
            os.kill(self.server_pid(), signal.SIGUSR1)
            _wait(lambda: self.stats_path.exists() and read_stats(self.stats_path)["updated"]
                  >= before - 0.01, 2, "stats")
            data = read_stats(self.stats_path)
            return data if predicate(data) else None
        return _wait(fresh, timeout, "stats")

    def server_pid(self) -> int:
        return read_stats(self.stats_path)["pid"]

    def wait_exit(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        pid = None
        if self.stats_path.exists():
            pid = read_stats(self.stats_path).get("pid")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stderr.close()
        if _is_fuse_mounted(self.mnt):
            subprocess.run(["umount", "-l", str(self.mnt)], check=False)
        if pid and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def fuse_mount(tmp_path):
    mounts = []

    def make(name="m", base: Path | None = None, **kw) -> Mount:
        m = Mount(base or tmp_path, name)
        mounts.append(m)
        return m.start(**kw) if kw.get("daemon") is not True else m
    yield make
    for m in mounts:
        m.cleanup()


@needs_fuse
def test_mount_mirrors_the_source(fuse_mount):
    m = fuse_mount()
    src, mnt = m.src, m.mnt
    found = find_mount(str(mnt))
    assert found["source"] == str(src) and found["fstype"] == "fuse"
    (mnt / "a").write_bytes(b"hello world")
    assert (src / "a").read_bytes() == b"hello world"
    assert (mnt / "a").read_bytes() == b"hello world"
    assert os.stat(mnt / "a").st_ino == os.stat(src / "a").st_ino
    (mnt / "d").mkdir()
    (mnt / "a").rename(mnt / "d" / "b")
    assert (src / "d" / "b").read_bytes() == b"hello world" and not (src / "a").exists()
    os.symlink("d/b", mnt / "l")
    assert os.readlink(src / "l") == "d/b" and (mnt / "l").read_bytes() == b"hello world"
    os.link(mnt / "d" / "b", mnt / "h")
    assert os.stat(src / "h").st_nlink == 2 and os.stat(mnt / "h").st_nlink == 2
    os.chmod(mnt / "h", 0o640)
    assert stat.S_IMODE(os.stat(src / "d" / "b").st_mode) == 0o640
    os.truncate(mnt / "h", 5)
    assert (src / "d" / "b").read_bytes() == b"hello"
    os.utime(mnt / "h", ns=(1_000_000_123, 2_000_000_456))
    assert os.stat(src / "h").st_mtime_ns == 2_000_000_456
    assert os.stat(mnt / "h").st_atime_ns == 1_000_000_123
    os.setxattr(mnt / "h", "user.k", b"v1")
    assert os.getxattr(src / "h", "user.k") == b"v1" and "user.k" in os.listxattr(mnt / "h")
    os.removexattr(mnt / "h", "user.k")
    assert os.listxattr(src / "h") == []
    assert sorted(os.listdir(mnt)) == sorted(os.listdir(src)) == ["d", "h", "l"]
    with os.scandir(mnt) as it:
        assert {e.name: e.is_dir(follow_symlinks=False) for e in it} == \
            {"d": True, "h": False, "l": False}
    os.unlink(mnt / "h")
    os.unlink(mnt / "d" / "b")
    os.rmdir(mnt / "d")
    assert sorted(os.listdir(src)) == ["l"]
    assert os.statvfs(mnt).f_blocks == os.statvfs(src).f_blocks


@needs_fuse
def test_less_common_operations(fuse_mount):
    m = fuse_mount()
    src, mnt = m.src, m.mnt
    (mnt / "a").write_bytes(b"A" * 10000)
    (mnt / "b").write_bytes(b"B" * 100)
    with pytest.raises(FileExistsError):
        renameat2(AT_FDCWD, bytes(mnt / "a"), AT_FDCWD, bytes(mnt / "b"), RENAME_NOREPLACE)
    renameat2(AT_FDCWD, bytes(mnt / "a"), AT_FDCWD, bytes(mnt / "b"), RENAME_EXCHANGE)
    assert (src / "a").read_bytes() == b"B" * 100 and (src / "b").read_bytes() == b"A" * 10000
    fd_in = os.open(mnt / "b", os.O_RDONLY)
    fd_out = os.open(mnt / "c", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        assert os.copy_file_range(fd_in, fd_out, 10000, 0, 0) == 10000
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert (src / "c").read_bytes() == b"A" * 10000
    fd = os.open(mnt / "sparse", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, 1 << 20)
        os.pwrite(fd, b"x", 5 << 20)
        assert os.fstat(fd).st_size == (5 << 20) + 1
        assert os.lseek(fd, 1 << 20, os.SEEK_DATA) == 5 << 20
    finally:
        os.close(fd)
    assert os.stat(src / "sparse").st_blocks >= (1 << 20) // 512
    os.mkfifo(mnt / "fifo", 0o640)
    assert stat.S_ISFIFO(os.stat(src / "fifo").st_mode)
    (mnt / "big").mkdir()
    names = {f"entry-with-a-rather-long-name-{i:04d}" for i in range(400)}
    for name in names:
        (src / "big" / name).touch()
    assert set(os.listdir(mnt / "big")) == names  # several replies, offsets continue
    requests = m.stats(lambda s: "READDIRPLUS" in s["requests"])["requests"]
    assert requests["READDIRPLUS"] + requests.get("READDIR", 0) >= 3
    assert requests["RENAME2"] >= 1  # NOREPLACE on an existing name stops in the VFS


@needs_fuse
def test_errors_keep_their_errno(fuse_mount):
    m = fuse_mount()
    mnt = m.mnt
    (mnt / "d").mkdir()
    (mnt / "d" / "f").write_bytes(b"x")
    cases = [(errno.ENOENT, lambda: os.stat(mnt / "nope")),
             (errno.ENOENT, lambda: os.unlink(mnt / "nope")),
             (errno.ENOTEMPTY, lambda: os.rmdir(mnt / "d")),
             (errno.EEXIST, lambda: os.mkdir(mnt / "d")),
             (errno.EEXIST, lambda: os.open(mnt / "d" / "f", os.O_CREAT | os.O_EXCL)),
             (errno.ENOTDIR, lambda: os.listdir(mnt / "d" / "f")),
             (errno.ENODATA, lambda: os.getxattr(mnt / "d" / "f", "user.none"))]
    for code, action in cases:
        with pytest.raises(OSError) as exc:
            action()
        assert exc.value.errno == code, action
    m.stats(lambda s: s["errors"].get("ENOTEMPTY") == 1)


@pytest.fixture
def public_tmp():
    """A directory other users can reach (pytest's own tmp tree is mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="kvariant-fuse-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_fuse
def test_callers_own_what_they_create_and_writes_drop_setuid(public_tmp, fuse_mount):
    m = fuse_mount(base=public_tmp)
    os.chmod(m.mnt, 0o777)
    (m.mnt / "suid").write_bytes(b"x")
    os.chmod(m.mnt / "suid", 0o4777)
    script = 'echo x > "$1/mine" && mkdir "$1/mydir" && echo y >> "$1/suid"'
    subprocess.run(["/bin/sh", "-c", script, "sh", str(m.mnt)], user=65534, group=65534,
                   extra_groups=[], check=True, cwd="/")
    for name in ("mine", "mydir"):
        st = os.stat(m.src / name)
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert stat.S_IMODE(os.stat(m.src / "suid").st_mode) == 0o777
    assert stat.S_IMODE(os.stat(m.mnt / "suid").st_mode) == 0o777


def _direct_writers(path: Path, nthreads: int, blocks: int) -> None:
    """Each thread writes its own 4 KiB blocks with O_DIRECT, aligned buffers."""
    errors = []

    def writer(k: int):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
            buf = mmap.mmap(-1, 4096)
            try:
                for i in range(k, blocks, nthreads):
                    buf.seek(0)
                    buf.write(bytes([65 + k]) * 4096)
                    assert os.pwrite(fd, buf, i * 4096) == 4096
            finally:
                os.close(fd)
                buf.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


@needs_fuse
@pytest.mark.parametrize("passthrough", [True, False], ids=["passthrough", "no-passthrough"])
def test_concurrent_odirect_writes(fuse_mount, passthrough):
    m = fuse_mount(passthrough=passthrough, parallel_direct_writes=True)
    blocks, nthreads = 256, 3
    (m.mnt / "shared").write_bytes(b"\0" * blocks * 4096)
    _direct_writers(m.mnt / "shared", nthreads, blocks)
    data = (m.src / "shared").read_bytes()
    assert data == b"".join(bytes([65 + i % nthreads]) * 4096 for i in range(blocks))
    assert (m.mnt / "shared").read_bytes() == data
    stats = m.stats(lambda s: s["backing_ids_open"] == 0 and s["open_handles"] == 0)
    assert stats["parallel_direct_writes"] is True
    if passthrough:
        assert stats["passthrough_negotiated"] and stats["passthrough_opens_granted"] >= 4
        assert stats["write_requests"] == 0 and stats["read_requests"] == 0
    else:
        assert stats["passthrough_opens_granted"] == 0
        assert stats["write_requests"] >= blocks and stats["write_bytes"] >= blocks * 4096
        assert stats["read_requests"] > 0


@needs_fuse
@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_fio_randwrite_through_passthrough(fuse_mount, tmp_path):
    m = fuse_mount()
    target = m.mnt / "f"
    subprocess.run(["fio", "--name=prefill", f"--filename={target}", "--rw=write", "--bs=1M",
                    "--direct=1", "--size=16M", "--output-format=json"],
                   check=True, capture_output=True, timeout=60)
    run = subprocess.run(["fio", "--name=t", f"--filename={target}", "--rw=randwrite",
                          "--bs=4k", "--direct=1", "--ioengine=libaio", "--iodepth=16",
                          "--numjobs=2", "--size=16M", "--runtime=3", "--time_based",
                          "--overwrite=1", "--group_reporting", "--output-format=json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)["jobs"][0]
    assert job["error"] == 0 and job["write"]["iops"] > 0
    stats = m.stats(lambda s: s["backing_ids_open"] == 0)
    assert stats["write_requests"] == 0 and stats["read_requests"] == 0
    assert stats["passthrough_opens_granted"] >= 1 and stats["passthrough_opens_refused"] == 0
    assert stats["protocol"] == "7.40" and stats["killpriv_v2_negotiated"]
    assert stats["requests"].get("GETXATTR", 0) < 10  # not one per write


@needs_fuse
@pytest.mark.parametrize("how", ["sigterm", "fusermount3", "umount"])
def test_unmount_ends_the_server_cleanly(fuse_mount, how):
    if how == "fusermount3" and shutil.which("fusermount3") is None:
        pytest.skip("fusermount3 is not installed")
    m = fuse_mount()
    (m.mnt / "f").write_bytes(b"x")
    if how == "sigterm":
        m.proc.send_signal(signal.SIGTERM)
    else:
        cmd = ["fusermount3", "-u", str(m.mnt)] if how == "fusermount3" else ["umount", str(m.mnt)]
        subprocess.run(cmd, check=True)
    assert m.wait_exit() == 0
    assert not _is_fuse_mounted(m.mnt)
    final = read_stats(m.stats_path)
    assert final["state"] == "exited" and final["exit_code"] == 0


@needs_fuse
def test_daemon_returns_once_mounted(fuse_mount):
    m = fuse_mount(daemon=True)
    run = subprocess.run(m.argv(daemon=True, fsname="/dev/fake-test-dev"), env=m.env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    found = find_mount(str(m.mnt))  # no waiting: the mount must already be there
    assert (found["fstype"], found["source"]) == ("fuse", "/dev/fake-test-dev")
    (m.mnt / "x").write_bytes(b"daemon")
    assert (m.src / "x").read_bytes() == b"daemon"
    pid = m.server_pid()
    assert _pid_alive(pid)
    subprocess.run(["umount", str(m.mnt)], check=True)
    _wait(lambda: not _pid_alive(pid), 10, "the daemon to exit")


@needs_fuse
def test_daemon_reports_a_failed_mount(tmp_path):
    argv = server_argv(tmp_path / "missing", tmp_path, daemon=True, python=sys.executable)
    run = subprocess.run(argv, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "error: source" in run.stderr
    assert not _is_fuse_mounted(tmp_path)
