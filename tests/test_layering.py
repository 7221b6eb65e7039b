"""Each module of kvariant imports alone, in a fresh interpreter, and no
module pulls in one above it in the layering (no VM).

LAYERS is the layering, lowest first: a module of a layer may load modules
of its own layer and of the layers below, never of a layer above.  A name
covers its submodules (``kvariant.fuse`` is the whole FUSE package); a
module no name covers is free.  Give a new module its place here.
"""
import ast
import concurrent.futures
import json
import os
import pkgutil
import subprocess
import sys

import pytest

import kvariant
from conftest import PROJECT

LAYERS = (
    # pure pieces
    ("kvariant.errors", "kvariant.paths", "kvariant.testcase", "kvariant.model", "kvariant.stats",
     "kvariant.splats",
     "kvariant.twolevel", "kvariant.paired", "kvariant.calibration", "kvariant.tally", "kvariant.files"),
    # host tools, and the registries the config reads its names from
    ("kvariant.proc", "kvariant.decode", "kvariant.tree", "kvariant.fuse", "kvariant.workloads.targets",
     "kvariant.workloads.storage", "kvariant.workloads.fusetrace"),
    # pipeline.toml -> dataclasses: it owns every section's schema
    ("kvariant.config",),
    # what a variant runs: they import the config, never the reverse
    ("kvariant.workloads.fio", "kvariant.workloads.xfstests", "kvariant.workloads.contention",
     "kvariant.workloads.endwrite", "kvariant.workloads.endwrite_guest",
     "kvariant.build", "kvariant.guest", "kvariant.vm", "kvariant.hoststate", "kvariant.shard.plan"),
    # a run, its results and reports
    # (the results side's own order is tests/test_layers.py's)
    ("kvariant.pipeline", "kvariant.summary", "kvariant.junit", "kvariant.compare",
     "kvariant.comparison", "kvariant.calibrate",
     "kvariant.render", "kvariant.ui", "kvariant.report", "kvariant.shard.store",
     "kvariant.shard.merge", "kvariant.shard.projection", "kvariant.rundirs"),
    ("kvariant.cli", "kvariant.shard.cli", "kvariant.knownfailures"),
)
# packages whose modules import at the top only: the config, and the workload
# whose reader the config once imported back from inside a function (the CLI
# defers its imports on purpose, to start fast)
TOP_LEVEL_IMPORTS_ONLY = ("kvariant/config", "kvariant/workloads/xfstests")

MODULES = sorted(m.name for m in pkgutil.walk_packages(kvariant.__path__, "kvariant."))
LOADED = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
          "print(json.dumps(sorted(m for m in sys.modules if m.startswith('kvariant'))))")


def layer(module: str) -> int | None:
    """The layer of the longest name in LAYERS that covers *module*."""
    covering = [(len(name), i) for i, names in enumerate(LAYERS) for name in names
                if module == name or module.startswith(name + ".")]
    return max(covering)[1] if covering else None


@pytest.fixture(scope="module")
def imports() -> dict[str, subprocess.CompletedProcess]:
    """Each module imported alone in its own interpreter (a few at a time)."""
    def one(module: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", LOADED, module], capture_output=True,
                              text=True, timeout=120, cwd=PROJECT)
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(MODULES, pool.map(one, MODULES)))


def test_each_module_imports_alone(imports):
    failed = {m: p.stderr.strip().splitlines()[-1:] for m, p in imports.items() if p.returncode}
    assert not failed


def test_no_module_pulls_in_one_above_it(imports):
    wrong = {}
    for module, p in imports.items():
        own = layer(module)
        if own is None or p.returncode:
            continue
        above = [m for m in json.loads(p.stdout) if (layer(m) or 0) > own]
        if above:
            wrong[module] = above
    assert not wrong


def test_the_config_pulls_in_no_workload_run_or_report(imports):
    loaded = json.loads(imports["kvariant.config"].stdout)
    for module in ("kvariant.pipeline", "kvariant.vm", "kvariant.workloads.fio", "kvariant.report",
                   "kvariant.compare", "kvariant.workloads.xfstests"):
        assert module not in loaded
    assert "kvariant.config" in json.loads(imports["kvariant.workloads.xfstests"].stdout)


def test_the_layering_names_modules_that_exist():
    """A renamed or removed module must leave LAYERS too, or it would drop
    out of the check unseen."""
    for names in LAYERS:
        for name in names:
            assert name in MODULES
    assert layer("kvariant.config.sections") == layer("kvariant.config") == 2
    assert layer("kvariant.workloads.targets") == 1 and layer("kvariant.workloads") is None


@pytest.mark.parametrize("package", TOP_LEVEL_IMPORTS_ONLY)
def test_imports_at_the_top_of_the_module(package):
    """No import inside a function: an import that has to wait until the
    call hides a cycle."""
    inside = []
    for path in sorted((PROJECT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside += [f"{path.relative_to(PROJECT)}:{n.lineno}" for n in ast.walk(node)
                           if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not inside
