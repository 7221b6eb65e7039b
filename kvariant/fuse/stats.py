"""Counters of the server, written atomically as JSON."""

from __future__ import annotations

import collections
import json
import os
import threading
import time

STATS_VERSION = 1
COUNTERS = ("read_requests", "read_bytes", "write_requests", "write_bytes",
            "passthrough_opens_granted", "passthrough_opens_refused",
            "error_replies", "malformed_requests")


class Stats:
    """Thread-safe counters; `changes` tells the writer whether to write again."""

    def __init__(self, **info):
        self._lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.info = dict(info)  # policy, protocol, paths: set once or rarely
        self.changes = 0
        self.started = time.time()

    def count_request(self, name: str) -> None:
        with self._lock:
            self.requests[name] += 1
            self.changes += 1

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.counters[key] += amount
            self.changes += 1

    def count_error(self, errno_name: str) -> None:
        with self._lock:
            self.errors[errno_name] += 1
            self.counters["error_replies"] += 1
            self.changes += 1

    def count_io(self, kind: str, nbytes: int) -> None:
        """kind is "read" or "write": one request of nbytes."""
        with self._lock:
            self.counters[f"{kind}_requests"] += 1
            self.counters[f"{kind}_bytes"] += nbytes
            self.changes += 1

    def set_info(self, **info) -> None:
        with self._lock:
            self.info.update(info)
            self.changes += 1

    def snapshot(self, **live) -> dict:
        with self._lock:
            data = {"stats_version": STATS_VERSION, **self.info,
                    "requests": dict(sorted(self.requests.items())),
                    "requests_total": sum(self.requests.values()),
                    "errors": dict(sorted(self.errors.items())),
                    **self.counters}
        data.update(live)
        data["started"] = round(self.started, 3)
        data["updated"] = round(time.time(), 3)
        return data


def write_stats(path: str, data: dict) -> None:
    """Atomically: a temporary file beside it, then os.replace."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_stats(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
