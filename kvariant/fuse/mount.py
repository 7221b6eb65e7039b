"""System calls the standard library lacks (through ctypes) and /dev/fuse ioctls."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

from . import protocol as p

MS_RDONLY = 1
MNT_DETACH = 2
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

_libc = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _fn(name: str, *argtypes):
    fn = getattr(_libc, name)
    fn.argtypes = list(argtypes)
    fn.restype = ctypes.c_int
    return fn


_c_str, _c_int, _c_uint, _c_i64 = ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_int64
_mount = _fn("mount", _c_str, _c_str, _c_str, ctypes.c_ulong, _c_str)
_umount2 = _fn("umount2", _c_str, _c_int)
_renameat2 = _fn("renameat2", _c_int, _c_str, _c_int, _c_str, _c_uint)
_fallocate = _fn("fallocate64", _c_int, _c_int, _c_i64, _c_i64)
_utimensat = _fn("utimensat", _c_int, _c_str, ctypes.POINTER(_Timespec), _c_int)
_fchownat = _fn("fchownat", _c_int, _c_str, _c_uint, _c_uint, _c_int)
_linkat = _fn("linkat", _c_int, _c_str, _c_int, _c_str, _c_int)


def _check(ret: int, what: str, path=None) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def _b(path) -> bytes:
    return os.fsencode(path)


def mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    _check(_mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_umount2(_b(target), flags), "umount2", target)


def renameat2(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> None:
    _check(_renameat2(olddirfd, old, newdirfd, new, flags), "renameat2")


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    _check(_fallocate(fd, mode, offset, length), "fallocate")


def utimensat(dirfd: int, path: bytes | None, atime: tuple[int, int],
              mtime: tuple[int, int], flags: int = 0) -> None:
    """Times as (sec, nsec); nsec may be UTIME_NOW or UTIME_OMIT.  path None: futimens."""
    times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    _check(_utimensat(dirfd, path, times, flags), "utimensat")


def fchownat(dirfd: int, path: bytes, uid: int, gid: int, flags: int) -> None:
    """uid/gid -1 leave that owner unchanged."""
    _check(_fchownat(dirfd, path, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, flags), "fchownat")


def linkat(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> None:
    _check(_linkat(olddirfd, old, newdirfd, new, flags), "linkat")


# /dev/fuse


def open_device() -> int:
    return os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)


def clone_device(session_fd: int) -> int:
    """A new /dev/fuse fd attached to the same connection (its own request queue)."""
    fd = open_device()
    try:
        fcntl.ioctl(fd, p.FUSE_DEV_IOC_CLONE, bytearray(struct.pack("<I", session_fd)), True)
    except OSError:
        os.close(fd)
        raise
    return fd


def backing_open(dev_fd: int, fd: int) -> int:
    """Register fd as a passthrough backing file; returns its backing id."""
    arg = bytearray(p.BACKING_MAP.pack(fd, 0, 0))
    return fcntl.ioctl(dev_fd, p.FUSE_DEV_IOC_BACKING_OPEN, arg, True)


def backing_close(dev_fd: int, backing_id: int) -> None:
    arg = bytearray(struct.pack("<I", backing_id))
    fcntl.ioctl(dev_fd, p.FUSE_DEV_IOC_BACKING_CLOSE, arg, True)


def mount_options(dev_fd: int, *, extra: tuple[str, ...] = ()) -> str:
    """The data string given to mount(2) for plain fuse as root."""
    opts = [f"fd={dev_fd}", "rootmode=40000", "user_id=0", "group_id=0",
            "allow_other", "default_permissions", *extra]
    return ",".join(opts)


def mount_fuse(dev_fd: int, fsname: str, mountpoint: str, *, read_only: bool = False) -> None:
    """Mount type plain "fuse" with the device string fsname (what findmnt -S shows)."""
    mount(fsname, mountpoint, "fuse", MS_RDONLY if read_only else 0, mount_options(dev_fd))


def unmount(mountpoint: str) -> str:
    """Unmount; lazily when busy.  Returns "unmounted", "detached" or "not mounted"."""
    try:
        umount2(mountpoint)
        return "unmounted"
    except OSError as e:
        if e.errno == errno.EBUSY:
            umount2(mountpoint, MNT_DETACH)
            return "detached"
        if e.errno == errno.EINVAL:
            return "not mounted"
        raise


def _unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[dict]:
    """Each mount's id, point, fs type and source from /proc/*/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append({"id": int(fields[0]), "mountpoint": _unescape_mountinfo(fields[4]),
                       "fstype": tail[0], "source": _unescape_mountinfo(tail[1])})
    return mounts


def read_mountinfo(path: str = "/proc/self/mountinfo") -> list[dict]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def find_mount(mountpoint: str, mountinfo: str = "/proc/self/mountinfo") -> dict | None:
    """The last (topmost) mount at mountpoint, or None."""
    target = os.path.abspath(mountpoint)
    found = [m for m in read_mountinfo(mountinfo) if m["mountpoint"] == target]
    return found[-1] if found else None
