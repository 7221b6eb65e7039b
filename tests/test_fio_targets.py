"""The fio targets are a registry (kvariant.workloads.targets.TARGETS), and
the config takes its valid names from there: a target registered there is
one the config accepts, and the config names the registry's targets when
it refuses one (no VM)."""
import pytest

from kvariant import config
from kvariant.config import FuseConfig
from kvariant.errors import ConfigError
from kvariant.workloads.targets import TARGETS, XfsTarget, make_target

CONFIG = """
[kernel]
tree = "{tree}"
base = "v1"

[fio]
targets = {targets}

[[variant]]
name = "baseline"
"""


def load(tmp_path, small_tree, targets: str):
    p = tmp_path / "p.toml"
    p.write_text(CONFIG.format(tree=small_tree, targets=targets))
    return config.load(p)


def test_every_registered_target_is_one_the_config_takes_and_makes(tmp_path, small_tree):
    assert list(TARGETS) == ["xfs", "fuse-passthrough", "fuse"]
    for name in TARGETS:
        cfg = load(tmp_path, small_tree, f'["{name}"]')
        assert cfg.fio.targets == (name,)
        assert make_target(name, cfg.fuse).name == name
    assert make_target("fuse-passthrough", FuseConfig()).passthrough is True
    assert make_target("fuse", FuseConfig()).passthrough is False
    with pytest.raises(ValueError, match="unknown fio target tmpfs"):
        make_target("tmpfs", FuseConfig())


def test_the_config_reads_its_names_from_the_registry(tmp_path, small_tree, monkeypatch):
    with pytest.raises(ConfigError, match=r"fio\.targets\[1\]: expected one of xfs, "
                                          r"fuse-passthrough, fuse, got 'tmpfs'"):
        load(tmp_path, small_tree, '["xfs", "tmpfs"]')
    monkeypatch.setitem(TARGETS, "tmpfs", lambda cfg: XfsTarget())
    assert load(tmp_path, small_tree, '["xfs", "tmpfs", "xfs"]').fio.targets == ("xfs", "tmpfs")
    with pytest.raises(ConfigError, match=r"fio\.targets\[0\]: expected one of xfs, "
                                          r"fuse-passthrough, fuse, tmpfs, got \[1\]"):
        load(tmp_path, small_tree, '[[1]]')
