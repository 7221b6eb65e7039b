"""The kernel tree given outside the config: ``--tree`` on run, try and
build, else ``KVARIANT_TREE``, else the config's ``[kernel] tree``."""
import pytest

from conftest import git
from kvariant import cli, config
from kvariant.config import KernelSource, tree_source
from kvariant.summary import RunSummary


def test_which_tree(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert tree_source(a, {"KVARIANT_TREE": str(b)}) == KernelSource(tree=a, origin="--tree")
    assert tree_source(None, {"KVARIANT_TREE": str(b)}) == KernelSource(tree=b, origin="KVARIANT_TREE")
    assert tree_source(None, {"KVARIANT_TREE": ""}) == KernelSource()
    assert tree_source(None, {}) == KernelSource()


@pytest.fixture
def elsewhere(tmp_path, small_tree):
    """A config whose own tree does not exist."""
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{tmp_path / "gone"}"\nbase = "v1"\n'
                    '[[variant]]\nname = "baseline"\npatches = ["git:topic"]\n')
    return conf


def test_the_given_tree_replaces_the_configs(elsewhere, small_tree, tmp_path):
    cfg = config.load(elsewhere, tree_source(small_tree, {}))
    assert cfg.kernel.tree == small_tree.resolve()
    assert cfg.kernel.base_commit == git(small_tree, "rev-parse", "v1")
    assert cfg.variants[0].patches[0].ref == "topic"  # resolved in the given tree


def test_a_bad_tree_is_named_by_where_it_came_from(elsewhere, tmp_path, capsys, monkeypatch):
    assert cli.main(["build", "--config", str(elsewhere), "--kernels", str(tmp_path / "s"),
                     "--tree", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"kvariant: error: --tree: expected a kernel git tree, got {tmp_path}, which is not a git repository")
    monkeypatch.setenv("KVARIANT_TREE", str(tmp_path / "nothere"))
    assert cli.main(["run", "--config", str(elsewhere), "--results", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"kvariant: error: KVARIANT_TREE: expected a kernel git tree, got {tmp_path / 'nothere'}, "
        f"which is not a git repository")
    monkeypatch.delenv("KVARIANT_TREE")
    assert cli.main(["run", "--config", str(elsewhere), "--results", str(tmp_path / "r")]) == 1
    assert "kernel.tree: expected a git repository" in capsys.readouterr().err


def test_the_environments_tree_runs(tmp_path, small_tree, cache, monkeypatch):
    """A run of a config naming no usable tree, KVARIANT_TREE pointing at
    one: the broken patch stops the run before a VM."""
    bad = tmp_path / "bad.patch"
    bad.write_text("From: A <a@example.org>\nSubject: [PATCH] broken\n\n---\n"
                   "diff --git a/nothere.c b/nothere.c\n--- a/nothere.c\n+++ b/nothere.c\n"
                   "@@ -1,1 +1,1 @@\n-x\n+y\n")
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{tmp_path / "gone"}"\nbase = "v1"\n'
                    f'[[variant]]\nname = "broken"\npatches = ["{bad}"]\n')
    monkeypatch.setenv("KVARIANT_TREE", str(small_tree))
    assert cli.main(["run", "--config", str(conf), "--results", str(tmp_path / "r"), "--run-id", "x"]) == 2
    run = RunSummary.load(tmp_path / "r" / "x")
    assert run.variants[0].stage("apply").status.value == "fail"
    assert run.variants[0].stage("apply").message.startswith("patch does not apply: bad.patch")
    assert run.variants[0].info.base_commit == git(small_tree, "rev-parse", "v1")


def test_an_empty_cache_variable_is_the_default_cache(monkeypatch):
    from pathlib import Path
    from kvariant.paths import cache_dir
    monkeypatch.setenv("KVARIANT_CACHE", "")
    assert cache_dir() == Path("~/.cache/kvariant").expanduser()
    monkeypatch.setenv("KVARIANT_CACHE", "/srv/kv")
    assert cache_dir() == Path("/srv/kv")
