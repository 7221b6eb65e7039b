import contextlib
import shlex
import subprocess
from pathlib import Path

import pytest

from kvariant.paths import PROJECT
from kvariant.workloads.fusetrace import TRACEFS

FIXTURES = Path(__file__).parent / "fixtures"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.org",
    "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.org",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+0000",
    "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=GIT_ENV).stdout.strip()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private KVARIANT_CACHE, so tests never touch the real one."""
    d = tmp_path / "cache"
    monkeypatch.setenv("KVARIANT_CACHE", str(d))
    return d


@pytest.fixture
def small_tree(tmp_path):
    """A tiny 'kernel' git repository tagged v1, with a branch 'topic' of two
    commits on top, checked out on master with an uncommitted change."""
    repo = tmp_path / "linux"
    (repo / "fs" / "fuse").mkdir(parents=True)
    (repo / "fs" / "fuse" / "file.c").write_text("".join(f"line {i}\n" for i in range(1, 41)))
    (repo / "Makefile").write_text("all:\n\ttrue\n")
    git(repo.parent, "init", "-q", "-b", "master", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "v1")
    git(repo, "checkout", "-q", "-b", "topic")
    for n in (1, 2):
        f = repo / "fs" / "fuse" / "file.c"
        f.write_text(f.read_text().replace(f"line {n * 10}\n", f"line {n * 10} changed on topic\n"))
        git(repo, "commit", "-q", "-am", f"fuse: topic change {n}")
    git(repo, "checkout", "-q", "master")
    (repo / "Makefile").write_text("all:\n\ttrue # user's uncommitted edit\n")
    return repo


def broken_patch_config(tmp_path: Path, small_tree: Path) -> Path:
    """A config whose one variant's patch does not apply to *small_tree*:
    a run that needs no VM."""
    bad = tmp_path / "bad.patch"
    bad.write_text("From: A <a@example.org>\nSubject: [PATCH] broken\n\n---\n"
                   "diff --git a/nothere.c b/nothere.c\n--- a/nothere.c\n+++ b/nothere.c\n"
                   "@@ -1,1 +1,1 @@\n-x\n+y\n")
    conf = tmp_path / "p.toml"
    conf.write_text(f'[kernel]\ntree = "{small_tree}"\nbase = "v1"\n'
                    f'[[variant]]\nname = "broken"\npatches = ["{bad}"]\n')
    return conf


def tree_state(repo: Path) -> tuple:
    """Everything of the user's tree we promise not to change."""
    return (git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"),
            git(repo, "status", "--porcelain"), git(repo, "for-each-ref"),
            git(repo, "worktree", "list", "--porcelain"),
            (repo / ".git" / "index").read_bytes())


@contextlib.contextmanager
def boot_instance(directory: str, *events: str):
    """A tracefs instance at *directory* with *events* on and its tracing
    off, made on this host as a guest's kernel makes it at boot from
    ``trace_instance=NAME^traceoff,EVENT,...``; removed afterwards.  A
    host that has not mounted tracefs (no systemd to do it) gets it
    mounted, as the guest's scripts do."""
    subprocess.run(["bash", "-c", f"mountpoint -q {TRACEFS} || mount -t tracefs nodev {TRACEFS}"],
                   capture_output=True, timeout=60)
    d = shlex.quote(directory)
    enable = "".join(f"echo 1 > {d}/{e}/enable; " for e in events)
    disable = "".join(f"echo 0 > {d}/{e}/enable; " for e in events)
    script = f"[ ! -d {d} ] || {{ {disable}rmdir {d}; }}; mkdir {d} && echo 0 > {d}/tracing_on && {enable}"
    made = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    try:
        yield directory
    finally:
        subprocess.run(["bash", "-c", f"{disable}rmdir {d}"], capture_output=True, timeout=60)
        assert not Path(directory).exists()
