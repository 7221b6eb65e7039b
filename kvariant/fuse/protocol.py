"""The FUSE kernel protocol: constants, struct layouts, pure pack/unpack helpers.

Layouts follow include/uapi/linux/fuse.h.  We implement protocol 7.40 (the
first with passthrough); every function here is pure, so it can be tested
without a mount.
"""

from __future__ import annotations

import enum
import os
import stat
import struct
from typing import NamedTuple

KERNEL_MAJOR = 7
IMPLEMENTED_MINOR = 40
ROOT_ID = 1


class Op(enum.IntEnum):
    LOOKUP = 1
    FORGET = 2
    GETATTR = 3
    SETATTR = 4
    READLINK = 5
    SYMLINK = 6
    MKNOD = 8
    MKDIR = 9
    UNLINK = 10
    RMDIR = 11
    RENAME = 12
    LINK = 13
    OPEN = 14
    READ = 15
    WRITE = 16
    STATFS = 17
    RELEASE = 18
    FSYNC = 20
    SETXATTR = 21
    GETXATTR = 22
    LISTXATTR = 23
    REMOVEXATTR = 24
    FLUSH = 25
    INIT = 26
    OPENDIR = 27
    READDIR = 28
    RELEASEDIR = 29
    FSYNCDIR = 30
    GETLK = 31
    SETLK = 32
    SETLKW = 33
    ACCESS = 34
    CREATE = 35
    INTERRUPT = 36
    BMAP = 37
    DESTROY = 38
    IOCTL = 39
    POLL = 40
    NOTIFY_REPLY = 41
    BATCH_FORGET = 42
    FALLOCATE = 43
    READDIRPLUS = 44
    RENAME2 = 45
    LSEEK = 46
    COPY_FILE_RANGE = 47
    SETUPMAPPING = 48
    REMOVEMAPPING = 49
    SYNCFS = 50
    TMPFILE = 51
    STATX = 52
    COPY_FILE_RANGE_64 = 53


# Requests the kernel expects no answer to (answering them is an error).
NO_REPLY_OPS = frozenset({Op.FORGET, Op.BATCH_FORGET, Op.INTERRUPT})


_OP_NAMES = {op.value: op.name for op in Op}


def opcode_name(opcode: int) -> str:
    return _OP_NAMES.get(opcode) or f"OPCODE_{opcode}"


# INIT flags (bits 32..63 travel in flags2).
FUSE_ASYNC_READ = 1 << 0
FUSE_ATOMIC_O_TRUNC = 1 << 3
FUSE_BIG_WRITES = 1 << 5
FUSE_DONT_MASK = 1 << 6
FUSE_AUTO_INVAL_DATA = 1 << 12
FUSE_DO_READDIRPLUS = 1 << 13
FUSE_READDIRPLUS_AUTO = 1 << 14
FUSE_ASYNC_DIO = 1 << 15
FUSE_WRITEBACK_CACHE = 1 << 16
FUSE_PARALLEL_DIROPS = 1 << 18
FUSE_MAX_PAGES = 1 << 22
FUSE_HANDLE_KILLPRIV_V2 = 1 << 28
FUSE_INIT_EXT = 1 << 30
FUSE_DIRECT_IO_ALLOW_MMAP = 1 << 36
FUSE_PASSTHROUGH = 1 << 37

# What we ask for (masked by what the kernel offers).  Never WRITEBACK_CACHE:
# passthrough excludes it, and it would hide writes from the server's counts.
WANTED_INIT_FLAGS = (FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_AUTO_INVAL_DATA
                     | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_ASYNC_DIO
                     | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_INIT_EXT
                     | FUSE_DIRECT_IO_ALLOW_MMAP)

# open_out.open_flags
FOPEN_DIRECT_IO = 1 << 0
FOPEN_KEEP_CACHE = 1 << 1
FOPEN_NOFLUSH = 1 << 5
FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6
FOPEN_PASSTHROUGH = 1 << 7

# setattr_in.valid
FATTR_MODE = 1 << 0
FATTR_UID = 1 << 1
FATTR_GID = 1 << 2
FATTR_SIZE = 1 << 3
FATTR_ATIME = 1 << 4
FATTR_MTIME = 1 << 5
FATTR_FH = 1 << 6
FATTR_ATIME_NOW = 1 << 7
FATTR_MTIME_NOW = 1 << 8
FATTR_KILL_SUIDGID = 1 << 11

