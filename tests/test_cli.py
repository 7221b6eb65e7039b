"""The command line: help, one-line errors and exit codes (no VM)."""
import subprocess
import sys

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


def test_unwritable_results_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "file").write_text("")
    p = run("run", "--config", str(PROJECT / "pipeline.toml"), "--results", str(ro / "file"))
    assert p.returncode == 1 and "not writable" in p.stderr and "Traceback" not in p.stderr


def test_existing_run_id_is_refused(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "summary.json").write_text("{}")
    p = run("run", "--config", str(PROJECT / "pipeline.toml"), "--results", str(tmp_path),
            "--run-id", "r1")
    assert p.returncode == 1 and "already holds a run" in p.stderr
