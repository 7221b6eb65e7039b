"""Operations on open files, directories and extended attributes.

A mixin of `ops.PassthroughFS`: it uses its nodes, handles, backing ids,
open policy, stats and lookup helpers.
"""

from __future__ import annotations

import errno
import logging
import os
import stat

from . import mount as sysc
from . import protocol as p
from .inodes import Handle, Node, proc_path

log = logging.getLogger(__name__)

# Flags not given to the backing open: the kernel already resolved the path
# and handles truncation (no ATOMIC_O_TRUNC) and append offsets; O_DIRECT
# would make the server's pread/pwrite need aligned buffers.  Passthrough I/O
# keeps the caller's own IOCB_DIRECT, so it stays direct on the backing file.
STRIP_OPEN = (os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC | os.O_DIRECT
              | os.O_APPEND | os.O_NOFOLLOW)
STRIP_CREATE = os.O_NOCTTY | os.O_DIRECT | os.O_APPEND | os.O_NOFOLLOW
MAX_COPY = 0xFFFFF000  # COPY_FILE_RANGE answers in a u32
DT_DIR, DT_REG, DT_LNK = 4, 8, 10
LOGGED_REFUSALS = 10
CAPS_XATTR = "security.capability"


def _sized(data: bytes, size: int) -> list[bytes]:
    """xattr replies: the length alone when asked with size 0, ERANGE when too small."""
    if size == 0:
        return [p.GETXATTR_OUT.pack(len(data), 0)]
    if len(data) > size:
        raise OSError(errno.ERANGE, "buffer too small")
    return [data]


def _check_unprivileged(fd: int) -> None:
    """Refuse passthrough (EPERM) for files whose writes must drop privileges:
    passthrough writes run with the server's credentials, and with
    HANDLE_KILLPRIV_V2 the kernel leaves the dropping to the server."""
    mode = os.fstat(fd).st_mode
    if mode & stat.S_ISUID or (mode & (stat.S_ISGID | stat.S_IXGRP)) == (stat.S_ISGID
                                                                          | stat.S_IXGRP):
        raise OSError(errno.EPERM, "setuid/setgid file")
    try:
        os.getxattr(fd, CAPS_XATTR)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.EOPNOTSUPP):
            return
        raise
    raise OSError(errno.EPERM, "file has capabilities")


def _entry_type(entry: os.DirEntry) -> int:
    try:
        if entry.is_symlink():
            return DT_LNK
        if entry.is_dir(follow_symlinks=False):
            return DT_DIR
        if entry.is_file(follow_symlinks=False):
            return DT_REG
        return p.dirent_type(entry.stat(follow_symlinks=False).st_mode)
    except OSError:
        return 0


def scan_directory(fd: int) -> list[tuple[int, int, bytes]]:
    """(ino, type, name) of every entry of the directory fd, "." and ".." first."""
    os.lseek(fd, 0, os.SEEK_SET)
    ino = os.fstat(fd).st_ino
    try:
        up = os.stat(b"..", dir_fd=fd, follow_symlinks=False).st_ino
    except OSError:
        up = ino
    entries = [(ino, DT_DIR, b"."), (up, DT_DIR, b"..")]
    with os.scandir(fd) as it:
        entries.extend((e.inode(), _entry_type(e), os.fsencode(e.name)) for e in it)
    return entries


