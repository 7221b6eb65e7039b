"""Reports decoded to file:line by the kernel tree's own
scripts/decode_stacktrace.sh, run for real against an ELF built here with
line tables, laid out like a kernel's (init/main.c's kernel_init is how the
script finds the source root).  No VM: the fault matrix decodes a real
kernel's BUG."""
import shutil
import subprocess
from pathlib import Path

from kvariant import decode
from kvariant.paths import cache_dir

SCRIPT = cache_dir() / "linux-7.2" / "scripts" / decode.SCRIPT  # the tree ./setup.sh unpacks

MAIN_C = """\
int fuse_passthrough_write_iter(int x);
int kernel_init(int x)
{
\treturn fuse_passthrough_write_iter(x) + 1;
}
int main(void) { return kernel_init(0); }
"""
PASSTHROUGH_C = """\
int fuse_passthrough_write_iter(int x)
{
\tvolatile int y = x;
\ty = y * 3;
\treturn y;
}
"""


def kernel_like(tmp_path: Path) -> Path:
    """A directory shaped like an exported kernel: vmlinux (built with -g
    from init/main.c and fs/fuse/passthrough.c, debug sections compressed as
    build.export_kernel does) and the script."""
    src = tmp_path / "src"
    (src / "init").mkdir(parents=True)
    (src / "fs" / "fuse").mkdir(parents=True)
    (src / "init" / "main.c").write_text(MAIN_C)
    (src / "fs" / "fuse" / "passthrough.c").write_text(PASSTHROUGH_C)
    kdir = tmp_path / "kernel"
    kdir.mkdir()
    subprocess.run(["gcc", "-g", "-O0", "-no-pie", "-o", str(src / "vmlinux"),
                    "init/main.c", "fs/fuse/passthrough.c"], cwd=src, check=True)
    subprocess.run(["objcopy", "--compress-debug-sections=zlib", str(src / "vmlinux"),
                    str(kdir / "vmlinux")], check=True)
    for script in decode.SCRIPTS:
        shutil.copy2(SCRIPT.with_name(script), kdir / script)
    return kdir


REPORT = """\
[   12.345678] kernel BUG at fs/fuse/passthrough.c:4!
[   12.345679] Call Trace:
[   12.345680]  <TASK>
[   12.345681]  fuse_passthrough_write_iter+0x8/0x20
[   12.345682]  kernel_init+0x10/0x30
[   12.345683]  </TASK>"""


def test_a_report_gets_file_and_line_for_each_frame_it_can(tmp_path):
    kdir = kernel_like(tmp_path)
    out = decode.decode(REPORT, kdir, tmp_path / "variant")
    assert out is not None
    lines = out.splitlines()
    assert lines[0].endswith("kernel BUG at fs/fuse/passthrough.c:4!")
    # the script puts the place where the offset was; the source root is cut off
    assert lines[3].endswith("]  fuse_passthrough_write_iter (fs/fuse/passthrough.c:3)")
    assert lines[4].endswith("]  kernel_init (init/main.c:4)")
    assert decode.resolved_frames(out) == 2
    assert (tmp_path / "variant" / "splats.txt").read_text() == REPORT + "\n"
    assert "decode_stacktrace.sh" in (tmp_path / "variant" / "decode.log").read_text().splitlines()[0]


def test_a_kernel_without_vmlinux_or_a_report_without_frames_is_left_as_it_is(tmp_path):
    kdir = kernel_like(tmp_path)
    assert decode.decode("[    1.0] kernel BUG at x.c:1!\n", kdir, tmp_path / "v1") is None
    assert decode.decode("", kdir, tmp_path / "v2") is None
    (kdir / "vmlinux").unlink()
    assert not decode.decodable(kdir)
    assert decode.decode(REPORT, kdir, tmp_path / "v3") is None
