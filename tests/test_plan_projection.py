"""``pipeline.py plan``: what a night would take on N runners, from the
times of real runs' summary.json (tests/fixtures/runs: run-a, fio on two
variants; run-b, the same with five xfstests tests, one skipped on each
variant).  One runner takes the sum; more never beat the longest unit;
every figure says whether it was measured or projected; bad input is one
line and exit code 1."""
import json
import re
from pathlib import Path

import pytest

from conftest import FIXTURES
from kvariant import cli

RUN_A = FIXTURES / "runs" / "run-a"
RUN_B = FIXTURES / "runs" / "run-b"
XFSTESTS = ["generic/001", "generic/002", "generic/003", "generic/013", "generic/108"]


def write_config(tmp_path: Path, variants=("baseline", "parallel-dio"), tests=XFSTESTS) -> Path:
    """run-b's fio job and xfstests list (the fio points are run-a's too);
    *tests* None: no xfstests."""
    text = ('[kernel]\nbase = "v7.2.13"\n'
            '[fio]\ntargets = ["fuse-passthrough", "xfs"]\nnumjobs = [1, 2, 4]\nruntime = 6\n'
            'ramp_time = 2\nrepeat = 3\n')
    if tests is not None:
        listed = ", ".join(f'"{t}"' for t in tests)
        text += f'[xfstests]\nfstypes = ["xfs"]\ntests = [{listed}]\n'
    text += "".join(f'[[variant]]\nname = "{v}"\n' for v in variants)
    path = tmp_path / "night.toml"
    path.write_text(text)
    return path