class FileOps:
    _refusals_logged = 0

    # open files

    def _open_reply(self, node: Node, fd: int) -> bytes:
        """Register the open file; passthrough for regular files when the policy says so."""
        flags = 0
        if self.policy.direct_io:
            flags |= p.FOPEN_DIRECT_IO
        if self.policy.parallel_direct_writes:
            flags |= p.FOPEN_PARALLEL_DIRECT_WRITES
        handle = Handle(fd, node)
        backing_id = 0
        if node.is_regular and self.policy.passthrough:
            backing_id = self._grant_passthrough(node, fd)
        if backing_id:
            flags |= p.FOPEN_PASSTHROUGH
            handle.passthrough = True
        elif node.is_regular:
            self.backing.open_plain(node)
        return p.pack_open_out(self.handles.add(handle), flags, backing_id)

    def _grant_passthrough(self, node: Node, fd: int) -> int:
        """The inode's backing id, or 0 when refused (then I/O goes through us)."""
        if not self.passthrough_active:
            self.stats.add("passthrough_opens_refused")
            return 0
        try:
            if self.killpriv_active and node.backing_refs == 0:
                _check_unprivileged(fd)
            backing_id = self.backing.acquire(node, fd)
        except OSError as e:
            self.stats.add("passthrough_opens_refused")
            if FileOps._refusals_logged < LOGGED_REFUSALS:
                FileOps._refusals_logged += 1
                hint = (" (the source is on a stacked file system, e.g. overlayfs: "
                        "max_stack_depth is 1)" if e.errno == errno.ELOOP else "")
                log.warning("no passthrough for nodeid %d: %s%s", node.nodeid, e, hint)
            return 0
        self.stats.add("passthrough_opens_granted")
        return backing_id

    def _kill_privs(self, node: Node, fd: int | None) -> bool:
        """What a write by an unprivileged caller does: drop setuid, setgid
        (when group-executable) and file capabilities.  True if anything changed."""
        if node.is_symlink:
            return False
        mode = os.fstat(fd if fd is not None else node.fd).st_mode & 0o7777
        new = mode & ~stat.S_ISUID
        if mode & stat.S_IXGRP:
            new &= ~stat.S_ISGID
        if new != mode:
            if fd is not None:
                os.fchmod(fd, new)
            else:
                os.chmod(proc_path(node.fd), new)
        try:
            os.removexattr(proc_path(fd if fd is not None else node.fd), CAPS_XATTR)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                raise
            return new != mode
        return True

    def _invalidate_attrs(self, node: Node) -> None:
        """The kernel caches the mode we just changed behind its back."""
        try:
            os.write(self.dev_fd, p.pack_notify_inval_inode(node.nodeid))
        except OSError as e:
            log.debug("FUSE_NOTIFY_INVAL_INODE for nodeid %d: %s", node.nodeid, e)

    def op_open(self, hdr, body):
        flags, open_flags = p.OPEN_IN.unpack_from(body)
        node = self.nodes.get(hdr.nodeid)
        fd = os.open(proc_path(node.fd), (flags & ~STRIP_OPEN) | os.O_CLOEXEC)
        try:
            if open_flags & p.FUSE_OPEN_KILL_SUIDGID and self._kill_privs(node, fd):
                self._invalidate_attrs(node)
            return [self._open_reply(node, fd)]
        except BaseException:
            os.close(fd)
            raise

    def op_create(self, hdr, body):
        flags, mode, _, open_flags = p.CREATE_IN.unpack_from(body)
        (name,) = p.split_cstrings(body[p.CREATE_IN.size:], 1)
        parent = self.nodes.get(hdr.nodeid)
        fd = os.open(name, (flags & ~STRIP_CREATE) | os.O_CREAT | os.O_CLOEXEC, mode & 0o7777,
                     dir_fd=parent.fd)
        try:
            self._chown_new(hdr, parent, mode, fd=fd)
            path_fd = os.open(proc_path(fd), os.O_PATH | os.O_CLOEXEC)
            try:
                st = os.fstat(path_fd)
            except BaseException:
                os.close(path_fd)
                raise
            node = self.nodes.acquire(path_fd, st)
            if open_flags & p.FUSE_OPEN_KILL_SUIDGID and self._kill_privs(node, fd):
                st = os.fstat(fd)
            entry = p.pack_entry_out(node.nodeid, st, self.timeout)
            return [entry, self._open_reply(node, fd)]
        except BaseException:
            os.close(fd)
            raise

    def op_release(self, hdr, body):
        fh, _, _, _ = p.RELEASE_IN.unpack_from(body)
        handle = self.handles.pop(fh)
        try:
            os.close(handle.fd)
        finally:
            if handle.passthrough:
                self.backing.release(handle.node)
            elif handle.node.is_regular:
                self.backing.release_plain(handle.node)
        return []

    def op_flush(self, hdr, body):
        fh, _, _, _ = p.FLUSH_IN.unpack_from(body)
        os.close(os.dup(self.handles.get(fh).fd))  # close-time semantics of the backing fs
        return []

    def op_fsync(self, hdr, body):
        fh, flags, _ = p.FSYNC_IN.unpack_from(body)
        fd = self.handles.get(fh).fd
        if flags & p.FUSE_FSYNC_FDATASYNC:
            os.fdatasync(fd)
        else:
            os.fsync(fd)
        return []

    op_fsyncdir = op_fsync

    def op_read(self, hdr, body):
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(body)
        data = os.pread(self.handles.get(fh).fd, size, offset)
        self.stats.count_io("read", len(data))
        return [data]

    def op_write(self, hdr, body):
        fh, offset, size, write_flags, _, _, _ = p.WRITE_IN.unpack_from(body)
        data = body[p.WRITE_IN.size:p.WRITE_IN.size + size]
        if len(data) != size:
            raise ValueError(f"WRITE of {size} bytes carries {len(data)}")
        handle = self.handles.get(fh)
        if write_flags & p.FUSE_WRITE_KILL_SUIDGID and self._kill_privs(handle.node, handle.fd):
            self._invalidate_attrs(handle.node)
        written = os.pwrite(handle.fd, data, offset)
        self.stats.count_io("write", written)
        return [p.WRITE_OUT.pack(written, 0)]

    def op_fallocate(self, hdr, body):
        fh, offset, length, mode, _ = p.FALLOCATE_IN.unpack_from(body)
        sysc.fallocate(self.handles.get(fh).fd, mode, offset, length)
        return []

    def op_lseek(self, hdr, body):
        fh, offset, whence, _ = p.LSEEK_IN.unpack_from(body)
        return [p.LSEEK_OUT.pack(os.lseek(self.handles.get(fh).fd, offset, whence))]

    def op_copy_file_range(self, hdr, body):
        fh_in, off_in, _, fh_out, off_out, length, flags = p.COPY_FILE_RANGE_IN.unpack_from(body)
        if flags:
            raise OSError(errno.EINVAL, "copy_file_range flags")
        copied = os.copy_file_range(self.handles.get(fh_in).fd, self.handles.get(fh_out).fd,
                                    min(length, MAX_COPY), off_in, off_out)
        return [p.WRITE_OUT.pack(copied, 0)]

    # directories

    def op_opendir(self, hdr, body):
        node = self.nodes.get(hdr.nodeid)
        fd = os.open(proc_path(node.fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return [p.pack_open_out(self.handles.add(Handle(fd, node)), 0, 0)]

    def op_releasedir(self, hdr, body):
        fh, _, _, _ = p.RELEASE_IN.unpack_from(body)
        os.close(self.handles.pop(fh).fd)
        return []

    def _dir_entries(self, handle: Handle, offset: int) -> list:
        """A snapshot per open directory, taken again on a read from offset 0,
        so offsets (index + 1) stay stable while the directory changes."""
        with handle.lock:
            if offset == 0 or not handle.entries:
                handle.entries = scan_directory(handle.fd)
            return handle.entries

    def op_readdir(self, hdr, body):
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(body)
        entries = self._dir_entries(self.handles.get(fh), offset)
        out, used = [], 0
        for i in range(offset, len(entries)):
            ino, dtype, name = entries[i]
            rec = p.pack_dirent(ino, i + 1, dtype, name)
            if used + len(rec) > size:
                break
            out.append(rec)
            used += len(rec)
        return [b"".join(out)]

    def op_readdirplus(self, hdr, body):
        """Entries with their lookups: each sent entry (but "." and "..") counts
        one lookup, as the kernel either links it or forgets it."""
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(body)
        handle = self.handles.get(fh)
        entries = self._dir_entries(handle, offset)
        out, used = [], 0
        for i in range(offset, len(entries)):
            ino, dtype, name = entries[i]
            need = p.direntplus_size(len(name))
            if used + need > size:
                break
            if name in (b".", b".."):
                entry = p.pack_entry_out(0, None, 0)
            else:
                try:
                    node, st = self._lookup(handle.fd, name)
                except OSError:
                    continue  # gone since the snapshot
                entry = p.pack_entry_out(node.nodeid, st, self.timeout)
                ino, dtype = st.st_ino, p.dirent_type(st.st_mode)
            out.append(p.pack_direntplus(entry, ino, i + 1, dtype, name))
            used += need
        return [b"".join(out)]

    # extended attributes (symlinks: none; there is no race-free path to them)

    def _xattr_path(self, hdr, missing: int) -> str:
        node = self.nodes.get(hdr.nodeid)
        if node.is_symlink:
            raise OSError(missing, "no extended attributes on symlinks here")
        return proc_path(node.fd)

    def op_getxattr(self, hdr, body):
        size, _ = p.GETXATTR_IN.unpack_from(body)
        (name,) = p.split_cstrings(body[p.GETXATTR_IN.size:], 1)
        return _sized(os.getxattr(self._xattr_path(hdr, errno.ENODATA), name), size)

    def op_listxattr(self, hdr, body):
        size, _ = p.GETXATTR_IN.unpack_from(body)
        try:
            names = os.listxattr(self._xattr_path(hdr, errno.ENODATA))
        except OSError as e:
            if e.errno != errno.ENODATA:
                raise
            names = []
        return _sized(b"".join(os.fsencode(n) + b"\0" for n in names), size)

    def op_setxattr(self, hdr, body):
        size, flags = p.SETXATTR_IN.unpack_from(body)
        rest = body[p.SETXATTR_IN.size:]
        (name,) = p.split_cstrings(rest, 1)
        value = bytes(rest[len(name) + 1:len(name) + 1 + size])
        if len(value) != size:
            raise ValueError(f"SETXATTR value of {size} bytes carries {len(value)}")
        os.setxattr(self._xattr_path(hdr, errno.EPERM), name, value, flags)
        return []

    def op_removexattr(self, hdr, body):
        (name,) = p.split_cstrings(body, 1)
        os.removexattr(self._xattr_path(hdr, errno.EPERM), name)
        return []
