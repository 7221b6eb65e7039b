"""virtme-ng guests: argv, accelerator choice, boot with a deadline, console
capture, teardown that leaves no qemu behind.

vng runs in a session of its own; qemu is a grandchild in that process group,
so killing the group ends it.  The guest runs a loop that waits for a stop
file; we drive it over SSH (``--ssh PORT --ssh-tcp``) and stop it by touching
the file, then by killing the group.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from .errors import BootFailed, InfraError, StageError
from .guest import Guest, ssh_key
from .paths import cache_dir
from .proc import Spawned, spawn, virtme_path
from .splats import Splat, first_fatal, scan_splats

log = logging.getLogger(__name__)

STOP_FILE = "/run/kvariant-stop"
HOLD_LOOP = f"while [ ! -e {STOP_FILE} ]; do sleep 1; done"
CONSOLE_TAIL = 60
# The hung-task detector reports a task blocked for 20 s, checking every 5 s:
# a deadlock is named 20-25 s after the first blocked write, well before any
# stage's deadline (a kernel without CONFIG_DETECT_HUNG_TASK ignores these)
KERNEL_ARGS = ("sysctl.kernel.hung_task_timeout_secs=20", "sysctl.kernel.hung_task_check_interval_secs=5")
WATCH_INTERVAL = 1.0  # seconds between two looks at the console while a stage runs
PLAIN_SHELL = r"sed -i 's#^\(root:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*\):.*#\1:/bin/sh#' /etc/passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vng_argv(kernel_image: Path, *, name: str, cpus: int, memory: str, port: int,
             kvm: bool, append: tuple[str, ...] = KERNEL_ARGS) -> list[str]:
    argv = [
        "vng", "--run", str(kernel_image), "--name", name,
        "--cpus", str(cpus), "--memory", memory,
        "--ssh", str(port), "--ssh-tcp", "--force-9p", "--verbose",
    ]
    if not kvm:
        argv.append("--disable-kvm")
    for a in append:
        argv += ["--append", a]
    return argv + ["--exec", HOLD_LOOP]


def cpu_has_virt(cpuinfo: str) -> bool:
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", cpuinfo, re.M))


def kvm_candidate() -> tuple[bool, str]:
    """Whether KVM is worth trying, and why (not)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not accessible"
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False, "/proc/cpuinfo unreadable"
    if not cpu_has_virt(info):
        return False, "the CPU has no vmx/svm flag (nested or paravirtual /dev/kvm)"
    return True, "vmx/svm present"


def _verdict_file() -> Path:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    return cache_dir() / "accel" / f"kvm-{boot_id}"


def remembered_kvm_verdict() -> str | None:
    f = _verdict_file()
    return f.read_text().strip() if f.exists() else None


def remember_kvm_verdict(verdict: str) -> None:
    f = _verdict_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(verdict + "\n")


