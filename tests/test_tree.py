"""Patch application on small real git repositories: our clone, never the
user's tree."""
import subprocess
import sys
import time
from pathlib import Path

import git as gitpython
import pytest

from conftest import git, tree_state
from kvariant.errors import GitTimedOut, InfraError, StageError
from kvariant.tree import Mirror, apply_series, patch_files, rejected_hunk, run_git, series_from_ref


def format_patches(repo, rng, out):
    out.mkdir(parents=True, exist_ok=True)
    git(repo, "format-patch", "-q", "-o", str(out), rng)
    return sorted(out.iterdir())


def test_series_applies_as_commits_with_patch_ids(small_tree, tmp_path, cache):
    before = tree_state(small_tree)
    files = format_patches(small_tree, "v1..topic", tmp_path / "series")
    mirror = Mirror(small_tree)
    base = git(small_tree, "rev-parse", "v1")
    applied = apply_series(mirror, base, files, "t/v")
    assert [p.subject for p in applied] == ["fuse: topic change 1", "fuse: topic change 2"]
    # same tree as the user's branch, author kept, one patch-id per patch
    repo = mirror.repo()
    assert repo.git.rev_parse(f"{applied[-1].commit}^{{tree}}") == git(small_tree, "rev-parse", "topic^{tree}")
    assert applied[0].author == "Test Author <author@example.org>"
    ids = [git(small_tree, "show", "topic~1"), git(small_tree, "show", "topic")]
    expected = [subprocess.run(["git", "patch-id", "--stable"], input=t, capture_output=True, text=True)
                .stdout.split()[0] for t in ids]
    assert [p.patch_id for p in applied] == expected
    # deterministic: the same series on the same base gives the same commits
    assert [p.commit for p in apply_series(mirror, base, files, "t/w")] == [p.commit for p in applied]
    assert tree_state(small_tree) == before


def test_mbox_of_three_with_cover_letter(small_tree, tmp_path, cache):
    git(small_tree, "checkout", "-q", "-b", "three", "topic")
    (small_tree / "fs" / "fuse" / "new.c").write_text("int x;\n")
    git(small_tree, "add", "fs/fuse/new.c")
    git(small_tree, "commit", "-q", "-m", "fuse: add new.c")
    git(small_tree, "checkout", "-q", "master")
    before = tree_state(small_tree)
    mbox = tmp_path / "series.mbox"
    mbox.write_text(git(small_tree, "format-patch", "--stdout", "--cover-letter", "v1..three") + "\n")
    applied = apply_series(Mirror(small_tree), git(small_tree, "rev-parse", "v1"), [mbox], "t/m")
    assert [p.subject for p in applied] == ["fuse: topic change 1", "fuse: topic change 2", "fuse: add new.c"]
    assert all("message" in p.source for p in applied)
    assert tree_state(small_tree) == before


def test_patch_that_does_not_apply_names_the_hunk(small_tree, tmp_path, cache):
    bad = tmp_path / "bad.patch"
    bad.write_text(
        "From: Someone <s@example.org>\nSubject: [PATCH] fuse: bad\n\n---\n"
        "diff --git a/fs/fuse/file.c b/fs/fuse/file.c\n--- a/fs/fuse/file.c\n+++ b/fs/fuse/file.c\n"
        "@@ -20,3 +20,3 @@\n line 20\n-line 21 is not what the file has\n+line 21 new\n line 22\n")
    with pytest.raises(StageError) as e:
        apply_series(Mirror(small_tree), git(small_tree, "rev-parse", "v1"), [bad], "t/bad")
    assert "does not apply" in e.value.message and "fuse: bad" in e.value.message
    assert "rejected hunk" in e.value.detail
    assert "-line 21 is not what the file has" in e.value.detail


def test_plain_diff_without_mail_headers(small_tree, tmp_path, cache):
    diff = tmp_path / "0001-plain.diff"
    diff.write_text(git(small_tree, "diff", "v1", "topic~1") + "\n")
    applied = apply_series(Mirror(small_tree), git(small_tree, "rev-parse", "v1"), [diff], "t/p")
    assert len(applied) == 1 and applied[0].subject == "0001-plain"


def test_git_ref_series_and_directory(small_tree, tmp_path, cache):
    before = tree_state(small_tree)
    mbox = series_from_ref(small_tree, "v1", "topic", tmp_path)
    applied = apply_series(Mirror(small_tree), git(small_tree, "rev-parse", "v1"), [mbox], "t/g")
    assert len(applied) == 2
    d = tmp_path / "dir"
    format_patches(small_tree, "v1..topic", d)
    (d / "README").write_text("not a patch")
    assert [p.name for p in patch_files(d)] == sorted(p.name for p in d.iterdir() if p.suffix == ".patch")
    assert tree_state(small_tree) == before


def test_checkout_worktree_is_ours(small_tree, cache):
    before = tree_state(small_tree)
    mirror = Mirror(small_tree)
    src = mirror.checkout(git(small_tree, "rev-parse", "topic"))
    assert "changed on topic" in (src / "fs" / "fuse" / "file.c").read_text()
    assert str(src).startswith(str(cache))
    src = mirror.checkout(git(small_tree, "rev-parse", "v1"))
    assert "changed" not in (src / "fs" / "fuse" / "file.c").read_text()
    assert tree_state(small_tree) == before


def test_rejected_hunk_parser():
    patch = ("--- a/x.c\n+++ b/x.c\n@@ -5,2 +5,2 @@\n a\n-b\n+c\n@@ -9,2 +9,2 @@\n d\n-e\n+f\n")
    assert rejected_hunk("error: patch failed: x.c:9\nerror: x.c: patch does not apply", patch) == \
        "@@ -9,2 +9,2 @@\n d\n-e\n+f"
    assert rejected_hunk("something else", patch) == ""


def processes_naming(marker: str) -> list[int]:
    """Live processes whose command line holds *marker*."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and marker.encode() in (d / "cmdline").read_bytes() \
                    and ") Z " not in (d / "stat").read_text():
                found.append(int(d.name))
        except OSError:
            continue
    return found


def test_a_hung_git_is_killed_at_its_deadline_and_named(small_tree, tmp_path):
    """A remote that never answers: its upload-pack leaves a grandchild of
    git holding git's stderr.  The fetch ends at its deadline with an error
    naming the command, and nothing it started lives on."""
    marker = str(tmp_path / "hung-remote")
    hang = tmp_path / "upload-pack"
    hang.write_text(f"#!/bin/sh\n{sys.executable} -c 'import time; time.sleep(1000)' {marker} &\nwait\n")
    hang.chmod(0o755)
    ours = gitpython.Repo.init(tmp_path / "ours")
    start = time.monotonic()
    with pytest.raises(GitTimedOut) as e:
        run_git(ours, "fetch", f"--upload-pack={hang}", str(small_tree), timeout=2)
    assert time.monotonic() - start < 2 + 5
    assert isinstance(e.value, InfraError)  # one line for the user, exit code 3
    assert str(e.value) == (f"git did not finish within 2 s and was killed: "
                            f"git -C {tmp_path / 'ours'} fetch --upload-pack={hang} {small_tree}")
    deadline = time.monotonic() + 5
    while processes_naming(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_naming(marker) == []


def test_git_failures_within_the_deadline_stay_git_errors(tmp_path):
    ours = gitpython.Repo.init(tmp_path / "ours")
    with pytest.raises(gitpython.GitCommandError):
        run_git(ours, "rev_parse", "--verify", "no-such-ref", timeout=30)
    assert run_git(ours, "rev_parse", "--is-bare-repository") == "false"