FUSE_NOTIFY_INVAL_INODE = 2  # out_header.error of a notification (unique 0)
NOTIFY_INVAL_INODE_OUT = struct.Struct("<Qqq")

FUSE_WRITE_KILL_SUIDGID = 1 << 2  # write_in.write_flags
FUSE_OPEN_KILL_SUIDGID = 1 << 0  # open_in/create_in.open_flags

FUSE_GETATTR_FH = 1 << 0
FUSE_FSYNC_FDATASYNC = 1 << 0

# Device ioctls.
FUSE_DEV_IOC_CLONE = 0x8004E500
FUSE_DEV_IOC_BACKING_OPEN = 0x4010E501
FUSE_DEV_IOC_BACKING_CLOSE = 0x4004E502

# Structs (little endian, as on every machine this runs on).
IN_HEADER = struct.Struct("<IIQQIIIHH")  # 40
OUT_HEADER = struct.Struct("<IiQ")  # 16
ATTR = struct.Struct("<QQQqqqIIIIIIIIII")  # 88; times signed for pre-1970
ENTRY_OUT_HEAD = struct.Struct("<QQQQII")  # 40, then ATTR
ATTR_OUT_HEAD = struct.Struct("<QII")  # 16, then ATTR
OPEN_OUT = struct.Struct("<QIi")  # 16
INIT_IN = struct.Struct("<IIII")  # major minor max_readahead flags; flags2 follows
INIT_OUT = struct.Struct("<4I2H2I2H2IH22x")  # 64
FORGET_IN = struct.Struct("<Q")
BATCH_FORGET_IN = struct.Struct("<II")
FORGET_ONE = struct.Struct("<QQ")
GETATTR_IN = struct.Struct("<IIQ")
SETATTR_IN = struct.Struct("<IIQQQqqqIIIIIIII")  # 88
MKNOD_IN = struct.Struct("<IIII")
MKDIR_IN = struct.Struct("<II")
RENAME_IN = struct.Struct("<Q")
RENAME2_IN = struct.Struct("<QII")
LINK_IN = struct.Struct("<Q")
OPEN_IN = struct.Struct("<II")
CREATE_IN = struct.Struct("<IIII")
RELEASE_IN = struct.Struct("<QIIQ")
FLUSH_IN = struct.Struct("<QIIQ")
READ_IN = struct.Struct("<QQIIQII")  # 40; WRITE_IN has the same layout
WRITE_IN = READ_IN
WRITE_OUT = struct.Struct("<II")
KSTATFS = struct.Struct("<5Q4I24x")  # 80
FSYNC_IN = struct.Struct("<QII")
SETXATTR_IN = struct.Struct("<II")  # compat size: we do not negotiate SETXATTR_EXT
GETXATTR_IN = struct.Struct("<II")
GETXATTR_OUT = struct.Struct("<II")
ACCESS_IN = struct.Struct("<II")
FALLOCATE_IN = struct.Struct("<QQQII")
LSEEK_IN = struct.Struct("<QQII")
LSEEK_OUT = struct.Struct("<Q")
COPY_FILE_RANGE_IN = struct.Struct("<7Q")
DIRENT_HEAD = struct.Struct("<QQII")  # 24, then the name, padded to 8
BACKING_MAP = struct.Struct("<iIQ")

ENTRY_OUT_SIZE = ENTRY_OUT_HEAD.size + ATTR.size  # 128
COMPAT_22_INIT_OUT_SIZE = 24


class InHeader(NamedTuple):
    len: int
    opcode: int
    unique: int
    nodeid: int
    uid: int
    gid: int
    pid: int
    total_extlen: int


class InitIn(NamedTuple):
    major: int
    minor: int
    max_readahead: int
    flags: int  # 64 bits: flags | flags2 << 32


class InitResult(NamedTuple):
    reply: bytes
    minor: int
    flags: int
    passthrough: bool


def parse_in_header(buf) -> InHeader:
    """Header of one request; raises ValueError when it cannot be trusted."""
    if len(buf) < IN_HEADER.size:
        raise ValueError(f"request of {len(buf)} bytes is shorter than its header")
    fields = IN_HEADER.unpack_from(buf)
    hdr = InHeader(*fields[:8])
    if hdr.len != len(buf):
        raise ValueError(f"header says {hdr.len} bytes, read {len(buf)}")
    if IN_HEADER.size + hdr.total_extlen * 8 > hdr.len:
        raise ValueError(f"extension length {hdr.total_extlen * 8} exceeds request")
    return hdr


