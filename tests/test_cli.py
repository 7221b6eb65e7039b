"""The command line: help, one-line errors and exit codes (no VM)."""
import os
import subprocess
import sys

import pytest

from conftest import PROJECT

PIPELINE = str(PROJECT / "pipeline.py")


def run(*args, **kw):
    return subprocess.run([sys.executable, PIPELINE, *args], capture_output=True, text=True,
                          timeout=120, **kw)


def test_help_explains_every_option():
    top = run("--help")
    assert top.returncode == 0 and "run" in top.stdout
    sub = run("run", "--help")
    for opt in ("--config", "--results", "--run-id", "--variant"):
        assert opt in sub.stdout


def test_bad_config_is_one_line_and_exit_1(tmp_path):
    conf = tmp_path / "p.toml"
    conf.write_text('[vm]\ncpus = "two"\n[[variant]]\nname = "baseline"\n')
    p = run("run", "--config", str(conf))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{conf}: vm.cpus: expected a positive integer" in lines[0]
    assert "Traceback" not in p.stderr and not (tmp_path / "results").exists()


def test_missing_config_and_unknown_variant(tmp_path):
    p = run("run", "--config", str(tmp_path / "nope.toml"))
    assert p.returncode == 1 and "no such file" in p.stderr
    p = run("run", "--config", str(PROJECT / "pipeline.toml"), "--variant", "v9",
            "--results", str(tmp_path))
    assert p.returncode == 1 and "--variant: expected one of baseline, parallel-dio" in p.stderr


def test_a_file_as_results_dir_is_bad_input(tmp_path):
    (tmp_path / "file").write_text("")
    for results in (tmp_path / "file", tmp_path / "file" / "under"):
        p = run("run", "--config", str(PROJECT / "pipeline.toml"), "--results", str(results))
        one_line_error(p, f"--results: expected a directory, got {results}")


def small_config(tmp_path, small_tree):
    conf = tmp_path / "p.toml"
    (tmp_path / "x.patch").write_text("")
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n[[variant]]\nname = "baseline"\n')
    return conf


def exit_3(p, results):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 3, p.stderr
    assert len(lines) == 1 and lines[0].startswith(f"kvariant: error: --results: {results}") \
        and "is not writable" in lines[0], p.stderr


def test_a_results_dir_that_cannot_be_written_is_exit_3(tmp_path, small_tree):
    """/sys exists, is a directory, and nobody may make one in it."""
    conf = small_config(tmp_path, small_tree)
    exit_3(run("run", "--config", str(conf), "--results", "/sys"), "/sys")
    exit_3(run("try", "--config", str(conf), "--results", "/sys", str(tmp_path / "x.patch")), "/sys")
    exit_3(run("run", "--config", str(conf), "--results", "/sys/kvariant-results"), "/sys/kvariant-results")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_a_read_only_results_dir_is_exit_3(tmp_path, small_tree):
    """Root writes through a 0555 directory: a read-only mount stops it."""
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], check=True)
    try:
        exit_3(run("run", "--config", str(small_config(tmp_path, small_tree)), "--results", str(ro)), ro)
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_existing_run_id_is_refused(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "summary.json").write_text("{}")
    p = run("run", "--config", str(PROJECT / "pipeline.toml"), "--results", str(tmp_path),
            "--run-id", "r1")
    assert p.returncode == 1 and "already holds a run" in p.stderr


def one_line_error(p, *needles):
    """Exit 1, and stderr is one line holding every needle."""
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1, p.stderr
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_a_number_out_of_range_is_one_line(tmp_path, small_tree):
    conf = tmp_path / "pipeline.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n[timeouts]\nfio = inf\n'
                    '[[variant]]\nname = "baseline"\n')
    p = run("run", "--config", str(conf), "--results", str(tmp_path / "r"))
    one_line_error(p, f"{conf}: timeouts.fio: expected 0 (runtime + ramp + 120 s) or a number of "
                      "seconds in 1..86400", "got inf")
    assert not (tmp_path / "r").exists()


def test_a_config_with_a_latin1_byte(tmp_path):
    conf = tmp_path / "p.toml"
    conf.write_bytes(b'# caf\xe9 au lait\n[[variant]]\nname = "baseline"\n')
    for cmd in (["run", "--config", str(conf)], ["try", "--config", str(conf), "x.patch"]):
        one_line_error(run(*cmd, "--results", str(tmp_path / "r")),
                       f"{conf}: not valid TOML: expected UTF-8 text, got byte 0xe9 at line 1, column 6")


@pytest.mark.parametrize("section", ["fio", "xfstests"])
@pytest.mark.parametrize("full", [[], ["--full"]])
def test_try_with_a_section_that_is_not_a_table(tmp_path, section, full):
    conf = tmp_path / "p.toml"
    conf.write_text(f'{section} = 5\n')
    p = run("try", "--config", str(conf), "--results", str(tmp_path / "r"), *full, "x.patch")
    one_line_error(p, f"{conf}: {section}: expected a table [{section}], got 5")


@pytest.mark.parametrize("name", ["summary.json", "run.log", "report.html", "report.md", "report.json",
                                  "compare-r1"])
def test_a_variant_named_like_a_file_of_the_run(tmp_path, small_tree, name):
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n'
                    f'[[variant]]\nname = "baseline"\n[[variant]]\nname = "{name}"\n')
    p = run("run", "--config", str(conf), "--results", str(tmp_path / "r"))
    one_line_error(p, f"{conf}: variant[1].name: expected a name the run directory does not use",
                   f"got {name!r}")
    p = run("try", "--config", str(conf), "--name", name, "x.patch")
    one_line_error(p, "argument --name: expected a name the run directory does not use", f"got {name!r}")


def test_the_run_directory_holds_only_names_a_variant_cannot_take(tmp_path, small_tree, cache):
    """A real run (its patch does not apply: no VM) and a comparison of two:
    whatever they write beside the variants' directories is in RUN_FILES
    or starts with COMPARE_PREFIX, so the check of variant names is
    complete."""
    from conftest import broken_patch_config
    from kvariant.paths import COMPARE_PREFIX, RUN_FILES
    conf = broken_patch_config(tmp_path, small_tree)
    results = tmp_path / "results"
    for run_id in ("r1", "r2"):
        p = run("run", "--config", str(conf), "--results", str(results), "--run-id", run_id)
        assert p.returncode == 2, p.stderr
    assert run("compare", "r1", "r2", "--results", str(results)).returncode == 0
    for run_dir in (results / "r1", results / "r2"):
        own = {e.name for e in run_dir.iterdir()} - {"broken"}
        assert own and all(n in RUN_FILES or n.startswith(COMPARE_PREFIX) for n in own), own
    assert any(n.startswith(COMPARE_PREFIX) for n in own)


def test_argument_errors_are_one_line(tmp_path):
    p = run("run", "--threshold", "abc")
    one_line_error(p, "pipeline.py run: error: argument --threshold: expected a fraction",
                   "(see pipeline.py run --help)")
    one_line_error(run("frobnicate"), "pipeline.py: error: argument COMMAND: invalid choice")
    one_line_error(run("run", "--run-id", "../x", "--results", str(tmp_path)),
                   "--run-id: expected a name usable as a directory, got '../x'")


def test_compare_into_a_directory_that_cannot_be_written_is_exit_3():
    from conftest import FIXTURES
    p = run("compare", str(FIXTURES / "runs" / "run-a"), "--out", "/sys/kvariant-reports")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 3 and len(lines) == 1, p.stderr
    assert lines[0].startswith("kvariant: error: /sys/kvariant-reports: cannot write the reports")
