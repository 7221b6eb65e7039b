"""Which shard this is: K of N, from ``--shard K/N`` or the CI system's
environment.  Pure: the environment is passed in.

Precedence, first that applies:

1. ``--shard K/N`` (a GitHub Actions matrix passes its value this way);
2. GitLab's ``CI_NODE_INDEX`` and ``CI_NODE_TOTAL`` (``parallel: N``,
   1-based);
3. a Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX`` (0-based) with N
   from ``--shard-total N``;
4. none: the whole run, shard 1 of 1.

Anything else (0, K > N, N > MAX_SHARDS, not a number, half of a pair) is
bad input naming the option or variable it came from."""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

from ..errors import ConfigError
from .plan import MAX_SHARDS

WHOLE = re.compile(r"^\s*[0-9]+\s*$")


@dataclasses.dataclass(frozen=True)
class ShardSpec:
    k: int  # 1..n
    n: int
    origin: str  # where K and N came from, for the log

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


def number(text: str, origin: str, what: str) -> int:
    if not WHOLE.match(text):
        raise ConfigError(origin, "", f"expected {what}, a whole number, got {text!r}")
    return int(text)


def checked(k: int, n: int, origin: str) -> ShardSpec:
    if not 1 <= n <= MAX_SHARDS:
        raise ConfigError(origin, "", f"expected a number of shards N in 1..{MAX_SHARDS}, got {n}")
    if not 1 <= k <= n:
        raise ConfigError(origin, "", f"expected a shard K in 1..{n} (N = {n}), got {k}")
    return ShardSpec(k, n, origin)


def from_option(text: str) -> ShardSpec:
    """``--shard K/N``."""
    parts = text.split("/")
    if len(parts) != 2:
        raise ConfigError("--shard", "", f"expected K/N (shard K of N, e.g. 2/4), got {text!r}")
    return checked(number(parts[0], "--shard", "K"), number(parts[1], "--shard", "N"), "--shard")


def shard_spec(option: str | None, total: str | None, environ: Mapping[str, str]) -> ShardSpec:
    """This shard (see the module): *option* is --shard's value, *total*
    --shard-total's, *environ* the process's environment."""
    if option is not None:
        if total is not None:
            raise ConfigError("--shard-total", "", "expected either --shard K/N or --shard-total N "
                                                   "(with JOB_COMPLETION_INDEX), got both")
        return from_option(option)
    index, count = environ.get("CI_NODE_INDEX"), environ.get("CI_NODE_TOTAL")
    if index is not None or count is not None:
        if index is None or count is None:
            missing = "CI_NODE_INDEX" if index is None else "CI_NODE_TOTAL"
            raise ConfigError(missing, "", "expected CI_NODE_INDEX and CI_NODE_TOTAL together "
                                           "(GitLab's parallel: N), got one of them")
        return checked(number(index, "CI_NODE_INDEX", "K"), number(count, "CI_NODE_TOTAL", "N"),
                       "CI_NODE_INDEX/CI_NODE_TOTAL")
    job = environ.get("JOB_COMPLETION_INDEX")
    if job is not None:
        if total is None:
            raise ConfigError("--shard-total", "", "expected --shard-total N with "
                                                   "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's "
                                                   "index, 0-based)")
        n = checked(1, number(total, "--shard-total", "N"), "--shard-total").n
        i = number(job, "JOB_COMPLETION_INDEX", "an index")
        if i >= n:
            raise ConfigError("JOB_COMPLETION_INDEX", "", f"expected an index in 0..{n - 1} "
                                                          f"(--shard-total {n}), got {i}")
        return checked(i + 1, n, "JOB_COMPLETION_INDEX/--shard-total")
    if total is not None:
        raise ConfigError("--shard-total", "", "expected JOB_COMPLETION_INDEX in the environment "
                                               "(else give --shard K/N)")
    return ShardSpec(1, 1, "default")