def console_tail(path: Path, lines: int = CONSOLE_TAIL) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class VM:
    """One guest.  Use as a context manager: the guest is always torn down."""

    def __init__(self, kernel_image: Path, *, name: str, cpus: int, memory: str,
                 console: Path, kvm: bool, boot_timeout: float, command_timeout: float,
                 append: tuple[str, ...] = KERNEL_ARGS):
        self.kernel_image = kernel_image
        self.append = append  # the kernel's command line, beyond virtme-ng's own
        self.name = name
        self.cpus, self.memory, self.kvm = cpus, memory, kvm
        self.console = console
        self.boot_timeout = boot_timeout
        self.command_timeout = command_timeout
        self.proc: Spawned | None = None
        self.port = 0
        self.guest: Guest | None = None
        self.argv: list[str] = []

    # -- lifecycle ------------------------------------------------------
    def start(self) -> None:
        self.port = free_port()
        self.argv = vng_argv(self.kernel_image, name=self.name, cpus=self.cpus,
                             memory=self.memory, port=self.port, kvm=self.kvm, append=self.append)
        self.console.parent.mkdir(parents=True, exist_ok=True)
        # (qemu's console opens the file afresh: the command goes to the log
        # and the variant's summary, not into console.log)
        log.info("starting %s", self.name)
        try:
            self.proc = spawn(self.argv, cwd=self.console.parent, env=virtme_path(), output=self.console)
        except FileNotFoundError:
            raise InfraError("vng not found: run ./setup.sh (virtme-ng is installed in the project's virtualenv)")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    # -- the kernel's console, as the host sees it -----------------------
    def console_mark(self) -> int:
        """A position in the console log; console_since() reads from it."""
        try:
            return self.console.stat().st_size
        except OSError:
            return 0

    def console_since(self, mark: int) -> str:
        try:
            with open(self.console, "rb") as f:
                f.seek(mark)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def watch(self, mark: int, on_fatal: Callable[[Splat], None]) -> "ConsoleWatch":
        """Watch the console from *mark* while a stage runs (a context
        manager); see ConsoleWatch."""
        return ConsoleWatch(self.console, mark, on_fatal)

    def settle(self, quiet: float = 2.0, limit: float = 15.0) -> None:
        """Wait until the console has been quiet for *quiet* seconds (a
        report still being printed over the slow serial line), at most
        *limit* seconds."""
        end = time.monotonic() + limit
        size, since = self.console_mark(), time.monotonic()
        while time.monotonic() < end and time.monotonic() - since < quiet:
            time.sleep(0.5)
            if (now := self.console_mark()) != size:
                size, since = now, time.monotonic()

    def panicked(self, mark: int = 0) -> str:
        """The panic line when the kernel panicked after *mark*, or ""."""
        text = self.console_since(mark)
        if "Kernel panic - not syncing" not in text:
            return ""
        return panic_line(text) or "Kernel panic - not syncing"

    def booting(self) -> bool:
        """Still worth waiting for: qemu runs and the kernel has not panicked
        (vng's guests do not reboot on a panic: without this a kernel that
        panics at boot would cost the whole boot deadline)."""
        return self.alive() and not self.panicked()

    def blocked_tasks(self, timeout: float = 30.0) -> str:
        """Ask the kernel for its blocked tasks (sysrq-w) over a new SSH
        connection and return what it printed on the console; "" when the
        guest does not answer.  Best effort, after a workload hung."""
        if not self.alive():
            return ""
        mark = self.console_mark()
        try:
            g = Guest.connect(self.port, key=ssh_key(), deadline=time.monotonic() + timeout,
                              alive=self.alive, default_timeout=timeout)
        except StageError:
            return ""
        try:
            g.run("echo w > /proc/sysrq-trigger", timeout=timeout)
            time.sleep(3)  # the serial console is slow under TCG
        except StageError:
            pass
        finally:
            g.close()
        return self.console_since(mark)

    def boot(self) -> Guest:
        """Start the guest and wait until SSH answers; raise StageError with
        the console's last screen when it does not."""
        self.start()
        deadline = time.monotonic() + self.boot_timeout
        try:
            self.guest = Guest.connect(self.port, key=ssh_key(), deadline=deadline,
                                       alive=self.booting, default_timeout=self.command_timeout)
            # The guest's root runs the host's shell rc files for every SSH
            # command (a pyenv init can cost seconds each under TCG).  The
            # guest's /etc is a RAM overlay: give root a plain /bin/sh there,
            # and connect again so the new shell is used.
            self.guest.run(PLAIN_SHELL, timeout=120)
            self.guest.close()
            self.guest = Guest.connect(self.port, key=ssh_key(), deadline=deadline + 60,
                                       alive=self.booting, default_timeout=self.command_timeout)
        except StageError as e:
            why = e.message
            panicked = self.panicked()
            if panicked:
                why = "the kernel panicked before SSH answered"
            elif not self.alive():
                why = f"the guest exited (code {self.proc.returncode}) before SSH answered"
            self.stop()
            splat = panic_line(self.console.read_text(errors="replace") if self.console.exists() else "")
            raise BootFailed(why + (f": {splat}" if splat else ""),
                             detail=console_tail(self.console),
                             reproduce=" ".join(self.argv), hung=not panicked and not splat) from None
        return self.guest

    def stop(self) -> None:
        """Ask the guest to stop, then kill the process group; idempotent."""
        if self.guest is not None:
            self.guest.run_quiet(f"touch {STOP_FILE}; sync", timeout=10)
            self.guest.close()
            self.guest = None
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=15)  # the guest's own shutdown, after the stop file
        except subprocess.TimeoutExpired:
            pass
        self.proc.stop(grace=10)
        # A qemu that escaped the group (it should not) is found by its -name.
        kill_leftover_qemu(self.name)
        self.proc = None

    def __enter__(self) -> "VM":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ConsoleWatch:
    """While a stage runs, a thread reads the console from *mark* about once
    a second (a stat, and a read only when it grew: nothing measurable next
    to fio) and calls *on_fatal* once with the first report that ends a
    stage (splats.fatal).  ``found`` is that report and ``seen`` the
    monotonic time the host saw it."""

    def __init__(self, console: Path, mark: int, on_fatal: Callable[[Splat], None],
                 interval: float = WATCH_INTERVAL):
        self.console, self.pos, self.on_fatal, self.interval = console, mark, on_fatal, interval
        self.found: Splat | None = None
        self.seen = 0.0
        self._partial = b""  # a line not yet ended
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="console-watch", daemon=True)

    def __enter__(self) -> "ConsoleWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            splat = self.check()
            if splat is not None:
                self.found, self.seen = splat, time.monotonic()
                try:
                    self.on_fatal(splat)
                except Exception:  # noqa: BLE001 - the stage's own path reports it
                    log.exception("ending the stage after %s", splat.first_line)
                return

    def check(self) -> Splat | None:
        """Read what the console gained since the last look; the first
        fatal report among its complete lines, or None."""
        try:
            size = self.console.stat().st_size
            if size <= self.pos:
                return None
            with open(self.console, "rb") as f:
                f.seek(self.pos)
                data = self._partial + f.read(size - self.pos)
        except OSError:
            return None
        self.pos = size
        lines, _, self._partial = data.rpartition(b"\n")
        return first_fatal(lines.decode(errors="replace")) if lines else None


def qemu_pids(name: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and name.encode() in b" ".join(argv):
            pids.append(int(d.name))
    return pids


def kill_leftover_qemu(name: str, wait: float = 15.0) -> None:
    """SIGKILL every qemu of guest *name* and wait until they are gone: a
    large guest takes a moment to die on a loaded host."""
    deadline = time.monotonic() + wait
    seen: set[int] = set()
    while (pids := qemu_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            if pid not in seen:
                log.warning("killing leftover qemu %d of %s", pid, name)
                seen.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def panic_line(console: str) -> str:
    """The first kernel splat of a console (an Oops, BUG, panic...), or ""."""
    splats = scan_splats(console)
    return splats[0] if splats else ""
