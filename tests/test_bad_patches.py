"""Patch inputs that are not what they claim, and kernel trees git refuses:
each fails with one line that names the file and why, never as a variant
that silently is the baseline under another name."""
import os
import subprocess
import sys

import pytest

from conftest import PROJECT, git, tree_state
from kvariant.errors import ConfigError, StageError
from kvariant.tree import Mirror, apply_series, resolve_rev, series_file_name, series_from_ref


def base_of(tree):
    return git(tree, "rev-parse", "v1")


def one_patch(tree, tmp_path):
    git(tree, "format-patch", "-q", "-o", str(tmp_path / "series"), "v1..topic~1")
    return sorted((tmp_path / "series").iterdir())[0]


@pytest.mark.parametrize("content, why", [
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, "a binary file, not a patch"),
    (b"Notes for the reviewers.\nThis change makes fuse faster.\n", "plain text without a diff"),
    (b"", "the file is empty"),
])
def test_a_file_with_no_diff_fails_apply_naming_it(small_tree, tmp_path, cache, content, why):
    bad = tmp_path / "fix.patch"
    bad.write_bytes(content)
    with pytest.raises(StageError) as e:
        apply_series(Mirror(small_tree), base_of(small_tree), [bad], "t/nodiff")
    assert e.value.message == f"no diff found in {bad}: {why}"


def test_such_a_file_beside_real_patches_still_fails(small_tree, tmp_path, cache):
    notes = tmp_path / "notes.patch"
    notes.write_text("Just words.\n")
    with pytest.raises(StageError) as e:
        apply_series(Mirror(small_tree), base_of(small_tree), [one_patch(small_tree, tmp_path), notes],
                     "t/notes")
    assert e.value.message == f"no diff found in {notes}: plain text without a diff"


def cover_letters(tree, tmp_path):
    """An mbox of two cover letters (format-patch --cover-letter, patches dropped)."""
    text = git(tree, "format-patch", "--stdout", "--cover-letter", "v1..topic")
    mails = ["From " + m for m in text.split("\nFrom ")]
    covers = [m for m in mails if "[PATCH 0/2]" in m]
    assert len(covers) == 1 and "diff --git" not in covers[0]
    mbox = tmp_path / "covers.mbox"
    mbox.write_text(covers[0].lstrip("From ").join(["From ", "\n"]) * 2)
    return mbox


def test_an_mbox_of_cover_letters_only_fails(small_tree, tmp_path, cache):
    mbox = cover_letters(small_tree, tmp_path)
    with pytest.raises(StageError) as e:
        apply_series(Mirror(small_tree), base_of(small_tree), [mbox], "t/covers")
    assert e.value.message == f"no diff found in {mbox}: 2 mail(s) without a diff (cover letters only)"


def test_a_cover_letter_file_beside_its_patches_is_skipped(small_tree, tmp_path, cache):
    d = tmp_path / "series"
    git(small_tree, "format-patch", "-q", "--cover-letter", "-o", str(d), "v1..topic")
    files = sorted(d.iterdir())
    assert files[0].name == "0000-cover-letter.patch"
    applied = apply_series(Mirror(small_tree), base_of(small_tree), files, "t/dir")
    assert [p.subject for p in applied] == ["fuse: topic change 1", "fuse: topic change 2"]


def test_git_ref_without_commits_fails(small_tree, tmp_path, cache):
    with pytest.raises(StageError) as e:
        series_from_ref(small_tree, "v1", "v1", tmp_path)
    assert "git:v1: no commit between the base and v1" in e.value.message


def test_refs_with_the_same_slug_get_distinct_files(small_tree, tmp_path, cache):
    git(small_tree, "branch", "fix/x", "topic~1")
    git(small_tree, "branch", "fix-x", "topic")
    assert series_file_name("fix/x") != series_file_name("fix-x")
    a = series_from_ref(small_tree, "v1", "fix/x", tmp_path)
    b = series_from_ref(small_tree, "v1", "fix-x", tmp_path)
    assert a != b and a.parent == b.parent == tmp_path
    assert a.name.startswith("git-fix-x-") and b.name.startswith("git-fix-x-")
    mirror = Mirror(small_tree)
    assert len(apply_series(mirror, base_of(small_tree), [a], "t/a")) == 1
    assert len(apply_series(mirror, base_of(small_tree), [b], "t/b")) == 2
    # a ref can hold no path of its own in the file name
    assert "/" not in series_file_name("../../etc/passwd") and series_file_name("..").startswith("git-")


