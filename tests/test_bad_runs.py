"""Run directories that are malformed, corrupt or hostile, fed to
``compare`` and ``run --resume``: one line naming the file and the key,
exit code 1, nothing written anywhere."""
import json
import re
import shutil
from types import SimpleNamespace

import pytest

from conftest import FIXTURES
from kvariant import cli, rundirs
from kvariant.errors import ConfigError

RUNS = FIXTURES / "runs"
FIO = "variants[0].stages[4].figures"  # run-a's baseline, fio/fuse-passthrough/randwrite-4k-nj1


def copy_run(name, dest):
    shutil.copytree(RUNS / name, dest)
    return dest


def rewrite(run_dir, change):
    path = run_dir / "summary.json"
    data = json.loads(path.read_text())
    data = change(data)
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them
    return run_dir


def set_figure(key, value):
    def change(d):
        d["variants"][0]["stages"][4]["figures"][key] = value
        return d
    return change


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line_error(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvariant: error: "), err
    assert "Traceback" not in err
    return lines[0]


MALFORMED = [
    ("a list", lambda d: [d], ": expected a JSON object (a run summary), got a list"),
    ("variants a string", lambda d: {**d, "variants": "baseline"},
     ": variants: expected a list of variant results, got a string ('baseline')"),
    ("iops a string", set_figure("iops", "abc"), f": {FIO}.iops: expected IOPS as a finite number"),
    ("iops_runs of strings", set_figure("iops_runs", ["a"]), f": {FIO}.iops_runs: expected IOPS as a finite"),
    ("info a list", lambda d: (d["variants"][0].update(info=[]), d)[1],
     ": variants[0].info: expected an object, got a list"),
    ("figures a list", lambda d: (d["variants"][0]["stages"][4].update(figures=[]), d)[1],
     f": {FIO}: expected an object, got a list"),
    ("a stage's message a number", lambda d: (d["variants"][0]["stages"][0].update(message=5), d)[1],
     ": variants[0].stages[0].message: expected a string"),
    ("a newer layout", lambda d: {**d, "schema": 2},
     ": schema: expected a summary layout from 1 to 1 (a newer kvariant wrote it?), got 2"),
]

CORRUPT = [
    ("NaN", set_figure("iops", float("nan")), f"{FIO}.iops: expected IOPS as a finite number >= 0 "
                                              "(a corrupt run?), got nan"),
    ("negative", set_figure("iops", -5.0), f"{FIO}.iops: expected IOPS as a finite number >= 0 "
                                           "(a corrupt run?), got -5.0"),
    ("infinite", set_figure("iops", float("inf")), f"{FIO}.iops: expected IOPS as a finite number"),
    ("NaN among the repeats", set_figure("iops_runs", "25240,nan,21382"), f"{FIO}.iops_runs: expected IOPS"),
    ("a negative repeat", set_figure("iops_runs", [25240, -1, 21382]), f"{FIO}.iops_runs: expected IOPS"),
]


@pytest.mark.parametrize("what, change, expected", MALFORMED + CORRUPT, ids=[c[0] for c in MALFORMED + CORRUPT])
def test_compare_refuses_a_malformed_or_corrupt_summary(tmp_path, capsys, what, change, expected):
    bad = rewrite(copy_run("run-a", tmp_path / "run-a"), change)
    before = files_under(tmp_path)
    line = one_line_error(capsys, ["compare", str(bad)])
    assert f"{bad}/summary.json" in line and expected in line
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("what, change, expected", MALFORMED[:2], ids=[c[0] for c in MALFORMED[:2]])
def test_resume_refuses_a_malformed_summary(tmp_path, capsys, what, change, expected):
    bad = rewrite(copy_run("run-a", tmp_path / "run-a"), lambda d: change({**d, "finished": False}))
    line = one_line_error(capsys, ["run", "--resume", str(bad)])
    assert f"{bad}/summary.json" in line and expected in line


def test_resume_refuses_planned_variants_of_the_wrong_type(tmp_path, capsys):
    bad = rewrite(copy_run("run-a", tmp_path / "run-a"),
                  lambda d: {**d, "finished": False, "planned_variants": "baseline"})
    line = one_line_error(capsys, ["run", "--resume", str(bad)])
    assert "planned_variants: expected a list of variant names" in line


def test_a_run_id_that_is_a_path_never_places_the_reports(tmp_path, capsys):
    deep = tmp_path / "a" / "b" / "c" / "d"
    hostile = rewrite(copy_run("run-a", deep / "run-a"), lambda d: {**d, "run_id": "../../../../x"})
    other = copy_run("run-b", deep / "run-b")
    before = files_under(tmp_path)
    line = one_line_error(capsys, ["compare", str(hostile), str(other)])
    assert line.endswith(f"{hostile}/summary.json: run_id: expected a run id usable as a directory "
                         "name (letters, digits, '.', '_', '-'), got '../../../../x'")
    assert files_under(tmp_path) == before


def test_a_variant_name_that_is_a_path_is_refused(tmp_path, capsys):
    hostile = rewrite(copy_run("run-a", tmp_path / "run-a"),
                      lambda d: (d["variants"][1].update(name="../../x"), d)[1])
    line = one_line_error(capsys, ["compare", str(hostile)])
    assert "variants[1].name: expected a variant name (a slug" in line


def test_against_refuses_a_corrupt_earlier_run(tmp_path):
    """run --against checks the earlier run before anything starts (called
    directly: were the check gone, main() would start a real run)."""
    bad = rewrite(copy_run("run-a", tmp_path / "run-a"), set_figure("iops", float("nan")))
    with pytest.raises(ConfigError, match=re.escape(f"{FIO}.iops: expected IOPS")):
        rundirs.against(str(bad), SimpleNamespace(variants=()), tmp_path)


def test_the_good_fixtures_still_compare(tmp_path, capsys):
    a, b = copy_run("run-a", tmp_path / "run-a"), copy_run("run-b", tmp_path / "run-b")
    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.md").is_file()


def test_against_last_passes_over_a_corrupt_newer_run(tmp_path):
    """--against last picks its run at the end of a run: a corrupt newer
    summary of the same config must not end that run in an error."""
    conf = tmp_path / "p.toml"
    conf.write_text("# the config\n")
    root = tmp_path / "results"

    def finished(name, started):
        return lambda d: {**d, "run_id": name, "config": str(conf), "finished": True, "started": started}
    good = rewrite(copy_run("run-a", root / "good"), finished("good", "2026-11-21T22:01:02+0000"))
    rewrite(copy_run("run-b", root / "corrupt"), lambda d: set_figure("iops", -1.0)(
        finished("corrupt", "2026-11-22T09:15:00+0000")(d)))
    rewrite(copy_run("run-b", root / "listed"), lambda d: [d])
    assert rundirs.last_run(root, conf, exclude=root / "now") == good
