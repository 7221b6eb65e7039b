"""The console: a stage line is written once, even when SIGTERM arrives
while it is being written (no VM)."""
import io
import os
import signal

import pytest
from rich.console import Console

from kvariant import cli
from kvariant.errors import RunInterrupted
from kvariant.model import StageResult, Status
from kvariant.ui import UI


class SignalledOnFlush(io.StringIO):
    """stderr that receives a real SIGTERM the first time it is flushed:
    the text is written, the writer has not returned yet."""

    def __init__(self):
        super().__init__()
        self.sent = False

    def flush(self):
        super().flush()
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture
def pipeline_signals():
    """The pipeline's own SIGTERM/SIGINT handler, as main() installs it."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, cli._on_signal)
    signal.signal(signal.SIGINT, cli._on_signal)
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@pytest.mark.parametrize("terminal", [False, True])
def test_a_sigterm_during_a_stage_line_does_not_print_it_twice(pipeline_signals, terminal):
    out = SignalledOnFlush()
    ui = UI(Console(file=out, force_terminal=terminal, width=120, highlight=False))
    with pytest.raises(RunInterrupted):
        ui.stage("baseline", StageResult("boot", Status.PASS, 12.5, "ssh after 12 s"))
    # what the run prints next: the interrupted testcases, then the summary
    ui.stage("baseline", StageResult("storage", Status.ERROR, 0.0, "interrupted"))
    ui.info("interrupted: the results above are what finished")
    text = out.getvalue()
    assert out.sent and text.count("ssh after 12 s") == 1, text
    assert text.count("interrupted") == 2 and text.endswith("what finished\n")


def test_the_final_table_and_build_line_of_a_real_run():
    from conftest import FIXTURES
    from kvariant.summary import RunSummary
    from kvariant.testcase import STAGES
    from kvariant.ui import build_line, stage_table
    run = RunSummary.load(FIXTURES / "runs" / "run-b")
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(stage_table(run.variants, STAGES))
    rows = {line.split()[1]: line for line in console.export_text().splitlines() if "│" in line
            and line.split()[1] in ("baseline", "parallel-dio", "v3")}
    fio = {name: sum(1 for s in v.stages if s.name.startswith("fio/")) for name, v in
           ((v.name, v) for v in run.variants)}
    assert fio["baseline"] > 0 and f"{fio['baseline']}/{fio['baseline']} ok" in rows["baseline"]
    assert rows["v3"].rstrip(" │").endswith("-")  # a build that failed measured nothing
    reused = sum(bool(v.info.build.build_reused) for v in run.variants)
    assert build_line(run.variants) == f"kernels: 0 built (0 s of building), {reused} reused"
    assert reused == 2  # v3 failed to build: it records no build