def request_body(buf, hdr: InHeader):
    """The request's own arguments, without header and extensions."""
    return buf[IN_HEADER.size:hdr.len - hdr.total_extlen * 8]


def pack_out_header(unique: int, error: int, payload_len: int) -> bytes:
    """error is 0 or a negative errno."""
    return OUT_HEADER.pack(OUT_HEADER.size + payload_len, error, unique)


def split_cstrings(buf, count: int) -> list[bytes]:
    """The first `count` NUL-terminated strings of buf (names in requests)."""
    data = bytes(buf)
    out, pos = [], 0
    for _ in range(count):
        end = data.find(b"\0", pos)
        if end < 0:
            raise ValueError("name is not NUL-terminated")
        out.append(data[pos:end])
        pos = end + 1
    return out


def timeout_parts(seconds: float) -> tuple[int, int]:
    whole = int(seconds)
    return whole, int(round((seconds - whole) * 1e9))


def encode_rdev(dev: int) -> int:
    """glibc dev_t -> the kernel's new_encode_dev() u32 used by fuse_attr."""
    major, minor = os.major(dev), os.minor(dev)
    return ((minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)) & 0xFFFFFFFF


def decode_rdev(dev: int) -> int:
    """The kernel's new_encode_dev() u32 (mknod_in.rdev) -> glibc dev_t."""
    major = (dev & 0xFFF00) >> 8
    minor = (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
    return os.makedev(major, minor)


def _split_ns(ns: int) -> tuple[int, int]:
    return ns // 1_000_000_000, ns % 1_000_000_000


def pack_attr(st: os.stat_result) -> bytes:
    """struct fuse_attr from a backing stat; ino is the backing inode number."""
    (a, an), (m, mn), (c, cn) = (_split_ns(st.st_atime_ns), _split_ns(st.st_mtime_ns),
                                 _split_ns(st.st_ctime_ns))
    return ATTR.pack(st.st_ino, st.st_size, st.st_blocks, a, m, c, an, mn, cn,
                     st.st_mode, min(st.st_nlink, 0xFFFFFFFF), st.st_uid, st.st_gid,
                     encode_rdev(st.st_rdev), st.st_blksize, 0)


def pack_entry_out(nodeid: int, st: os.stat_result | None, timeout: float) -> bytes:
    """struct fuse_entry_out (128 bytes); nodeid 0 with st None is an empty entry."""
    if st is None:
        return bytes(ENTRY_OUT_SIZE)
    sec, nsec = timeout_parts(timeout)
    return ENTRY_OUT_HEAD.pack(nodeid, 0, sec, sec, nsec, nsec) + pack_attr(st)


def pack_attr_out(st: os.stat_result, timeout: float) -> bytes:
    sec, nsec = timeout_parts(timeout)
    return ATTR_OUT_HEAD.pack(sec, nsec, 0) + pack_attr(st)


def pack_open_out(fh: int, open_flags: int, backing_id: int = 0) -> bytes:
    return OPEN_OUT.pack(fh, open_flags, backing_id)


def pack_notify_inval_inode(nodeid: int, offset: int = -1, length: int = 0) -> bytes:
    """Tell the kernel to drop an inode's cached attributes (and, with offset >= 0,
    its cached pages)."""
    body = NOTIFY_INVAL_INODE_OUT.pack(nodeid, offset, length)
    return OUT_HEADER.pack(OUT_HEADER.size + len(body), FUSE_NOTIFY_INVAL_INODE, 0) + body


def pack_statfs(vfs: os.statvfs_result) -> bytes:
    return KSTATFS.pack(vfs.f_blocks, vfs.f_bfree, vfs.f_bavail, vfs.f_files,
                        vfs.f_ffree, vfs.f_bsize, vfs.f_namemax, vfs.f_frsize, 0)


def align8(n: int) -> int:
    return (n + 7) & ~7


def dirent_size(namelen: int) -> int:
    return align8(DIRENT_HEAD.size + namelen)


def direntplus_size(namelen: int) -> int:
    return align8(ENTRY_OUT_SIZE + DIRENT_HEAD.size + namelen)


def dirent_type(mode: int) -> int:
    """DT_* value (as in getdents) of a st_mode."""
    return stat.S_IFMT(mode) >> 12


def pack_dirent(ino: int, off: int, dtype: int, name: bytes) -> bytes:
    """struct fuse_dirent with its name, padded to a multiple of 8 bytes."""
    rec = DIRENT_HEAD.pack(ino, off, len(name), dtype) + name
    return rec + bytes(dirent_size(len(name)) - len(rec))


def pack_direntplus(entry_out: bytes, ino: int, off: int, dtype: int, name: bytes) -> bytes:
    """struct fuse_direntplus: an entry_out, then a dirent; padded to 8."""
    rec = entry_out + DIRENT_HEAD.pack(ino, off, len(name), dtype) + name
    return rec + bytes(direntplus_size(len(name)) - len(rec))


def parse_init_in(body) -> InitIn:
    if len(body) < INIT_IN.size:
        raise ValueError(f"INIT body of {len(body)} bytes")
    major, minor, readahead, flags = INIT_IN.unpack_from(body)
    if flags & FUSE_INIT_EXT and len(body) >= INIT_IN.size + 4:
        flags |= struct.unpack_from("<I", body, INIT_IN.size)[0] << 32
    return InitIn(major, minor, readahead, flags)


def negotiate_init(kernel: InitIn, *, passthrough: bool, killpriv_v2: bool = True,
                   max_write: int = 1 << 20,
                   max_pages: int = 256, max_background: int = 64,
                   congestion_threshold: int = 48) -> InitResult:
    """Reply to the kernel's INIT: our flags masked by the kernel's offer.

    Passthrough is negotiated only when asked for and offered (it needs
    FUSE_INIT_EXT, since its bit travels in flags2); max_stack_depth is 1
    then, so the backing file system must not itself be stacked.
    With killpriv_v2 the server clears setuid/setgid bits and file
    capabilities on writes, truncates and chowns (the kernel flags them), and
    the kernel may mark inodes S_NOSEC: without it, every write asks the
    server for security.capability first, even under passthrough.
    """
    if kernel.major != KERNEL_MAJOR:
        raise ValueError(f"unsupported FUSE protocol major {kernel.major}")
    minor = min(kernel.minor, IMPLEMENTED_MINOR)
    want = (WANTED_INIT_FLAGS | (FUSE_PASSTHROUGH if passthrough else 0)
            | (FUSE_HANDLE_KILLPRIV_V2 if killpriv_v2 else 0))
    flags = kernel.flags & want
    if not flags & FUSE_INIT_EXT:
        flags &= 0xFFFFFFFF
    granted = bool(flags & FUSE_PASSTHROUGH)
    reply = INIT_OUT.pack(KERNEL_MAJOR, minor, kernel.max_readahead, flags & 0xFFFFFFFF,
                          max_background, congestion_threshold, max_write, 1,
                          max_pages, 0, flags >> 32, 1 if granted else 0, 0)
    if minor < 23:
        reply = reply[:COMPAT_22_INIT_OUT_SIZE]
    return InitResult(reply, minor, flags, granted)


def pack_init_in(major: int, minor: int, flags: int, max_readahead: int = 131072) -> bytes:
    """The kernel's side of INIT (64 bytes); for tests and fakes."""
    return INIT_IN.pack(major, minor, max_readahead, flags & 0xFFFFFFFF) + \
        struct.pack("<I44x", flags >> 32)


def pack_request(opcode: int, unique: int, nodeid: int, body: bytes = b"", *,
                 uid: int = 0, gid: int = 0, pid: int = 0) -> bytes:
    """A whole request as the kernel writes it; for tests and fakes."""
    return IN_HEADER.pack(IN_HEADER.size + len(body), opcode, unique, nodeid,
                          uid, gid, pid, 0, 0) + body


def parse_reply(buf) -> tuple[int, int, bytes]:
    """(unique, error, payload) of a reply; for tests and fakes."""
    length, error, unique = OUT_HEADER.unpack_from(buf)
    if length != len(buf):
        raise ValueError(f"reply header says {length} bytes, got {len(buf)}")
    return unique, error, bytes(buf[OUT_HEADER.size:])


def parse_dirents(buf, plus: bool = False) -> list[tuple[int, int, int, bytes]]:
    """(ino, off, type, name) of each record of a READDIR(PLUS) reply; for tests."""
    out, pos = [], 0
    while pos < len(buf):
        start = pos + (ENTRY_OUT_SIZE if plus else 0)
        ino, off, namelen, dtype = DIRENT_HEAD.unpack_from(buf, start)
        name_at = start + DIRENT_HEAD.size
        out.append((ino, off, dtype, bytes(buf[name_at:name_at + namelen])))
        pos += direntplus_size(namelen) if plus else dirent_size(namelen)
    return out
