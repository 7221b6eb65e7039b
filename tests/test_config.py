"""Each bad input stops with one line naming the file, the key and what was
expected."""
import pytest

from kvariant import config
from kvariant.errors import ConfigError

GOOD = """
[kernel]
tree = "{tree}"
base = "v1"
fragments = ["frag.config"]

[[variant]]
name = "baseline"

[[variant]]
name = "series"
patches = ["series.patch", "git:topic"]
"""


@pytest.fixture
def cfgdir(tmp_path, small_tree):
    (tmp_path / "frag.config").write_text("CONFIG_FUSE_FS=y\n")
    (tmp_path / "series.patch").write_text("diff\n")
    return tmp_path


def write(cfgdir, text, small_tree):
    p = cfgdir / "p.toml"
    p.write_text(text.replace("{tree}", str(small_tree)))
    return p


def test_good_config_and_defaults(cfgdir, small_tree):
    c = config.load(write(cfgdir, GOOD, small_tree))
    assert [v.name for v in c.variants] == ["baseline", "series"]
    assert c.variants[1].patches[0].path == cfgdir / "series.patch"
    assert c.variants[1].patches[1].ref == "topic"
    assert c.kernel.fragments == ((cfgdir / "frag.config").resolve(),)
    assert (c.vm.cpus, c.vm.memory, c.vm.accel) == (2, "4G", "auto")
    assert (c.null_blk.gb, c.null_blk.bs) == (4, 4096)
    assert c.fio.numjobs == (1, 2) and c.fio.iodepth == 64
    assert c.fio.together and not c.fio.normalise


BAD = [
    ('[vm]\ncpus = "two"\n', "vm.cpus", "positive integer"),
    ('[vm]\ncpus = 0\n', "vm.cpus", "positive integer"),
    ('[vm]\naccel = "hvf"\n', "vm.accel", "auto, kvm or tcg"),
    ('[vm]\nmemory = "lots"\n', "vm.memory", "size"),
    ('[vm]\ncpu = 2\n', "vm.cpu", "unknown key"),
    ('[null_blk]\nbs = 4000\n', "null_blk.bs", "4096"),
    ('[fio]\nnumjobs = [1, "x"]\n', "fio.numjobs", "whole numbers in 1..256"),
    ('[fio]\ntargets = ["ext4"]\n', "fio.targets[0]", "one of"),
    ('[fio]\nruntime = "ten"\n', "fio.runtime", "duration"),
    ('[fio]\ntogether = "yes"\n', "fio.together", "true or false"),
    ('[timeouts]\nboot = "forever"\n', "timeouts.boot", "duration"),
    ('[vmm]\n', "vmm", "unknown section"),
    ('[correctness]\nendwrite = "yes"\n', "correctness.endwrite", "true or false"),
    ('[correctness]\nfsx = true\n', "correctness.fsx", "unknown key"),
]


@pytest.mark.parametrize("extra,key,expected", BAD)
def test_bad_values(cfgdir, small_tree, extra, key, expected):
    p = write(cfgdir, GOOD + extra, small_tree)
    with pytest.raises(ConfigError) as e:
        config.load(p)
    line = str(e.value)
    assert "\n" not in line
    assert line.startswith(f"{p.resolve()}: {key}: ") or line.startswith(f"{p}: {key}: ")
    assert expected in line


def edit(text, old, new):
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize("old,new,key,expected", [
    ('base = "v1"', 'base = "v9"', "kernel.base", "commit-ish"),
    ('tree = "{tree}"', 'tree = "/nonexistent/tree"', "kernel.tree", "git repository"),
    ('"series.patch", ', '"missing.patch", ', "variant[1] (series).patches[0]", "existing patch"),
    ('"git:topic"', '"git:nosuchref"', "variant[1] (series).patches[1]", "ref that exists"),
    ('name = "series"', 'name = "baseline"', "variant[1].name", "no other variant"),
    ('name = "series"', 'name = "My Series"', "variant[1].name", "slug"),
    ('fragments = ["frag.config"]', 'fragments = ["nope.config"]', "kernel.fragments[0]", "kconfig fragment"),
])
def test_bad_references(cfgdir, small_tree, old, new, key, expected):
    p = write(cfgdir, edit(GOOD, old, new), small_tree)
    with pytest.raises(ConfigError) as e:
        config.load(p)
    assert f": {key}: " in str(e.value) and expected in str(e.value)


def test_not_a_git_repo(cfgdir, small_tree, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    p = write(cfgdir, edit(GOOD, 'tree = "{tree}"', f'tree = "{plain}"'), small_tree)
    with pytest.raises(ConfigError, match="kernel.tree: expected a git repository"):
        config.load(p)


def test_no_variants_and_bad_toml(cfgdir, small_tree):
    p = write(cfgdir, GOOD.split("[[variant]]")[0], small_tree)
    with pytest.raises(ConfigError, match="variant: expected at least one"):
        config.load(p)
    p.write_text("[kernel\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(p)
    with pytest.raises(ConfigError, match="no such file"):
        config.load(cfgdir / "absent.toml")
    with pytest.raises(ConfigError, match="cannot be read: Is a directory"):
        config.load(cfgdir)


def test_select_variants(cfgdir, small_tree):
    c = config.load(write(cfgdir, GOOD, small_tree))
    assert [v.name for v in config.select_variants(c, ["series"]).variants] == ["series"]
    with pytest.raises(ConfigError, match="--variant"):
        config.select_variants(c, ["nope"])


def test_durations():
    assert config.parse_duration("15m") == 900
    assert config.parse_duration(90) == 90
    assert config.parse_duration("2h") == 7200
    assert config.parse_duration("soon") is None


def test_boot_retries(cfgdir, small_tree):
    c = config.load(write(cfgdir, GOOD + "[vm]\nboot_retries = 0\n", small_tree))
    assert c.vm.boot_retries == 0
    assert config.load(write(cfgdir, GOOD, small_tree)).vm.boot_retries == 1
    with pytest.raises(ConfigError, match="vm.boot_retries: expected a whole number"):
        config.load(write(cfgdir, GOOD + "[vm]\nboot_retries = -1\n", small_tree))
