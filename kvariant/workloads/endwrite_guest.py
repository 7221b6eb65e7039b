"""Run in the guest (standard library only; its own process): concurrent
O_DIRECT writers on one FUSE passthrough file that append and extend it,
beside ftruncates, buffered readers and stat, in rounds.  After each round
the FUSE inode's size as the kernel holds it (statx with
AT_STATX_DONT_SYNC on an open descriptor: neither GETATTR nor LOOKUP)
must be the backing file's, and the data read through FUSE must be the
backing file's, every block either zeros or a whole block one writer
stamped (at its own offset, for the writers that choose one).

Each round has a busy part (every kind of worker) and a quiet tail:
writers and the truncater alone, so that no GETATTR repairs a wrong
cached size before the check reads it.  The end_write callback of a
passthrough write sets that size; a size update that loses its ordering
against truncate (the inode lock) leaves it past the backing EOF.

Prints one JSON object: per round the sizes, the data verdict and the
operation counts, and ``problems``, the mismatches found (empty: pass).

    python endwrite_guest.py FUSE_FILE BACKING_FILE [--rounds N]
        [--writers N] [--busy S] [--tail S] [--seed N]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import multiprocessing as mp
import os
import random
import struct
import sys
import time

BLOCK = 4096
MAX_BLOCKS = 1024  # extending writers write below 4 MiB
MAGIC = b"KVEWBLK1"
APPENDED = 0xFFFFFFFFFFFFFFFF  # the offset field of a block an O_APPEND writer stamped
HEADER = struct.Struct("<8sQII")  # magic, offset, writer, sequence
AT_FDCWD, AT_EMPTY_PATH, AT_STATX_DONT_SYNC, STATX_SIZE = -100, 0x1000, 0x4000, 0x200


def stamp(offset: int, writer: int, seq: int) -> bytes:
    """A block: its header, then a filler that the header determines."""
    head = HEADER.pack(MAGIC, offset, writer, seq)
    fill = bytes([(writer * 31 + seq) % 251 + 1]) * (BLOCK - len(head))
    return head + fill


def block_problem(block: bytes, offset: int) -> str:
    """Why a block of the file at *offset* is not a whole stamped block nor
    zeros ("" when it is one of them)."""
    if block.count(0) == len(block):
        return ""
    if len(block) != BLOCK or block[:8] != MAGIC:
        return f"block at {offset}: neither zeros nor a stamped block"
    _, stamped, writer, seq = HEADER.unpack_from(block)
    if block != stamp(stamped, writer, seq):
        return f"block at {offset}: torn (writer {writer}, write {seq})"
    if stamped not in (APPENDED, offset):
        return f"block at {offset}: written for offset {stamped} (writer {writer}, write {seq})"
    return ""


def cached_size(fd: int) -> int:
    """The size the FUSE inode holds, without asking the server."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)
    if libc.statx(fd, b"", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_SIZE, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"statx: {os.strerror(err)}")
    return struct.unpack_from("<Q", buf, 40)[0]


def aligned(data: bytes) -> mmap.mmap:
    """*data* in a page-aligned buffer, as O_DIRECT wants it."""
    buf = mmap.mmap(-1, len(data))
    buf.write(data)
    return buf


# -- the workers: each loops until its deadline, returns its count -------
def appender(path: str, wid: int, until: float, rng: random.Random) -> int:
    fd, n = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_DIRECT), 0
    while time.monotonic() < until:
        os.write(fd, aligned(stamp(APPENDED, wid, n)))
        n += 1
    os.close(fd)
    return n


def extender(path: str, wid: int, until: float, rng: random.Random) -> int:
    fd, n = os.open(path, os.O_WRONLY | os.O_DIRECT), 0
    while time.monotonic() < until:
        off = rng.randrange(MAX_BLOCKS) * BLOCK
        os.pwrite(fd, aligned(stamp(off, wid, n)), off)
        n += 1
    os.close(fd)
    return n