def plan(tmp_path: Path, capsys, *args: str, config: Path | None = None) -> tuple[list[str], dict]:
    """The plan command's lines and its --json document."""
    out = tmp_path / "plan.json"
    code = cli.main(["plan", "--config", str(config or write_config(tmp_path)), "--json", str(out), *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out.splitlines(), json.loads(out.read_text())


def measured(run: Path, variants=("baseline", "parallel-dio")) -> dict[str, float]:
    """Straight from summary.json: each variant's seconds of the stages the
    night repeats (boot, storage, fio points and xfstests tests that ran)."""
    data = json.loads((run / "summary.json").read_text())
    out = {}
    for v in data["variants"]:
        if v["name"] in variants:
            out[v["name"]] = sum(s["seconds"] for s in v["stages"] if s["status"] in ("pass", "fail") and (
                s["name"] in ("boot", "storage") or s["name"].startswith(("fio/", "xfstests/"))))
    return out


def test_one_runner_projects_the_sum(tmp_path, capsys):
    """N = 1: every measured second of run-b, plus the two tests skipped on
    one variant (taken from the other variant, 3 s each)."""
    _, doc = plan(tmp_path, capsys, "--shards", "1", "--times", str(RUN_B))
    night = doc["projections"][0]
    assert night["n"] == 1
    total = sum(measured(RUN_B).values())
    assert night["wall_seconds"] == pytest.approx(total + 2 * 3.0, abs=0.01)
    shard = night["shards"][0]
    assert shard["load"]["measured"] + shard["boots"]["measured"] == pytest.approx(total, abs=0.01)
    assert shard["load"]["projected"] == pytest.approx(6.0) and shard["boots"]["projected"] == 0


def test_fio_alone_on_one_runner_is_run_a(tmp_path, capsys):
    """Without an xfstests section, one runner is exactly run-a's stages."""
    config = write_config(tmp_path, tests=None)
    lines, doc = plan(tmp_path, capsys, "--shards", "1,2", "--times", str(RUN_A), config=config)
    assert list(doc["units"]) == ["fio"]
    assert doc["projections"][0]["wall_seconds"] == pytest.approx(sum(measured(RUN_A).values()), abs=0.01)
    assert doc["projections"][1]["wall_seconds"] == doc["projections"][0]["wall_seconds"]
    assert "  shard 2/2: no unit, boots nothing: 0.0 s" in lines
    assert "measured: 1 of 1 unit with every testcase measured on every variant" in lines


@pytest.mark.parametrize("times", [[], [str(RUN_A)], [str(RUN_B)], [str(RUN_A), str(RUN_B)]])
def test_more_runners_never_beat_the_longest_unit(tmp_path, capsys, times):
    args = ["--shards", ",".join(map(str, range(1, 9)))] + (["--times", *times] if times else [])
    _, doc = plan(tmp_path, capsys, *args)
    longest = max(u["seconds"] for u in doc["units"].values())
    walls = [p["wall_seconds"] for p in doc["projections"]]
    assert [p["n"] for p in doc["projections"]] == list(range(1, 9))
    for p in doc["projections"]:
        loads = [s["load"]["seconds"] for s in p["shards"]]
        assert p["wall_seconds"] >= longest
        assert p["wall_seconds"] >= sum(loads) / p["n"]
        assert sum(loads) == pytest.approx(sum(u["seconds"] for u in doc["units"].values()), abs=0.01)
        assert p["balance"] >= 1.0
    boots = sum(b["seconds"] for b in doc["boots"].values())
    assert walls[-1] == pytest.approx(longest + boots, abs=0.01)  # 8 runners: fio alone is the longest


def test_measured_and_projected_figures_are_labelled(tmp_path, capsys):
    """run-b measured generic/108 on parallel-dio only and generic/013 on
    baseline only; no run has generic/999 or variant v3's boot."""
    config = write_config(tmp_path, ("baseline", "parallel-dio", "v3"), XFSTESTS + ["generic/999"])
    lines, doc = plan(tmp_path, capsys, "--shards", "1,4", "--times", str(RUN_B), config=config)
    assert lines[0] == (f"{config}: 7 units on 3 variants (baseline, parallel-dio, v3); "
                        f"times from runs: 20261122-091500 ({RUN_B})")
    assert lines[1] == "plan: tests spread by count (as a store built without --plan-times)"
    assert all(re.search(r"\b(measured|projected)\b|boots nothing", line) for line in lines[2:])
    assert ("projected: 1 unit without a measured time, taken as 60 s per xfstests test and variant: "
            "xfstests/xfs/generic/999") in lines
    others = next(line for line in lines if "with variants no run measured" in line)
    assert others.startswith("projected: 6 units") and "fio, xfstests/xfs/generic/001" in others
    assert "measured: boot + storage of baseline 39.0 s, parallel-dio 28.5 s" in lines
    assert any(line.startswith("projected: boot + storage of v3, not measured, taken as 33.7 s each")
               for line in lines)
    assert doc["units"]["xfstests/xfs/generic/999"] == {
        "seconds": 180.0, "measured": 0.0, "projected": 180.0, "fallback": "default"}
    assert doc["units"]["xfstests/xfs/generic/108"]["fallback"] == "other variants"
    assert doc["boots"]["v3"]["measured"] is False and doc["boots"]["baseline"]["measured"] is True
    night = [line for line in lines if line.startswith("N=1:")][0]
    assert "projected" in night and "measured +" in night


def test_the_plan_on_an_earlier_runs_times(tmp_path, capsys):
    """--plan-times: the plan a store built with build --plan-times gives
    its shards (make_plan on those times: test_plan.py), said so."""
    config = write_config(tmp_path, ("baseline", "parallel-dio"), XFSTESTS)
    _, by_count = plan(tmp_path, capsys, "--shards", "4", "--times", str(RUN_B), config=config)
    lines, doc = plan(tmp_path, capsys, "--shards", "4", "--times", str(RUN_B), "--plan-times", str(RUN_B),
                      config=config)
    assert lines[1] == f"plan: tests spread by the times of 20261122-091500 ({RUN_B})"
    assert doc["plan_times"] == [f"20261122-091500 ({RUN_B})"] and by_count["plan_times"] is None
    assert doc["projections"][0]["balance"] <= by_count["projections"][0]["balance"]


def test_without_times_everything_is_projected(tmp_path, capsys):
    lines, doc = plan(tmp_path, capsys, "--shards", "4")
    assert "measured: 0 of 6 units with every testcase measured on every variant" in lines
    assert any(line.startswith("projected: 6 units without a measured time, taken as 39 s per fio point")
               for line in lines)
    assert doc["defaults"]["boot_storage"] == 60.0 and doc["runs"] == []
    for s in doc["projections"][0]["shards"]:
        assert s["load"]["measured"] == 0 and s["boots"]["measured"] == 0


def test_bad_input_is_one_line(tmp_path, capsys):
    config = str(write_config(tmp_path))
    (tmp_path / "empty").mkdir()
    cases = [
        (["--times", str(tmp_path / "empty")], f"{tmp_path / 'empty' / 'summary.json'}: not found"),
        (["--times", str(tmp_path / "gone")], f"{tmp_path / 'gone'}: no such run directory"),
        (["--shards", "0"], "--shards: expected numbers of shards from 1 to 64 separated by commas, got '0'"),
        (["--shards", "1,65"], "--shards: expected numbers of shards from 1 to 64"),
        (["--shards", "four"], "--shards: expected numbers of shards"),
    ]
    for args, message in cases:
        assert cli.main(["plan", "--config", config, *args]) == 1, args
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
        assert captured.out == ""
    bad = tmp_path / "bad" / "summary.json"
    bad.parent.mkdir()
    bad.write_text("{")
    assert cli.main(["plan", "--config", config, "--times", str(bad.parent)]) == 1
    assert f"{bad}: not valid JSON" in capsys.readouterr().err
    assert cli.main(["plan", "--config", str(tmp_path / "nope.toml")]) == 1
    assert "nope.toml" in capsys.readouterr().err


def test_a_run_of_another_setup_is_said_so(tmp_path, capsys):
    """run-a's summary with the setup record of a run at runtime 9 s: its
    times are still taken, and the line says how the setup differed."""
    data = json.loads((RUN_A / "summary.json").read_text())
    data["setup"] = {"accel": "tcg", "fio.runtime": 9, "fio.rw": "randwrite"}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "summary.json").write_text(json.dumps(data))
    lines, doc = plan(tmp_path, capsys, "--shards", "1", "--times", str(RUN_A), str(tmp_path / "other"),
                      config=write_config(tmp_path, tests=None))
    assert f"measured: run 20261121-220102 ({RUN_A}) under TCG" in lines
    assert (f"measured: run 20261121-220102 ({tmp_path / 'other'}) under TCG, with another setup "
            f"(fio.runtime 9 there, 6 in the config): its times are taken as they are") in lines
    assert doc["projections"][0]["wall_seconds"] == pytest.approx(sum(measured(RUN_A).values()), abs=0.01)


def test_a_group_selection_is_timed_by_its_tests(tmp_path, capsys):
    """A group selection (no list on the planning host) is one unit per
    fstype: its measured seconds are those of every test run-b ran of it."""
    config = write_config(tmp_path, tests=None)
    config.write_text(config.read_text().replace(
        "[[variant]]", '[xfstests]\nfstypes = ["xfs"]\ngroups = ["quick"]\n[[variant]]', 1))
    lines, doc = plan(tmp_path, capsys, "--shards", "2", "--times", str(RUN_B), config=config)
    assert list(doc["units"]) == ["fio", "xfstests/xfs"]
    assert doc["units"]["xfstests/xfs"] == {"seconds": 24.0, "measured": 24.0, "projected": 0.0,
                                            "fallback": None}  # four tests ran on each variant, 3 s each
    assert "measured: 2 of 2 units with every testcase measured on every variant" in lines
