"""The results side imports downwards only: summary.json, the comparison
and its reports never pull in the run (runner, VMs, the kernel tree) or the
command line, and the terminal and the end-of-run reports never pull in
each other.  Each module is imported alone, in a fresh interpreter."""
import subprocess
import sys

import pytest

RUN_SIDE = {"kvariant.pipeline", "kvariant.cli", "kvariant.vm", "kvariant.tree", "kvariant.build",
            "kvariant.guest"}
ABOVE = {
    "kvariant.summary": RUN_SIDE | {"kvariant.compare", "kvariant.comparison", "kvariant.render",
                                    "kvariant.ui", "kvariant.report"},
    "kvariant.comparison": RUN_SIDE | {"kvariant.compare", "kvariant.summary", "kvariant.render",
                                       "kvariant.ui", "kvariant.report"},
    "kvariant.compare": RUN_SIDE | {"kvariant.render", "kvariant.ui", "kvariant.report"},
    "kvariant.render": RUN_SIDE | {"kvariant.ui", "kvariant.report"},
    "kvariant.ui": RUN_SIDE | {"kvariant.report"},
    "kvariant.report": RUN_SIDE | {"kvariant.ui"},
    "kvariant.tally": RUN_SIDE | {"kvariant.summary", "kvariant.compare"},
}


@pytest.fixture(scope="module")
def loaded():
    """module -> the kvariant modules importing it alone loads (all at once:
    each interpreter spends its second on scipy)."""
    code = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
            "print(' '.join(m for m in sys.modules if m.startswith('kvariant')))")
    procs = {m: subprocess.Popen([sys.executable, "-c", code, m], stdout=subprocess.PIPE, text=True)
             for m in ABOVE}
    out = {m: set(p.communicate(timeout=120)[0].split()) for m, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values())
    return out


@pytest.mark.parametrize("module", sorted(ABOVE))
def test_a_results_module_imports_nothing_above_it(module, loaded):
    assert module in loaded[module]
    assert loaded[module] & ABOVE[module] == set()
