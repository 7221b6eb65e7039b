"""fio: job argv builders, the JSON parser, and the runner that drives them
in a guest.

The job is the one of the motivating patch: every job of a point writes the
same prefilled file (``--overwrite=1`` on a file made by a sequential
prefill), so all writers contend on one inode lock and none extends EOF.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

from ..config import FioConfig
from ..errors import GuestGone, StageError

DATA_FILE = "fio.dat"


def point_name(cfg: FioConfig, numjobs: int) -> str:
    """The testcase name of one matrix point: randwrite-4k-nj2."""
    return f"{cfg.rw}-{cfg.bs}-nj{numjobs}"


def prefill_argv(path: str, cfg: FioConfig) -> list[str]:
    return [
        "fio", "--name=prefill", f"--filename={path}", f"--size={cfg.size}",
        "--rw=write", "--bs=1M", "--direct=1", f"--ioengine={cfg.ioengine}", "--iodepth=8",
        "--end_fsync=1", "--output-format=json",
    ]


def job_argv(path: str, cfg: FioConfig, numjobs: int) -> list[str]:
    return [
        "fio", f"--name={point_name(cfg, numjobs)}", f"--filename={path}", f"--size={cfg.size}",
        "--overwrite=1", f"--rw={cfg.rw}", f"--bs={cfg.bs}", "--direct=1",
        f"--ioengine={cfg.ioengine}", f"--iodepth={cfg.iodepth}", f"--numjobs={numjobs}",
        "--group_reporting", "--time_based", f"--ramp_time={cfg.ramp_time:g}",
        f"--runtime={cfg.runtime:g}", "--norandommap", "--randrepeat=0",
        "--output-format=json",
    ]


@dataclasses.dataclass
class FioFigures:
    version: str
    jobname: str
    error: int
    iops: float
    bw_kib: float  # KiB/s
    p99_us: float  # completion latency, 99th percentile
    iops_mean: float
    iops_stddev: float
    runtime_ms: int
    numjobs: int

    def to_properties(self) -> dict[str, Any]:
        return {
            "iops": round(self.iops, 1),
            "bw_kib": round(self.bw_kib, 1),
            "clat_p99_us": round(self.p99_us, 1),
            "iops_stddev": round(self.iops_stddev, 1),
            "numjobs": self.numjobs,
            "runtime_ms": self.runtime_ms,
            "fio_error": self.error,
            "fio_version": self.version,
        }


def parse_fio_json(text: str, direction: str = "write") -> FioFigures:
    """Figures of the first job group of fio's JSON output.  fio may print
    warnings before the JSON document: they are skipped."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in fio output")
    data = json.loads(text[start:])
    jobs = data.get("jobs") or []
    if not jobs:
        raise ValueError("fio JSON has no jobs")
    job = jobs[0]
    io = job.get(direction) or {}
    pct = (io.get("clat_ns") or {}).get("percentile") or {}
    options = job.get("job options") or {}
    return FioFigures(
        version=data.get("fio version", ""),
        jobname=job.get("jobname", ""),
        error=int(job.get("error", 0)),
        iops=float(io.get("iops", 0.0)),
        bw_kib=float(io.get("bw", 0.0)),
        p99_us=float(pct.get("99.000000", 0.0)) / 1000.0,
        iops_mean=float(io.get("iops_mean", 0.0)),
        iops_stddev=float(io.get("iops_stddev", 0.0)),
        runtime_ms=int(io.get("runtime", 0)),
        numjobs=int(options.get("numjobs", 1)),
    )


def run_point(guest, directory: str, cfg: FioConfig, numjobs: int, rep: int,
              outdir: Path, timeout: float) -> FioFigures:
    """One fio run of one matrix point in the guest; its JSON is kept under
    *outdir*.  Raises StageError on a failed run."""
    name = point_name(cfg, numjobs) + (f"-r{rep}" if cfg.repeat > 1 else "")
    remote = f"/tmp/kvariant/fio-{name}.json"
    argv = job_argv(f"{directory}/{DATA_FILE}", cfg, numjobs) + [f"--output={remote}"]
    res = guest.run(shlex.join(argv), timeout=timeout)
    if res.timed_out:  # enforced here, on the host: the guest may be hung
        raise GuestGone(f"fio {name}: no answer within its deadline of {timeout:.0f} s",
                        detail=res.tail, reproduce=res.cmdline)
    local = outdir / f"{name}.json"
    fetched = guest.get(remote, local, missing_ok=True)
    if not res.ok:
        raise StageError(f"fio {name}: exit code {res.returncode}", detail=res.tail,
                         reproduce=res.cmdline)
    if not fetched:
        raise StageError(f"fio {name}: no JSON output", detail=res.tail, reproduce=res.cmdline)
    try:
        figures = parse_fio_json(local.read_text())
    except (ValueError, json.JSONDecodeError) as e:
        raise StageError(f"fio {name}: unreadable JSON: {e}", reproduce=res.cmdline)
    if figures.error:
        raise StageError(f"fio {name}: fio reported error {figures.error}", reproduce=res.cmdline)
    return figures


def prefill(guest, directory: str, cfg: FioConfig, timeout: float) -> None:
    argv = prefill_argv(f"{directory}/{DATA_FILE}", cfg)
    res = guest.run(shlex.join(argv) + " >/dev/null", timeout=timeout)
    if res.timed_out:
        raise GuestGone(f"fio prefill: no answer within its deadline of {timeout:.0f} s",
                        detail=res.tail, reproduce=res.cmdline)
    res.check("fio prefill")
