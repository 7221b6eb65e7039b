"""``pipeline.py build --kernels DIR``: the kernel store, without a VM and
without make: the baseline's kernel is one the cache already holds (as a
warm cache does), the other variant's patch does not apply."""
import json
import os
from pathlib import Path

import pytest

from conftest import broken_patch_config, git, tree_state
from kvariant import cli
from kvariant import decode
from kvariant.build import config_key, toolchain
from kvariant.config import DEFAULT_FRAGMENT
from kvariant.paths import short_hash
from kvariant.shard.store import INDEX, file_digest, read_index
from kvariant.errors import ConfigError


def cached_kernel(cache: Path, commit: str) -> Path:
    """An exported kernel in the cache, where build_kernel reuses it."""
    key = short_hash(commit, config_key([DEFAULT_FRAGMENT.resolve()]), toolchain())
    kernel = cache / "kernels" / key
    (kernel / "lib" / "modules" / "1.0.0-kv").mkdir(parents=True)
    (kernel / "lib" / "modules" / "1.0.0-kv" / "modules.dep").write_text("kernel/fs/fuse/fuse.ko:\n")
    (kernel / "bzImage").write_bytes(os.urandom(4096))
    (kernel / "config").write_text("CONFIG_FUSE_FS=y\n")
    for name in decode.FILES:  # what decodes its reports (decode.py); never run here
        (kernel / name).write_bytes(b"")
    (kernel / "release").write_text("1.0.0-kv\n")
    return kernel


@pytest.fixture
def two_variants(tmp_path, small_tree, cache):
    conf = broken_patch_config(tmp_path, small_tree)
    conf.write_text(conf.read_text() + '[[variant]]\nname = "baseline"\n')
    return conf, cached_kernel(cache, git(small_tree, "rev-parse", "v1"))


def test_build_writes_the_store_and_a_failed_variant_does_not_stop_the_other(
        two_variants, tmp_path, small_tree, capsys):
    conf, kernel = two_variants
    store = tmp_path / "store"
    before = tree_state(small_tree)
    assert cli.main(["build", "--config", str(conf), "--kernels", str(store)]) == 2
    assert tree_state(small_tree) == before
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[-1] == str(store)

    base = json.loads((store / "baseline" / "metadata.json").read_text())
    assert base["status"] == "built" and base["cache_key"] == kernel.name
    assert base["commit"] == git(small_tree, "rev-parse", "v1") == base["base_commit"]
    assert base["kernel_release"] == "1.0.0-kv" and base["build_reused"] is True
    assert base["toolchain"] == toolchain() and base["patches"] == []
    assert base["bzimage_sha256"] == file_digest(kernel / "bzImage")
    assert [t["name"] for t in base["testcases"]] == ["apply", "build"]
    assert (store / "baseline" / "bzImage").read_bytes() == (kernel / "bzImage").read_bytes()
    assert (store / "baseline" / "lib" / "modules" / "1.0.0-kv" / "modules.dep").is_file()
    assert (store / "baseline" / "config").read_text() == "CONFIG_FUSE_FS=y\n"

    broken = json.loads((store / "broken" / "metadata.json").read_text())
    assert broken["status"] == "failed" and broken["message"].startswith("apply: ")
    assert sorted(p.name for p in (store / "broken").iterdir()) == ["metadata.json"]

    index = read_index(store)
    assert index["variants"] == {"broken": "failed", "baseline": "built"}
    junit = (store / "_build" / "broken" / "junit.xml").read_text()
    assert '<testcase name="apply"' in junit and "<failure" in junit
    assert '<testcase name="build"' in (store / "_build" / "baseline" / "junit.xml").read_text()
    assert json.loads((store / "_build" / "summary.json").read_text())["planned_variants"] == ["broken", "baseline"]
    assert not [p for p in store.iterdir() if p.name.endswith((".tmp", ".old"))]


def test_a_second_build_gives_the_same_store(two_variants, tmp_path):
    conf, _ = two_variants
    store = tmp_path / "store"
    argv = ["build", "--config", str(conf), "--kernels", str(store), "--variant", "baseline"]
    assert cli.main(argv) == 0
    first = read_index(store)["digest"]
    (store / "baseline" / "stale").write_text("from an earlier build")
    assert cli.main(argv) == 0
    assert read_index(store)["digest"] == first
    assert not (store / "baseline" / "stale").exists()  # the variant's directory is replaced whole


def test_bad_kernels_directories(tmp_path, two_variants, capsys):
    conf, _ = two_variants
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert cli.main(["build", "--config", str(conf), "--kernels", str(a_file)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"kvariant: error: --kernels: expected a directory, got {a_file}, which is or lies under a file")
    assert cli.main(["build", "--config", str(conf), "--kernels", "/proc/kvariant-store"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--kernels: /proc/kvariant-store is not writable" in err[0]


def test_a_directory_that_is_no_store(tmp_path):
    with pytest.raises(ConfigError) as e:
        read_index(tmp_path)
    assert str(tmp_path / INDEX) in str(e.value) and "not a kernel store" in str(e.value)