def truncater(path: str, backing: str, until: float, rng: random.Random) -> int:
    """ftruncate (no lookup: no attribute refresh) to a random point below
    the backing file's size, now and then above it."""
    fd, n = os.open(path, os.O_WRONLY), 0
    while time.monotonic() < until:
        size = os.stat(backing).st_size // BLOCK
        new = rng.randrange(size + 1) if rng.random() < 0.9 else size + rng.randrange(1, 8)
        os.ftruncate(fd, new * BLOCK)
        n += 1
        time.sleep(rng.uniform(0.005, 0.03))
    os.close(fd)
    return n


def reader(path: str, until: float, rng: random.Random) -> int:
    fd, n = os.open(path, os.O_RDONLY), 0
    while time.monotonic() < until:
        os.pread(fd, 16 * BLOCK, rng.randrange(MAX_BLOCKS) * BLOCK)
        n += 1
    os.close(fd)
    return n


def stater(path: str, until: float, rng: random.Random) -> int:
    n = 0
    while time.monotonic() < until:
        os.stat(path)
        n += 1
    return n


def worker(queue, kind: str, call, seed: int) -> None:
    try:
        queue.put((kind, call(random.Random(seed)), ""))
    except OSError as e:
        queue.put((kind, 0, f"{kind}: {e}"))


def run_round(args, rnd: int) -> dict:
    """One round's workers, then the check."""
    busy_until = time.monotonic() + args.busy
    until = busy_until + args.tail
    calls = []
    for w in range(args.writers):
        wid = rnd * 100 + w
        fn = appender if w % 2 == 0 else extender
        calls.append((fn.__name__, lambda rng, fn=fn, wid=wid: fn(args.file, wid, until, rng)))
    calls += [("truncater", lambda rng: truncater(args.file, args.backing, until, rng)),
              ("reader", lambda rng: reader(args.file, busy_until, rng)),
              ("stater", lambda rng: stater(args.file, busy_until, rng))]
    queue = mp.get_context("fork").Queue()
    procs = [mp.get_context("fork").Process(target=worker, args=(queue, kind, call, args.seed + rnd * 97 + i))
             for i, (kind, call) in enumerate(calls)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=args.busy + args.tail + 120) for _ in procs]
    for p in procs:
        p.join()
    ops: dict[str, int] = {}
    for kind, n, _ in results:
        ops[kind] = ops.get(kind, 0) + n
    out = check(args)
    out.update(round=rnd, ops=ops, errors=[e for _, _, e in results if e])
    return out


def check(args) -> dict:
    """The cached size first (before anything asks the server), then the
    backing file's, the size after a GETATTR, and the data."""
    fuse_size = cached_size(args.probe)
    backing_size = os.stat(args.backing).st_size
    refreshed = os.fstat(args.probe).st_size
    with open(args.file, "rb") as f:
        through_fuse = f.read()
    with open(args.backing, "rb") as f:
        backing = f.read()
    bad = [p for p in (block_problem(backing[o:o + BLOCK], o) for o in range(0, len(backing), BLOCK)) if p]
    return {"fuse_cached_size": fuse_size, "backing_size": backing_size, "fuse_size": refreshed,
            "data_same": through_fuse == backing, "bad_blocks": len(bad), "first_bad": bad[:3]}


def problems(r: dict) -> list[str]:
    out = [f"round {r['round']}: {e}" for e in r["errors"]]
    if r["fuse_cached_size"] != r["backing_size"]:
        out.append(f"round {r['round']}: the FUSE inode's size is {r['fuse_cached_size']}, "
                   f"the backing file's {r['backing_size']}")
    if r["fuse_size"] != r["backing_size"]:
        out.append(f"round {r['round']}: stat through FUSE says {r['fuse_size']} bytes, "
                   f"the backing file {r['backing_size']}")
    if not r["data_same"]:
        out.append(f"round {r['round']}: the data read through FUSE differs from the backing file's")
    out += [f"round {r['round']}: {p}" for p in r["first_bad"]]
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("backing")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--busy", type=float, default=3.0)
    ap.add_argument("--tail", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    os.close(os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    args.probe = os.open(args.file, os.O_RDONLY)
    rounds, found = [], []
    for rnd in range(1, args.rounds + 1):
        rounds.append(run_round(args, rnd))
        found += problems(rounds[-1])
    print(json.dumps({"rounds": rounds, "problems": found}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
