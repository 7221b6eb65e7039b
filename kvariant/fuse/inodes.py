"""Inode and file-handle tables of the passthrough server.

Each FUSE nodeid stands for one backing inode, keyed by (st_dev, st_ino), and
holds an O_PATH descriptor of it: operations reach the inode through that
descriptor (or /proc/self/fd/N), so renames of the backing entries never
leave a stale path behind, and the held reference keeps the backing inode
number from being reused while the kernel still knows the nodeid.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from dataclasses import dataclass, field

from . import protocol as p


def proc_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


@dataclass(eq=False)
class Node:
    nodeid: int
    fd: int  # O_PATH
    key: tuple[int, int]
    mode: int  # file type bits of the backing inode
    nlookup: int = 0
    backing_id: int = 0  # passthrough backing id shared by all opens
    backing_refs: int = 0
    plain_opens: int = 0  # open without passthrough: no backing id may be added

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def is_regular(self) -> bool:
        return stat.S_ISREG(self.mode)


class NodeTable:
    """nodeid <-> backing inode, with the kernel's lookup counts."""

    def __init__(self, root_fd: int):
        st = os.fstat(root_fd)
        self.root = Node(p.ROOT_ID, root_fd, (st.st_dev, st.st_ino), stat.S_IFMT(st.st_mode), 1)
        self._lock = threading.Lock()
        self._by_id = {p.ROOT_ID: self.root}
        self._by_key = {self.root.key: self.root}
        self._next_id = p.ROOT_ID + 1

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, nodeid: int) -> Node:
        try:
            return self._by_id[nodeid]
        except KeyError:
            raise OSError(errno.ESTALE, f"unknown nodeid {nodeid}") from None

    def acquire(self, fd: int, st: os.stat_result) -> Node:
        """Count one lookup of the inode behind fd (an O_PATH fd the table now owns)."""
        key = (st.st_dev, st.st_ino)
        with self._lock:
            node = self._by_key.get(key)
            if node is None:
                node = Node(self._next_id, fd, key, stat.S_IFMT(st.st_mode))
                self._next_id += 1
                self._by_id[node.nodeid] = node
                self._by_key[key] = node
                fd = -1
            node.nlookup += 1
        if fd >= 0:
            os.close(fd)
        return node

    def forget(self, nodeid: int, nlookup: int) -> None:
        with self._lock:
            node = self._by_id.get(nodeid)
            if node is None or node is self.root:
                return
            node.nlookup -= nlookup
            if node.nlookup > 0:
                return
            del self._by_id[nodeid]
            if self._by_key.get(node.key) is node:
                del self._by_key[node.key]
        os.close(node.fd)

    def close_all(self) -> None:
        with self._lock:
            nodes = [n for n in self._by_id.values() if n is not self.root]
            self._by_id = {p.ROOT_ID: self.root}
            self._by_key = {self.root.key: self.root}
        for node in nodes:
            os.close(node.fd)


@dataclass(eq=False)
class Handle:
    fd: int
    node: Node
    passthrough: bool = False
    entries: list = field(default_factory=list)  # directory snapshot: (ino, type, name)
    lock: threading.Lock = field(default_factory=threading.Lock)


class HandleTable:
    """Open files and directories by fh."""

    def __init__(self):
        self._lock = threading.Lock()
        self._handles: dict[int, Handle] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self._handles)

    def add(self, handle: Handle) -> int:
        with self._lock:
            fh = self._next
            self._next += 1
            self._handles[fh] = handle
        return fh

    def get(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown file handle {fh}") from None

    def pop(self, fh: int) -> Handle:
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is None:
            raise OSError(errno.EBADF, f"unknown file handle {fh}")
        return handle

    def close_all(self) -> list[Handle]:
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for h in handles:
            os.close(h.fd)
        return handles


class BackingIds:
    """One passthrough backing id per inode, shared by its opens (refcounted)."""

    def __init__(self, dev_fd: int, opener, closer):
        self._dev_fd = dev_fd
        self._open, self._close = opener, closer
        self._lock = threading.Lock()
        self.count = 0  # backing ids open now

    def acquire(self, node: Node, fd: int) -> int:
        """The inode's backing id; EBUSY while it has opens without passthrough
        (the kernel fails an open whose io mode conflicts with the others)."""
        with self._lock:
            if node.plain_opens:
                raise OSError(errno.EBUSY, "inode is open without passthrough")
            if node.backing_refs == 0:
                node.backing_id = self._open(self._dev_fd, fd)
                self.count += 1
            node.backing_refs += 1
            return node.backing_id

    def open_plain(self, node: Node) -> None:
        with self._lock:
            node.plain_opens += 1

    def release_plain(self, node: Node) -> None:
        with self._lock:
            node.plain_opens -= 1

    def release(self, node: Node) -> bool:
        """Drop one open; True when the backing id was closed."""
        with self._lock:
            node.backing_refs -= 1
            if node.backing_refs > 0:
                return False
            backing_id, node.backing_id, node.backing_refs = node.backing_id, 0, 0
            self.count -= 1
            self._close(self._dev_fd, backing_id)
            return True
