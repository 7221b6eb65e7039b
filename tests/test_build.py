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
    assert build.config_key([a]) != k1


def test_missing_options(tmp_path):
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_XFS_FS=y\nCONFIG_BLK_DEV_NULL_BLK=m\n# CONFIG_FOO is not set\n")
    cfg = "CONFIG_XFS_FS=y\n# CONFIG_BLK_DEV_NULL_BLK is not set\n"
    assert build.missing_options(cfg, [frag]) == ["CONFIG_BLK_DEV_NULL_BLK=m (f.config)"]


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
