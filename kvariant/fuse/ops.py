"""Request dispatch and the passthrough operations on the backing directory.

`PassthroughFS.handle(request_bytes)` turns one request into the buffers of
its reply (or None when the kernel expects none).  It never raises: errors of
the backing file system come back as their errno, malformed requests as
EINVAL and anything unexpected as EIO, each logged.  Nothing here touches
/dev/fuse except the passthrough ioctls, so it can be driven by tests.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
from dataclasses import dataclass

from . import mount as sysc
from . import protocol as p
from .fileops import FileOps
from .inodes import BackingIds, HandleTable, Node, NodeTable, proc_path
from .stats import Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenPolicy:
    passthrough: bool = True
    parallel_direct_writes: bool = False
    direct_io: bool = False


def _time_arg(valid: int, bit: int, now_bit: int, sec: int, nsec: int) -> tuple[int, int]:
    if valid & now_bit:
        return (0, sysc.UTIME_NOW)
    if valid & bit:
        return (sec, nsec)
    return (0, sysc.UTIME_OMIT)


class PassthroughFS(FileOps):
    """The operations, mirroring the directory behind root_fd."""

    def __init__(self, root_fd: int, dev_fd: int, policy: OpenPolicy, stats: Stats, *,
                 timeout: float = 1.0, max_write: int = 1 << 20, killpriv_v2: bool = True,
                 backing_calls=(sysc.backing_open, sysc.backing_close)):
        self.nodes = NodeTable(root_fd)
        self.handles = HandleTable()
        self.backing = BackingIds(dev_fd, *backing_calls)
        self.policy = policy
        self.stats = stats
        self.timeout = timeout
        self.max_write = max_write
        self.dev_fd = dev_fd
        self.killpriv_v2 = killpriv_v2
        self.passthrough_active = False
        self.killpriv_active = False
        self.initialized = False
        self._handlers = {op: getattr(self, "op_" + op.name.lower()) for op in p.Op
                          if hasattr(self, "op_" + op.name.lower())}

    # dispatch

    def handle(self, buf) -> list | None:
        """Reply buffers for one request, header first; None: no reply is due."""
        try:
            hdr = p.parse_in_header(buf)
        except (ValueError, struct.error) as e:
            return self._malformed(buf, e)
        name = p.opcode_name(hdr.opcode)
        self.stats.count_request(name)
        handler = self._handlers.get(hdr.opcode)
        try:
            if handler is None:
                raise OSError(errno.ENOSYS, f"{name} not implemented")
            parts = handler(hdr, p.request_body(buf, hdr)) or []
            error = 0
        except OSError as e:
            error = e.errno or errno.EIO
            log.debug("%s nodeid %d: %s", name, hdr.nodeid, e)
        except (ValueError, struct.error, IndexError) as e:
            error = errno.EINVAL
            self.stats.add("malformed_requests")
            log.error("malformed %s request (unique %d, %d bytes): %s", name, hdr.unique,
                      hdr.len, e)
        except Exception:
            error = errno.EIO
            log.exception("%s request (unique %d) failed", name, hdr.unique)
        if hdr.opcode in p.NO_REPLY_OPS:
            return None
        if error:
            self.stats.count_error(errno.errorcode.get(error, str(error)))
            return [p.pack_out_header(hdr.unique, -error, 0)]
        return [p.pack_out_header(hdr.unique, 0, sum(len(x) for x in parts)), *parts]

    def _malformed(self, buf, exc) -> list | None:
        self.stats.add("malformed_requests")
        log.error("malformed request (%d bytes): %s", len(buf), exc)
        if len(buf) < p.IN_HEADER.size:
            return None
        _, opcode, unique = struct.unpack_from("<IIQ", buf)
        if opcode in p.NO_REPLY_OPS:
            return None
        self.stats.count_error("EIO")
        return [p.pack_out_header(unique, -errno.EIO, 0)]

    # session

    def op_init(self, hdr, body):
        kernel = p.parse_init_in(body)
        res = p.negotiate_init(kernel, passthrough=self.policy.passthrough,
                               killpriv_v2=self.killpriv_v2, max_write=self.max_write,
                               max_pages=min(0xFFFF, max(1, self.max_write // 4096)))
        self.passthrough_active = res.passthrough
        self.killpriv_active = bool(res.flags & p.FUSE_HANDLE_KILLPRIV_V2)
        if self.policy.passthrough and not res.passthrough:
            log.warning("passthrough requested but not negotiated (kernel protocol %d.%d did not "
                        "offer FUSE_PASSTHROUGH): all I/O goes through the server",
                        kernel.major, kernel.minor)
        self.stats.set_info(protocol=f"{p.KERNEL_MAJOR}.{res.minor}",
                            kernel_protocol=f"{kernel.major}.{kernel.minor}",
                            init_flags=hex(res.flags),
                            passthrough_negotiated=res.passthrough,
                            killpriv_v2_negotiated=self.killpriv_active)
        log.info("INIT: kernel %d.%d, using %d.%d, flags %#x, passthrough %s", kernel.major,
                 kernel.minor, p.KERNEL_MAJOR, res.minor, res.flags, res.passthrough)
        self.initialized = True
        return [res.reply]

    def op_destroy(self, hdr, body):
        return []

    def op_interrupt(self, hdr, body):
        return None

    # names and inodes

    def _lookup(self, dirfd: int, name: bytes) -> tuple[Node, os.stat_result]:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        try:
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        return self.nodes.acquire(fd, st), st

    def _entry(self, dirfd: int, name: bytes) -> bytes:
        node, st = self._lookup(dirfd, name)
        return p.pack_entry_out(node.nodeid, st, self.timeout)

    def op_lookup(self, hdr, body):
        (name,) = p.split_cstrings(body, 1)
        return [self._entry(self.nodes.get(hdr.nodeid).fd, name)]

    def op_forget(self, hdr, body):
        (nlookup,) = p.FORGET_IN.unpack_from(body)
        self.nodes.forget(hdr.nodeid, nlookup)

    def op_batch_forget(self, hdr, body):
        count, _ = p.BATCH_FORGET_IN.unpack_from(body)
        for i in range(count):
            nodeid, nlookup = p.FORGET_ONE.unpack_from(body, p.BATCH_FORGET_IN.size + i * 16)
            self.nodes.forget(nodeid, nlookup)

    def op_getattr(self, hdr, body):
        flags, _, fh = p.GETATTR_IN.unpack_from(body)
        if flags & p.FUSE_GETATTR_FH:
            st = os.fstat(self.handles.get(fh).fd)
        else:
            st = os.fstat(self.nodes.get(hdr.nodeid).fd)
        return [p.pack_attr_out(st, self.timeout)]

    def op_setattr(self, hdr, body):
        (valid, _, fh, size, _, atime, mtime, _, atimensec, mtimensec, _, mode, _, uid, gid,
         _) = p.SETATTR_IN.unpack_from(body)
        node = self.nodes.get(hdr.nodeid)
        fd = self.handles.get(fh).fd if valid & p.FATTR_FH else None
        if valid & p.FATTR_MODE:
            if fd is not None:
                os.fchmod(fd, mode & 0o7777)
            else:
                os.chmod(proc_path(node.fd), mode & 0o7777)
        if valid & (p.FATTR_UID | p.FATTR_GID):
            sysc.fchownat(node.fd, b"", uid if valid & p.FATTR_UID else -1,
                          gid if valid & p.FATTR_GID else -1,
                          sysc.AT_EMPTY_PATH | sysc.AT_SYMLINK_NOFOLLOW)
        if valid & p.FATTR_SIZE:
            self._truncate(node, fd, size)
        if valid & p.FATTR_KILL_SUIDGID and not valid & p.FATTR_MODE:
            self._kill_privs(node, fd)
        if valid & (p.FATTR_ATIME | p.FATTR_MTIME | p.FATTR_ATIME_NOW | p.FATTR_MTIME_NOW):
            self._set_times(node, fd, _time_arg(valid, p.FATTR_ATIME, p.FATTR_ATIME_NOW,
                                                 atime, atimensec),
                            _time_arg(valid, p.FATTR_MTIME, p.FATTR_MTIME_NOW, mtime, mtimensec))
        st = os.fstat(fd if fd is not None else node.fd)
        return [p.pack_attr_out(st, self.timeout)]

    @staticmethod
    def _truncate(node: Node, fd: int | None, size: int) -> None:
        if fd is not None:
            try:
                os.ftruncate(fd, size)
                return
            except OSError as e:  # e.g. O_RDONLY|O_TRUNC: our fd is read-only
                if e.errno not in (errno.EINVAL, errno.EBADF):
                    raise
        os.truncate(proc_path(node.fd), size)

    @staticmethod
    def _set_times(node: Node, fd: int | None, atime, mtime) -> None:
        if fd is not None:
            sysc.utimensat(fd, None, atime, mtime)
        elif node.is_symlink:
            sysc.utimensat(node.fd, b"", atime, mtime, sysc.AT_EMPTY_PATH)
        else:
            sysc.utimensat(sysc.AT_FDCWD, os.fsencode(proc_path(node.fd)), atime, mtime)

    def op_readlink(self, hdr, body):
        return [os.readlink(b"", dir_fd=self.nodes.get(hdr.nodeid).fd)]

    def _chown_new(self, hdr, parent: Node, mode: int, *, name: bytes = b"",
                   fd: int | None = None) -> None:
        """Give a new inode to the caller (we create as root); keep setgid inheritance."""
        if hdr.uid == 0 and hdr.gid == 0:
            return
        gid = -1 if os.fstat(parent.fd).st_mode & stat.S_ISGID else hdr.gid
        if fd is not None:
            os.fchown(fd, hdr.uid, gid)
        else:
            sysc.fchownat(parent.fd, name, hdr.uid, gid, sysc.AT_SYMLINK_NOFOLLOW)
        if mode & (stat.S_ISUID | stat.S_ISGID) and stat.S_IFMT(mode) not in (stat.S_IFDIR,
                                                                               stat.S_IFLNK):
            if fd is not None:  # chown cleared them; the caller asked for them
                os.fchmod(fd, mode & 0o7777)
            else:
                os.chmod(name, mode & 0o7777, dir_fd=parent.fd)

    def _created(self, hdr, parent: Node, name: bytes, mode: int) -> list[bytes]:
        self._chown_new(hdr, parent, mode, name=name)
        return [self._entry(parent.fd, name)]

    def op_mknod(self, hdr, body):
        mode, rdev, _, _ = p.MKNOD_IN.unpack_from(body)
        (name,) = p.split_cstrings(body[p.MKNOD_IN.size:], 1)
        parent = self.nodes.get(hdr.nodeid)
        os.mknod(name, mode, p.decode_rdev(rdev), dir_fd=parent.fd)
        return self._created(hdr, parent, name, mode)

    def op_mkdir(self, hdr, body):
        mode, _ = p.MKDIR_IN.unpack_from(body)
        (name,) = p.split_cstrings(body[p.MKDIR_IN.size:], 1)
        parent = self.nodes.get(hdr.nodeid)
        os.mkdir(name, mode & 0o7777, dir_fd=parent.fd)
        return self._created(hdr, parent, name, stat.S_IFDIR | mode)

    def op_symlink(self, hdr, body):
        name, target = p.split_cstrings(body, 2)
        parent = self.nodes.get(hdr.nodeid)
        os.symlink(target, name, dir_fd=parent.fd)
        return self._created(hdr, parent, name, stat.S_IFLNK)

    def op_link(self, hdr, body):
        (oldnodeid,) = p.LINK_IN.unpack_from(body)
        (name,) = p.split_cstrings(body[p.LINK_IN.size:], 1)
        old, parent = self.nodes.get(oldnodeid), self.nodes.get(hdr.nodeid)
        sysc.linkat(old.fd, b"", parent.fd, name, sysc.AT_EMPTY_PATH)
        return [self._entry(parent.fd, name)]

    def op_unlink(self, hdr, body):
        (name,) = p.split_cstrings(body, 1)
        os.unlink(name, dir_fd=self.nodes.get(hdr.nodeid).fd)
        return []

    def op_rmdir(self, hdr, body):
        (name,) = p.split_cstrings(body, 1)
        os.rmdir(name, dir_fd=self.nodes.get(hdr.nodeid).fd)
        return []

    def op_rename(self, hdr, body):
        (newdir,) = p.RENAME_IN.unpack_from(body)
        return self._rename(hdr.nodeid, newdir, 0, body[p.RENAME_IN.size:])

    def op_rename2(self, hdr, body):
        newdir, flags, _ = p.RENAME2_IN.unpack_from(body)
        return self._rename(hdr.nodeid, newdir, flags, body[p.RENAME2_IN.size:])

    def _rename(self, olddir: int, newdir: int, flags: int, names) -> list[bytes]:
        old, new = p.split_cstrings(names, 2)
        src, dst = self.nodes.get(olddir).fd, self.nodes.get(newdir).fd
        if flags:
            sysc.renameat2(src, old, dst, new, flags)
        else:
            os.rename(old, new, src_dir_fd=src, dst_dir_fd=dst)
        return []

    def op_statfs(self, hdr, body):
        return [p.pack_statfs(os.statvfs(self.nodes.get(hdr.nodeid).fd))]

    def op_access(self, hdr, body):
        mask, _ = p.ACCESS_IN.unpack_from(body)
        node = self.nodes.get(hdr.nodeid)
        if not node.is_symlink and not os.access(proc_path(node.fd), mask):
            raise OSError(errno.EACCES, "access denied")
        return []