def test_latin1_mbox_without_charset_is_applied(small_tree, tmp_path, cache):
    before = tree_state(small_tree)
    diff = git(small_tree, "diff", "v1", "topic~1").encode() + b"\n"
    mbox = tmp_path / "latin1.mbox"
    mbox.write_bytes(b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                     b"From: J\xf6rg M\xfcller <j@example.org>\n"
                     b"Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
                     b"Subject: [PATCH] fuse: caf\xe9 change\n\n"
                     b"Na\xefve body, no charset header.\n---\n" + diff)
    mirror = Mirror(small_tree)
    applied = apply_series(mirror, base_of(small_tree), [mbox], "t/latin1")
    assert [p.subject for p in applied] == ["fuse: café change"]
    assert applied[0].author == "Jörg Müller <j@example.org>"
    repo = mirror.repo()
    assert repo.git.log("-1", "--format=%an%n%B", applied[0].commit).strip() == \
        "Jörg Müller\nfuse: café change\n\nNaïve body, no charset header."
    assert repo.git.rev_parse(f"{applied[0].commit}^{{tree}}") == git(small_tree, "rev-parse", "topic~1^{tree}")
    assert tree_state(small_tree) == before


@pytest.fixture
def foreign_tree(small_tree, tmp_path, monkeypatch):
    """The small tree owned by another user (nobody), and a git global
    config of our own, so that no safe.directory of the host's lets it in."""
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    subprocess.run(["chown", "-R", "65534:65534", str(small_tree)], check=True)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return small_tree


def test_tree_of_another_user_gives_gits_reason(foreign_tree):
    with pytest.raises(ConfigError) as e:
        resolve_rev(foreign_tree, "v1")
    assert str(e.value).startswith(f"{foreign_tree}: git refuses to read this tree: "
                                   f"detected dubious ownership in repository at")


def test_run_on_a_tree_of_another_user_is_one_line_exit_1(foreign_tree, tmp_path):
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{foreign_tree}"\nbase = "v1"\n\n[[variant]]\nname = "baseline"\n')
    p = subprocess.run([sys.executable, str(PROJECT / "pipeline.py"), "run", "--config", str(conf),
                        "--results", str(tmp_path / "results")],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "dubious ownership" in lines[0] and str(foreign_tree) in lines[0]
    assert not (tmp_path / "results").exists()


def test_a_run_fails_apply_of_each_such_variant_and_goes_on(small_tree, tmp_path, cache):
    """Through the runner: the apply stage fails with the file named, the
    rest of that variant is skipped, the next variant still runs."""
    import json

    from kvariant import config
    from kvariant.model import Status
    from kvariant.ui import UI
    from kvariant.pipeline.run import Run
    notes = tmp_path / "notes.patch"
    notes.write_text("Reviewers: this makes fuse faster.\n")
    binary = tmp_path / "fix.diff"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n'
                    f'[[variant]]\nname = "notes"\npatches = ["{notes}"]\n'
                    f'[[variant]]\nname = "binary"\npatches = ["{binary}"]\n')
    results = Run(config.load(conf), tmp_path / "results" / "r", "r", UI()).execute()
    applies = {r.name: r.stage("apply") for r in results}
    assert applies["notes"].status == Status.FAIL
    assert applies["notes"].message == f"no diff found in {notes}: plain text without a diff"
    assert applies["binary"].message == f"no diff found in {binary}: a binary file, not a patch"
    assert all(r.stage("build").status == Status.SKIP for r in results)
    assert json.loads((tmp_path / "results" / "r" / "summary.json").read_text())["status"] == "fail"
