"""Pure parts of the build stage."""
from pathlib import Path

from kvariant import build


def test_configkernel_and_make_argv(tmp_path):
    f = tmp_path / "a.config"
    assert build.configkernel_argv([f], tmp_path / "out") == [
        "virtme-configkernel", "--defconfig", "--custom", str(f), f"O={tmp_path / 'out'}"]
    assert build.make_argv(Path("/s"), Path("/o"), 2, "bzImage", "modules") == [
        "make", "-C", "/s", "O=/o", "-j2", "bzImage", "modules"]


def test_config_key_follows_fragment_content(tmp_path):
    a = tmp_path / "a.config"
    a.write_text("CONFIG_FUSE_FS=y\n")
    k1 = build.config_key([a])
    assert build.config_key([a]) == k1
    a.write_text("CONFIG_FUSE_FS=y\nCONFIG_XFS_FS=y\n")
    k2 = build.config_key([a])
    assert k2 != k1
    a.write_text("CONFIG_FUSE_FS=y\nCONFIG_XFS_FS=y\n# CONFIG_DRM is not set\n")
    k3 = build.config_key([a])
    assert k3 != k2  # an option turned off is an option
    # comments and blank lines are not what kconfig reads
    a.write_text("# FUSE\nCONFIG_FUSE_FS=y\n\n# and XFS, rewritten\nCONFIG_XFS_FS=y\n"
                 "# CONFIG_DRM is not set\n")
    assert build.config_key([a]) == k3
    a.write_text("CONFIG_XFS_FS=y\nCONFIG_FUSE_FS=y\n# CONFIG_DRM is not set\n")
    assert build.config_key([a]) != k3  # order: the last line for an option wins


def test_missing_options(tmp_path):
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_XFS_FS=y\nCONFIG_BLK_DEV_NULL_BLK=m\n# CONFIG_FOO is not set\n"
                    "# CONFIG_DRM is not set\n")
    cfg = "CONFIG_XFS_FS=y\n# CONFIG_BLK_DEV_NULL_BLK is not set\nCONFIG_DRM=y\n"
    assert build.missing_options(cfg, [frag]) == ["CONFIG_BLK_DEV_NULL_BLK=m (f.config)",
                                                  "CONFIG_DRM off, but it is y (f.config)"]
    assert build.missing_options("# CONFIG_DRM is not set\nCONFIG_XFS_FS=y\nCONFIG_BLK_DEV_NULL_BLK=m\n",
                                 [frag]) == []


def test_compiler_errors_are_picked_out():
    log = "\n".join([
        "  CC      fs/fuse/file.o",
        "fs/fuse/passthrough.c: In function 'fuse_passthrough_write_iter':",
        "fs/fuse/passthrough.c:73:9: error: implicit declaration of function 'inode_lok'",
        "   73 |         inode_lok(inode);",
        "      |         ^~~~~~~~~",
        "make[4]: *** [scripts/Makefile.build:287: fs/fuse/passthrough.o] Error 1",
        "  CC      fs/xfs/xfs_aops.o",
    ])
    out = build.compiler_errors(log)
    assert "In function 'fuse_passthrough_write_iter'" in out
    assert "error: implicit declaration of function 'inode_lok'" in out
    assert "inode_lok(inode);" in out and "Error 1" in out
    assert "xfs_aops" not in out


KBUILD = """  SYNC    include/config/auto.conf
  CC      scripts/mod/empty.o
  HOSTCC  scripts/mod/mk_elfconfig
  CC [M]  fs/fuse/file.o
  AS      arch/x86/entry/entry_64.o
  LD [M]  fs/fuse/fuse.ko
  AR      fs/fuse/built-in.a
  CC      fs/fuse/passthrough.o
""".splitlines()


def test_build_progress_counts_compiled_objects_against_the_last_full_build():
    from kvariant.buildprogress import BuildProgress
    now = [0.0]
    shown = []
    p = BuildProgress(40, shown.append, clock=lambda: now[0])
    notes = []
    for line in KBUILD * 10:
        now[0] += 0.5
        notes.append(p.line(line))
    assert p.objects == 40  # CC, CC [M] and AS lines; not HOSTCC, LD, AR
    logged = [n for n in notes if n]
    assert len(logged) == 10 and logged[0] == "kvariant: 4 of ~40 objects (10%), 4 s"
    assert logged[-1] == "kvariant: 40 of ~40 objects (99%), 40 s"
    assert shown[0].startswith("1 of ~40 objects") and len(shown) <= 40
    assert BuildProgress(None, clock=lambda: 75.0).text() == "0 objects compiled, 0 s"


def test_the_estimate_is_the_last_full_build_of_the_tree(tmp_path):
    from kvariant.buildprogress import FIRST_BUILD_ESTIMATE, expected_objects, record_full_build
    cold = tmp_path / "tree" / "cfg1"
    cold.mkdir(parents=True)
    assert expected_objects(cold) == FIRST_BUILD_ESTIMATE == 1990  # a new machine
    record_full_build(cold, 2874)
    other = tmp_path / "tree" / "cfg2"
    other.mkdir()
    assert expected_objects(other) == 2874
    (other / "vmlinux").write_text("")
    assert expected_objects(other) is None  # incremental: no estimate
